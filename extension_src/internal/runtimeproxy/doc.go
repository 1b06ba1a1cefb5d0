// Package runtimeproxy is a transparent proxy of the Lambda Runtime API
// (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) that records, per request id,
// when the runtime took its event, when and how it answered, and the answer's size.
//
// The runtime is pointed at the proxy by the wrapper script (AWS_LAMBDA_EXEC_WRAPPER) or by a
// bootstrap that sets AWS_LAMBDA_RUNTIME_API. Every path and method is forwarded; status codes,
// headers (minus hop-by-hop ones), bodies and trailers pass unchanged and unbuffered, so streamed
// responses stream. The proxy never reads a body into memory.
package runtimeproxy

// Package telemetryapi subscribes the extension to the Lambda Telemetry API's platform stream,
// receives the batches Lambda posts to it, and merges the events into the history store by
// request id.
//
//   - Subscribe API: https://docs.aws.amazon.com/lambda/latest/dg/telemetry-api-reference.html
//   - Event schema:  https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html
//   - Overview:      https://docs.aws.amazon.com/lambda/latest/dg/telemetry-api.html
//
// The listener is on the telemetry path of every invocation, so it is cheap and quiet: it never
// logs per event (an extension subscribed to its own logs would feed itself), bounds what it
// reads, answers bad input with a 4xx and counts it, and never blocks on anything but the store's
// lock.
package telemetryapi

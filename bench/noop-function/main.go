// Command bootstrap is the benchmark's function: a custom runtime (provided.al2023 style) that
// answers every event with {} through the Runtime API, using the standard library only. It does
// not call the extension, so the same function runs unchanged with no extension (baseline), the
// floor extension and ours, and what differs between the three is the extension's cost alone.
//
// BENCH_FUNCTION_WORK_MS makes each invoke take that long (a sleep) before answering: the
// extension's cost is fixed per invoke, so its ratio shrinks as the function does more work.
//
// BENCH_FUNCTION_RESPONSE_BYTES makes each answer a JSON string of that many bytes (built once),
// for the Runtime API proxy's throughput scenario: the runtime spends nothing on encoding, so what
// is measured is the body's trip through the proxy, the RIE and the client.
package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	base := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/"
	client := &http.Client{}
	workMs, _ := strconv.ParseFloat(os.Getenv("BENCH_FUNCTION_WORK_MS"), 64)
	work := time.Duration(workMs * float64(time.Millisecond))
	answer := []byte("{}")
	if n, _ := strconv.Atoi(os.Getenv("BENCH_FUNCTION_RESPONSE_BYTES")); n > 2 {
		answer = bytes.Repeat([]byte("x"), n)
		answer[0], answer[n-1] = '"', '"'
	}
	for {
		resp, err := client.Get(base + "next")
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		if work > 0 {
			time.Sleep(work)
		}
		out, err := client.Post(base+id+"/response", "application/json", bytes.NewReader(answer))
		if err == nil {
			_, _ = io.Copy(io.Discard, out.Body)
			out.Body.Close()
		}
	}
}

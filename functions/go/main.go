// Command bootstrap is the Go sample function: it asks the invocation history extension for the
// history that includes its own invocation and returns it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

const (
	portVariable = "INVOCATION_HISTORY_EXTENSION_HTTP_PORT"
	defaultPort  = 1203
	// waitMs asks the extension to answer once it has recorded this invocation; the client timeout
	// stays above it so a slow extension costs at most ~1 s and never fails the function.
	waitMs        = 500
	clientTimeout = 1500 * time.Millisecond
	maxBody       = 8 << 20
)

// Response is what the sample returns; Error replaces the history when the extension cannot answer.
type Response struct {
	RequestID   string            `json:"requestId"`
	Invocations []json.RawMessage `json:"invocations"`
	Environment json.RawMessage   `json:"environment,omitempty"`
	Error       string            `json:"extensionError,omitempty"`
}

var client = &http.Client{Timeout: clientTimeout}

func baseURL() string {
	port := defaultPort
	if n, err := strconv.Atoi(os.Getenv(portVariable)); err == nil && n > 0 && n < 65536 {
		port = n // the extension falls back to the default for an invalid value; so do we
	}
	return "http://127.0.0.1:" + strconv.Itoa(port)
}

func getJSON(ctx context.Context, u string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %s", u, resp.StatusCode, body)
	}
	return json.Unmarshal(body, into)
}

func handle(ctx context.Context, _ json.RawMessage) (Response, error) {
	out := Response{Invocations: []json.RawMessage{}}
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		out.RequestID = lc.AwsRequestID
	}
	base := baseURL()
	var list struct {
		Invocations []json.RawMessage `json:"invocations"`
	}
	q := url.Values{"requestId": {out.RequestID}, "waitMs": {strconv.Itoa(waitMs)}}
	if err := getJSON(ctx, base+"/invocations?"+q.Encode(), &list); err != nil {
		out.Error = "invocation history extension unavailable: " + err.Error()
		return out, nil
	}
	out.Invocations = list.Invocations
	if err := getJSON(ctx, base+"/environment", &out.Environment); err != nil {
		out.Error = "invocation history extension: environment unavailable: " + err.Error()
	}
	return out, nil
}

func main() { lambda.Start(handle) }

package telemetryapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

const (
	subscribePath    = "/2022-07-01/telemetry"
	headerIdentifier = "Lambda-Extension-Identifier"
	// DestinationHost is the host Lambda requires in an HTTP destination URI; Lambda resolves it
	// to the sandbox the extension runs in.
	DestinationHost = "sandbox.localdomain"
	// errorNotSupported is what the RIE (and other local emulators) answer, with HTTP 202.
	errorNotSupported = "Telemetry.NotSupported"
	maxResponseBody   = 64 << 10
)

// Buffering is how Lambda batches events before it posts them.
type Buffering struct {
	MaxItems  int `json:"maxItems"`
	MaxBytes  int `json:"maxBytes"`
	TimeoutMs int `json:"timeoutMs"`
}

// Destination is where Lambda posts the batches.
type Destination struct {
	Protocol string `json:"protocol"`
	URI      string `json:"URI"`
}

// SubscribeRequest is the body of PUT /2022-07-01/telemetry.
type SubscribeRequest struct {
	SchemaVersion string      `json:"schemaVersion"`
	Types         []Stream    `json:"types"`
	Buffering     Buffering   `json:"buffering"`
	Destination   Destination `json:"destination"`
}

// NewSubscribeRequest asks for the platform stream at the current schema version, posted to the
// listener on port.
func NewSubscribeRequest(port int, b Buffering) SubscribeRequest {
	return SubscribeRequest{
		SchemaVersion: SchemaVersion,
		Types:         []Stream{StreamPlatform},
		Buffering:     b,
		Destination:   Destination{Protocol: "HTTP", URI: "http://" + DestinationHost + ":" + strconv.Itoa(port)},
	}
}

// Result says how the subscription went.
type Result string

const (
	// Subscribed: Lambda will post batches to the listener.
	Subscribed Result = "on"
	// NotSupported: the API answered 2xx with errorType Telemetry.NotSupported (the RIE in its
	// standard mode); records stay INVOKE-only.
	NotSupported Result = "unsupported"
)

// Client subscribes to the Telemetry API at one address (host:port, from AWS_LAMBDA_RUNTIME_API).
type Client struct {
	url        string
	httpClient *http.Client
}

// NewClient returns a client of the Telemetry API at runtimeAPI.
func NewClient(runtimeAPI string, httpClient *http.Client) *Client {
	return &Client{url: "http://" + runtimeAPI + subscribePath, httpClient: httpClient}
}

// Subscribe sends one subscription for the extension registered as extensionID. A 2xx answer
// whose body carries errorType Telemetry.NotSupported is NotSupported, not an error: that is how
// emulators without a Telemetry API answer (with 202), so the status alone says nothing.
func (c *Client) Subscribe(ctx context.Context, extensionID string, sub SubscribeRequest) (Result, error) {
	body, err := json.Marshal(sub)
	if err != nil {
		return "", fmt.Errorf("subscribe to telemetry: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.url, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("subscribe to telemetry: %w", err)
	}
	req.Header.Set(headerIdentifier, extensionID)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("subscribe to telemetry: %w", err)
	}
	defer resp.Body.Close() // on every path, error statuses included
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return "", fmt.Errorf("subscribe to telemetry: read response: %w", err)
	}
	var apiErr struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}
	_ = json.Unmarshal(answer, &apiErr) // "OK" (a JSON string) or an error object; either may come
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("subscribe to telemetry: status %d: %s", resp.StatusCode, bytes.TrimSpace(answer))
	}
	if apiErr.ErrorType == errorNotSupported {
		return NotSupported, nil
	}
	if apiErr.ErrorType != "" {
		return "", fmt.Errorf("subscribe to telemetry: status %d: %s: %s", resp.StatusCode, apiErr.ErrorType, apiErr.ErrorMessage)
	}
	return Subscribed, nil
}

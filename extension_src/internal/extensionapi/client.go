// Package extensionapi is a client of the Lambda Extensions API:
// https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html
package extensionapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// EventType is a lifecycle event an extension can register for.
type EventType string

const (
	Invoke   EventType = "INVOKE"
	Shutdown EventType = "SHUTDOWN"
)

// Header names of the Extensions API.
const (
	headerName       = "Lambda-Extension-Name"
	headerIdentifier = "Lambda-Extension-Identifier"
	headerErrorType  = "Lambda-Extension-Function-Error-Type"
	headerFeature    = "Lambda-Extension-Accept-Feature"
)

const basePath = "/2020-01-01/extension"

// maxResponseBody bounds what the client reads from the API: events are a few hundred bytes.
const maxResponseBody = 1 << 20

// RegisterResponse is the body of a successful registration.
type RegisterResponse struct {
	FunctionName    string `json:"functionName"`
	FunctionVersion string `json:"functionVersion"`
	Handler         string `json:"handler"`
	AccountID       string `json:"accountId,omitempty"`
}

// Tracing is the X-Ray context of an invocation.
type Tracing struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Event is one INVOKE or SHUTDOWN event from /event/next.
type Event struct {
	EventType          EventType `json:"eventType"`
	DeadlineMs         int64     `json:"deadlineMs"`
	RequestID          string    `json:"requestId"`
	InvokedFunctionArn string    `json:"invokedFunctionArn"`
	Tracing            Tracing   `json:"tracing"`
	ShutdownReason     string    `json:"shutdownReason"`
}

// Client talks to the Extensions API at one address (host:port, from AWS_LAMBDA_RUNTIME_API).
type Client struct {
	baseURL    string
	httpClient *http.Client
	id         string
}

// NewClient returns a client for the API at runtimeAPI. httpClient must have no overall timeout:
// /event/next blocks until the next event.
func NewClient(runtimeAPI string, httpClient *http.Client) *Client {
	return &Client{baseURL: "http://" + runtimeAPI + basePath, httpClient: httpClient}
}

// ExtensionID is the identifier assigned at registration.
func (c *Client) ExtensionID() string { return c.id }

// Register registers the extension under name for events.
func (c *Client) Register(ctx context.Context, name string, events ...EventType) (RegisterResponse, error) {
	var out RegisterResponse
	body, _ := json.Marshal(map[string][]EventType{"events": events})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+"/register", bytes.NewReader(body))
	if err != nil {
		return out, fmt.Errorf("register extension: %w", err)
	}
	req.Header.Set(headerName, name)
	req.Header.Set(headerFeature, "accountId")
	req.Header.Set("Content-Type", "application/json") // the body is JSON: say so (RFC 9110 §8.3)
	resp, err := c.do(req)
	if err != nil {
		return out, fmt.Errorf("register extension: %w", err)
	}
	if err := json.Unmarshal(resp.body, &out); err != nil {
		return out, fmt.Errorf("register extension: decode response: %w", err)
	}
	c.id = resp.header.Get(headerIdentifier)
	if c.id == "" {
		return out, fmt.Errorf("register extension: response has no %s header", headerIdentifier)
	}
	return out, nil
}

// NextEvent blocks until Lambda sends the next event.
func (c *Client) NextEvent(ctx context.Context) (Event, error) {
	var ev Event
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/event/next", nil)
	if err != nil {
		return ev, fmt.Errorf("next event: %w", err)
	}
	req.Header.Set(headerIdentifier, c.id)
	resp, err := c.do(req)
	if err != nil {
		return ev, fmt.Errorf("next event: %w", err)
	}
	if err := json.Unmarshal(resp.body, &ev); err != nil {
		return ev, fmt.Errorf("next event: decode: %w", err)
	}
	return ev, nil
}

// InitError reports a failure during init; Lambda then fails the init phase. errorType must look
// like "Extension.<Reason>".
func (c *Client) InitError(ctx context.Context, errorType, message string) error {
	return c.reportError(ctx, "/init/error", errorType, message)
}

// ExitError reports a failure before the extension exits.
func (c *Client) ExitError(ctx context.Context, errorType, message string) error {
	return c.reportError(ctx, "/exit/error", errorType, message)
}

func (c *Client) reportError(ctx context.Context, path, errorType, message string) error {
	body, _ := json.Marshal(map[string]any{"errorType": errorType, "errorMessage": message})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	req.Header.Set(headerIdentifier, c.id)
	req.Header.Set(headerErrorType, errorType)
	req.Header.Set("Content-Type", "application/json")
	if _, err := c.do(req); err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	return nil
}

type response struct {
	header http.Header
	body   []byte
}

// do sends req and reads a bounded body; a non-2xx status is an error carrying the body.
func (c *Client) do(req *http.Request) (response, error) {
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close() // closed on every path, error statuses included
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return response{}, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return response{}, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return response{header: resp.Header, body: body}, nil
}

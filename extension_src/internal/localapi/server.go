// Package localapi serves the function-facing HTTP API on the loopback interface.
//
// The contract (paths, parameters, shapes) is docs/api/openapi.yaml. Every error is JSON in the
// AWS style {"errorType": "...", "errorMessage": "..."}.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/invocation-history/extension/internal/history"
)

// Environment describes the execution environment; fields not known are omitted.
type Environment struct {
	EnvironmentID   string    `json:"environmentId"`
	FunctionName    string    `json:"functionName,omitempty"`
	FunctionVersion string    `json:"functionVersion,omitempty"`
	MemoryMB        int       `json:"memoryMB,omitempty"`
	Region          string    `json:"region,omitempty"`
	InitType        string    `json:"initType,omitempty"`
	InitStartedAt   time.Time `json:"initStartedAt"`
	// From the telemetry init events (platform.initStart, platform.initReport), when telemetry is on;
	// filled in from the store at each request.
	InitDurationMs    float64 `json:"initDurationMs,omitempty"`
	InitStatus        string  `json:"initStatus,omitempty"`
	RuntimeVersion    string  `json:"runtimeVersion,omitempty"`
	RuntimeVersionArn string  `json:"runtimeVersionArn,omitempty"`
	// ManagedInstances is true on Lambda Managed Instances: no INVOKE events, records come from
	// telemetry, several invocations run at once.
	ManagedInstances bool     `json:"managedInstances"`
	ExtensionVersion string   `json:"extensionVersion"`
	Features         Features `json:"features"`
	Limits           Limits   `json:"limits"`
}

// Features says which optional features are on.
type Features struct {
	// Telemetry is the Telemetry API enrichment: "on" (subscribed), "off" (switched off),
	// "unsupported" (the API answered Telemetry.NotSupported, as the RIE does in its standard
	// mode) or "failed" (the listener or the subscription failed; the reason is in the log).
	Telemetry     string `json:"telemetry"`
	RuntimeProxy  bool   `json:"runtimeProxy"`
	S3Export      bool   `json:"s3Export"`
	RequestIDWait bool   `json:"requestIdWait"`
}

// Limits are the bounds in force.
type Limits struct {
	MaxRecords int   `json:"maxRecords"`
	MaxWaitMs  int64 `json:"maxWaitMs"`
}

const (
	// defaultWait applies when a caller names a request id without waitMs: long enough to cover the
	// INVOKE race (microseconds in practice), short enough not to eat the function's time budget.
	defaultWait = 1 * time.Second
	// maxConcurrentWaits bounds the goroutines parked in request-id waits.
	maxConcurrentWaits = 64
	maxRequestIDLength = 256
)

// Server is the local API. Create it with New, then Serve a listener.
type Server struct {
	store   *history.Store
	maxWait time.Duration
	env     atomic.Pointer[Environment]
	waiters atomic.Int64
	log     *slog.Logger
	http    *http.Server
}

// New returns a server answering from store. maxWait caps a caller's waitMs.
func New(store *history.Store, env Environment, maxWait time.Duration, log *slog.Logger) *Server {
	s := &Server{store: store, maxWait: maxWait, log: log}
	s.SetEnvironment(env)
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      maxWait + 10*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s
}

// SetEnvironment replaces what /environment reports (the lifecycle learns the function name only
// at registration, after the server has started).
func (s *Server) SetEnvironment(env Environment) { s.env.Store(&env) }

// Listen binds the loopback address for port.
func Listen(port int) (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
}

// Serve serves on l until Shutdown; it returns nil after a Shutdown.
func (s *Server) Serve(l net.Listener) error {
	if err := s.http.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the server, waiting for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }

// ServeHTTP routes the API's three resources.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	var handle func(http.ResponseWriter, *http.Request)
	switch {
	case path == "/invocations" || path == "/invocations/":
		handle = s.listInvocations
	case strings.HasPrefix(path, "/invocations/"):
		handle = s.getInvocation
	case path == "/environment":
		handle = s.environment
	default:
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("no resource at %q; see /invocations, /invocations/{requestId}, /environment", path))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", fmt.Sprintf("method %s is not allowed on %s; use GET", r.Method, path))
		return
	}
	handle(w, r)
}

// ListResponse is the body of GET /invocations; "invocations" is the seed-compatible field.
// streamList writes it without building it; this type is the reference its output is tested against.
type ListResponse struct {
	Invocations   []history.Record `json:"invocations"`
	EnvironmentID string           `json:"environmentId"`
	Served        uint64           `json:"served"`
	Retained      int              `json:"retained"`
	Dropped       uint64           `json:"dropped"`
	// Cursor is the sequence of the newest record returned (or the after value when none are):
	// pass it as after= to get only what is new.
	Cursor    uint64     `json:"cursor"`
	WaitedFor *WaitState `json:"waitedFor,omitempty"`
}

// WaitState reports the outcome of a requestId wait.
type WaitState struct {
	RequestID string `json:"requestId"`
	Found     bool   `json:"found"`
}

// ListParams are the parsed query parameters of GET /invocations.
type ListParams struct {
	Query     history.Query
	RequestID string        // answer only once this request id is recorded (or the wait ends)
	Wait      time.Duration // bounded by the server's maximum
}

// ParseListParams validates the query of GET /invocations. Unknown parameters are errors: a typo
// such as "limt" must not silently return everything.
func ParseListParams(q url.Values, maxWait time.Duration) (ListParams, error) {
	p := ListParams{Wait: min(defaultWait, maxWait)}
	for name, values := range q {
		if len(values) != 1 {
			return p, fmt.Errorf("parameter %q is given %d times; give it once", name, len(values))
		}
		v := values[0]
		switch name {
		case "limit":
			n, err := strconv.ParseUint(v, 10, 31)
			if err != nil || n == 0 {
				return p, fmt.Errorf("parameter limit=%q: want a positive integer", v)
			}
			p.Query.Limit = int(n)
		case "after":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return p, fmt.Errorf("parameter after=%q: want a sequence number (0 or more)", v)
			}
			p.Query.After = n
		case "requestId":
			if err := validRequestID(v); err != nil {
				return p, err
			}
			p.RequestID = v
		case "waitMs":
			d, err := parseWait(v, maxWait)
			if err != nil {
				return p, err
			}
			p.Wait = d
		default:
			return p, fmt.Errorf("unknown parameter %q; known: limit, after, requestId, waitMs", name)
		}
	}
	if _, ok := q["waitMs"]; ok && p.RequestID == "" {
		return p, fmt.Errorf("parameter waitMs needs requestId")
	}
	return p, nil
}

func parseWait(v string, maxWait time.Duration) (time.Duration, error) {
	n, err := strconv.ParseUint(v, 10, 31)
	if err != nil || time.Duration(n)*time.Millisecond > maxWait {
		return 0, fmt.Errorf("parameter waitMs=%q: want milliseconds from 0 to %d", v, maxWait.Milliseconds())
	}
	return time.Duration(n) * time.Millisecond, nil
}

func validRequestID(v string) error {
	if v == "" || len(v) > maxRequestIDLength {
		return fmt.Errorf("parameter requestId=%q: want 1 to %d characters", truncate(v), maxRequestIDLength)
	}
	return nil
}

func (s *Server) listInvocations(w http.ResponseWriter, r *http.Request) {
	p, err := ParseListParams(r.URL.Query(), s.maxWait)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidParameter", err.Error())
		return
	}
	var waited *WaitState
	if p.RequestID != "" {
		found, ok := s.wait(r.Context(), p.RequestID, p.Wait)
		if !ok {
			writeError(w, http.StatusTooManyRequests, "TooManyWaiters", fmt.Sprintf("more than %d callers are waiting; retry without requestId", maxConcurrentWaits))
			return
		}
		waited = &WaitState{RequestID: p.RequestID, Found: found}
	}
	after, upTo, counts := s.store.Window(p.Query)
	cursor := p.Query.After
	if upTo > after {
		cursor = upTo // the newest record returned
	}
	streamList(w, s.store, after, upTo, ListResponse{
		EnvironmentID: s.env.Load().EnvironmentID,
		Served:        counts.Served,
		Retained:      counts.Retained,
		Dropped:       counts.Dropped,
		Cursor:        cursor,
		WaitedFor:     waited,
	})
}

func (s *Server) getInvocation(w http.ResponseWriter, r *http.Request) {
	id, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/invocations/"))
	if err == nil {
		err = validRequestID(id)
	}
	if err != nil || strings.Contains(id, "/") {
		writeError(w, http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("path /invocations/{requestId}: invalid request id %q", truncate(id)))
		return
	}
	wait := time.Duration(0)
	for name, values := range r.URL.Query() {
		if name != "waitMs" || len(values) != 1 {
			writeError(w, http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("unknown or repeated parameter %q; known: waitMs", name))
			return
		}
		if wait, err = parseWait(values[0], s.maxWait); err != nil {
			writeError(w, http.StatusBadRequest, "InvalidParameter", err.Error())
			return
		}
	}
	if wait > 0 {
		if _, ok := s.wait(r.Context(), id, wait); !ok {
			writeError(w, http.StatusTooManyRequests, "TooManyWaiters", fmt.Sprintf("more than %d callers are waiting", maxConcurrentWaits))
			return
		}
	}
	rec, ok := s.store.Get(id)
	if !ok {
		writeError(w, http.StatusNotFound, "InvocationNotFound", fmt.Sprintf("no retained invocation with request id %q", truncate(id)))
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// EnvironmentResponse is the body of GET /environment.
type EnvironmentResponse struct {
	Environment
	Counts history.Counts `json:"counts"`
}

func (s *Server) environment(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.RawQuery) > 0 {
		writeError(w, http.StatusBadRequest, "InvalidParameter", "/environment takes no parameters")
		return
	}
	env := *s.env.Load()
	init := s.store.Init()
	if env.InitType == "" {
		env.InitType = init.InitType
	}
	env.InitDurationMs, env.InitStatus = init.InitDurationMs, init.InitStatus
	env.RuntimeVersion, env.RuntimeVersionArn = init.RuntimeVersion, init.RuntimeVersionArn
	writeJSON(w, http.StatusOK, EnvironmentResponse{Environment: env, Counts: s.store.Counts()})
}

// wait parks the caller until requestID is recorded; ok is false when too many callers wait.
func (s *Server) wait(ctx context.Context, requestID string, d time.Duration) (found, ok bool) {
	if s.waiters.Add(1) > maxConcurrentWaits {
		s.waiters.Add(-1)
		return false, false
	}
	defer s.waiters.Add(-1)
	return s.store.WaitFor(ctx, requestID, d), true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // only unsupported types fail; a bug, reported as such
		status, body = http.StatusInternalServerError, []byte(`{"errorType":"InternalError","errorMessage":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func writeError(w http.ResponseWriter, status int, errorType, message string) {
	writeJSON(w, status, map[string]string{"errorType": errorType, "errorMessage": message})
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

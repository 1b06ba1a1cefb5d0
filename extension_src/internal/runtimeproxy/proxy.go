package runtimeproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invocation-history/extension/internal/history"
)

// Runtime API paths and headers the proxy reads (it forwards everything else untouched).
const (
	pathNext           = "/2018-06-01/runtime/invocation/next"
	pathInvocation     = "/2018-06-01/runtime/invocation/"
	headerRequestID    = "Lambda-Runtime-Aws-Request-Id"
	headerDeadline     = "Lambda-Runtime-Deadline-Ms"
	headerFunctionArn  = "Lambda-Runtime-Invoked-Function-Arn"
	headerTraceID      = "Lambda-Runtime-Trace-Id"
	headerErrorType    = "Lambda-Runtime-Function-Error-Type"
	outcomeSuccess     = "success"
	outcomeError       = "error"
	upstreamErrorType  = "Runtime.ProxyUpstreamUnavailable"
	upstreamDialWindow = 2 * time.Second
	// maxErrorBodyPeek bounds what the proxy keeps of an /error body to read its errorType when
	// the runtime sends no Lambda-Runtime-Function-Error-Type header (awslambdaric does not).
	maxErrorBodyPeek = 64 << 10
)

// Stats are the proxy's counters.
type Stats struct {
	Forwarded      uint64 `json:"forwarded"`
	UpstreamErrors uint64 `json:"upstreamErrors"`
}

// Proxy forwards runtime requests to the upstream Runtime API and records outcomes in a store.
type Proxy struct {
	reverse        *httputil.ReverseProxy
	store          *history.Store // nil: forward only
	now            func() time.Time
	log            *slog.Logger
	forwarded      atomic.Uint64
	upstreamErrors atomic.Uint64
}

// New returns a proxy to upstream (host:port, like AWS_LAMBDA_RUNTIME_API).
func New(upstream string, store *history.Store, log *slog.Logger, now func() time.Time) (*Proxy, error) {
	target, err := url.Parse("http://" + upstream)
	if err != nil || target.Host == "" || target.Path != "" {
		return nil, fmt.Errorf("runtime proxy upstream %q: want host:port", upstream)
	}
	p := &Proxy{store: store, now: now, log: log}
	p.reverse = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the runtime's Host header, unchanged
			// Share the trailer map: the server fills the inbound trailers once the body is read,
			// and the transport sends them after the body (streamed responses end with error trailers).
			pr.Out.Trailer = pr.In.Trailer
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: upstreamDialWindow}).DialContext,
			DisableCompression:  true, // never add Accept-Encoding: bytes pass as they are
			MaxIdleConnsPerHost: 8,
			// No response-header timeout: /invocation/next long-polls until the next event.
		},
		FlushInterval: -1, // flush every write: streamed responses are not buffered
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ErrorHandler:  p.upstreamFailed,
	}
	return p, nil
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	return Stats{Forwarded: p.forwarded.Load(), UpstreamErrors: p.upstreamErrors.Load()}
}

// ServeHTTP forwards one request and records what it says about an invocation.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.forwarded.Add(1)
	requestID, kind := classify(r)
	if kind == kindOther || p.store == nil {
		p.reverse.ServeHTTP(w, r)
		return
	}
	if kind == kindNext {
		p.forwardNext(w, r)
		return
	}
	body := &countingReader{ReadCloser: r.Body}
	if kind == kindError {
		body.peek = make([]byte, 0, 1024)
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = body
	}
	// Record when Lambda's answer arrives, before it is passed on: whoever the runtime's answer
	// unblocks (the invoker, the function's next request) then finds the outcome already there.
	p.reverse.ServeHTTP(&statusRecorder{ResponseWriter: w, onHeader: func(status int, _ http.Header) {
		if status < 200 || status > 299 {
			return // Lambda did not accept it: nothing happened to the invocation
		}
		p.recordAnswer(r, requestID, kind, body)
	}}, r)
}

// recordAnswer stores how the runtime answered. Lambda answers only after the whole body (and its
// trailers) arrived, so the count and the trailers are complete here.
func (p *Proxy) recordAnswer(r *http.Request, requestID string, kind requestKind, body *countingReader) {
	at := p.now().UTC()
	outcome, errorType := outcomeSuccess, ""
	if kind == kindError {
		outcome, errorType = outcomeError, r.Header.Get(headerErrorType)
		if errorType == "" {
			errorType = errorTypeFromBody(body.peeked())
		}
	} else if t := r.Trailer.Get(headerErrorType); t != "" {
		outcome, errorType = outcomeError, t // a streamed response that failed mid-stream
	}
	size := body.n.Load()
	p.store.Update(requestID, func(rec *history.Record) {
		rec.RuntimeRespondedAt = at
		rec.Outcome = outcome
		rec.ResponseBytes = size
		if errorType != "" {
			rec.ErrorType = errorType
		}
	})
}

// forwardNext records the event the runtime takes, before the runtime sees it: the record then
// exists by the time the function can ask about it.
func (p *Proxy) forwardNext(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, onHeader: func(status int, h http.Header) {
		id := h.Get(headerRequestID)
		if status != http.StatusOK || id == "" {
			return
		}
		var deadline int64 // unknown unless the header is a number (ParseInt gives MaxInt64 on overflow)
		if d, err := strconv.ParseInt(h.Get(headerDeadline), 10, 64); err == nil {
			deadline = d
		}
		arn, trace, at := h.Get(headerFunctionArn), h.Get(headerTraceID), p.now().UTC()
		p.store.Begin(id, history.SourceRuntime, func(r *history.Record, _ bool) {
			r.RuntimeReceivedAt = at
			if r.DeadlineMs == 0 {
				r.DeadlineMs = deadline
			}
			if r.InvokedFunctionArn == "" {
				r.InvokedFunctionArn = arn
			}
			if r.TraceID == "" {
				r.TraceID = trace
			}
		})
	}}
	p.reverse.ServeHTTP(rec, r)
}

func (p *Proxy) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The runtime went away (killed at a timeout or at shutdown, often mid long-poll on /next):
		// nobody is left to answer, and the upstream did nothing wrong.
		p.log.Debug("runtime proxy: runtime disconnected", "method", r.Method, "path", r.URL.Path)
		return
	}
	p.upstreamErrors.Add(1)
	p.log.Warn("runtime proxy: upstream failed", "method", r.Method, "path", r.URL.Path, "error", err)
	body, _ := json.Marshal(map[string]string{
		"errorType":    upstreamErrorType,
		"errorMessage": fmt.Sprintf("invocation history runtime proxy: upstream Runtime API unavailable: %v", err),
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadGateway)
	_, _ = w.Write(body)
}

type requestKind int

const (
	kindOther requestKind = iota
	kindNext
	kindResponse
	kindError
)

// classify recognises the three requests that carry an invocation's story.
func classify(r *http.Request) (requestID string, kind requestKind) {
	if r.URL.Path == pathNext && r.Method == http.MethodGet {
		return "", kindNext
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, pathInvocation) {
		return "", kindOther
	}
	rest := strings.TrimPrefix(r.URL.Path, pathInvocation)
	id, action, ok := strings.Cut(rest, "/")
	if !ok || id == "" || strings.Contains(action, "/") {
		return "", kindOther
	}
	switch action {
	case "response":
		return id, kindResponse
	case "error":
		return id, kindError
	}
	return "", kindOther
}

// countingReader counts the bytes of a body as it streams through, and keeps the first
// maxErrorBodyPeek bytes when peek is non-nil.
type countingReader struct {
	io.ReadCloser
	n      atomic.Int64
	peekMu sync.Mutex // Lambda may answer before the transport's last Read returns
	peek   []byte
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	c.peekMu.Lock()
	if c.peek != nil && len(c.peek) < maxErrorBodyPeek {
		c.peek = append(c.peek, p[:min(n, maxErrorBodyPeek-len(c.peek))]...)
	}
	c.peekMu.Unlock()
	return n, err
}

func (c *countingReader) peeked() []byte {
	c.peekMu.Lock()
	defer c.peekMu.Unlock()
	return append([]byte(nil), c.peek...)
}

// errorTypeFromBody reads errorType from a runtime's error body ({"errorType": ..., ...}).
func errorTypeFromBody(body []byte) string {
	var e struct {
		ErrorType string `json:"errorType"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.ErrorType) > 256 {
		return ""
	}
	return e.ErrorType
}

// statusRecorder captures the status (and lets forwardNext look at the headers before they are
// written), while keeping Flush and trailers working through Unwrap.
type statusRecorder struct {
	http.ResponseWriter
	status   int
	onHeader func(status int, h http.Header)
}

func (s *statusRecorder) WriteHeader(status int) {
	// 1xx answers (100 Continue to a runtime that sent Expect: 100-continue, as curl does for
	// large bodies) come before the final status: pass them on, wait for the real one.
	if s.status == 0 && status >= 200 {
		s.status = status
		if s.onHeader != nil {
			s.onHeader(status, s.ResponseWriter.Header())
		}
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Serve serves the proxy on l until the server is shut down.
func Serve(l net.Listener, p *Proxy) *http.Server {
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    1 << 20,
		// No read or write timeout: /next long-polls, and streamed responses have no size or time cap.
	}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("runtime proxy stopped", "error", err)
		}
	}()
	return srv
}

package telemetryapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Stats count what the listener received. They are the only trace of bad input: the listener
// never logs per batch or per event.
type Stats struct {
	Batches         uint64 `json:"batches"`         // batches accepted
	Events          uint64 `json:"events"`          // events applied
	Ignored         uint64 `json:"ignored"`         // events of a type the extension does not know
	Invalid         uint64 `json:"invalid"`         // events whose record did not decode, or had no requestId
	RejectedBatches uint64 `json:"rejectedBatches"` // requests answered 4xx: bad method, malformed JSON, too large
}

// Listener receives the batches Lambda posts. Create it with NewListener and serve it with Serve.
type Listener struct {
	applier *Applier
	maxBody int64
	http    *http.Server

	batches, events, ignored, invalid, rejected atomic.Uint64
}

// BodyLimit is the largest batch the listener reads for a subscription buffering maxBytes: Lambda
// caps a batch at maxBytes of events; the margin covers the JSON array around them.
func BodyLimit(maxBytes int) int64 { return int64(maxBytes) + 64<<10 }

// NewListener returns a listener that applies batches of at most maxBody bytes with applier.
func NewListener(applier *Applier, maxBody int64, log *slog.Logger) *Listener {
	l := &Listener{applier: applier, maxBody: maxBody}
	l.http = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      5 * time.Second,
		IdleTimeout:       120 * time.Second, // Lambda keeps the connection between batches
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return l
}

// Stats returns the counters.
func (l *Listener) Stats() Stats {
	return Stats{
		Batches: l.batches.Load(), Events: l.events.Load(), Ignored: l.ignored.Load(),
		Invalid: l.invalid.Load(), RejectedBatches: l.rejected.Load(),
	}
}

// ServeHTTP accepts a POST of a JSON array of events on any path: Lambda posts to the destination
// URI's path, the RIE always to "/".
func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		l.reject(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, l.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			l.reject(w, http.StatusRequestEntityTooLarge, "batch larger than "+strconv.FormatInt(l.maxBody, 10)+" bytes")
			return
		}
		l.reject(w, http.StatusBadRequest, "cannot read the body")
		return
	}
	if _, err := l.ApplyBatch(body); err != nil {
		l.reject(w, http.StatusBadRequest, "want a JSON array of telemetry events")
		return
	}
	w.WriteHeader(http.StatusOK)
}

// ApplyBatch decodes a batch (a JSON array of events) and applies each event; an event that does
// not decode is counted and skipped, the rest still apply. It fails only when body is not a JSON
// array, and then applies nothing.
func (l *Listener) ApplyBatch(body []byte) (applied int, err error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return 0, err
	}
	l.batches.Add(1)
	for _, item := range raw {
		var ev Event
		if err := json.Unmarshal(item, &ev); err != nil {
			l.invalid.Add(1)
			continue
		}
		switch err := l.applier.Apply(ev); {
		case err == nil:
			l.events.Add(1)
			applied++
		case errors.Is(err, errUnknownType):
			l.ignored.Add(1)
		default:
			l.invalid.Add(1)
		}
	}
	return applied, nil
}

func (l *Listener) reject(w http.ResponseWriter, status int, message string) {
	l.rejected.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"errorType":"InvalidRequest","errorMessage":`+strconv.Quote(message)+"}\n")
}

// Serve serves on ln until Shutdown; it returns nil after a Shutdown.
func (l *Listener) Serve(ln net.Listener) error {
	if err := l.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the listener, waiting for in-flight batches until ctx ends.
func (l *Listener) Shutdown(ctx context.Context) error { return l.http.Shutdown(ctx) }

// Listen binds port (0: any free port) on the address Lambda delivers to: the address
// sandbox.localdomain resolves to inside Lambda, or the loopback address where it does not
// resolve (the RIE and other emulators post to 127.0.0.1:<port>). lookup is bounded by a short
// timeout so a missing name never delays init noticeably.
func Listen(ctx context.Context, port int, lookup func(ctx context.Context, host string) ([]string, error)) (net.Listener, error) {
	host := "127.0.0.1"
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	addrs, err := lookup(lctx, DestinationHost)
	cancel()
	if err == nil && len(addrs) > 0 {
		host = addrs[0]
		for _, a := range addrs { // an IPv4 address first, as net.Listen would choose for the name
			if ip := net.ParseIP(a); ip != nil && ip.To4() != nil {
				host = a
				break
			}
		}
	}
	return net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
}

const lookupTimeout = 100 * time.Millisecond

package telemetryapi

import (
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/invocation-history/extension/internal/history"
)

// Applier merges telemetry events into the history store.
//
// Telemetry arrives late, in batches, possibly out of order and possibly twice, so every update
// is idempotent and order-independent: platform.report is authoritative for what it carries and
// always wins; platform.runtimeDone only fills what is still empty. Events for a request id the
// store has not seen are held by the store (bounded) until the record appears.
type Applier struct {
	store *history.Store
	// createFromStart makes platform.start create the record. On Lambda Managed Instances there
	// are no INVOKE events, so telemetry is the only source of records; elsewhere INVOKE creates
	// them and a platform.start for an unknown id only waits for it.
	createFromStart bool
	// onReport receives the duration of each invocation's first platform.report (nil: none).
	onReport func(durationMs float64)

	// A platform.start that creates records must not create a second one when its batch is
	// delivered again: the recent starts (request id and time) are remembered, bounded.
	mu         sync.Mutex
	seenStarts map[string]struct{}
	startOrder []string // FIFO of seenStarts' keys
}

// maxSeenStarts bounds the platform.start events remembered to recognise a delivery twice: far
// more than one buffered batch holds (Lambda's buffering is at most 10,000 events, most of which
// are not starts, and a redelivery follows its first delivery closely).
const maxSeenStarts = 1024

// NewApplier returns an applier writing to store; createFromStart is set on Lambda Managed
// Instances.
func NewApplier(store *history.Store, createFromStart bool) *Applier {
	return &Applier{store: store, createFromStart: createFromStart, seenStarts: make(map[string]struct{})}
}

// OnReport sets fn to receive each invocation's duration from its first platform.report (a
// repeated delivery is not reported again). fn runs while the store applies the event: it must
// be quick and never block.
func (a *Applier) OnReport(fn func(durationMs float64)) { a.onReport = fn }

// repeatedStart reports whether this platform.start was applied before, and remembers it.
func (a *Applier) repeatedStart(requestID, at string) bool {
	key := requestID + "\x00" + at
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.seenStarts[key]; ok {
		return true
	}
	if len(a.startOrder) >= maxSeenStarts {
		delete(a.seenStarts, a.startOrder[0])
		a.startOrder = a.startOrder[1:]
	}
	a.seenStarts[key] = struct{}{}
	a.startOrder = append(a.startOrder, key)
	return false
}

var (
	errUnknownType = errors.New("unknown event type")
	errNoRequestID = errors.New("event has no requestId")
)

// Apply merges one event. It returns errUnknownType for types it does not know (they are
// counted, not fatal), and an error for a record that does not decode.
func (a *Applier) Apply(ev Event) error {
	switch ev.Type {
	case InitStart, InitRuntimeDone, InitReport:
		var rec initRecord
		if err := json.Unmarshal(ev.Record, &rec); err != nil {
			return err
		}
		a.applyInit(ev.Type, rec)
		return nil
	case Start, RuntimeDone, Report:
		var rec invokeRecord
		if err := json.Unmarshal(ev.Record, &rec); err != nil {
			return err
		}
		if rec.RequestID == "" {
			return errNoRequestID
		}
		a.applyInvoke(ev, rec)
		return nil
	case RestoreStart, RestoreRuntimeDone, RestoreReport, Extension, TelemetrySubscription, LogsDropped:
		return nil // known; nothing the history keeps
	}
	return errUnknownType
}

func (a *Applier) applyInit(t EventType, rec initRecord) {
	a.store.SetInit(func(in *history.InitInfo) {
		if rec.InitializationType != "" {
			in.InitType = rec.InitializationType
		}
		switch t {
		case InitStart:
			if rec.RuntimeVersion != "" {
				in.RuntimeVersion = rec.RuntimeVersion
			}
			if rec.RuntimeVersionArn != "" {
				in.RuntimeVersionArn = rec.RuntimeVersionArn
			}
		case InitRuntimeDone:
			if in.InitStatus == "" { // the report, when it comes, is authoritative
				in.InitStatus = rec.Status
			}
		case InitReport:
			if rec.Status != "" {
				in.InitStatus = rec.Status
			}
			if rec.Metrics.DurationMs > 0 {
				in.InitDurationMs = rec.Metrics.DurationMs
			}
		}
	})
}

func (a *Applier) applyInvoke(ev Event, rec invokeRecord) {
	switch ev.Type {
	case Start:
		fill := func(r *history.Record) {
			if r.InvokedFunctionArn == "" {
				r.InvokedFunctionArn = rec.FunctionArn
			}
			if r.TraceID == "" && rec.Tracing != nil {
				r.TraceID = rec.Tracing.Value
			}
		}
		if !a.createFromStart || a.repeatedStart(rec.RequestID, ev.Time) {
			a.store.Update(rec.RequestID, fill)
			return
		}
		// A second start of the same request id (at another time) is a retry: a new record.
		a.store.Begin(rec.RequestID, history.SourceTelemetry, func(r *history.Record, created bool) {
			if created {
				// The invocation started when Lambda says, not when the batch reached us.
				if t, err := time.Parse(time.RFC3339Nano, ev.Time); err == nil {
					r.InvocatedAt = t.UTC()
				}
			}
			fill(r)
		})
	case RuntimeDone:
		a.store.Update(rec.RequestID, func(r *history.Record) {
			if r.Status == "" {
				r.Status = rec.Status
			}
			if r.ErrorType == "" {
				r.ErrorType = rec.ErrorType
			}
			if r.DurationMs == 0 {
				r.DurationMs = rec.Metrics.DurationMs
			}
		})
	case Report:
		a.store.Update(rec.RequestID, func(r *history.Record) {
			// The billed duration comes only with the report: set means this one came before.
			if a.onReport != nil && r.BilledDurationMs == 0 && rec.Metrics.DurationMs > 0 {
				a.onReport(rec.Metrics.DurationMs)
			}
			if rec.Status != "" {
				r.Status = rec.Status
			}
			if rec.ErrorType != "" {
				r.ErrorType = rec.ErrorType
			}
			if rec.Metrics.DurationMs > 0 {
				r.DurationMs = rec.Metrics.DurationMs
			}
			if rec.Metrics.BilledDurationMs > 0 {
				r.BilledDurationMs = int64(rec.Metrics.BilledDurationMs)
			}
			if rec.Metrics.MaxMemoryUsedMB > 0 {
				r.MaxMemoryUsedMB = int64(rec.Metrics.MaxMemoryUsedMB)
			}
			if rec.Metrics.InitDurationMs > 0 {
				r.InitDurationMs = rec.Metrics.InitDurationMs
			}
		})
	}
}

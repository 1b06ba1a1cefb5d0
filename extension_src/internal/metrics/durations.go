package metrics

import (
	"sync"
	"time"
)

// InvocationDuration is the duration of each invocation as platform.report gives it (the
// enriched records' durationMs), in milliseconds. Written in batches: one EMF line carries up to
// MaxValuesPerLine values, and CloudWatch keeps every value, so percentiles stay exact.
const InvocationDuration = "InvocationDuration"

const (
	// MaxValuesPerLine is EMF's limit on the values of one metric in one line.
	MaxValuesPerLine = 100
	// MaxDurationAge is how long a value may wait for its batch to fill: an environment serving
	// one invocation a minute still shows on a dashboard within a minute or two.
	MaxDurationAge = time.Minute
	// maxPendingDurations bounds the values waiting to be written; beyond, they are dropped and
	// counted (only reachable when writing to stdout stalls).
	maxPendingDurations = 10 * MaxValuesPerLine
)

// Durations collects invocation durations for EMF lines. Add is cheap and never blocks (it runs
// while the history store applies telemetry); Take hands out what is due for writing. Safe for
// concurrent use.
type Durations struct {
	mu      sync.Mutex
	values  []float64
	first   time.Time // when the oldest waiting value arrived
	dropped uint64
	full    chan struct{} // signalled (never blocking) when a line's worth is waiting
}

// NewDurations returns an empty collector.
func NewDurations() *Durations { return &Durations{full: make(chan struct{}, 1)} }

// Add records one duration.
func (d *Durations) Add(ms float64, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.values) >= maxPendingDurations {
		d.dropped++
		return
	}
	if len(d.values) == 0 {
		d.first = now
	}
	d.values = append(d.values, ms)
	if len(d.values) == MaxValuesPerLine {
		select {
		case d.full <- struct{}{}:
		default:
		}
	}
}

// Full is signalled when a whole line's worth of values is waiting.
func (d *Durations) Full() <-chan struct{} { return d.full }

// Take returns the values due for one line: MaxValuesPerLine of them when that many wait, all of
// them when the oldest has waited MaxDurationAge or when flush is set (at shutdown), else none.
func (d *Durations) Take(now time.Time, flush bool) []float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := len(d.values)
	switch {
	case n >= MaxValuesPerLine:
		n = MaxValuesPerLine
	case n == 0 || !flush && now.Sub(d.first) < MaxDurationAge:
		return nil
	}
	out := append([]float64(nil), d.values[:n]...)
	d.values = append(d.values[:0], d.values[n:]...)
	if len(d.values) > 0 {
		d.first = now // the rest arrived before now; they wait at most one more MaxDurationAge
	}
	return out
}

// Dropped is how many values were discarded because too many were waiting.
func (d *Durations) Dropped() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dropped
}

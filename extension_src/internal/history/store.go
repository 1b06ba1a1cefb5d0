// Package history holds the invocation records of one execution environment in a bounded ring.
//
// The store is the meeting point of the lifecycle loop (writer) and the local API (readers). It
// depends on the standard library only. Memory is bounded by the capacity: when full, the oldest
// record is evicted and counted as dropped.
package history

import (
	"context"
	"sync"
	"time"
)

// Record is what the extension knows about one invocation. Fields that are not known are left at
// their zero value and omitted from JSON, never invented.
type Record struct {
	AwsRequestID       string    `json:"awsRequestId"`
	InvocatedAt        time.Time `json:"invocatedAt"` // seed field name, kept for compatibility
	Sequence           uint64    `json:"sequence"`    // 1 for the environment's first invocation
	DeadlineMs         int64     `json:"deadlineMs,omitempty"`
	InvokedFunctionArn string    `json:"invokedFunctionArn,omitempty"`
	TraceID            string    `json:"traceId,omitempty"`
	ColdStart          bool      `json:"coldStart"`
	begunBy            Source    // the sources that reported this attempt's start (see Begin); in ColdStart's padding

	// From the Telemetry API (platform.runtimeDone, platform.report), when it is on.
	Status           string  `json:"status,omitempty"` // success | error | failure | timeout
	DurationMs       float64 `json:"durationMs,omitempty"`
	BilledDurationMs int64   `json:"billedDurationMs,omitempty"`
	MaxMemoryUsedMB  int64   `json:"maxMemoryUsedMB,omitempty"`
	InitDurationMs   float64 `json:"initDurationMs,omitempty"` // on the cold start's report only
	ErrorType        string  `json:"errorType,omitempty"`

	// From the Runtime API proxy, when it is on.
	RuntimeReceivedAt  time.Time `json:"runtimeReceivedAt,omitzero"`  // the runtime took the event
	RuntimeRespondedAt time.Time `json:"runtimeRespondedAt,omitzero"` // the runtime posted its answer
	Outcome            string    `json:"outcome,omitempty"`           // success | error, as the runtime reported it
	ResponseBytes      int64     `json:"responseBytes,omitempty"`
}

// Source is what reports that an attempt of an invocation began. Lambda retries a failed
// asynchronous invocation with the same request id, a minute or two later and often in the same
// environment; each source reports each attempt once, so a second report of the same id from the
// same source is a new attempt and gets a record of its own.
type Source uint8

const (
	SourceInvoke    Source = 1 << iota // the Extensions API's INVOKE event
	SourceRuntime                      // the Runtime API proxy: the runtime took the event
	SourceTelemetry                    // the Telemetry API's platform.start (Managed Instances)
)

// InitInfo is what the environment's init phase reported (from telemetry).
type InitInfo struct {
	InitType          string  `json:"initType,omitempty"`
	InitDurationMs    float64 `json:"initDurationMs,omitempty"`
	InitStatus        string  `json:"initStatus,omitempty"`
	RuntimeVersion    string  `json:"runtimeVersion,omitempty"`
	RuntimeVersionArn string  `json:"runtimeVersionArn,omitempty"`
}

// Counts are the store's counters.
type Counts struct {
	Served   uint64 `json:"served"`   // records ever appended
	Retained int    `json:"retained"` // records held now
	Dropped  uint64 `json:"dropped"`  // records evicted to respect the capacity
	// Updates for request ids not (yet) recorded are held until their record appears; beyond
	// MaxPending ids the oldest id's, and beyond MaxPendingPerID an id's newest, are discarded
	// and counted here.
	PendingUpdates        int    `json:"pendingUpdates"`
	PendingUpdatesDropped uint64 `json:"pendingUpdatesDropped"`
}

// MaxPending bounds the request ids with updates waiting for their record, and
// MaxPendingPerID the updates held for one id: a record gets a handful (platform.start,
// runtimeDone, report, the proxy's answer), so more are repeats, dropped and counted.
const (
	MaxPending      = 1024
	MaxPendingPerID = 16
)

// initialRing is the ring's first allocation. The ring doubles up to its capacity as records
// arrive, so an environment that serves a few invocations holds a few records' worth, and init
// allocates no ~3 MB ring (at 10,000 records) for the GC to scan before the first event.
const initialRing = 64

// Store is a bounded, concurrency-safe ring of records, oldest first.
type Store struct {
	mu       sync.RWMutex
	ring     []Record // grows to capacity, then wraps; until then start is 0 and len(ring) == size
	capacity int
	start    int // index of the oldest record
	size     int
	served   uint64
	bySeq    map[string]uint64 // request id -> sequence, for retained records only
	appended chan struct{}     // closed and replaced on every append: wakes waiters
	now      func() time.Time

	pending        map[string][]func(*Record) // updates that arrived before their record
	pendingOrder   []string                   // FIFO of pending ids, for eviction
	pendingDropped uint64
	init           InitInfo
	lastArn        string // every record of an environment carries the same ARN: keep one copy
}

// NewStore returns a store that retains at most capacity records (capacity >= 1). now stamps
// invocatedAt; tests pass a fixed clock.
func NewStore(capacity int, now func() time.Time) *Store {
	if capacity < 1 {
		capacity = 1
	}
	return &Store{
		ring:     make([]Record, 0, min(capacity, initialRing)),
		capacity: capacity,
		bySeq:    make(map[string]uint64, min(capacity, initialRing)),
		pending:  make(map[string][]func(*Record)),
		appended: make(chan struct{}),
		now:      now,
	}
}

// Capacity is the maximum number of records retained.
func (s *Store) Capacity() int { return s.capacity }

// Append stamps r with the next sequence number, the current time (UTC) and whether it is the
// environment's first invocation, stores it and returns the stored copy.
func (s *Store) Append(r Record) Record {
	s.mu.Lock()
	stored := *s.appendLocked(r)
	wake := s.wakeLocked()
	s.mu.Unlock()
	close(wake)
	return stored
}

// Begin applies fn to the record of the attempt of requestID that source reports starting. The
// sources (the INVOKE event, the Runtime API proxy and, on Managed Instances, platform.start) meet
// here and complete the same record, whichever comes first; when source has already reported the
// latest record of this id, the invocation is being retried and a new record is appended (stamped
// as by Append). created tells fn which happened.
func (s *Store) Begin(requestID string, source Source, fn func(r *Record, created bool)) Record {
	s.mu.Lock()
	if r := s.findLocked(requestID); r != nil && r.begunBy&source == 0 {
		r.begunBy |= source
		fn(r, false)
		s.shareArnLocked(r)
		stored := *r
		s.mu.Unlock()
		return stored
	}
	r := s.appendLocked(Record{AwsRequestID: requestID})
	r.begunBy = source
	fn(r, true)
	s.shareArnLocked(r)
	stored := *r
	wake := s.wakeLocked()
	s.mu.Unlock()
	close(wake)
	return stored
}

// Update applies fn to the record of requestID. When there is no such record yet (telemetry
// arrives late and out of order, but may also overtake the INVOKE event), the update is held and
// applied when the record appears; held updates are bounded by MaxPending.
func (s *Store) Update(requestID string, fn func(*Record)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.findLocked(requestID); r != nil {
		fn(r)
		return
	}
	if _, ok := s.pending[requestID]; !ok {
		if len(s.pendingOrder) >= MaxPending {
			s.compactPendingLocked()
		}
		if len(s.pendingOrder) >= MaxPending {
			s.dropOldestPendingLocked()
		}
		s.pendingOrder = append(s.pendingOrder, requestID)
	}
	if len(s.pending[requestID]) >= MaxPendingPerID {
		s.pendingDropped++
		return
	}
	s.pending[requestID] = append(s.pending[requestID], fn)
}

// SetInit records what the init phase reported.
func (s *Store) SetInit(fn func(*InitInfo)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.init)
}

// Init returns what the init phase reported.
func (s *Store) Init() InitInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.init
}

// compactPendingLocked removes ids whose updates were already applied from pendingOrder.
func (s *Store) compactPendingLocked() {
	kept := s.pendingOrder[:0]
	for _, id := range s.pendingOrder {
		if _, ok := s.pending[id]; ok {
			kept = append(kept, id)
		}
	}
	s.pendingOrder = kept
}

func (s *Store) dropOldestPendingLocked() {
	for len(s.pendingOrder) > 0 {
		id := s.pendingOrder[0]
		s.pendingOrder = s.pendingOrder[1:]
		if _, ok := s.pending[id]; ok {
			delete(s.pending, id)
			s.pendingDropped++
			return
		}
	}
}

func (s *Store) appendLocked(r Record) *Record {
	s.served++
	r.Sequence = s.served
	r.ColdStart = s.served == 1
	r.InvocatedAt = s.now().UTC()
	var slot int
	if s.size == s.capacity {
		evicted := s.ring[s.start]
		if s.bySeq[evicted.AwsRequestID] == evicted.Sequence {
			delete(s.bySeq, evicted.AwsRequestID)
		}
		slot = s.start
		s.start = (s.start + 1) % len(s.ring)
	} else {
		s.growLocked()
		slot = s.size // not full yet: start is 0
		s.size++
	}
	s.ring[slot] = r
	s.bySeq[r.AwsRequestID] = r.Sequence
	stored := &s.ring[slot]
	s.shareArnLocked(stored)
	if updates, ok := s.pending[r.AwsRequestID]; ok {
		delete(s.pending, r.AwsRequestID) // its id stays in pendingOrder; skipped when reached
		for _, fn := range updates {
			fn(stored)
		}
		if len(s.pending) == 0 {
			s.pendingOrder = s.pendingOrder[:0]
		}
	}
	return stored
}

// growLocked makes room for one more record before the ring is full, doubling its allocation
// (bounded by capacity) when it has none left. The copy happens log2(capacity/initialRing) times in
// an environment's life; the largest, at 10,000 records, moves ~2 MB once.
func (s *Store) growLocked() {
	if len(s.ring) == cap(s.ring) {
		grown := make([]Record, len(s.ring), min(2*cap(s.ring), s.capacity))
		copy(grown, s.ring)
		s.ring = grown
	}
	s.ring = s.ring[:len(s.ring)+1]
}

// shareArnLocked makes a record's ARN the copy held by earlier records when they are equal: each
// event decodes a fresh ~70-byte string, which would otherwise stay alive once per record.
func (s *Store) shareArnLocked(r *Record) {
	if r.InvokedFunctionArn == s.lastArn {
		r.InvokedFunctionArn = s.lastArn
	} else if r.InvokedFunctionArn != "" {
		s.lastArn = r.InvokedFunctionArn
	}
}

// wakeLocked swaps the broadcast channel; the caller closes the old one after unlocking.
func (s *Store) wakeLocked() chan struct{} {
	wake := s.appended
	s.appended = make(chan struct{})
	return wake
}

// Counts returns the counters.
func (s *Store) Counts() Counts {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.countsLocked()
}

func (s *Store) countsLocked() Counts {
	return Counts{
		Served: s.served, Retained: s.size, Dropped: s.served - uint64(s.size),
		PendingUpdates: len(s.pending), PendingUpdatesDropped: s.pendingDropped,
	}
}

// Query selects records: those with a sequence greater than After, then the most recent Limit of
// them (0 means no limit).
type Query struct {
	After uint64
	Limit int
}

// List returns the selected records oldest first, with the counters read at the same instant: a
// copy of the whole selection at once, for tests and tools. The local API pages with Window and
// Page instead, so that a reader of a full store never copies it whole.
func (s *Store) List(q Query) ([]Record, Counts) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	after, upTo, counts := s.windowLocked(q)
	return s.pageLocked(after, upTo, make([]Record, 0, upTo-after)), counts
}

// Window resolves q against the store as it is now: the selected records are those with
// after < sequence <= upTo. Read them with Page, a bounded slice at a time; counts are read at the
// same instant.
func (s *Store) Window(q Query) (after, upTo uint64, counts Counts) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.windowLocked(q)
}

func (s *Store) windowLocked(q Query) (after, upTo uint64, counts Counts) {
	upTo = s.served
	after = max(q.After, s.served-uint64(s.size)) // nothing before the oldest retained record
	if q.Limit > 0 && upTo > uint64(q.Limit) {
		after = max(after, upTo-uint64(q.Limit))
	}
	return min(after, upTo), upTo, s.countsLocked()
}

// Page copies into dst[:0], oldest first, up to cap(dst) records with after < sequence <= upTo.
// Records evicted since the window was taken are skipped.
func (s *Store) Page(after, upTo uint64, dst []Record) []Record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.pageLocked(after, upTo, dst)
}

func (s *Store) pageLocked(after, upTo uint64, dst []Record) []Record {
	dst = dst[:0]
	first := s.served - uint64(s.size) + 1
	for seq := max(after+1, first); seq <= upTo && len(dst) < cap(dst); seq++ {
		dst = append(dst, s.ring[(s.start+int(seq-first))%len(s.ring)])
	}
	return dst
}

// Get returns the retained record with this request id.
func (s *Store) Get(requestID string) (Record, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.getLocked(requestID)
}

func (s *Store) getLocked(requestID string) (Record, bool) {
	if r := s.findLocked(requestID); r != nil {
		return *r, true
	}
	return Record{}, false
}

// findLocked returns the slot of a retained record, or nil.
func (s *Store) findLocked(requestID string) *Record {
	seq, ok := s.bySeq[requestID]
	if !ok {
		return nil
	}
	first := s.served - uint64(s.size) + 1
	return &s.ring[(s.start+int(seq-first))%len(s.ring)]
}

// WaitFor blocks until a record with this request id has been appended, the wait elapses or ctx
// ends. It reports whether the record exists. The wait closes the race between the INVOKE event
// reaching the extension and the same event reaching the function, which asks about it.
func (s *Store) WaitFor(ctx context.Context, requestID string, wait time.Duration) bool {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s.mu.RLock()
		_, ok := s.getLocked(requestID)
		appended := s.appended
		s.mu.RUnlock()
		if ok {
			return true
		}
		select {
		case <-appended:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

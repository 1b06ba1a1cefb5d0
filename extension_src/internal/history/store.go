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
}

// Counts are the store's counters.
type Counts struct {
	Served   uint64 `json:"served"`   // records ever appended
	Retained int    `json:"retained"` // records held now
	Dropped  uint64 `json:"dropped"`  // records evicted to respect the capacity
}

// Store is a bounded, concurrency-safe ring of records, oldest first.
type Store struct {
	mu       sync.RWMutex
	ring     []Record // fixed capacity, allocated once
	start    int      // index of the oldest record
	size     int
	served   uint64
	bySeq    map[string]uint64 // request id -> sequence, for retained records only
	appended chan struct{}     // closed and replaced on every append: wakes waiters
	now      func() time.Time
}

// NewStore returns a store that retains at most capacity records (capacity >= 1). now stamps
// invocatedAt; tests pass a fixed clock.
func NewStore(capacity int, now func() time.Time) *Store {
	if capacity < 1 {
		capacity = 1
	}
	return &Store{
		ring:     make([]Record, capacity),
		bySeq:    make(map[string]uint64, capacity),
		appended: make(chan struct{}),
		now:      now,
	}
}

// Capacity is the maximum number of records retained.
func (s *Store) Capacity() int { return len(s.ring) }

// Append stamps r with the next sequence number, the current time (UTC) and whether it is the
// environment's first invocation, stores it and returns the stored copy.
func (s *Store) Append(r Record) Record {
	s.mu.Lock()
	s.served++
	r.Sequence = s.served
	r.ColdStart = s.served == 1
	r.InvocatedAt = s.now().UTC()
	if s.size == len(s.ring) {
		evicted := s.ring[s.start]
		if s.bySeq[evicted.AwsRequestID] == evicted.Sequence {
			delete(s.bySeq, evicted.AwsRequestID)
		}
		s.ring[s.start] = r
		s.start = (s.start + 1) % len(s.ring)
	} else {
		s.ring[(s.start+s.size)%len(s.ring)] = r
		s.size++
	}
	s.bySeq[r.AwsRequestID] = r.Sequence
	wake := s.appended
	s.appended = make(chan struct{})
	s.mu.Unlock()
	close(wake)
	return r
}

// Counts returns the counters.
func (s *Store) Counts() Counts {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.countsLocked()
}

func (s *Store) countsLocked() Counts {
	return Counts{Served: s.served, Retained: s.size, Dropped: s.served - uint64(s.size)}
}

// Query selects records: those with a sequence greater than After, then the most recent Limit of
// them (0 means no limit).
type Query struct {
	After uint64
	Limit int
}

// List returns the selected records oldest first, with the counters read at the same instant.
func (s *Store) List(q Query) ([]Record, Counts) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	first := s.served - uint64(s.size) + 1 // sequence of the oldest retained record
	skip := 0
	if q.After >= first {
		skip = int(min(q.After-first+1, uint64(s.size)))
	}
	n := s.size - skip
	if q.Limit > 0 && n > q.Limit {
		skip += n - q.Limit
		n = q.Limit
	}
	out := make([]Record, n)
	for i := range n {
		out[i] = s.ring[(s.start+skip+i)%len(s.ring)]
	}
	return out, s.countsLocked()
}

// Get returns the retained record with this request id.
func (s *Store) Get(requestID string) (Record, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.getLocked(requestID)
}

func (s *Store) getLocked(requestID string) (Record, bool) {
	seq, ok := s.bySeq[requestID]
	if !ok {
		return Record{}, false
	}
	first := s.served - uint64(s.size) + 1
	return s.ring[(s.start+int(seq-first))%len(s.ring)], true
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

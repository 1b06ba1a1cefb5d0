package history

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

var epoch = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func fixedClock() func() time.Time { return func() time.Time { return epoch } }

func appendN(s *Store, n int) {
	for i := range n {
		s.Append(Record{AwsRequestID: fmt.Sprintf("req-%d", i+1)})
	}
}

func TestStoreEvictsOldestAndCountsDropped(t *testing.T) {
	for _, tc := range []struct {
		name                                      string
		capacity, appended, wantRetained, dropped int
	}{
		{"empty", 3, 0, 0, 0},
		{"under capacity", 3, 2, 2, 0},
		{"at capacity", 3, 3, 3, 0},
		{"over capacity", 3, 5, 3, 2},
		{"capacity one", 1, 4, 1, 3},
		{"grown past the first allocation", 3 * initialRing, 2*initialRing + 1, 2*initialRing + 1, 0},
		{"grown to a capacity that is not a doubling, then wrapped", 3 * initialRing, 10 * initialRing, 3 * initialRing, 7 * initialRing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStore(tc.capacity, fixedClock())
			appendN(s, tc.appended)
			records, counts := s.List(Query{})
			if counts.Retained != tc.wantRetained || counts.Dropped != uint64(tc.dropped) || counts.Served != uint64(tc.appended) {
				t.Fatalf("counts = %+v, want retained %d dropped %d served %d", counts, tc.wantRetained, tc.dropped, tc.appended)
			}
			if len(records) != tc.wantRetained {
				t.Fatalf("len(records) = %d, want %d", len(records), tc.wantRetained)
			}
			for i, r := range records { // oldest first, contiguous, the newest ones kept
				wantSeq := uint64(tc.appended - tc.wantRetained + i + 1)
				if r.Sequence != wantSeq || r.AwsRequestID != fmt.Sprintf("req-%d", wantSeq) {
					t.Errorf("records[%d] = %s seq %d, want seq %d", i, r.AwsRequestID, r.Sequence, wantSeq)
				}
			}
			if cap(s.ring) > tc.capacity {
				t.Errorf("ring allocated %d records, capacity %d", cap(s.ring), tc.capacity)
			}
			if tc.dropped > 0 {
				if _, ok := s.Get("req-1"); ok {
					t.Errorf("evicted record req-1 still found by Get")
				}
			}
		})
	}
}

func TestAppendStampsSequenceTimeAndColdStart(t *testing.T) {
	s := NewStore(5, fixedClock())
	first := s.Append(Record{AwsRequestID: "a", ColdStart: false, Sequence: 99})
	second := s.Append(Record{AwsRequestID: "b", ColdStart: true})
	if first.Sequence != 1 || !first.ColdStart || !first.InvocatedAt.Equal(epoch) {
		t.Errorf("first = %+v, want sequence 1, cold start, stamped", first)
	}
	if second.Sequence != 2 || second.ColdStart {
		t.Errorf("second = %+v, want sequence 2, warm", second)
	}
}

func TestListQuery(t *testing.T) {
	s := NewStore(5, fixedClock())
	appendN(s, 8) // retained: sequences 4..8
	for _, tc := range []struct {
		name string
		q    Query
		want []uint64
	}{
		{"all", Query{}, []uint64{4, 5, 6, 7, 8}},
		{"limit", Query{Limit: 2}, []uint64{7, 8}},
		{"limit larger than retained", Query{Limit: 50}, []uint64{4, 5, 6, 7, 8}},
		{"after inside", Query{After: 6}, []uint64{7, 8}},
		{"after evicted", Query{After: 2}, []uint64{4, 5, 6, 7, 8}},
		{"after newest", Query{After: 8}, []uint64{}},
		{"after beyond newest", Query{After: 100}, []uint64{}},
		{"after and limit", Query{After: 4, Limit: 1}, []uint64{8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			records, _ := s.List(tc.q)
			got := make([]uint64, len(records))
			for i, r := range records {
				got[i] = r.Sequence
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("sequences = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestGetAfterWrapAround(t *testing.T) {
	s := NewStore(3, fixedClock())
	appendN(s, 7)
	r, ok := s.Get("req-6")
	if !ok || r.Sequence != 6 {
		t.Fatalf("Get(req-6) = %+v, %v; want sequence 6", r, ok)
	}
}

func TestWaitForSeesRecordAppendedLater(t *testing.T) {
	s := NewStore(3, fixedClock())
	done := make(chan bool)
	go func() { done <- s.WaitFor(context.Background(), "late", 5*time.Second) }()
	s.Append(Record{AwsRequestID: "other"})
	s.Append(Record{AwsRequestID: "late"})
	if !<-done {
		t.Fatal("WaitFor = false, want true once the record was appended")
	}
}

func TestWaitForTimesOutAndHonoursContext(t *testing.T) {
	s := NewStore(3, fixedClock())
	if s.WaitFor(context.Background(), "never", 10*time.Millisecond) {
		t.Error("WaitFor(never) = true after timeout")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s.WaitFor(ctx, "never", time.Hour) {
		t.Error("WaitFor(never) = true with cancelled context")
	}
	s.Append(Record{AwsRequestID: "here"})
	if !s.WaitFor(context.Background(), "here", 0) {
		t.Error("WaitFor(here) = false for an existing record with zero wait")
	}
}

func TestConcurrentWritersAndReaders(t *testing.T) {
	s := NewStore(64, time.Now)
	var wg sync.WaitGroup
	const writers, perWriter = 4, 500
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				s.Append(Record{AwsRequestID: fmt.Sprintf("w%d-%d", w, i)})
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWriter {
				records, counts := s.List(Query{Limit: 10})
				for i := 1; i < len(records); i++ {
					if records[i].Sequence != records[i-1].Sequence+1 {
						t.Errorf("non-contiguous sequences %d then %d", records[i-1].Sequence, records[i].Sequence)
						return
					}
				}
				if counts.Served != counts.Dropped+uint64(counts.Retained) {
					t.Errorf("inconsistent counts %+v", counts)
					return
				}
			}
		}()
	}
	wg.Wait()
	if c := s.Counts(); c.Served != writers*perWriter || c.Retained != 64 {
		t.Fatalf("counts = %+v", c)
	}
}

func TestBeginMergesSourcesAndAppendsRetries(t *testing.T) {
	s := NewStore(5, fixedClock())
	var created []bool
	begin := func(source Source) Record {
		return s.Begin("r1", source, func(r *Record, c bool) {
			created = append(created, c)
			r.DeadlineMs++
		})
	}
	begin(SourceRuntime) // the proxy saw the runtime take the event first
	begin(SourceInvoke)  // then the INVOKE event: the same attempt
	retry := begin(SourceInvoke)
	begin(SourceRuntime)
	if fmt.Sprint(created) != "[true false true false]" || retry.Sequence != 2 || retry.ColdStart {
		t.Fatalf("created %v, retry %+v", created, retry)
	}
	records, counts := s.List(Query{})
	if counts.Served != 2 || len(records) != 2 || records[0].DeadlineMs != 2 || records[1].DeadlineMs != 2 {
		t.Fatalf("records %+v counts %+v: want two attempts, each completed by both sources", records, counts)
	}
	if got, _ := s.Get("r1"); got.Sequence != 2 {
		t.Errorf("Get = %+v, want the latest attempt", got)
	}
	s.Update("r1", func(r *Record) { r.Status = "success" })
	if records, _ := s.List(Query{}); records[0].Status != "" || records[1].Status != "success" {
		t.Errorf("update went to %+v, want the latest attempt", records)
	}
}

func TestBeginWakesWaiters(t *testing.T) {
	s := NewStore(5, fixedClock())
	done := make(chan bool)
	go func() { done <- s.WaitFor(context.Background(), "r1", 5*time.Second) }()
	time.Sleep(10 * time.Millisecond)
	s.Begin("r1", SourceInvoke, func(*Record, bool) {})
	if !<-done {
		t.Fatal("waiter not woken by Begin")
	}
}

func TestUpdateBeforeRecordIsHeldThenApplied(t *testing.T) {
	s := NewStore(5, fixedClock())
	// GIVEN telemetry for r1 overtakes its INVOKE event
	s.Update("r1", func(r *Record) { r.Status = "success" })
	s.Update("r1", func(r *Record) { r.DurationMs = 12.5 })
	if c := s.Counts(); c.PendingUpdates != 1 {
		t.Fatalf("pending = %d, want 1", c.PendingUpdates)
	}
	// WHEN the record appears THEN both updates are applied in order, and nothing is pending
	rec := s.Append(Record{AwsRequestID: "r1"})
	if rec.Status != "success" || rec.DurationMs != 12.5 {
		t.Fatalf("record = %+v", rec)
	}
	if c := s.Counts(); c.PendingUpdates != 0 {
		t.Fatalf("pending = %d after apply", c.PendingUpdates)
	}
	// AND later updates apply directly
	s.Update("r1", func(r *Record) { r.BilledDurationMs = 13 })
	if r, _ := s.Get("r1"); r.BilledDurationMs != 13 {
		t.Fatalf("record = %+v", r)
	}
}

func TestPendingUpdatesAreBoundedAndCounted(t *testing.T) {
	s := NewStore(5, fixedClock())
	for i := range MaxPending + 10 {
		s.Update(fmt.Sprintf("unknown-%d", i), func(r *Record) { r.Status = "success" })
	}
	c := s.Counts()
	if c.PendingUpdates != MaxPending || c.PendingUpdatesDropped != 10 {
		t.Fatalf("counts = %+v", c)
	}
	// The oldest were dropped: their record appears unenriched; the newest is still enriched.
	if r := s.Append(Record{AwsRequestID: "unknown-0"}); r.Status != "" {
		t.Errorf("dropped update applied: %+v", r)
	}
	if r := s.Append(Record{AwsRequestID: fmt.Sprintf("unknown-%d", MaxPending+9)}); r.Status != "success" {
		t.Errorf("held update lost: %+v", r)
	}
}

func TestPendingUpdatesOfOneIDAreBounded(t *testing.T) {
	s := NewStore(5, fixedClock())
	applied := 0
	for range MaxPendingPerID + 100 { // a repeated event for an id that never gets its record
		s.Update("unknown", func(*Record) { applied++ })
	}
	if c := s.Counts(); c.PendingUpdates != 1 || c.PendingUpdatesDropped != 100 {
		t.Fatalf("counts = %+v, want 1 id held and 100 updates dropped", c)
	}
	s.Append(Record{AwsRequestID: "unknown"})
	if applied != MaxPendingPerID {
		t.Errorf("applied %d held updates, want %d", applied, MaxPendingPerID)
	}
}

func TestAppliedPendingIDsDoNotCauseDrops(t *testing.T) {
	s := NewStore(MaxPending*3, fixedClock())
	// Many ids pass through the pending state and are applied: none may be counted as dropped.
	s.Update("still-waiting", func(r *Record) {}) // keeps the pending set from ever emptying
	for i := range MaxPending * 2 {
		id := fmt.Sprintf("r%d", i)
		s.Update(id, func(r *Record) { r.Status = "success" })
		s.Append(Record{AwsRequestID: id})
	}
	if c := s.Counts(); c.PendingUpdatesDropped != 0 || c.PendingUpdates != 1 {
		t.Fatalf("counts = %+v", c)
	}
}

func TestRecordsKeepTheirOwnArnWhenItChanges(t *testing.T) {
	s := NewStore(5, fixedClock())
	for _, arn := range []string{"arn:a", "arn:a", "arn:b", "", "arn:a"} {
		s.Append(Record{AwsRequestID: arn + "-id", InvokedFunctionArn: arn})
	}
	records, _ := s.List(Query{})
	var got []string
	for _, r := range records {
		got = append(got, r.InvokedFunctionArn)
	}
	if fmt.Sprint(got) != "[arn:a arn:a arn:b  arn:a]" {
		t.Fatalf("arns = %q", got)
	}
}

func TestWindowAndPageReadTheSameAsList(t *testing.T) {
	s := NewStore(5, fixedClock())
	appendN(s, 8) // retained: 4..8
	for _, q := range []Query{{}, {Limit: 2}, {Limit: 50}, {After: 6}, {After: 2}, {After: 8}, {After: 100}, {After: 4, Limit: 1}} {
		want, _ := s.List(q)
		after, upTo, counts := s.Window(q)
		var got []Record
		page := make([]Record, 0, 2) // small pages: several calls
		for {
			page = s.Page(after, upTo, page)
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1].Sequence
		}
		if fmt.Sprint(got) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("query %+v: paged %v, listed %v", q, got, want)
		}
		if counts.Served != 8 {
			t.Errorf("counts = %+v", counts)
		}
	}
}

func TestPageSkipsRecordsEvictedSinceTheWindow(t *testing.T) {
	s := NewStore(3, fixedClock())
	appendN(s, 3)
	after, upTo, _ := s.Window(Query{})
	appendN(s, 2) // evicts sequences 1 and 2
	page := s.Page(after, upTo, make([]Record, 0, 10))
	if len(page) != 1 || page[0].Sequence != 3 {
		t.Fatalf("page = %v, want only sequence 3 (records newer than the window are not included)", page)
	}
}

func TestUpdatesReachRecordsAcrossRingGrowth(t *testing.T) {
	s := NewStore(4*initialRing, fixedClock())
	appendN(s, initialRing) // req-1 .. req-64: the first allocation is full
	s.Update("req-1", func(r *Record) { r.Status = "success" })
	s.Update("late", func(r *Record) { r.Status = "error" }) // held: no such record yet
	for i := range 3 * initialRing {                         // grows twice, to capacity
		s.Append(Record{AwsRequestID: fmt.Sprintf("more-%d", i)})
	}
	s.Append(Record{AwsRequestID: "late"}) // wraps: evicts req-1
	if got, ok := s.Get("late"); !ok || got.Status != "error" {
		t.Errorf("late = %+v, %v; want the held update applied after the ring grew", got, ok)
	}
	if got, ok := s.Get("req-2"); !ok || got.Sequence != 2 {
		t.Errorf("req-2 = %+v, %v; want kept with sequence 2", got, ok)
	}
	if _, ok := s.Get("req-1"); ok {
		t.Errorf("req-1 still retained after the full ring wrapped")
	}
	if s.Capacity() != 4*initialRing || len(s.ring) != 4*initialRing {
		t.Errorf("Capacity() = %d, len(ring) = %d; want %d", s.Capacity(), len(s.ring), 4*initialRing)
	}
}

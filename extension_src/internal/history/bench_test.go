package history

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// realistic returns a record with Lambda-sized fields: a UUID request id, a function ARN and an
// X-Ray trace header.
func realistic(i int) Record {
	return Record{
		AwsRequestID:       fmt.Sprintf("%08x-1c4b-4f6d-9a7e-%012x", i, i),
		DeadlineMs:         1795424684697,
		InvokedFunctionArn: fmt.Sprintf("arn:aws:lambda:eu-west-1:123456789012:function:%s", "invocation-history-demo"), // the same ARN, decoded afresh per event
		TraceID:            fmt.Sprintf("Root=1-6741a8f2-%024x;Parent=%016x;Sampled=0;Lineage=1:abcd1234:0", i, i),
	}
}

// heapPerRecord fills a store of 10,000 records with fill and reports the heap it holds per record.
func heapPerRecord(b *testing.B, fill func(s *Store, i int)) {
	const records = 10000
	var before, after runtime.MemStats
	for range b.N {
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := NewStore(records, time.Now)
		for i := range records {
			fill(s, i)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/records, "bytes/record")
		runtime.KeepAlive(s)
	}
}

// BenchmarkStoreMemoryPerRecord reports the heap held per retained record (bytes/record), the
// figure behind the default of INVOCATION_HISTORY_EXTENSION_MAX_RECORDS.
func BenchmarkStoreMemoryPerRecord(b *testing.B) {
	heapPerRecord(b, func(s *Store, i int) { s.Append(realistic(i)) })
}

func BenchmarkAppendFullStore(b *testing.B) {
	s := NewStore(10000, time.Now)
	for i := range 10000 {
		s.Append(realistic(i))
	}
	r := realistic(1)
	b.ResetTimer()
	for range b.N {
		s.Append(r)
	}
}

func BenchmarkListLast100(b *testing.B) {
	s := NewStore(10000, time.Now)
	for i := range 10000 {
		s.Append(realistic(i))
	}
	b.ResetTimer()
	for range b.N {
		s.List(Query{Limit: 100})
	}
}

// enriched completes a record as telemetry does: status, durations, memory, and an error type on
// every tenth invocation.
func enriched(r *Record, i int) {
	r.Status, r.DurationMs, r.BilledDurationMs, r.MaxMemoryUsedMB = "success", 40.12, 41, 31
	if i%10 == 0 {
		r.Status, r.ErrorType = "error", "Runtime.HandlerError"
	}
}

// BenchmarkStoreMemoryPerEnrichedRecord reports the heap held per retained record once telemetry
// has completed it (bytes/record): the telemetry fields are numbers and two short strings (the
// status is a constant; the error type is decoded afresh per event).
func BenchmarkStoreMemoryPerEnrichedRecord(b *testing.B) {
	heapPerRecord(b, func(s *Store, i int) {
		r := s.Append(realistic(i))
		s.Update(r.AwsRequestID, func(r *Record) {
			enriched(r, i)
			if r.ErrorType != "" {
				r.ErrorType = string([]byte(r.ErrorType)) // a fresh copy, as json.Unmarshal makes
			}
		})
	})
}

package telemetryapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/invocation-history/extension/internal/history"
)

// FuzzListenerBody posts arbitrary bodies to the listener: it must answer 200 or 4xx, never
// panic, and never let a batch create records outside Managed Instances mode.
func FuzzListenerBody(f *testing.F) {
	for _, name := range []string{"success.json", "error.json", "timeout.json", "init_error.json", "managed_instances.json"} {
		f.Add(fixture(f, name), false)
		f.Add(fixture(f, name), true)
	}
	f.Add([]byte(`[{"type":"platform.report","record":{"requestId":"a","metrics":{"durationMs":-1e308}}}]`), true)
	f.Add([]byte(`[{"type":"platform.start","record":null}]`), true)
	f.Add([]byte(`[`), false)
	f.Fuzz(func(t *testing.T, body []byte, managed bool) {
		store := history.NewStore(8, time.Now)
		store.Append(history.Record{AwsRequestID: "a"})
		l := NewListener(NewApplier(store, managed), 4096, quiet)
		rec := httptest.NewRecorder()
		l.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d", rec.Code)
		}
		if c := store.Counts(); !managed && c.Served != 1 {
			t.Fatalf("a batch created records in standard mode: %+v", c)
		}
		if c := store.Counts(); c.PendingUpdates > history.MaxPending {
			t.Fatalf("pending updates unbounded: %+v", c)
		}
	})
}

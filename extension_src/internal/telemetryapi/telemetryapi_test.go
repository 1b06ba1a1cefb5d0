package telemetryapi

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/invocation-history/extension/internal/history"
)

// testdata holds batches shaped like the published event schema; tests/local/test_telemetry.py
// validates every one against testdata/telemetry-event.schema.json.
//
//go:embed testdata/*.json
var testdata embed.FS

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := testdata.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func events(t testing.TB, name string) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	if err := json.Unmarshal(fixture(t, name), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func batch(t testing.TB, evs ...json.RawMessage) []byte {
	t.Helper()
	b, err := json.Marshal(evs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const (
	idSuccess = "6f7f0961-0000-4000-8000-000000000001"
	idError   = "6f7f0961-0000-4000-8000-000000000002"
	idTimeout = "6f7f0961-0000-4000-8000-000000000003"
)

// standard returns a store with INVOKE-created records for ids, and a listener on it.
func standard(t testing.TB, ids ...string) (*history.Store, *Listener) {
	store := history.NewStore(100, time.Now)
	for _, id := range ids {
		store.Begin(id, history.SourceInvoke, func(*history.Record, bool) {}) // the INVOKE event
	}
	return store, NewListener(NewApplier(store, false), BodyLimit(262144), quiet)
}

func TestEnrichmentFromSchemaShapedFixtures(t *testing.T) {
	for _, tc := range []struct {
		fixture, id string
		want        history.Record
	}{
		{"success.json", idSuccess, history.Record{Status: "success", DurationMs: 40.12, BilledDurationMs: 41, MaxMemoryUsedMB: 31, InitDurationMs: 180.25,
			TraceID: "Root=1-6741a8f2-000000000000000000000001;Parent=53995c3f42cd8ad8;Sampled=0"}},
		{"error.json", idError, history.Record{Status: "error", ErrorType: "Runtime.HandlerError", DurationMs: 12.04, BilledDurationMs: 13, MaxMemoryUsedMB: 32}},
		{"timeout.json", idTimeout, history.Record{Status: "timeout", ErrorType: "Sandbox.Timedout", DurationMs: 3000.5, BilledDurationMs: 3000, MaxMemoryUsedMB: 40}},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			store, l := standard(t, tc.id)
			if _, err := l.ApplyBatch(fixture(t, tc.fixture)); err != nil {
				t.Fatal(err)
			}
			got, _ := store.Get(tc.id)
			if got.Status != tc.want.Status || got.ErrorType != tc.want.ErrorType || got.DurationMs != tc.want.DurationMs ||
				got.BilledDurationMs != tc.want.BilledDurationMs || got.MaxMemoryUsedMB != tc.want.MaxMemoryUsedMB ||
				got.InitDurationMs != tc.want.InitDurationMs || got.TraceID != tc.want.TraceID {
				t.Fatalf("record = %+v\nwant      %+v", got, tc.want)
			}
			if st := l.Stats(); st.Invalid != 0 || st.Ignored != 0 || st.Batches != 1 {
				t.Fatalf("stats = %+v", st)
			}
		})
	}
}

func TestInitReportFillsTheEnvironment(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		want    history.InitInfo
	}{
		{"success.json", history.InitInfo{InitType: "on-demand", InitDurationMs: 180.25, InitStatus: "success", RuntimeVersion: "provided:al2023.v100",
			RuntimeVersionArn: "arn:aws:lambda:eu-west-1::runtime:5e8de6bd50d624376ae13237e86c698fc23138eacd8186371c6930c98779d08f"}},
		{"init_error.json", history.InitInfo{InitType: "provisioned-concurrency", InitDurationMs: 251, InitStatus: "error", RuntimeVersion: "python:3.13.v20",
			RuntimeVersionArn: "arn:aws:lambda:eu-west-1::runtime:0000000000000000000000000000000000000000000000000000000000000000"}},
		{"managed_instances.json", history.InitInfo{InitType: "lambda-managed-instances", InitDurationMs: 71.2, InitStatus: "success"}},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			store, l := standard(t)
			if _, err := l.ApplyBatch(fixture(t, tc.fixture)); err != nil {
				t.Fatal(err)
			}
			if got := store.Init(); got != tc.want {
				t.Fatalf("init = %+v\nwant    %+v", got, tc.want)
			}
		})
	}
}

// TestOrderAndDuplicatesDoNotMatter delivers the same events in many orders, split into
// batches, each event possibly twice, some before the INVOKE record exists: the result is the
// same as in order.
func TestOrderAndDuplicatesDoNotMatter(t *testing.T) {
	all := append(append(events(t, "success.json"), events(t, "error.json")...), events(t, "timeout.json")...)
	reference, l := standard(t, idSuccess, idError, idTimeout)
	if _, err := l.ApplyBatch(batch(t, all...)); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		evs := append([]json.RawMessage(nil), all...)
		for _, j := range rng.Perm(len(all))[:rng.IntN(len(all))] {
			evs = append(evs, all[j]) // duplicates
		}
		rng.Shuffle(len(evs), func(a, b int) { evs[a], evs[b] = evs[b], evs[a] })
		store, l := standard(t)
		split := rng.IntN(len(evs) + 1)
		if _, err := l.ApplyBatch(batch(t, evs[:split]...)); err != nil { // may overtake INVOKE
			t.Fatal(err)
		}
		for _, id := range []string{idSuccess, idError, idTimeout} {
			store.Begin(id, history.SourceInvoke, func(*history.Record, bool) {}) // the INVOKE event
		}
		if _, err := l.ApplyBatch(batch(t, evs[split:]...)); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{idSuccess, idError, idTimeout} {
			got, _ := store.Get(id)
			want, _ := reference.Get(id)
			got.InvocatedAt, want.InvocatedAt, got.Sequence, want.Sequence, got.ColdStart, want.ColdStart = time.Time{}, time.Time{}, 0, 0, false, false
			if got != want {
				t.Fatalf("permutation %d: %s = %+v\nwant %+v", i, id, got, want)
			}
		}
		if c := store.Counts(); c.Served != 3 || c.PendingUpdates != 0 {
			t.Fatalf("permutation %d: counts = %+v", i, c)
		}
	}
}

func TestManagedInstancesBuildRecordsFromPlatformStart(t *testing.T) {
	store := history.NewStore(100, time.Now)
	l := NewListener(NewApplier(store, true), BodyLimit(262144), quiet)
	evs := events(t, "managed_instances.json")
	// The report of b arrives in an earlier batch than its start: held, then applied.
	if _, err := l.ApplyBatch(batch(t, evs[7])); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ApplyBatch(batch(t, append(evs[:7], evs[8:]...)...)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ApplyBatch(batch(t, evs[5])); err != nil { // a duplicate start creates nothing
		t.Fatal(err)
	}
	records, counts := store.List(history.Query{})
	if counts.Served != 2 || len(records) != 2 {
		t.Fatalf("records = %+v", records)
	}
	a, b := records[0], records[1]
	if a.AwsRequestID != "6f7f0961-0000-4000-8000-00000000000a" || a.Status != "error" || a.ErrorType != "Runtime.HandlerError" || a.DurationMs != 2.75 ||
		a.InvokedFunctionArn != "arn:aws:lambda:us-east-1:123456789012:function:function" || !a.InvocatedAt.Equal(time.Date(2026, 11, 23, 10, 4, 1, 0, time.UTC)) {
		t.Errorf("a = %+v", a)
	}
	if b.Status != "success" || b.DurationMs != 1.5 {
		t.Errorf("b = %+v", b)
	}
	if st := l.Stats(); st.Ignored != 0 || st.Invalid != 0 {
		t.Errorf("stats = %+v", st)
	}
}

// Lambda retries a failed asynchronous invocation with the same request id: on Managed Instances
// the retry's platform.start (another time) is a new record, and later events of that id go to it.
func TestManagedInstancesRetryIsANewRecord(t *testing.T) {
	store := history.NewStore(100, time.Now)
	l := NewListener(NewApplier(store, true), BodyLimit(262144), quiet)
	const id = "6f7f0961-0000-4000-8000-00000000000a"
	start := func(at string) json.RawMessage {
		return json.RawMessage(`{"time":"` + at + `","type":"platform.start","record":{"requestId":"` + id + `","version":"$LATEST"}}`)
	}
	report := json.RawMessage(`{"time":"2026-11-23T10:05:01.010Z","type":"platform.report","record":{"requestId":"` + id +
		`","status":"success","metrics":{"durationMs":1.25,"billedDurationMs":2,"memorySizeMB":128,"maxMemoryUsedMB":30}}}`)
	for _, b := range [][]json.RawMessage{{start("2026-11-23T10:04:01.000Z")}, {start("2026-11-23T10:04:01.000Z")}, {start("2026-11-23T10:05:01.000Z"), report}} {
		if _, err := l.ApplyBatch(batch(t, b...)); err != nil {
			t.Fatal(err)
		}
	}
	records, counts := store.List(history.Query{})
	if counts.Served != 2 || len(records) != 2 {
		t.Fatalf("records = %+v; want the first attempt once and the retry", records)
	}
	if first, retry := records[0], records[1]; first.Status != "" || retry.Status != "success" || retry.DurationMs != 1.25 ||
		!retry.InvocatedAt.Equal(time.Date(2026, 11, 23, 10, 5, 1, 0, time.UTC)) {
		t.Errorf("first = %+v\nretry = %+v", first, retry)
	}
}

func TestStandardModeDoesNotCreateRecordsFromTelemetry(t *testing.T) {
	store, l := standard(t)
	if _, err := l.ApplyBatch(fixture(t, "success.json")); err != nil {
		t.Fatal(err)
	}
	if c := store.Counts(); c.Served != 0 || c.PendingUpdates != 1 {
		t.Fatalf("counts = %+v; want the updates held for the INVOKE record", c)
	}
}

func post(t *testing.T, h http.Handler, method string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "/", bytes.NewReader(body)))
	return rec
}

func TestListenerNeverBreaksOnBadInput(t *testing.T) {
	huge := append(append([]byte("["), bytes.Repeat([]byte(`{"time":"x","type":"platform.start","record":{}},`), 10000)...), []byte("{}]")...)
	for _, tc := range []struct {
		name         string
		method       string
		body         []byte
		wantStatus   int
		wantStats    Stats
		wantRejected bool
	}{
		{"malformed JSON", "POST", []byte(`[{"time":`), 400, Stats{RejectedBatches: 1}, true},
		{"not an array", "POST", []byte(`{"type":"platform.start"}`), 400, Stats{RejectedBatches: 1}, true},
		{"empty body", "POST", nil, 400, Stats{RejectedBatches: 1}, true},
		{"huge body", "POST", huge, 413, Stats{RejectedBatches: 1}, true},
		{"wrong method", "GET", nil, 405, Stats{RejectedBatches: 1}, true},
		{"empty batch", "POST", []byte(`[]`), 200, Stats{Batches: 1}, false},
		{"unknown type", "POST", []byte(`[{"time":"2026-11-23T10:00:00Z","type":"platform.future","record":{"x":1}}]`), 200, Stats{Batches: 1, Ignored: 1}, false},
		{"function log line", "POST", []byte(`[{"time":"2026-11-23T10:00:00Z","type":"function","record":"hello"}]`), 200, Stats{Batches: 1, Ignored: 1}, false},
		{"record of the wrong shape", "POST", []byte(`[{"type":"platform.report","record":"oops"},{"type":"platform.report","record":{"requestId":7}}]`), 200, Stats{Batches: 1, Invalid: 2}, false},
		{"no request id", "POST", []byte(`[{"type":"platform.report","record":{"status":"success"}}]`), 200, Stats{Batches: 1, Invalid: 1}, false},
		{"element not an object", "POST", []byte(`[1, "two", null]`), 200, Stats{Batches: 1, Invalid: 2, Ignored: 1}, false},
		{"bad time is harmless", "POST", []byte(`[{"time":"yesterday","type":"platform.start","record":{"requestId":"r"}}]`), 200, Stats{Batches: 1, Events: 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, l := standard(t, "r")
			rec := post(t, l, tc.method, tc.body)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if st := l.Stats(); st != tc.wantStats {
				t.Fatalf("stats = %+v, want %+v", st, tc.wantStats)
			}
			if tc.wantRejected && !strings.Contains(rec.Body.String(), `"errorType"`) {
				t.Fatalf("4xx body is not a JSON error: %s", rec.Body)
			}
		})
	}
}

func TestListenerAcceptsAnyPath(t *testing.T) {
	store, l := standard(t, idError)
	srv := httptest.NewServer(l)
	defer srv.Close()
	for _, path := range []string{"/", "/telemetry", "/x/y"} {
		resp, err := http.Post(srv.URL+path, "application/json", bytes.NewReader(fixture(t, "error.json")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
	}
	if r, _ := store.Get(idError); r.Status != "error" {
		t.Fatalf("record = %+v", r)
	}
}

func TestSubscribe(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		body       string
		want       Result
		wantErrSub string
	}{
		{"Lambda accepts", 200, `"OK"`, Subscribed, ""},
		{"RIE standard mode", 202, `{"errorMessage":"Telemetry API is not supported","errorType":"Telemetry.NotSupported"}`, NotSupported, ""},
		{"validation error", 400, `{"errorType":"ValidationError","errorMessage":"bad buffering"}`, "", "status 400"},
		{"not registered", 403, `{"errorType":"Extension.Forbidden"}`, "", "status 403"},
		{"2xx with another error", 202, `{"errorType":"Telemetry.Other","errorMessage":"x"}`, "", "Telemetry.Other"},
		{"server error with no body", 500, ``, "", "status 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got SubscribeRequest
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPut || r.URL.Path != "/2022-07-01/telemetry" || r.Header.Get("Lambda-Extension-Identifier") != "ext-1" {
					http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
					return
				}
				_ = json.NewDecoder(r.Body).Decode(&got)
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c := NewClient(strings.TrimPrefix(srv.URL, "http://"), srv.Client())
			res, err := c.Subscribe(context.Background(), "ext-1", NewSubscribeRequest(4243, Buffering{MaxItems: 1000, MaxBytes: 262144, TimeoutMs: 25}))
			if tc.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSub) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErrSub)
				}
				return
			}
			if err != nil || res != tc.want {
				t.Fatalf("result %q err %v, want %q", res, err, tc.want)
			}
			want := SubscribeRequest{SchemaVersion: "2025-01-29", Types: []Stream{"platform"}, Buffering: Buffering{1000, 262144, 25},
				Destination: Destination{Protocol: "HTTP", URI: "http://sandbox.localdomain:4243"}}
			if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
				t.Fatalf("request = %s\nwant      %s", g, w)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestListenBindsWhereSandboxResolvesOrLoopback(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lookup   func(context.Context, string) ([]string, error)
		wantHost string
	}{
		{"resolves (inside Lambda)", func(context.Context, string) ([]string, error) { return []string{"127.0.0.1"}, nil }, "127.0.0.1"},
		{"IPv4 preferred among several", func(context.Context, string) ([]string, error) { return []string{"::1", "127.0.0.2"}, nil }, "127.0.0.2"},
		{"does not resolve (RIE)", func(context.Context, string) ([]string, error) { return nil, errors.New("no such host") }, "127.0.0.1"},
		{"slow resolver is cut short", func(ctx context.Context, _ string) ([]string, error) { <-ctx.Done(); return nil, ctx.Err() }, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started := time.Now()
			ln, err := Listen(context.Background(), 0, tc.lookup)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			host, _, _ := net.SplitHostPort(ln.Addr().String())
			if host != tc.wantHost || time.Since(started) > time.Second {
				t.Fatalf("bound %s after %v", ln.Addr(), time.Since(started))
			}
		})
	}
}

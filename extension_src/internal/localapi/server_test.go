package localapi

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/invocation-history/extension/internal/history"
)

func newTestServer(t *testing.T, capacity int, requestIDs ...string) (*httptest.Server, *history.Store) {
	t.Helper()
	store := history.NewStore(capacity, func() time.Time { return time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC) })
	for _, id := range requestIDs {
		store.Append(history.Record{AwsRequestID: id})
	}
	s := New(store, Environment{EnvironmentID: "env-1", ExtensionVersion: "test"}, 2*time.Second, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv, store
}

func get(t *testing.T, u string) (int, map[string]any) {
	t.Helper()
	return do(t, http.MethodGet, u)
}

func do(t *testing.T, method, u string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type = %q", method, u, ct)
	}
	var body map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%s %s: body %q is not JSON: %v", method, u, raw, err)
	}
	return resp.StatusCode, body
}

func requestIDs(body map[string]any) []string {
	var ids []string
	for _, r := range body["invocations"].([]any) {
		ids = append(ids, r.(map[string]any)["awsRequestId"].(string))
	}
	return ids
}

func TestListInvocations(t *testing.T) {
	srv, _ := newTestServer(t, 3, "a", "b", "c", "d")
	for _, tc := range []struct {
		name, query string
		wantIDs     []string
		wantCursor  float64
	}{
		{"all retained, oldest first", "", []string{"b", "c", "d"}, 4},
		{"most recent one", "?limit=1", []string{"d"}, 4},
		{"after a cursor", "?after=2", []string{"c", "d"}, 4},
		{"nothing new", "?after=4", nil, 4},
		{"existing request id", "?requestId=c", []string{"b", "c", "d"}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := get(t, srv.URL+"/invocations"+tc.query)
			if status != http.StatusOK {
				t.Fatalf("status = %d, body %v", status, body)
			}
			if got := requestIDs(body); fmt.Sprint(got) != fmt.Sprint(tc.wantIDs) {
				t.Errorf("ids = %v, want %v", got, tc.wantIDs)
			}
			if body["cursor"] != tc.wantCursor || body["served"] != 4.0 || body["retained"] != 3.0 || body["dropped"] != 1.0 {
				t.Errorf("counters = %v", body)
			}
			if body["environmentId"] != "env-1" {
				t.Errorf("environmentId = %v", body["environmentId"])
			}
		})
	}
}

func TestListEmptyStoreGivesEmptyArrayNotNull(t *testing.T) {
	srv, _ := newTestServer(t, 3)
	_, body := get(t, srv.URL+"/invocations")
	if arr, ok := body["invocations"].([]any); !ok || len(arr) != 0 {
		t.Fatalf("invocations = %#v, want []", body["invocations"])
	}
}

func TestRecordFieldsAndSeedShape(t *testing.T) {
	srv, store := newTestServer(t, 3)
	store.Append(history.Record{AwsRequestID: "r1", DeadlineMs: 1700000000000, InvokedFunctionArn: "arn:x", TraceID: "Root=1"})
	_, body := get(t, srv.URL+"/invocations")
	rec := body["invocations"].([]any)[0].(map[string]any)
	want := map[string]any{
		"awsRequestId": "r1", "invocatedAt": "2026-11-23T09:00:00Z", "sequence": 1.0, "deadlineMs": 1700000000000.0,
		"invokedFunctionArn": "arn:x", "traceId": "Root=1", "coldStart": true,
	}
	if fmt.Sprint(rec) != fmt.Sprint(want) {
		t.Fatalf("record = %v\nwant     %v", rec, want)
	}
}

func TestRequestIDWaitCoversTheInvokeRace(t *testing.T) {
	srv, store := newTestServer(t, 10, "earlier")
	// GIVEN the function asks about its own request id before the extension has recorded it
	type result struct {
		status int
		body   map[string]any
	}
	done := make(chan result)
	go func() {
		status, body := get(t, srv.URL+"/invocations?requestId=mine&waitMs=2000")
		done <- result{status, body}
	}()
	// WHEN the INVOKE reaches the extension a little later
	time.Sleep(50 * time.Millisecond)
	store.Append(history.Record{AwsRequestID: "mine"})
	// THEN the answer includes it
	r := <-done
	if r.status != http.StatusOK || fmt.Sprint(requestIDs(r.body)) != "[earlier mine]" {
		t.Fatalf("status %d ids %v", r.status, requestIDs(r.body))
	}
	if w := r.body["waitedFor"].(map[string]any); w["found"] != true || w["requestId"] != "mine" {
		t.Fatalf("waitedFor = %v", w)
	}
}

func TestRequestIDWaitIsBounded(t *testing.T) {
	srv, _ := newTestServer(t, 10, "a")
	start := time.Now()
	status, body := get(t, srv.URL+"/invocations?requestId=never&waitMs=30")
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("wait took %v, want about 30ms", elapsed)
	}
	if status != http.StatusOK || body["waitedFor"].(map[string]any)["found"] != false {
		t.Fatalf("status %d body %v", status, body)
	}
}

func TestGetInvocation(t *testing.T) {
	srv, _ := newTestServer(t, 10, "a", "b/c", "d")
	status, body := get(t, srv.URL+"/invocations/d")
	if status != http.StatusOK || body["awsRequestId"] != "d" || body["sequence"] != 3.0 {
		t.Fatalf("status %d body %v", status, body)
	}
	status, body = get(t, srv.URL+"/invocations/zzz")
	if status != http.StatusNotFound || body["errorType"] != "InvocationNotFound" {
		t.Fatalf("status %d body %v", status, body)
	}
	status, _ = get(t, srv.URL+"/invocations/"+url.PathEscape("b/c"))
	if status != http.StatusBadRequest {
		t.Fatalf("escaped slash: status %d, want 400", status)
	}
}

func TestEnvironment(t *testing.T) {
	srv, _ := newTestServer(t, 2, "a", "b", "c")
	status, body := get(t, srv.URL+"/environment")
	counts := body["counts"].(map[string]any)
	if status != http.StatusOK || body["environmentId"] != "env-1" || counts["served"] != 3.0 || counts["retained"] != 2.0 || counts["dropped"] != 1.0 {
		t.Fatalf("status %d body %v", status, body)
	}
}

func TestErrors(t *testing.T) {
	srv, _ := newTestServer(t, 3, "a")
	for _, tc := range []struct {
		name, method, path string
		wantStatus         int
		wantType           string
	}{
		{"unknown path", "GET", "/nope", 404, "NotFound"},
		{"root", "GET", "/", 404, "NotFound"},
		{"post invocations", "POST", "/invocations", 405, "MethodNotAllowed"},
		{"delete record", "DELETE", "/invocations/a", 405, "MethodNotAllowed"},
		{"put environment", "PUT", "/environment", 405, "MethodNotAllowed"},
		{"limit zero", "GET", "/invocations?limit=0", 400, "InvalidParameter"},
		{"limit negative", "GET", "/invocations?limit=-1", 400, "InvalidParameter"},
		{"limit text", "GET", "/invocations?limit=ten", 400, "InvalidParameter"},
		{"after text", "GET", "/invocations?after=x", 400, "InvalidParameter"},
		{"unknown parameter", "GET", "/invocations?limt=5", 400, "InvalidParameter"},
		{"repeated parameter", "GET", "/invocations?limit=1&limit=2", 400, "InvalidParameter"},
		{"wait without request id", "GET", "/invocations?waitMs=10", 400, "InvalidParameter"},
		{"wait above maximum", "GET", "/invocations?requestId=a&waitMs=999999", 400, "InvalidParameter"},
		{"empty request id", "GET", "/invocations?requestId=", 400, "InvalidParameter"},
		{"record wait text", "GET", "/invocations/a?waitMs=soon", 400, "InvalidParameter"},
		{"record unknown parameter", "GET", "/invocations/a?x=1", 400, "InvalidParameter"},
		{"environment parameter", "GET", "/environment?x=1", 400, "InvalidParameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do(t, tc.method, srv.URL+tc.path)
			if status != tc.wantStatus || body["errorType"] != tc.wantType || body["errorMessage"] == "" {
				t.Fatalf("status %d body %v, want %d %s", status, body, tc.wantStatus, tc.wantType)
			}
		})
	}
}

func TestMethodNotAllowedNamesAllowedMethods(t *testing.T) {
	srv, _ := newTestServer(t, 3)
	resp, err := http.Post(srv.URL+"/invocations", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("Allow = %q", resp.Header.Get("Allow"))
	}
}

func TestTooManyWaitersIsRefusedNotQueued(t *testing.T) {
	_, store := newTestServer(t, 3)
	s := New(store, Environment{}, time.Second, slog.New(slog.DiscardHandler))
	s.waiters.Store(maxConcurrentWaits)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/invocations?requestId=x&waitMs=1000", nil))
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("status = %d, want 429", rec.Code)
	}
}

func TestEnvironmentShowsInitInfoFromTelemetry(t *testing.T) {
	srv, store := newTestServer(t, 2)
	_, body := get(t, srv.URL+"/environment")
	for _, field := range []string{"initType", "initDurationMs", "initStatus", "runtimeVersion", "runtimeVersionArn"} {
		if _, ok := body[field]; ok {
			t.Fatalf("%s present before telemetry said it: %v", field, body)
		}
	}
	store.SetInit(func(in *history.InitInfo) {
		*in = history.InitInfo{InitType: "on-demand", InitDurationMs: 180.25, InitStatus: "success", RuntimeVersion: "python:3.13.v20", RuntimeVersionArn: "arn:rt"}
	})
	_, body = get(t, srv.URL+"/environment")
	if body["initType"] != "on-demand" || body["initDurationMs"] != 180.25 || body["initStatus"] != "success" ||
		body["runtimeVersion"] != "python:3.13.v20" || body["runtimeVersionArn"] != "arn:rt" || body["managedInstances"] != false {
		t.Fatalf("body = %v", body)
	}
}

// The streamed list is byte for byte what encoding/json makes of ListResponse, the reference shape:
// records over several pages, the counters and the wait outcome included.
func TestStreamedListEqualsEncodingJSONOfListResponse(t *testing.T) {
	ids := make([]string, 2*pageRecords+3)
	for i := range ids {
		ids[i] = fmt.Sprintf("req-%d\"\u2028", i) // characters that need escaping
	}
	srv, store := newTestServer(t, len(ids)-1, ids...)
	resp, err := http.Get(srv.URL + "/invocations?requestId=req-5%22%E2%80%A8&waitMs=0")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	records, counts := store.List(history.Query{})
	want, err := json.Marshal(ListResponse{
		Invocations: records, EnvironmentID: "env-1", Served: counts.Served, Retained: counts.Retained,
		Dropped: counts.Dropped, Cursor: counts.Served, WaitedFor: &WaitState{RequestID: "req-5\"\u2028", Found: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want)+"\n" {
		t.Fatalf("streamed body differs from encoding/json:\n got %.300s\nwant %.300s", got, want)
	}
}

package runtimeproxy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/invocation-history/extension/internal/history"
)

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// setup starts a fake upstream Runtime API and the proxy in front of it.
func setup(t *testing.T, upstream http.HandlerFunc) (proxyURL string, store *history.Store, p *Proxy) {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	store = history.NewStore(10, func() time.Time { return now })
	p, err := New(strings.TrimPrefix(up.URL, "http://"), store, slog.New(slog.DiscardHandler), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	return front.URL, store, p
}

func TestNextCreatesTheRecordBeforeTheRuntimeSeesTheEvent(t *testing.T) {
	var store *history.Store
	url, store, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "GET" || r.URL.Path != pathNext {
			t.Errorf("upstream got %s %s", r.Method, r.URL.Path)
		}
		w.Header().Set(headerRequestID, "req-1")
		w.Header().Set(headerDeadline, "1795424684697")
		w.Header().Set(headerFunctionArn, "arn:aws:lambda:us-east-1:123456789012:function:f")
		w.Header().Set(headerTraceID, "Root=1-abc")
		w.Header().Set("Lambda-Runtime-Client-Context", "ctx")
		_, _ = io.WriteString(w, `{"hello":"world"}`)
	})
	resp, err := http.Get(url + pathNext)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != `{"hello":"world"}` || resp.Header.Get("Lambda-Runtime-Client-Context") != "ctx" || resp.Header.Get(headerRequestID) != "req-1" {
		t.Fatalf("runtime got %q headers %v", body, resp.Header)
	}
	rec, ok := store.Get("req-1")
	if !ok || !rec.RuntimeReceivedAt.Equal(now) || rec.DeadlineMs != 1795424684697 || rec.TraceID != "Root=1-abc" || rec.Sequence != 1 {
		t.Fatalf("record = %+v, %v", rec, ok)
	}
}

// Lambda retries a failed asynchronous invocation with the same request id: the runtime taking
// it again is a new attempt, a new record.
func TestRetriedRequestIDIsANewRecord(t *testing.T) {
	url, store, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(headerRequestID, "req-1")
		_, _ = io.WriteString(w, `{}`)
	})
	for range 2 {
		resp, err := http.Get(url + pathNext)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if records, counts := store.List(history.Query{}); counts.Served != 2 || records[1].AwsRequestID != "req-1" || records[1].Sequence != 2 {
		t.Fatalf("records %+v counts %+v: want one record per attempt", records, counts)
	}
}

func TestResponseAndErrorAreForwardedAndRecorded(t *testing.T) {
	for _, tc := range []struct {
		name, path, errorTypeHeader, body string
		upstreamStatus                    int
		wantOutcome, wantErrorType        string
	}{
		{"success", "/2018-06-01/runtime/invocation/r1/response", "", `{"ok":true}`, 202, "success", ""},
		{"error", "/2018-06-01/runtime/invocation/r1/error", "Runtime.UserError", `{"errorMessage":"boom"}`, 202, "error", "Runtime.UserError"},
		{"error type from the body when no header", "/2018-06-01/runtime/invocation/r1/error", "", `{"errorType":"OrderFailed","errorMessage":"boom"}`, 202, "error", "OrderFailed"},
		{"rejected by Lambda", "/2018-06-01/runtime/invocation/r1/response", "", `{}`, 413, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, store, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
				got, _ := io.ReadAll(r.Body)
				if r.URL.Path != tc.path || string(got) != tc.body || r.Header.Get(headerErrorType) != tc.errorTypeHeader {
					t.Errorf("upstream got %s %q %q", r.URL.Path, got, r.Header.Get(headerErrorType))
				}
				w.WriteHeader(tc.upstreamStatus)
				_, _ = io.WriteString(w, `{"status":"OK"}`)
			})
			store.Append(history.Record{AwsRequestID: "r1"})
			req, _ := http.NewRequest("POST", url+tc.path, strings.NewReader(tc.body))
			if tc.errorTypeHeader != "" {
				req.Header.Set(headerErrorType, tc.errorTypeHeader)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.upstreamStatus {
				t.Fatalf("status = %d, want the upstream's %d", resp.StatusCode, tc.upstreamStatus)
			}
			rec, _ := store.Get("r1")
			if rec.Outcome != tc.wantOutcome || rec.ErrorType != tc.wantErrorType {
				t.Fatalf("record = %+v", rec)
			}
			if tc.wantOutcome != "" && (rec.ResponseBytes != int64(len(tc.body)) || !rec.RuntimeRespondedAt.Equal(now)) {
				t.Fatalf("record = %+v", rec)
			}
		})
	}
}

// A runtime that sends Expect: 100-continue (curl does for large bodies) first gets Lambda's
// 100 Continue through the proxy; the outcome is recorded from the final status.
func TestExpectContinueRecordsTheFinalStatus(t *testing.T) {
	url, store, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // Go's server sends 100 Continue on this first read
		w.WriteHeader(http.StatusAccepted)
	})
	store.Append(history.Record{AwsRequestID: "r1"})
	var informational []int
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second}}
	body := strings.Repeat("x", 64<<10)
	req, _ := http.NewRequest("POST", url+"/2018-06-01/runtime/invocation/r1/response", strings.NewReader(body))
	req.Header.Set("Expect", "100-continue")
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, _ textproto.MIMEHeader) error { informational = append(informational, code); return nil },
		Got100Continue: func() { informational = append(informational, 100) },
	}))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || len(informational) == 0 {
		t.Fatalf("status %d, 1xx seen %v: want 202 after a 100 Continue", resp.StatusCode, informational)
	}
	if rec, _ := store.Get("r1"); rec.Outcome != "success" || rec.ResponseBytes != int64(len(body)) {
		t.Fatalf("record = %+v, want success with %d bytes", rec, len(body))
	}
}

// A runtime that disconnects (killed mid long-poll) is not an upstream failure.
func TestRuntimeDisconnectIsNotAnUpstreamError(t *testing.T) {
	release := make(chan struct{})
	url, _, p := setup(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+pathNext, nil)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the request should have been cut off")
	}
	deadline := time.Now().Add(2 * time.Second)
	for p.Stats().Forwarded == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the proxy's handler see the cancellation
	if s := p.Stats(); s.UpstreamErrors != 0 {
		t.Fatalf("stats = %+v, want no upstream error for a runtime that went away", s)
	}
}

func TestUnknownPathsMethodsHeadersAndStatusesPassThrough(t *testing.T) {
	url, _, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "PATCH" || r.URL.RequestURI() != "/2099-01-01/runtime/new-thing?x=1" || r.Header.Get("X-Custom") != "v" {
			t.Errorf("upstream got %s %s %v", r.Method, r.URL.RequestURI(), r.Header)
		}
		if r.Header.Get("X-Hop") != "" || r.Header.Get("X-Forwarded-For") != "" {
			t.Errorf("hop-by-hop or forwarding header leaked: %v", r.Header)
		}
		w.Header().Set("X-Upstream", "u")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "short and stout")
	})
	req, _ := http.NewRequest("PATCH", url+"/2099-01-01/runtime/new-thing?x=1", strings.NewReader("data"))
	req.Header.Set("X-Custom", "v")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "drop me")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || string(body) != "short and stout" || resp.Header.Get("X-Upstream") != "u" {
		t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

func TestUpstreamDownGives502JSON(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	p, _ := New(addr, nil, slog.New(slog.DiscardHandler), time.Now)
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest("GET", pathNext, nil))
	if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), `"errorType":"Runtime.ProxyUpstreamUnavailable"`) {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	if p.Stats().UpstreamErrors != 1 {
		t.Fatalf("stats = %+v", p.Stats())
	}
}

func TestStreamedResponsePassesChunkByChunkWithTrailers(t *testing.T) {
	firstChunkSeen := make(chan struct{})
	done := make(chan struct{})
	var gotBody []byte
	var gotTrailer string
	url, store, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			t.Errorf("read first chunk: %v", err)
			return
		}
		gotBody = append(gotBody, buf...)
		close(firstChunkSeen) // the upstream has the first chunk while the runtime still writes
		rest, _ := io.ReadAll(r.Body)
		gotBody = append(gotBody, rest...)
		gotTrailer = r.Trailer.Get(headerErrorType)
		w.WriteHeader(http.StatusAccepted)
	})
	store.Append(history.Record{AwsRequestID: "s1"})
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", url+"/2018-06-01/runtime/invocation/s1/response", pr)
	req.Header.Set("Lambda-Runtime-Function-Response-Mode", "streaming")
	req.Trailer = http.Header{headerErrorType: nil}
	go func() {
		_, _ = io.WriteString(pw, "chunk")
		select {
		case <-firstChunkSeen:
		case <-time.After(5 * time.Second):
			t.Error("first chunk not forwarded before the body ended: the proxy buffers")
		}
		_, _ = io.WriteString(pw, "-rest")
		req.Trailer.Set(headerErrorType, "Runtime.StreamError")
		pw.Close()
	}()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-done
	if string(gotBody) != "chunk-rest" || gotTrailer != "Runtime.StreamError" {
		t.Fatalf("upstream got %q trailer %q", gotBody, gotTrailer)
	}
	rec, _ := store.Get("s1")
	if rec.Outcome != "error" || rec.ErrorType != "Runtime.StreamError" || rec.ResponseBytes != 10 {
		t.Fatalf("record = %+v", rec)
	}
}

func TestLargeBodyIsIntact(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 6<<20/16) // 6 MiB, Lambda's buffered limit
	url, _, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		got, _ := io.ReadAll(r.Body)
		if !bytes.Equal(got, payload) {
			t.Errorf("upstream got %d bytes, want %d intact", len(got), len(payload))
		}
		w.WriteHeader(http.StatusAccepted)
	})
	resp, err := http.Post(url+"/2018-06-01/runtime/invocation/x/response", "application/json", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestNextLongPollHasNoTimeout(t *testing.T) {
	url, _, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // stands for a long wait for the next event
		w.Header().Set(headerRequestID, "late")
		w.WriteHeader(http.StatusOK)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+pathNext, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("resp %v err %v", resp, err)
	}
	resp.Body.Close()
	// A wait of minutes cannot run in a test: no layer may set a bound that would cut it.
	p, _ := New("127.0.0.1:1", nil, slog.New(slog.DiscardHandler), time.Now)
	if tr := p.reverse.Transport.(*http.Transport); tr.ResponseHeaderTimeout != 0 {
		t.Errorf("transport bounds the wait for Lambda's answer: %v", tr.ResponseHeaderTimeout)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := Serve(ln, p)
	defer srv.Close()
	if srv.ReadTimeout != 0 || srv.WriteTimeout != 0 {
		t.Errorf("server bounds the request: read %v, write %v", srv.ReadTimeout, srv.WriteTimeout)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		wantID       string
		wantKind     requestKind
	}{
		{"GET", pathNext, "", kindNext},
		{"POST", pathNext, "", kindOther},
		{"POST", "/2018-06-01/runtime/invocation/abc/response", "abc", kindResponse},
		{"POST", "/2018-06-01/runtime/invocation/abc/error", "abc", kindError},
		{"GET", "/2018-06-01/runtime/invocation/abc/response", "", kindOther},
		{"POST", "/2018-06-01/runtime/invocation//response", "", kindOther},
		{"POST", "/2018-06-01/runtime/invocation/abc/response/more", "", kindOther},
		{"POST", "/2018-06-01/runtime/init/error", "", kindOther},
	} {
		id, kind := classify(httptest.NewRequest(tc.method, tc.path, nil))
		if id != tc.wantID || kind != tc.wantKind {
			t.Errorf("%s %s = %q %v, want %q %v", tc.method, tc.path, id, kind, tc.wantID, tc.wantKind)
		}
	}
}

func TestNewRejectsBadUpstream(t *testing.T) {
	for _, upstream := range []string{"", "http://x:1", "host:1/path"} {
		if _, err := New(upstream, nil, slog.New(slog.DiscardHandler), time.Now); err == nil {
			t.Errorf("New(%q) accepted", upstream)
		}
	}
}

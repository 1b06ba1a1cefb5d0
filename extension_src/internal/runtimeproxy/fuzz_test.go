package runtimeproxy

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/invocation-history/extension/internal/history"
)

// validName and validValue follow RFC 9110: a token, and visible characters with spaces/tabs.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func validValue(s string) bool {
	for _, c := range []byte(s) {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// FuzzHeaderPassThrough sends an arbitrary end-to-end header on a runtime's response through the
// proxy, with a store so that the recording path runs too: the upstream must receive exactly the
// value sent, the runtime Lambda's answer, and the record the outcome; the proxy must never panic.
func FuzzHeaderPassThrough(f *testing.F) {
	for _, seed := range [][2]string{{"X-Custom", "v"}, {"Lambda-Runtime-Function-Error-Type", "Runtime.Error"}, {"Content-Type", "application/json; charset=utf-8"}, {"X-Empty", ""}, {"X-Spaces", "a  b"}} {
		f.Add(seed[0], seed[1])
	}
	var got http.Header
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Header().Set("X-Echo", r.Header.Get("X-Custom"))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer upstream.Close()
	store := history.NewStore(4, time.Now)
	store.Append(history.Record{AwsRequestID: "id"})
	p, err := New(strings.TrimPrefix(upstream.URL, "http://"), store, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		f.Fatal(err)
	}
	hopByHop := map[string]bool{"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Host": true, "Content-Length": true, "X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true, "Forwarded": true, "User-Agent": true}
	f.Fuzz(func(t *testing.T, name, value string) {
		if !validName(name) || !validValue(value) {
			return
		}
		canonical := textproto.CanonicalMIMEHeaderKey(name)
		if hopByHop[canonical] {
			return
		}
		got = nil
		store.Update("id", func(r *history.Record) { r.Outcome, r.ResponseBytes = "", 0 })
		req := httptest.NewRequest("POST", "/2018-06-01/runtime/invocation/id/response", strings.NewReader("{}"))
		req.Header.Set(name, value)
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("status %d for header %q: %q", rec.Code, name, value)
		}
		want := strings.Trim(value, " \t")
		if g := got.Get(canonical); g != want && g != value {
			t.Fatalf("header %q: upstream got %q, want %q", name, g, value)
		}
		if rec, _ := store.Get("id"); rec.Outcome != "success" || rec.ResponseBytes != 2 {
			t.Fatalf("header %q: %q: record %+v, want success with 2 bytes", name, value, rec)
		}
	})
}

// FuzzNextHeaders has the upstream answer /next with arbitrary Lambda-Runtime-* header values: the
// runtime must get them unchanged, and the record must exist exactly when there is a request id,
// with the deadline parsed when it is a number and the other fields as sent.
func FuzzNextHeaders(f *testing.F) {
	f.Add("8476a536-e9f4-11e8-9739-2dfe598c3fcd", "1542409706888", "arn:aws:lambda:us-east-2:123456789012:function:custom-runtime", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1")
	f.Add("", "", "", "")
	f.Add("id", "not-a-number", "", "")
	f.Add("id with spaces", "-1", "a", "b")
	var answer http.Header
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range answer {
			w.Header()[k] = v
		}
		_, _ = w.Write([]byte("{}"))
	}))
	defer upstream.Close()
	f.Fuzz(func(t *testing.T, id, deadline, arn, trace string) {
		for _, v := range []string{id, deadline, arn, trace} {
			if !validValue(v) || strings.Trim(v, " \t") != v {
				return // not a header value the upstream could send as is
			}
		}
		answer = http.Header{}
		for k, v := range map[string]string{headerRequestID: id, headerDeadline: deadline, headerFunctionArn: arn, headerTraceID: trace} {
			if v != "" {
				answer.Set(k, v)
			}
		}
		store := history.NewStore(4, time.Now)
		p, err := New(strings.TrimPrefix(upstream.URL, "http://"), store, slog.New(slog.DiscardHandler), time.Now)
		if err != nil {
			t.Fatal(err)
		}
		defer p.reverse.Transport.(*http.Transport).CloseIdleConnections() // one proxy per input
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, httptest.NewRequest("GET", pathNext, nil))
		if rec.Code != http.StatusOK || rec.Body.String() != "{}" {
			t.Fatalf("runtime got %d %q", rec.Code, rec.Body.String())
		}
		for k := range answer {
			if rec.Header().Get(k) != answer.Get(k) {
				t.Fatalf("runtime got %s %q, upstream sent %q", k, rec.Header().Get(k), answer.Get(k))
			}
		}
		r, ok := store.Get(id)
		if ok != (id != "") || store.Counts().Served != map[bool]uint64{true: 1, false: 0}[id != ""] {
			t.Fatalf("id %q: record found %v, counts %+v", id, ok, store.Counts())
		}
		if !ok {
			return
		}
		wantDeadline, err := strconv.ParseInt(deadline, 10, 64)
		if err != nil {
			wantDeadline = 0
		}
		if r.DeadlineMs != wantDeadline || r.InvokedFunctionArn != arn || r.TraceID != trace || r.RuntimeReceivedAt.IsZero() {
			t.Fatalf("record %+v from id %q deadline %q arn %q trace %q", r, id, deadline, arn, trace)
		}
	})
}

package runtimeproxy

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"
	"time"
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

// FuzzHeaderPassThrough sends an arbitrary end-to-end header through the proxy: the upstream must
// receive exactly the value sent, and the proxy must never panic.
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
	p, err := New(strings.TrimPrefix(upstream.URL, "http://"), nil, slog.New(slog.DiscardHandler), time.Now)
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
	})
}

package localapi

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/invocation-history/extension/internal/history"
)

// FuzzParseListParams checks that no query string panics the parser and that an accepted query
// stays inside the documented bounds.
func FuzzParseListParams(f *testing.F) {
	for _, seed := range []string{"", "limit=10", "after=5&limit=2", "requestId=abc&waitMs=100", "limit=-1", "limit=99999999999999", "waitMs=5", "a=1&a=2", "%zz", "requestId=%00"} {
		f.Add(seed)
	}
	const maxWait = 2 * time.Second
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		p, err := ParseListParams(q, maxWait)
		if err != nil {
			return
		}
		if p.Query.Limit < 0 || p.Wait < 0 || p.Wait > maxWait || len(p.RequestID) > maxRequestIDLength {
			t.Fatalf("accepted %q as out-of-bounds params %+v", raw, p)
		}
	})
}

// FuzzRequestIDPath sends arbitrary paths and queries through the whole handler: every answer must
// be JSON with a status the spec allows.
func FuzzRequestIDPath(f *testing.F) {
	for _, seed := range []string{"/invocations/abc", "/invocations/a%2Fb", "/invocations?limit=1", "/environment", "/x", "/invocations/%ff?waitMs=1"} {
		f.Add(seed)
	}
	store := history.NewStore(4, time.Now)
	store.Append(history.Record{AwsRequestID: "abc"})
	s := New(store, Environment{EnvironmentID: "e"}, 5*time.Millisecond, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Host != "" || len(target) == 0 || target[0] != '/' {
			return
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.URL = u
		s.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 400, 404:
		default:
			t.Fatalf("GET %q: status %d", target, rec.Code)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("GET %q: body is not JSON: %q", target, rec.Body.String())
		}
	})
}

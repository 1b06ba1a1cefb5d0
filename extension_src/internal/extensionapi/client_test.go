package extensionapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeAPI is an httptest server that checks method and path and answers from a table.
func fakeAPI(t *testing.T, routes map[string]http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := routes[r.Method+" "+r.URL.Path]
		if !ok {
			t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
			http.Error(w, "unexpected", http.StatusNotFound)
			return
		}
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return NewClient(strings.TrimPrefix(srv.URL, "http://"), srv.Client())
}

func TestRegister(t *testing.T) {
	c := fakeAPI(t, map[string]http.HandlerFunc{
		"POST /2020-01-01/extension/register": func(w http.ResponseWriter, r *http.Request) {
			if got := r.Header.Get("Lambda-Extension-Name"); got != "invocation-history-extension" {
				t.Errorf("name header = %q", got)
			}
			if got := r.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			var body struct{ Events []string }
			_ = json.NewDecoder(r.Body).Decode(&body)
			if strings.Join(body.Events, ",") != "INVOKE,SHUTDOWN" {
				t.Errorf("events = %v", body.Events)
			}
			w.Header().Set("Lambda-Extension-Identifier", "ext-id-1")
			_, _ = io.WriteString(w, `{"functionName":"fn","functionVersion":"$LATEST","handler":"h"}`)
		},
	})
	got, err := c.Register(context.Background(), "invocation-history-extension", Invoke, Shutdown)
	if err != nil {
		t.Fatal(err)
	}
	if got.FunctionName != "fn" || got.FunctionVersion != "$LATEST" || c.ExtensionID() != "ext-id-1" {
		t.Fatalf("got %+v id %q", got, c.ExtensionID())
	}
}

func TestRegisterErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		wantErr string
	}{
		{"forbidden", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"errorType":"Extension.Forbidden"}`, http.StatusForbidden)
		}, "register extension: status 403"},
		{"no identifier", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{}`)
		}, "no Lambda-Extension-Identifier"},
		{"bad json", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Lambda-Extension-Identifier", "x")
			_, _ = io.WriteString(w, `{`)
		}, "decode response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeAPI(t, map[string]http.HandlerFunc{"POST /2020-01-01/extension/register": tc.handler})
			_, err := c.Register(context.Background(), "x", Invoke)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestNextEventDecodesInvokeAndShutdown(t *testing.T) {
	bodies := []string{
		`{"eventType":"INVOKE","deadlineMs":1700000000000,"requestId":"r1","invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:fn","tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-abc"}}`,
		`{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":1700000002000}`,
	}
	i := 0
	c := fakeAPI(t, map[string]http.HandlerFunc{
		"GET /2020-01-01/extension/event/next": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Lambda-Extension-Identifier") != "" {
				t.Errorf("identifier sent before registration")
			}
			_, _ = io.WriteString(w, bodies[i])
			i++
		},
	})
	ev, err := c.NextEvent(context.Background())
	if err != nil || ev.EventType != Invoke || ev.RequestID != "r1" || ev.Tracing.Value != "Root=1-abc" || ev.DeadlineMs != 1700000000000 {
		t.Fatalf("invoke = %+v, %v", ev, err)
	}
	ev, err = c.NextEvent(context.Background())
	if err != nil || ev.EventType != Shutdown || ev.ShutdownReason != "spindown" {
		t.Fatalf("shutdown = %+v, %v", ev, err)
	}
}

func TestReportErrorsSendTypeHeader(t *testing.T) {
	for _, path := range []string{"/init/error", "/exit/error"} {
		t.Run(path, func(t *testing.T) {
			c := fakeAPI(t, map[string]http.HandlerFunc{
				"POST /2020-01-01/extension" + path: func(w http.ResponseWriter, r *http.Request) {
					if got := r.Header.Get("Lambda-Extension-Function-Error-Type"); got != "Extension.Test" {
						t.Errorf("error type header = %q", got)
					}
					var body map[string]string
					_ = json.NewDecoder(r.Body).Decode(&body)
					if body["errorMessage"] != "boom" {
						t.Errorf("body = %v", body)
					}
					w.WriteHeader(http.StatusAccepted)
				},
			})
			report := c.InitError
			if path == "/exit/error" {
				report = c.ExitError
			}
			if err := report(context.Background(), "Extension.Test", "boom"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

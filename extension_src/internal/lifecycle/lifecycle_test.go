package lifecycle

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/invocation-history/extension/internal/config"
	"github.com/invocation-history/extension/internal/extensionapi"
	"github.com/invocation-history/extension/internal/history"
)

// fakeLambda serves the Extensions API from a queue of /event/next bodies; an empty queue blocks
// until the request is cancelled, like Lambda between invocations.
type fakeLambda struct {
	mu         sync.Mutex
	events     []string
	nextStatus int // when non-zero, /event/next answers this status
	exitErrors []string
}

func (f *fakeLambda) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method + " " + r.URL.Path {
	case "POST /2020-01-01/extension/register":
		w.Header().Set("Lambda-Extension-Identifier", "id-1")
		_, _ = io.WriteString(w, `{"functionName":"fn","functionVersion":"7"}`)
	case "GET /2020-01-01/extension/event/next":
		f.mu.Lock()
		status := f.nextStatus
		var body string
		if len(f.events) > 0 {
			body, f.events = f.events[0], f.events[1:]
		}
		f.mu.Unlock()
		if status != 0 {
			http.Error(w, "boom", status)
			return
		}
		if body == "" {
			<-r.Context().Done()
			return
		}
		_, _ = io.WriteString(w, body)
	case "POST /2020-01-01/extension/exit/error":
		f.mu.Lock()
		f.exitErrors = append(f.exitErrors, r.Header.Get("Lambda-Extension-Function-Error-Type"))
		f.mu.Unlock()
	default:
		http.Error(w, "unexpected "+r.URL.Path, http.StatusNotFound)
	}
}

func invoke(id string) string {
	return fmt.Sprintf(`{"eventType":"INVOKE","requestId":%q,"deadlineMs":1,"invokedFunctionArn":"arn:fn","tracing":{"value":"Root=%s"}}`, id, id)
}

const shutdown = `{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":1}`

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func options(t *testing.T, lambda http.Handler, env map[string]string) (Options, *syncBuffer) {
	t.Helper()
	srv := httptest.NewServer(lambda)
	t.Cleanup(srv.Close)
	env[config.EnvRuntimeAPI] = strings.TrimPrefix(srv.URL, "http://")
	getenv := func(k string) string { return env[k] }
	cfg, warnings := config.Load(getenv)
	logs := &syncBuffer{}
	return Options{
		Name: "invocation-history-extension", Version: "test", Config: cfg, Warnings: warnings,
		Client: extensionapi.NewClient(cfg.RuntimeAPI, srv.Client()),
		Store:  history.NewStore(cfg.MaxRecords, time.Now),
		Log:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Getenv: getenv,
		// Port 0: the kernel picks a free port, so tests never collide.
		Listen:  func(int) (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") },
		Started: time.Now(), Now: time.Now,
	}, logs
}

func TestRecordsEveryInvokeAndExitsZeroOnShutdown(t *testing.T) {
	lambda := &fakeLambda{events: []string{invoke("a"), invoke("b"), invoke("c"), shutdown}}
	o, logs := options(t, lambda, map[string]string{})
	if code := Run(context.Background(), o); code != 0 {
		t.Fatalf("exit code %d, logs:\n%s", code, logs)
	}
	records, counts := o.Store.List(history.Query{})
	if len(records) != 3 || counts.Served != 3 {
		t.Fatalf("records = %v", records)
	}
	if r := records[0]; r.AwsRequestID != "a" || r.TraceID != "Root=a" || r.InvokedFunctionArn != "arn:fn" || !r.ColdStart {
		t.Errorf("first record = %+v", r)
	}
	out := logs.String()
	if !strings.Contains(out, "msg=shutdown") || !strings.Contains(out, "reason=spindown") || !strings.Contains(out, "invocationsServed=3") {
		t.Errorf("no summary line in logs:\n%s", out)
	}
}

func TestConfigurationWarningsAreLoggedOnce(t *testing.T) {
	o, logs := options(t, &fakeLambda{events: []string{shutdown}}, map[string]string{config.EnvMaxRecords: "lots"})
	Run(context.Background(), o)
	if n := strings.Count(logs.String(), "variable=INVOCATION_HISTORY_EXTENSION_MAX_RECORDS value=lots"); n != 1 {
		t.Fatalf("warning logged %d times:\n%s", n, logs)
	}
}

func TestPortTakenStillRunsTheEventLoop(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	o, logs := options(t, &fakeLambda{events: []string{invoke("a"), shutdown}}, map[string]string{config.EnvHTTPPort: fmt.Sprint(port)})
	o.Listen = func(p int) (net.Listener, error) { return net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)) }
	if code := Run(context.Background(), o); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if o.Store.Counts().Served != 1 {
		t.Errorf("invoke not recorded with the port taken")
	}
	if !strings.Contains(logs.String(), "local API not started") || !strings.Contains(logs.String(), fmt.Sprintf("port=%d", port)) {
		t.Errorf("conflict not logged:\n%s", logs)
	}
}

func TestSIGTERMEndsTheLoopWithExitZero(t *testing.T) {
	o, logs := options(t, &fakeLambda{events: []string{invoke("a")}}, map[string]string{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for o.Store.Counts().Served == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel() // what signal.NotifyContext does on SIGTERM
	}()
	if code := Run(ctx, o); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.Contains(logs.String(), "reason=SIGTERM") {
		t.Errorf("logs:\n%s", logs)
	}
}

func TestPersistentNextEventFailureIsReported(t *testing.T) {
	saved := nextEventRetries
	nextEventRetries = []time.Duration{time.Millisecond, time.Millisecond}
	defer func() { nextEventRetries = saved }()
	lambda := &fakeLambda{nextStatus: http.StatusInternalServerError}
	o, logs := options(t, lambda, map[string]string{})
	if code := Run(context.Background(), o); code != 1 {
		t.Fatalf("exit code %d, want 1; logs:\n%s", code, logs)
	}
	if fmt.Sprint(lambda.exitErrors) != "[Extension.EventLoopFailed]" {
		t.Fatalf("exit errors = %v", lambda.exitErrors)
	}
}

func TestNotInLambdaExitsWithClearError(t *testing.T) {
	o, logs := options(t, &fakeLambda{}, map[string]string{})
	o.Config.RuntimeAPI = ""
	if code := Run(context.Background(), o); code != 1 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.Contains(logs.String(), "variable=AWS_LAMBDA_RUNTIME_API") {
		t.Fatalf("logs:\n%s", logs)
	}
}

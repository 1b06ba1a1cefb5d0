package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/invocation-history/extension/internal/config"
	"github.com/invocation-history/extension/internal/extensionapi"
	"github.com/invocation-history/extension/internal/history"
	"github.com/invocation-history/extension/internal/telemetryapi"
)

// fakeLambda serves the Extensions API from a queue of /event/next bodies; an empty queue blocks
// until the request is cancelled, like Lambda between invocations.
type fakeLambda struct {
	mu         sync.Mutex
	events     []string
	nextStatus int // when non-zero, /event/next answers this status
	exitErrors []string

	registered    string // body of the registration
	subscription  string // body of the telemetry subscription
	telemetryCode int    // status of the subscription answer (0: 200)
	telemetryBody string // body of the subscription answer ("": "OK")
	// beforeNext runs once, at the first /event/next: a test posts telemetry there, as Lambda
	// does once init is done.
	beforeNext func(subscription string)
}

func (f *fakeLambda) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method + " " + r.URL.Path {
	case "POST /2020-01-01/extension/register":
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.registered = string(b)
		f.mu.Unlock()
		w.Header().Set("Lambda-Extension-Identifier", "id-1")
		_, _ = io.WriteString(w, `{"functionName":"fn","functionVersion":"7"}`)
	case "PUT /2022-07-01/telemetry":
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.subscription = string(b)
		code, body := f.telemetryCode, f.telemetryBody
		f.mu.Unlock()
		if code == 0 {
			code, body = http.StatusOK, `"OK"`
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	case "GET /2020-01-01/extension/event/next":
		f.mu.Lock()
		if hook := f.beforeNext; hook != nil {
			f.beforeNext = nil
			sub := f.subscription
			f.mu.Unlock()
			hook(sub)
			f.mu.Lock()
		}
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
		Telemetry: telemetryapi.NewClient(cfg.RuntimeAPI, srv.Client()),
		ListenTelemetry: func(ctx context.Context, port int) (net.Listener, error) {
			return telemetryapi.Listen(ctx, port, func(context.Context, string) ([]string, error) { return nil, errors.New("no such host") })
		},
		Stdout: logs,
	}, logs
}

func TestRecordsEveryInvokeAndExitsZeroOnShutdown(t *testing.T) {
	// "a" again: Lambda retries a failed asynchronous invocation with the same request id.
	lambda := &fakeLambda{events: []string{invoke("a"), invoke("b"), invoke("c"), invoke("a"), shutdown}}
	o, logs := options(t, lambda, map[string]string{})
	if code := Run(context.Background(), o); code != 0 {
		t.Fatalf("exit code %d, logs:\n%s", code, logs)
	}
	records, counts := o.Store.List(history.Query{})
	if len(records) != 4 || counts.Served != 4 || records[3].AwsRequestID != "a" || records[3].Sequence != 4 {
		t.Fatalf("records = %v", records)
	}
	if r := records[0]; r.AwsRequestID != "a" || r.TraceID != "Root=a" || r.InvokedFunctionArn != "arn:fn" || !r.ColdStart {
		t.Errorf("first record = %+v", r)
	}
	out := logs.String()
	if !strings.Contains(out, "msg=shutdown") || !strings.Contains(out, "reason=spindown") || !strings.Contains(out, "invocationsServed=4") {
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

// postTelemetry posts batch to the listener named in the subscription, as Lambda does.
func postTelemetry(t *testing.T, subscription, batch string) {
	t.Helper()
	var sub telemetryapi.SubscribeRequest
	if err := json.Unmarshal([]byte(subscription), &sub); err != nil {
		t.Errorf("subscription %q: %v", subscription, err)
		return
	}
	port := sub.Destination.URI[strings.LastIndex(sub.Destination.URI, ":")+1:]
	resp, err := http.Post("http://127.0.0.1:"+port+"/", "application/json", strings.NewReader(batch))
	if err != nil {
		t.Errorf("post telemetry: %v", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("post telemetry: status %d", resp.StatusCode)
	}
}

func report(id, status string, durationMs float64) string {
	return fmt.Sprintf(`{"time":"2026-11-23T10:00:01Z","type":"platform.report","record":{"requestId":%q,"status":%q,"metrics":{"durationMs":%v,"billedDurationMs":2,"memorySizeMB":128,"maxMemoryUsedMB":30}}}`, id, status, durationMs)
}

func start(id string) string {
	return fmt.Sprintf(`{"time":"2026-11-23T10:00:00Z","type":"platform.start","record":{"requestId":%q,"functionArn":"arn:fn"}}`, id)
}

func TestTelemetryEnrichesInvokeRecords(t *testing.T) {
	// GIVEN Lambda with a Telemetry API, which posts a report that overtakes the INVOKE event
	lambda := &fakeLambda{events: []string{invoke("a"), shutdown}}
	lambda.beforeNext = func(sub string) { // the report is delivered twice
		postTelemetry(t, sub, "["+report("a", "error", 1.5)+","+report("a", "error", 1.5)+"]")
	}
	o, logs := options(t, lambda, map[string]string{config.EnvTelemetryTimeoutMs: "100"})
	// WHEN the extension runs
	if code := Run(context.Background(), o); code != 0 {
		t.Fatalf("exit code %d, logs:\n%s", code, logs)
	}
	// THEN it subscribed once to the platform stream with the configured buffering ...
	var sub telemetryapi.SubscribeRequest
	_ = json.Unmarshal([]byte(lambda.subscription), &sub)
	if sub.SchemaVersion != "2025-01-29" || fmt.Sprint(sub.Types) != "[platform]" || sub.Buffering != (telemetryapi.Buffering{MaxItems: 1000, MaxBytes: 262144, TimeoutMs: 100}) ||
		!strings.HasPrefix(sub.Destination.URI, "http://sandbox.localdomain:") {
		t.Fatalf("subscription = %s", lambda.subscription)
	}
	// ... registered for INVOKE and SHUTDOWN, and the held report completed the record
	if lambda.registered != `{"events":["INVOKE","SHUTDOWN"]}` {
		t.Errorf("registered %s", lambda.registered)
	}
	r, _ := o.Store.Get("a")
	if r.Status != "error" || r.DurationMs != 1.5 || r.BilledDurationMs != 2 || r.MaxMemoryUsedMB != 30 || r.TraceID != "Root=a" {
		t.Errorf("record = %+v", r)
	}
	if out := logs.String(); !strings.Contains(out, "telemetry=on") || !strings.Contains(out, "telemetryEvents=2") {
		t.Errorf("logs:\n%s", out)
	}
	// ... and its duration went out once, as an EMF line, at the latest at shutdown
	if n := strings.Count(logs.String(), `"InvocationDuration":[1.5]`); n != 1 {
		t.Errorf("InvocationDuration lines with [1.5]: %d, logs:\n%s", n, logs)
	}
}

func TestManagedInstancesRegisterForShutdownOnlyAndRecordFromTelemetry(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"initialization type", map[string]string{"AWS_LAMBDA_INITIALIZATION_TYPE": "lambda-managed-instances"}},
		{"max concurrency", map[string]string{"AWS_LAMBDA_MAX_CONCURRENCY": "8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lambda := &fakeLambda{events: []string{shutdown}}
			lambda.beforeNext = func(sub string) {
				postTelemetry(t, sub, "["+start("x")+","+start("y")+","+report("y", "success", 3)+"]")
				postTelemetry(t, sub, "["+report("x", "timeout", 9)+","+start("x")+"]") // late and duplicated
			}
			o, logs := options(t, lambda, tc.env)
			if code := Run(context.Background(), o); code != 0 {
				t.Fatalf("exit code %d, logs:\n%s", code, logs)
			}
			if lambda.registered != `{"events":["SHUTDOWN"]}` {
				t.Fatalf("registered %s", lambda.registered)
			}
			records, _ := o.Store.List(history.Query{})
			if len(records) != 2 || records[0].AwsRequestID != "x" || records[0].Status != "timeout" || records[0].DurationMs != 9 ||
				records[1].Status != "success" || records[1].InvokedFunctionArn != "arn:fn" {
				t.Fatalf("records = %+v", records)
			}
			if out := logs.String(); !strings.Contains(out, "managedInstances=true") || !strings.Contains(out, `"InvocationsServed":2`) {
				t.Errorf("logs:\n%s", out)
			}
		})
	}
}

func TestTelemetryNotSupportedDegradesToInvokeOnly(t *testing.T) {
	// GIVEN the RIE's answer in its standard mode: 202 with Telemetry.NotSupported in the body
	lambda := &fakeLambda{events: []string{invoke("a"), shutdown}, telemetryCode: http.StatusAccepted,
		telemetryBody: `{"errorMessage":"Telemetry API is not supported","errorType":"Telemetry.NotSupported"}`}
	o, logs := options(t, lambda, map[string]string{})
	if code := Run(context.Background(), o); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	out := logs.String()
	if n := strings.Count(out, "Telemetry.NotSupported"); n != 1 || !strings.Contains(out, "telemetry=unsupported") {
		t.Fatalf("want one line about it; logs:\n%s", out)
	}
	if o.Store.Counts().Served != 1 {
		t.Fatalf("invoke not recorded")
	}
}

func TestTelemetryOffSwitchAndFailures(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       map[string]string
		code      int
		listenErr bool
		want      string
	}{
		{"switched off", map[string]string{config.EnvTelemetry: "off"}, 0, false, "telemetry=off"},
		{"subscription refused", map[string]string{}, http.StatusBadRequest, false, "telemetry=failed"},
		{"listener cannot bind", map[string]string{}, 0, true, "telemetry=failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lambda := &fakeLambda{events: []string{invoke("a"), shutdown}, telemetryCode: tc.code, telemetryBody: `{"errorType":"ValidationError"}`}
			o, logs := options(t, lambda, tc.env)
			if tc.listenErr {
				o.ListenTelemetry = func(context.Context, int) (net.Listener, error) { return nil, errors.New("address already in use") }
			}
			if code := Run(context.Background(), o); code != 0 {
				t.Fatalf("exit code %d", code)
			}
			if out := logs.String(); !strings.Contains(out, tc.want) || o.Store.Counts().Served != 1 {
				t.Fatalf("logs:\n%s", out)
			}
			if tc.name == "switched off" && lambda.subscription != "" {
				t.Fatalf("subscribed although switched off")
			}
		})
	}
}

func TestMetricsLinesAndOffSwitch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantEMF int
	}{
		{"on by default", map[string]string{}, 2},
		{"switched off", map[string]string{config.EnvMetrics: "off"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, logs := options(t, &fakeLambda{events: []string{invoke("a"), invoke("b"), shutdown}}, tc.env)
			Run(context.Background(), o)
			var lines []map[string]any
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.HasPrefix(line, "{") {
					var m map[string]any
					if err := json.Unmarshal([]byte(line), &m); err != nil {
						t.Fatalf("%v: %s", err, line)
					}
					lines = append(lines, m)
				}
			}
			if len(lines) != tc.wantEMF {
				t.Fatalf("EMF lines = %v", lines)
			}
			if tc.wantEMF == 2 && (lines[0]["EnvironmentStarted"] != 1.0 || lines[1]["InvocationsServed"] != 2.0 || lines[1]["FunctionName"] != "fn" || lines[1]["FunctionVersion"] != "7") {
				t.Fatalf("EMF lines = %v", lines)
			}
		})
	}
}

// The wrapper points the runtime at the proxy only through the address file: it must name a proxy
// that listens, and be absent (even if a stale one is left from before) whenever the proxy is not
// serving, so that the runtime talks to Lambda directly and the function keeps working.
func TestRuntimeProxyAddressFile(t *testing.T) {
	for _, tc := range []struct {
		name      string
		enabled   bool
		portTaken bool
		wantFile  bool
		wantLog   string
	}{
		{"on: the address is published", true, false, true, ""},
		{"on, port taken: no address, the error names the variable", true, true, false, "variable=INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_PORT"},
		{"off: a stale address is removed", false, false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			proxyPort := taken.Addr().(*net.TCPAddr).Port
			if !tc.portTaken {
				taken.Close() // free again, for the proxy
			}
			env := map[string]string{config.EnvRuntimeProxyPort: fmt.Sprint(proxyPort)}
			if tc.enabled {
				env[config.EnvRuntimeProxy] = "on"
			}
			o, logs := options(t, &fakeLambda{events: []string{invoke("a"), shutdown}}, env)
			o.Listen = func(port int) (net.Listener, error) {
				if port == proxyPort {
					return net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				}
				return net.Listen("tcp", "127.0.0.1:0")
			}
			o.ProxyAddressFile = filepath.Join(t.TempDir(), "runtime-proxy-address")
			if err := os.WriteFile(o.ProxyAddressFile, []byte("127.0.0.1:1"), 0o644); err != nil {
				t.Fatal(err)
			}
			var published string
			o.Now = func() time.Time { // read while the extension runs: the proxy stops at shutdown
				if b, err := os.ReadFile(o.ProxyAddressFile); err == nil && published == "" {
					published = string(b)
				}
				return time.Now()
			}
			if code := Run(context.Background(), o); code != 0 {
				t.Fatalf("exit code %d\n%s", code, logs)
			}
			if o.Store.Counts().Served != 1 {
				t.Errorf("invoke not recorded:\n%s", logs)
			}
			want := ""
			if tc.wantFile {
				want = fmt.Sprintf("127.0.0.1:%d", proxyPort)
			}
			if published != want {
				t.Errorf("address file said %q during the run, want %q", published, want)
			}
			if tc.wantLog != "" && !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, logs)
			}
		})
	}
}

func TestRequestIDWaitFeatureFollowsMaxWait(t *testing.T) {
	for _, tc := range []struct {
		maxWait string
		want    bool
	}{{"", true}, {"500", true}, {"0", false}} {
		o, _ := options(t, &fakeLambda{}, map[string]string{config.EnvMaxWait: tc.maxWait})
		if got := environment(o).Features.RequestIDWait; got != tc.want {
			t.Errorf("MAX_WAIT_MS=%q: requestIdWait = %v, want %v", tc.maxWait, got, tc.want)
		}
	}
}

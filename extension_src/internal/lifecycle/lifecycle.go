// Package lifecycle is the extension's event loop: it reports the configuration, starts the local
// API and the telemetry listener, registers with the Extensions API, subscribes to the Telemetry
// API, writes the environment-started metric, records every INVOKE in the history store and shuts
// down cleanly on SHUTDOWN or SIGTERM. It is the only package that imports its siblings.
//
// Lambda lifecycle: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html
// Lambda Managed Instances: https://docs.aws.amazon.com/lambda/latest/dg/lambda-managed-instances.html
package lifecycle

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/invocation-history/extension/internal/config"
	"github.com/invocation-history/extension/internal/extensionapi"
	"github.com/invocation-history/extension/internal/history"
	"github.com/invocation-history/extension/internal/localapi"
	"github.com/invocation-history/extension/internal/metrics"
	"github.com/invocation-history/extension/internal/runtimeproxy"
	"github.com/invocation-history/extension/internal/telemetryapi"
)

// Options are everything the loop needs, passed in so tests control each part.
type Options struct {
	Name     string // registered name; must equal the executable's file name
	Version  string
	Config   config.Config
	Warnings []config.Warning
	Client   *extensionapi.Client
	Store    *history.Store
	Log      *slog.Logger
	Getenv   func(string) string
	Listen   func(port int) (net.Listener, error)
	Started  time.Time // when the process started, for the start-up time and lifetime
	Now      func() time.Time

	// Telemetry subscribes to the Telemetry API (nil: telemetry off whatever the configuration).
	Telemetry *telemetryapi.Client
	// ListenTelemetry binds the telemetry listener's port (telemetryapi.Listen in Lambda).
	ListenTelemetry func(ctx context.Context, port int) (net.Listener, error)
	// Stdout receives the EMF metric lines (nil: no metrics).
	Stdout io.Writer
	// ProxyAddressFile is where the Runtime API proxy's address is written once it listens; the
	// wrapper script reads it and points the runtime there only then (empty: not written).
	ProxyAddressFile string
}

// Environment variables Lambda sets on Lambda Managed Instances.
const (
	envInitType       = "AWS_LAMBDA_INITIALIZATION_TYPE" // "lambda-managed-instances" there
	envMaxConcurrency = "AWS_LAMBDA_MAX_CONCURRENCY"     // invocations one environment runs at once
)

// subscribeTimeout bounds the one PUT of the subscription: a local call that answers in
// microseconds; the bound only matters when something is wrong, and then init goes on.
const subscribeTimeout = time.Second

// managedInstances reports whether the environment is on Lambda Managed Instances, where an
// extension may register for SHUTDOWN only and gets no INVOKE events. Lambda sets both variables
// there; either is enough (the RIE's managed-instances mode sets both as well).
func managedInstances(getenv func(string) string) bool {
	return getenv(envInitType) == telemetryapi.InitTypeManagedInstances || strings.TrimSpace(getenv(envMaxConcurrency)) != ""
}

// startRuntimeProxy starts the Runtime API proxy when it is on and publishes its address for the
// wrapper. Any failure leaves the runtime on the original API (the wrapper finds no address), so
// the function keeps working; it returns the proxy (nil when not serving) and a state for the log.
func startRuntimeProxy(o Options) (*runtimeproxy.Proxy, string) {
	if o.ProxyAddressFile != "" {
		_ = os.Remove(o.ProxyAddressFile) // never point a runtime at a proxy that is not there
	}
	cfg := o.Config.Proxy
	if !cfg.Enabled {
		return nil, "off"
	}
	proxy, err := runtimeproxy.New(cfg.Upstream, o.Store, o.Log, o.Now)
	if err != nil {
		o.Log.Error("runtime proxy not started; the runtime uses the Runtime API directly", "variable", config.EnvRuntimeProxyUpstream, "value", cfg.Upstream, "error", err)
		return nil, "failed"
	}
	l, err := o.Listen(cfg.Port)
	if err != nil {
		o.Log.Error("runtime proxy not started: cannot listen; the runtime uses the Runtime API directly", "variable", config.EnvRuntimeProxyPort, "port", cfg.Port, "error", err)
		return nil, "failed"
	}
	runtimeproxy.Serve(l, proxy)
	if o.ProxyAddressFile != "" {
		if err := writeFileAtomic(o.ProxyAddressFile, l.Addr().String()); err != nil {
			o.Log.Error("runtime proxy listens but its address cannot be published; the wrapper will not use it", "file", o.ProxyAddressFile, "error", err)
		}
	}
	return proxy, l.Addr().String()
}

// writeFileAtomic writes content to path through a rename, so a reader never sees half of it.
func writeFileAtomic(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// nextEventRetries bounds retries of a failing /event/next before the extension gives up and
// reports Extension.EventLoopFailed.
var nextEventRetries = []time.Duration{50 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond}

// Run runs the extension until SHUTDOWN or until ctx ends (SIGTERM), and returns the exit code.
func Run(ctx context.Context, o Options) int {
	log := o.Log
	// 1. Report every invalid setting once; defaults are already in place.
	for _, w := range o.Warnings {
		log.Warn("invalid configuration, using the default", "variable", w.Variable, "value", w.Value, "reason", w.Reason, "default", w.Default)
	}

	// 2. Start the local API before registering, so the first invocation can already query it.
	//    A taken port is logged and the loop runs anyway: the function must keep working.
	env := environment(o)
	server := localapi.New(o.Store, env, o.Config.MaxWait, log)
	listener, err := o.Listen(o.Config.HTTPPort)
	if err != nil {
		log.Error("local API not started: cannot listen; invocations are still recorded", "variable", config.EnvHTTPPort, "port", o.Config.HTTPPort, "error", err)
	} else {
		go func() {
			if err := server.Serve(listener); err != nil {
				log.Error("local API stopped", "error", err)
			}
		}()
	}

	if o.Config.RuntimeAPI == "" {
		log.Error("cannot register: not running in Lambda", "variable", config.EnvRuntimeAPI, "value", "")
		return 1
	}

	// 2b. The Runtime API proxy, when on, listens before registering: Lambda starts the runtime
	//     only once every extension has registered, so the runtime finds it ready.
	proxy, proxyState := startRuntimeProxy(o)
	env.Features.RuntimeProxy = proxy != nil

	// 3. Start the telemetry listener before subscribing, so the first batch finds it. On Lambda
	//    Managed Instances telemetry is the only source of records: platform.start creates them.
	managed := managedInstances(o.Getenv)
	env.ManagedInstances = managed
	// The listener's address comes from a DNS lookup of sandbox.localdomain (up to 100 ms when
	// the resolver is slow): bind it concurrently with the registration, off the critical path.
	var telemetry *telemetryapi.Listener
	var telemetryLn net.Listener
	type bound struct {
		ln  net.Listener
		err error
	}
	telemetryBound := make(chan bound, 1)
	// Durations of the enriched records, for the InvocationDuration metric (when metrics are on).
	var durations *metrics.Durations
	if o.Config.Telemetry.Enabled && o.Telemetry != nil && o.ListenTelemetry != nil {
		applier := telemetryapi.NewApplier(o.Store, managed)
		if o.Config.Metrics.Enabled && o.Stdout != nil {
			durations = metrics.NewDurations()
			applier.OnReport(func(ms float64) { durations.Add(ms, o.Now()) })
		}
		telemetry = telemetryapi.NewListener(applier, telemetryapi.BodyLimit(o.Config.Telemetry.MaxBytes), log)
		go func() {
			ln, err := o.ListenTelemetry(ctx, o.Config.Telemetry.Port)
			telemetryBound <- bound{ln, err}
		}()
	}

	// 4. Register: for INVOKE and SHUTDOWN, or SHUTDOWN only on Lambda Managed Instances (INVOKE
	//    is refused there). Without a registration there is no identifier to report an init error
	//    with, so the failure is logged and the process exits: Lambda fails init.
	events := []extensionapi.EventType{extensionapi.Invoke, extensionapi.Shutdown}
	if managed {
		events = []extensionapi.EventType{extensionapi.Shutdown}
	}
	reg, err := o.Client.Register(ctx, o.Name, events...)
	if err != nil {
		log.Error("cannot register with the Extensions API", "error", err)
		return 1
	}
	if reg.FunctionName != "" {
		env.FunctionName = reg.FunctionName
	}
	if reg.FunctionVersion != "" {
		env.FunctionVersion = reg.FunctionVersion
	}

	if telemetry != nil {
		if b := <-telemetryBound; b.err != nil {
			log.Error("telemetry listener not started; records are INVOKE-only", "variable", config.EnvTelemetryPort, "port", o.Config.Telemetry.Port, "error", b.err)
			env.Features.Telemetry = "failed"
			telemetry = nil
		} else {
			telemetryLn = b.ln
			go func() {
				if err := telemetry.Serve(telemetryLn); err != nil {
					log.Error("telemetry listener stopped", "error", err)
				}
			}()
		}
	}

	// 5. Subscribe: one PUT during init, before the first /event/next. Every failure degrades to
	//    INVOKE-only records and is logged once.
	var telemetryNote string
	if telemetry != nil {
		env.Features.Telemetry, telemetryNote = subscribe(ctx, o, telemetryLn)
	}
	if managed && env.Features.Telemetry != string(telemetryapi.Subscribed) {
		log.Warn("on Lambda Managed Instances records come only from telemetry, which is not on: the history stays empty",
			"telemetry", env.Features.Telemetry, "variable", config.EnvTelemetry)
	}
	server.SetEnvironment(env)

	// 6. The environment-started metric (one EMF line on stdout).
	var emitter *metrics.Emitter
	metricsEnv := metrics.Environment{FunctionName: env.FunctionName, FunctionVersion: env.FunctionVersion, EnvironmentID: env.EnvironmentID, InitType: env.InitType}
	if o.Config.Metrics.Enabled && o.Stdout != nil {
		emitter = metrics.NewEmitter(o.Stdout, o.Config.Metrics.Namespace, o.Now)
		if err := emitter.Started(metricsEnv); err != nil {
			log.Warn("cannot write the environment-started metric", "error", err)
		}
	}
	ready := []any{"version", o.Version, "port", o.Config.HTTPPort, "apiListening", listener != nil,
		"maxRecords", o.Config.MaxRecords, "telemetry", env.Features.Telemetry, "managedInstances", managed,
		"startupMs", ms(o.Now().Sub(o.Started))}
	if telemetryNote != "" {
		ready = append(ready, "telemetryNote", telemetryNote)
	}
	if o.Config.Proxy.Enabled {
		ready = append(ready, "runtimeProxy", proxyState)
	}
	log.Info("ready", ready...)

	// Invocation durations go out as EMF lines of up to 100 values, beside the event loop; only
	// a subscription brings any (durations is set only with metrics on, so emitter is too).
	stopDurations, durationsDone := make(chan struct{}), make(chan struct{})
	if durations != nil && env.Features.Telemetry == string(telemetryapi.Subscribed) {
		go writeDurations(emitter, metricsEnv, durations, o.Now, log, stopDurations, durationsDone)
	} else {
		close(durationsDone)
	}

	// 7. The event loop: nothing between INVOKE and the next /event/next that can wait.
	reason := loop(ctx, o)

	// 8. Shut down well inside the deadline: the stopped metric, one summary line, exit 0.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if listener != nil {
		_ = server.Shutdown(shutdownCtx)
	}
	if telemetry != nil {
		_ = telemetry.Shutdown(shutdownCtx)
	}
	close(stopDurations)
	<-durationsDone // it writes what is left once telemetry has delivered its last batch
	counts := o.Store.Counts()
	lifetime := o.Now().Sub(o.Started)
	if emitter != nil {
		if err := emitter.Stopped(metricsEnv, lifetime, counts.Served, reason); err != nil {
			log.Warn("cannot write the environment-stopped metric", "error", err)
		}
	}
	attrs := []any{"reason", reason, "invocationsServed", counts.Served, "retained", counts.Retained,
		"dropped", counts.Dropped, "lifetimeMs", ms(lifetime)}
	if telemetry != nil {
		st := telemetry.Stats()
		attrs = append(attrs, "telemetryBatches", st.Batches, "telemetryEvents", st.Events,
			"telemetryIgnored", st.Ignored, "telemetryInvalid", st.Invalid, "telemetryRejected", st.RejectedBatches,
			"pendingUpdatesDropped", counts.PendingUpdatesDropped)
		if durations != nil {
			attrs = append(attrs, "durationMetricsDropped", durations.Dropped())
		}
	}
	if proxy != nil {
		st := proxy.Stats()
		attrs = append(attrs, "runtimeProxyForwarded", st.Forwarded, "runtimeProxyUpstreamErrors", st.UpstreamErrors)
	}
	log.Info("shutdown", attrs...)
	if reason == "EventLoopFailed" {
		return 1
	}
	return 0
}

// durationsTick is how often waiting durations are checked for age; a full line is written at once.
const durationsTick = 15 * time.Second

// writeDurations writes InvocationDuration lines as they become due, and what is left when stop
// closes (at shutdown, after the telemetry listener has drained), then closes done.
func writeDurations(e *metrics.Emitter, env metrics.Environment, d *metrics.Durations, now func() time.Time, log *slog.Logger, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(durationsTick)
	defer tick.Stop()
	write := func(flush bool) {
		for values := d.Take(now(), flush); len(values) > 0; values = d.Take(now(), flush) {
			if err := e.Durations(env, values); err != nil {
				log.Warn("cannot write the invocation-duration metric", "error", err)
				return
			}
		}
	}
	for {
		select {
		case <-d.Full():
			write(false)
		case <-tick.C:
			write(false)
		case <-stop:
			write(true)
			return
		}
	}
}

// subscribe sends the one subscription and returns the telemetry feature state for /environment
// and, when telemetry is not on, why (said once, in the ready line or a warning).
func subscribe(ctx context.Context, o Options, ln net.Listener) (state, note string) {
	port := ln.Addr().(*net.TCPAddr).Port
	t := o.Config.Telemetry
	req := telemetryapi.NewSubscribeRequest(port, telemetryapi.Buffering{MaxItems: t.MaxItems, MaxBytes: t.MaxBytes, TimeoutMs: t.TimeoutMs})
	subCtx, cancel := context.WithTimeout(ctx, subscribeTimeout)
	defer cancel()
	result, err := o.Telemetry.Subscribe(subCtx, o.Client.ExtensionID(), req)
	switch {
	case err != nil:
		o.Log.Warn("telemetry subscription failed; records are INVOKE-only", "error", err)
		return "failed", ""
	case result == telemetryapi.NotSupported:
		// Expected on the RIE: part of the ready line, not a line of its own (quiet by default).
		return string(result), "Telemetry.NotSupported: the Telemetry API is not available here; records are INVOKE-only"
	}
	return string(result), ""
}

func environment(o Options) localapi.Environment {
	memory, _ := strconv.Atoi(o.Getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"))
	return localapi.Environment{
		EnvironmentID:    newEnvironmentID(),
		FunctionName:     o.Getenv("AWS_LAMBDA_FUNCTION_NAME"),
		FunctionVersion:  o.Getenv("AWS_LAMBDA_FUNCTION_VERSION"),
		MemoryMB:         memory,
		Region:           o.Getenv("AWS_REGION"),
		InitType:         o.Getenv("AWS_LAMBDA_INITIALIZATION_TYPE"),
		InitStartedAt:    o.Started.UTC(),
		ExtensionVersion: o.Version,
		Features:         localapi.Features{Telemetry: "off", RequestIDWait: o.Config.MaxWait > 0}, // MAX_WAIT_MS=0 turns the wait off
		Limits:           localapi.Limits{MaxRecords: o.Config.MaxRecords, MaxWaitMs: o.Config.MaxWait.Milliseconds()},
	}
}

// newEnvironmentID returns a random id: Lambda exposes no identifier of the execution environment.
func newEnvironmentID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "unknown"
	}
	return hex.EncodeToString(b)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// loop processes events until SHUTDOWN, ctx ending, or an unrecoverable API failure; it returns
// the shutdown reason.
func loop(ctx context.Context, o Options) string {
	failures := 0
	for {
		ev, err := o.Client.NextEvent(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return "SIGTERM"
			}
			if failures == len(nextEventRetries) {
				o.Log.Error("event loop failed; reporting Extension.EventLoopFailed", "error", err)
				reportCtx, cancel := context.WithTimeout(context.Background(), time.Second)
				if rerr := o.Client.ExitError(reportCtx, "Extension.EventLoopFailed", err.Error()); rerr != nil {
					o.Log.Error("cannot report exit error", "error", rerr)
				}
				cancel()
				return "EventLoopFailed"
			}
			o.Log.Warn("next event failed; retrying", "error", err, "attempt", failures+1)
			select {
			case <-time.After(nextEventRetries[failures]):
			case <-ctx.Done():
				return "SIGTERM"
			}
			failures++
			continue
		}
		failures = 0
		switch ev.EventType {
		case extensionapi.Invoke:
			// With the Runtime API proxy on, the record may already exist; a retry gets a new one.
			rec := o.Store.Begin(ev.RequestID, history.SourceInvoke, func(r *history.Record, _ bool) {
				r.DeadlineMs = ev.DeadlineMs
				r.InvokedFunctionArn = ev.InvokedFunctionArn
				r.TraceID = ev.Tracing.Value
			})
			if o.Log.Enabled(ctx, slog.LevelDebug) { // unguarded, the arguments cost 2 allocations per invoke at INFO
				o.Log.Debug("invoke", "requestId", rec.AwsRequestID, "sequence", rec.Sequence)
			}
		case extensionapi.Shutdown:
			if ev.ShutdownReason == "" {
				return "SHUTDOWN"
			}
			return ev.ShutdownReason
		default:
			o.Log.Debug("ignoring unknown event", "eventType", string(ev.EventType))
		}
	}
}

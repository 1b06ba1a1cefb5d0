// Package lifecycle is the extension's event loop: it reports the configuration, starts the local
// API, registers with the Extensions API, records every INVOKE in the history store and shuts
// down cleanly on SHUTDOWN or SIGTERM. It is the only package that imports its siblings.
//
// Lambda lifecycle: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html
package lifecycle

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/invocation-history/extension/internal/config"
	"github.com/invocation-history/extension/internal/extensionapi"
	"github.com/invocation-history/extension/internal/history"
	"github.com/invocation-history/extension/internal/localapi"
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

	// 3. Register for INVOKE and SHUTDOWN. Without a registration there is no identifier to report
	//    an init error with, so the failure is logged and the process exits: Lambda fails init.
	if o.Config.RuntimeAPI == "" {
		log.Error("cannot register: not running in Lambda", "variable", config.EnvRuntimeAPI, "value", "")
		return 1
	}
	reg, err := o.Client.Register(ctx, o.Name, extensionapi.Invoke, extensionapi.Shutdown)
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
	server.SetEnvironment(env)
	log.Info("ready", "version", o.Version, "port", o.Config.HTTPPort, "apiListening", listener != nil,
		"maxRecords", o.Config.MaxRecords, "startupMs", ms(o.Now().Sub(o.Started)))

	// 4. The event loop: nothing between INVOKE and the next /event/next that can wait.
	reason := loop(ctx, o)

	// 5. Shut down well inside the deadline: one summary line, exit 0.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if listener != nil {
		_ = server.Shutdown(shutdownCtx)
	}
	counts := o.Store.Counts()
	log.Info("shutdown", "reason", reason, "invocationsServed", counts.Served, "retained", counts.Retained,
		"dropped", counts.Dropped, "lifetimeMs", ms(o.Now().Sub(o.Started)))
	if reason == "EventLoopFailed" {
		return 1
	}
	return 0
}

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
			// Upsert: with the Runtime API proxy on, the record may already exist.
			rec := o.Store.Upsert(ev.RequestID, func(r *history.Record, _ bool) {
				r.DeadlineMs = ev.DeadlineMs
				r.InvokedFunctionArn = ev.InvokedFunctionArn
				r.TraceID = ev.Tracing.Value
			})
			o.Log.Debug("invoke", "requestId", rec.AwsRequestID, "sequence", rec.Sequence)
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
		Features:         localapi.Features{Telemetry: "off", RequestIDWait: true},
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

// Package config reads the extension's settings from environment variables.
//
// Every setting has the prefix INVOCATION_HISTORY_EXTENSION_. An invalid value never stops the
// extension: it is reported as a Warning naming the variable and the value, and the default is used
// (the function must keep working whatever its configuration says).
package config

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// Environment variable names: the public contract listed in the README's configuration table.
const (
	EnvHTTPPort   = "INVOCATION_HISTORY_EXTENSION_HTTP_PORT"
	EnvMaxRecords = "INVOCATION_HISTORY_EXTENSION_MAX_RECORDS"
	EnvMaxWait    = "INVOCATION_HISTORY_EXTENSION_MAX_WAIT_MS"
	EnvLogLevel   = "INVOCATION_HISTORY_EXTENSION_LOG_LEVEL"

	// Telemetry API enrichment (docs/configuration.md#telemetry).
	EnvTelemetry          = "INVOCATION_HISTORY_EXTENSION_TELEMETRY"
	EnvTelemetryPort      = "INVOCATION_HISTORY_EXTENSION_TELEMETRY_PORT"
	EnvTelemetryMaxItems  = "INVOCATION_HISTORY_EXTENSION_TELEMETRY_MAX_ITEMS"
	EnvTelemetryMaxBytes  = "INVOCATION_HISTORY_EXTENSION_TELEMETRY_MAX_BYTES"
	EnvTelemetryTimeoutMs = "INVOCATION_HISTORY_EXTENSION_TELEMETRY_TIMEOUT_MS"

	// Environment start/stop metrics in CloudWatch Embedded Metric Format.
	EnvMetrics          = "INVOCATION_HISTORY_EXTENSION_METRICS"
	EnvMetricsNamespace = "INVOCATION_HISTORY_EXTENSION_METRICS_NAMESPACE"
	// The Runtime API proxy (off by default).
	EnvRuntimeProxy         = "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY"
	EnvRuntimeProxyPort     = "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_PORT"
	EnvRuntimeProxyUpstream = "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_UPSTREAM"
	// EnvLambdaLogLevel is Lambda's own log-level setting (advanced logging controls); used when
	// EnvLogLevel is unset.
	EnvLambdaLogLevel = "AWS_LAMBDA_LOG_LEVEL"
	// EnvRuntimeAPI is set by Lambda: host:port of the Runtime and Extensions APIs.
	EnvRuntimeAPI = "AWS_LAMBDA_RUNTIME_API"
)

// Defaults. DefaultMaxRecords is sized from measurement: about 420 bytes of heap per record
// (BenchmarkStoreMemoryPerRecord), so a full store costs ~4.2 MB of the function's memory.
const (
	DefaultHTTPPort   = 1203
	DefaultMaxRecords = 10000
	DefaultMaxWait    = 2 * time.Second
	DefaultLogLevel   = slog.LevelInfo

	maxMaxRecords = 1_000_000
	maxMaxWait    = 30 * time.Second
)

// Telemetry defaults. Lambda accepts maxItems 1000-10000, maxBytes 262144-1048576 and timeoutMs
// 25-30000 (https://docs.aws.amazon.com/lambda/latest/dg/telemetry-api-reference.html). The
// extension subscribes to platform events only (a handful per invocation, well under 1 KiB each),
// so the item and byte limits are never what flushes a batch: the timeout is. The smallest
// timeout makes records complete (and, on Lambda Managed Instances, exist at all) 25 ms after the
// event instead of Lambda's default 1000 ms, for at most 40 small loopback POSTs per second.
const (
	DefaultTelemetry          = true
	DefaultTelemetryPort      = 0 // any free port: the subscription names the port actually bound
	DefaultTelemetryMaxItems  = 1000
	DefaultTelemetryMaxBytes  = 262144
	DefaultTelemetryTimeoutMs = 25

	MinTelemetryMaxItems, MaxTelemetryMaxItems   = 1000, 10000
	MinTelemetryMaxBytes, MaxTelemetryMaxBytes   = 262144, 1048576
	MinTelemetryTimeoutMs, MaxTelemetryTimeoutMs = 25, 30000
)

// Metrics defaults. A CloudWatch namespace is 1-255 characters and may not start with "AWS/".
const (
	DefaultMetrics          = true
	DefaultMetricsNamespace = "InvocationHistory"
	maxNamespaceLength      = 255
)

// Runtime API proxy defaults. 9009 is the port the seed documents used for their proxy.
const (
	DefaultRuntimeProxy     = false
	DefaultRuntimeProxyPort = 9009
)

// RuntimeProxy is the optional Runtime API proxy.
type RuntimeProxy struct {
	Enabled  bool
	Port     int    // on 127.0.0.1
	Upstream string // host:port; default AWS_LAMBDA_RUNTIME_API, another proxy to chain
}

// Telemetry is the Telemetry API subscription.
type Telemetry struct {
	Enabled   bool
	Port      int // listener port; 0 picks a free one
	MaxItems  int
	MaxBytes  int
	TimeoutMs int
}

// Metrics are the environment start/stop metrics.
type Metrics struct {
	Enabled   bool
	Namespace string
}

// Config is the validated configuration.
type Config struct {
	HTTPPort   int           // port of the local API on 127.0.0.1
	MaxRecords int           // records retained; the oldest is evicted and counted as dropped
	MaxWait    time.Duration // upper bound for a caller's wait for its own request id
	LogLevel   slog.Level
	RuntimeAPI string // empty when not running inside Lambda
	Telemetry  Telemetry
	Metrics    Metrics
	Proxy      RuntimeProxy
}

// Warning describes one invalid setting that was replaced by its default.
type Warning struct {
	Variable string
	Value    string
	Reason   string
	Default  string
}

func (w Warning) String() string {
	return fmt.Sprintf("%s=%q is invalid (%s); using the default %s", w.Variable, w.Value, w.Reason, w.Default)
}

// Load reads the configuration from getenv; invalid values fall back to defaults and are reported
// in the returned warnings, one per variable.
func Load(getenv func(string) string) (Config, []Warning) {
	var warnings []Warning
	warn := func(variable, value, reason, def string) {
		warnings = append(warnings, Warning{Variable: variable, Value: value, Reason: reason, Default: def})
	}

	cfg := Config{
		HTTPPort:   DefaultHTTPPort,
		MaxRecords: DefaultMaxRecords,
		MaxWait:    DefaultMaxWait,
		LogLevel:   DefaultLogLevel,
		RuntimeAPI: strings.TrimSpace(getenv(EnvRuntimeAPI)),
		Telemetry: Telemetry{
			Enabled: DefaultTelemetry, Port: DefaultTelemetryPort, MaxItems: DefaultTelemetryMaxItems,
			MaxBytes: DefaultTelemetryMaxBytes, TimeoutMs: DefaultTelemetryTimeoutMs,
		},
		Metrics: Metrics{Enabled: DefaultMetrics, Namespace: DefaultMetricsNamespace},
		Proxy:   RuntimeProxy{Enabled: DefaultRuntimeProxy, Port: DefaultRuntimeProxyPort},
	}
	cfg.Proxy.Upstream = cfg.RuntimeAPI
	intIn := func(variable string, lo, hi, def int, into *int) {
		if v, ok := lookup(getenv, variable); ok {
			if n, err := parseIntIn(v, lo, hi); err != nil {
				warn(variable, v, err.Error(), strconv.Itoa(def))
			} else {
				*into = n
			}
		}
	}
	onOff := func(variable string, def bool, into *bool) {
		if v, ok := lookup(getenv, variable); ok {
			if b, err := ParseSwitch(v); err != nil {
				warn(variable, v, err.Error(), switchName(def))
			} else {
				*into = b
			}
		}
	}

	intIn(EnvHTTPPort, 1, 65535, DefaultHTTPPort, &cfg.HTTPPort)
	intIn(EnvMaxRecords, 1, maxMaxRecords, DefaultMaxRecords, &cfg.MaxRecords)
	maxWaitMs := int(DefaultMaxWait.Milliseconds())
	intIn(EnvMaxWait, 0, int(maxMaxWait.Milliseconds()), maxWaitMs, &maxWaitMs)
	cfg.MaxWait = time.Duration(maxWaitMs) * time.Millisecond

	onOff(EnvTelemetry, DefaultTelemetry, &cfg.Telemetry.Enabled)
	intIn(EnvTelemetryPort, 0, 65535, DefaultTelemetryPort, &cfg.Telemetry.Port)
	if cfg.Telemetry.Port != 0 && cfg.Telemetry.Port == cfg.HTTPPort {
		warn(EnvTelemetryPort, getenv(EnvTelemetryPort), "the local API already uses this port ("+EnvHTTPPort+")", strconv.Itoa(DefaultTelemetryPort))
		cfg.Telemetry.Port = DefaultTelemetryPort
	}
	intIn(EnvTelemetryMaxItems, MinTelemetryMaxItems, MaxTelemetryMaxItems, DefaultTelemetryMaxItems, &cfg.Telemetry.MaxItems)
	intIn(EnvTelemetryMaxBytes, MinTelemetryMaxBytes, MaxTelemetryMaxBytes, DefaultTelemetryMaxBytes, &cfg.Telemetry.MaxBytes)
	intIn(EnvTelemetryTimeoutMs, MinTelemetryTimeoutMs, MaxTelemetryTimeoutMs, DefaultTelemetryTimeoutMs, &cfg.Telemetry.TimeoutMs)

	onOff(EnvRuntimeProxy, DefaultRuntimeProxy, &cfg.Proxy.Enabled)
	intIn(EnvRuntimeProxyPort, 1, 65535, DefaultRuntimeProxyPort, &cfg.Proxy.Port)
	// Only a proxy that is on can collide with the extension's other listeners.
	portOwner := func(port int) string {
		switch {
		case port == cfg.HTTPPort:
			return EnvHTTPPort
		case cfg.Telemetry.Enabled && cfg.Telemetry.Port != 0 && port == cfg.Telemetry.Port:
			return EnvTelemetryPort
		}
		return ""
	}
	if owner := portOwner(cfg.Proxy.Port); cfg.Proxy.Enabled && owner != "" {
		if portOwner(DefaultRuntimeProxyPort) == "" {
			warn(EnvRuntimeProxyPort, strconv.Itoa(cfg.Proxy.Port), "the port of "+owner, strconv.Itoa(DefaultRuntimeProxyPort))
			cfg.Proxy.Port = DefaultRuntimeProxyPort
		} else { // the default is taken too: the function keeps talking to Lambda directly
			warn(EnvRuntimeProxy, getenv(EnvRuntimeProxy), "its port "+strconv.Itoa(cfg.Proxy.Port)+" is the port of "+owner+"; set "+EnvRuntimeProxyPort+" to a free port", switchName(false))
			cfg.Proxy.Enabled = false
		}
	}
	if v, ok := lookup(getenv, EnvRuntimeProxyUpstream); ok {
		if err := validHostPort(v); err != nil {
			warn(EnvRuntimeProxyUpstream, v, err.Error(), EnvRuntimeAPI)
		} else if cfg.Proxy.Enabled && isOwnAddress(strings.TrimSpace(v), cfg.Proxy.Port) {
			warn(EnvRuntimeProxyUpstream, v, "the proxy's own address: every request would loop back to it", EnvRuntimeAPI)
		} else {
			cfg.Proxy.Upstream = strings.TrimSpace(v)
		}
	}

	onOff(EnvMetrics, DefaultMetrics, &cfg.Metrics.Enabled)
	if v, ok := lookup(getenv, EnvMetricsNamespace); ok {
		if err := validNamespace(strings.TrimSpace(v)); err != nil {
			warn(EnvMetricsNamespace, v, err.Error(), DefaultMetricsNamespace)
		} else {
			cfg.Metrics.Namespace = strings.TrimSpace(v)
		}
	}

	// Our own variable wins; Lambda's advanced logging level applies otherwise.
	levelVar := EnvLogLevel
	v, ok := lookup(getenv, EnvLogLevel)
	if !ok {
		levelVar = EnvLambdaLogLevel
		v, ok = lookup(getenv, EnvLambdaLogLevel)
	}
	if ok {
		if level, err := ParseLogLevel(v); err != nil {
			warn(levelVar, v, err.Error(), "INFO")
		} else {
			cfg.LogLevel = level
		}
	}
	return cfg, warnings
}

// ParseLogLevel accepts Lambda's level names (TRACE, DEBUG, INFO, WARN, ERROR, FATAL), any case.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TRACE", "DEBUG":
		return slog.LevelDebug, nil
	case "INFO":
		return slog.LevelInfo, nil
	case "WARN", "WARNING":
		return slog.LevelWarn, nil
	case "ERROR", "FATAL":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("want one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL")
}

// ParseSwitch accepts on/off, true/false, 1/0, yes/no and enabled/disabled, any case.
func ParseSwitch(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "on", "true", "1", "yes", "enabled":
		return true, nil
	case "off", "false", "0", "no", "disabled":
		return false, nil
	}
	return false, fmt.Errorf("want on or off")
}

func switchName(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// validNamespace applies CloudWatch's rules for a metric namespace.
func validNamespace(ns string) error {
	if ns == "" || len(ns) > maxNamespaceLength {
		return fmt.Errorf("want 1 to %d characters", maxNamespaceLength)
	}
	if strings.HasPrefix(ns, "AWS/") {
		return fmt.Errorf("the AWS/ prefix is reserved for AWS services")
	}
	for _, r := range ns {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_/#: ", r)
		if !ok {
			return fmt.Errorf("character %q is not allowed; use letters, digits and . - _ / # : space", r)
		}
	}
	return nil
}

// validHostPort accepts host:port with a port from 1 to 65535.
func validHostPort(v string) error {
	host, port, err := net.SplitHostPort(strings.TrimSpace(v))
	if err != nil || host == "" {
		return fmt.Errorf("want host:port, like AWS_LAMBDA_RUNTIME_API")
	}
	if _, err := parseIntIn(port, 1, 65535); err != nil {
		return fmt.Errorf("want host:port with a port from 1 to 65535")
	}
	return nil
}

// isOwnAddress reports whether hostPort (already valid) is a loopback address on port: where the
// proxy itself listens.
func isOwnAddress(hostPort string, port int) bool {
	host, p, _ := net.SplitHostPort(hostPort)
	if p != strconv.Itoa(port) {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// lookup treats an empty or blank value as unset: Lambda consoles and CDK code often leave "".
func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, strings.TrimSpace(v) != ""
}

func parseIntIn(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("want an integer from %d to %d", lo, hi)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("want an integer from %d to %d", lo, hi)
	}
	return n, nil
}

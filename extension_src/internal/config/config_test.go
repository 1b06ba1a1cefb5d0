package config

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var defaultTelemetry = Telemetry{Enabled: true, Port: 0, MaxItems: 1000, MaxBytes: 262144, TimeoutMs: 25}

func TestLoadDefaults(t *testing.T) {
	cfg, warnings := Load(env(nil))
	if len(warnings) != 0 {
		t.Fatalf("warnings = %v, want none", warnings)
	}
	want := Config{HTTPPort: 1203, MaxRecords: DefaultMaxRecords, MaxWait: DefaultMaxWait, LogLevel: slog.LevelInfo,
		Telemetry: defaultTelemetry, Metrics: Metrics{Enabled: true, Namespace: "InvocationHistory"},
		Proxy: RuntimeProxy{Port: 9009}}
	if cfg != want {
		t.Fatalf("cfg = %+v, want %+v", cfg, want)
	}
}

func TestLoadValidValues(t *testing.T) {
	cfg, warnings := Load(env(map[string]string{
		EnvHTTPPort: "9001", EnvMaxRecords: "5", EnvMaxWait: "250", EnvLogLevel: "debug",
		EnvRuntimeAPI: "127.0.0.1:9001",
	}))
	if len(warnings) != 0 {
		t.Fatalf("warnings = %v, want none", warnings)
	}
	want := Config{HTTPPort: 9001, MaxRecords: 5, MaxWait: 250 * time.Millisecond, LogLevel: slog.LevelDebug, RuntimeAPI: "127.0.0.1:9001",
		Telemetry: defaultTelemetry, Metrics: Metrics{Enabled: true, Namespace: "InvocationHistory"},
		Proxy: RuntimeProxy{Port: 9009, Upstream: "127.0.0.1:9001"}}
	if cfg != want {
		t.Fatalf("cfg = %+v, want %+v", cfg, want)
	}
}

func TestLoadInvalidValueWarnsAndUsesDefault(t *testing.T) {
	for _, tc := range []struct {
		name, variable, value string
		check                 func(Config) bool
	}{
		{"port not a number", EnvHTTPPort, "abc", func(c Config) bool { return c.HTTPPort == DefaultHTTPPort }},
		{"port zero", EnvHTTPPort, "0", func(c Config) bool { return c.HTTPPort == DefaultHTTPPort }},
		{"port too large", EnvHTTPPort, "70000", func(c Config) bool { return c.HTTPPort == DefaultHTTPPort }},
		{"max records negative", EnvMaxRecords, "-1", func(c Config) bool { return c.MaxRecords == DefaultMaxRecords }},
		{"max records too large", EnvMaxRecords, "1000001", func(c Config) bool { return c.MaxRecords == DefaultMaxRecords }},
		{"max wait fractional", EnvMaxWait, "1.5", func(c Config) bool { return c.MaxWait == DefaultMaxWait }},
		{"max wait too large", EnvMaxWait, "30001", func(c Config) bool { return c.MaxWait == DefaultMaxWait }},
		{"log level unknown", EnvLogLevel, "loud", func(c Config) bool { return c.LogLevel == slog.LevelInfo }},
		{"lambda log level unknown", EnvLambdaLogLevel, "verbose", func(c Config) bool { return c.LogLevel == slog.LevelInfo }},
		{"telemetry switch unknown", EnvTelemetry, "maybe", func(c Config) bool { return c.Telemetry.Enabled }},
		{"telemetry port negative", EnvTelemetryPort, "-1", func(c Config) bool { return c.Telemetry.Port == 0 }},
		{"telemetry port is the API port", EnvTelemetryPort, "1203", func(c Config) bool { return c.Telemetry.Port == 0 }},
		{"max items below Lambda's minimum", EnvTelemetryMaxItems, "999", func(c Config) bool { return c.Telemetry.MaxItems == 1000 }},
		{"max items above Lambda's maximum", EnvTelemetryMaxItems, "10001", func(c Config) bool { return c.Telemetry.MaxItems == 1000 }},
		{"max bytes below Lambda's minimum", EnvTelemetryMaxBytes, "262143", func(c Config) bool { return c.Telemetry.MaxBytes == 262144 }},
		{"max bytes above Lambda's maximum", EnvTelemetryMaxBytes, "1048577", func(c Config) bool { return c.Telemetry.MaxBytes == 262144 }},
		{"timeout below Lambda's minimum", EnvTelemetryTimeoutMs, "24", func(c Config) bool { return c.Telemetry.TimeoutMs == 25 }},
		{"timeout above Lambda's maximum", EnvTelemetryTimeoutMs, "30001", func(c Config) bool { return c.Telemetry.TimeoutMs == 25 }},
		{"metrics switch unknown", EnvMetrics, "sometimes", func(c Config) bool { return c.Metrics.Enabled }},
		{"namespace reserved", EnvMetricsNamespace, "AWS/Lambda", func(c Config) bool { return c.Metrics.Namespace == "InvocationHistory" }},
		{"namespace bad character", EnvMetricsNamespace, "a$b", func(c Config) bool { return c.Metrics.Namespace == "InvocationHistory" }},
		{"namespace too long", EnvMetricsNamespace, strings.Repeat("n", 256), func(c Config) bool { return c.Metrics.Namespace == "InvocationHistory" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, warnings := Load(env(map[string]string{tc.variable: tc.value}))
			if len(warnings) != 1 {
				t.Fatalf("warnings = %v, want exactly one", warnings)
			}
			w := warnings[0]
			if w.Variable != tc.variable || w.Value != tc.value {
				t.Errorf("warning names %s=%q, want %s=%q", w.Variable, w.Value, tc.variable, tc.value)
			}
			if !tc.check(cfg) {
				t.Errorf("cfg = %+v, want the default for %s", cfg, tc.variable)
			}
		})
	}
}

func TestLogLevelPrecedence(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want slog.Level
	}{
		{"lambda level used when ours unset", map[string]string{EnvLambdaLogLevel: "ERROR"}, slog.LevelError},
		{"ours wins over lambda", map[string]string{EnvLambdaLogLevel: "ERROR", EnvLogLevel: "debug"}, slog.LevelDebug},
		{"trace maps to debug", map[string]string{EnvLogLevel: "TRACE"}, slog.LevelDebug},
		{"blank is unset", map[string]string{EnvLogLevel: "  ", EnvLambdaLogLevel: "warn"}, slog.LevelWarn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, warnings := Load(env(tc.env))
			if len(warnings) != 0 || cfg.LogLevel != tc.want {
				t.Fatalf("level = %v, warnings = %v; want %v and none", cfg.LogLevel, warnings, tc.want)
			}
		})
	}
}

func TestTelemetryAndMetricsSettings(t *testing.T) {
	for _, tc := range []struct {
		name          string
		env           map[string]string
		wantTelemetry Telemetry
		wantMetrics   Metrics
	}{
		{"switched off", map[string]string{EnvTelemetry: "off", EnvMetrics: "false"},
			Telemetry{Port: 0, MaxItems: 1000, MaxBytes: 262144, TimeoutMs: 25}, Metrics{Namespace: "InvocationHistory"}},
		{"Lambda's bounds are accepted", map[string]string{EnvTelemetryPort: "4243", EnvTelemetryMaxItems: "10000", EnvTelemetryMaxBytes: "1048576", EnvTelemetryTimeoutMs: "30000", EnvMetricsNamespace: "Team/History: prod #1"},
			Telemetry{Enabled: true, Port: 4243, MaxItems: 10000, MaxBytes: 1048576, TimeoutMs: 30000}, Metrics{Enabled: true, Namespace: "Team/History: prod #1"}},
		{"switch spellings", map[string]string{EnvTelemetry: "ON", EnvMetrics: "Enabled"},
			defaultTelemetry, Metrics{Enabled: true, Namespace: "InvocationHistory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, warnings := Load(env(tc.env))
			if len(warnings) != 0 {
				t.Fatalf("warnings = %v", warnings)
			}
			if cfg.Telemetry != tc.wantTelemetry || cfg.Metrics != tc.wantMetrics {
				t.Fatalf("telemetry = %+v metrics = %+v, want %+v %+v", cfg.Telemetry, cfg.Metrics, tc.wantTelemetry, tc.wantMetrics)
			}
		})
	}
}

func TestRuntimeProxySettings(t *testing.T) {
	for _, tc := range []struct {
		name        string
		env         map[string]string
		want        RuntimeProxy
		wantWarning string
	}{
		{"off by default, upstream is the Runtime API", map[string]string{EnvRuntimeAPI: "127.0.0.1:9001"},
			RuntimeProxy{Port: 9009, Upstream: "127.0.0.1:9001"}, ""},
		{"on with a port and a chained upstream", map[string]string{EnvRuntimeAPI: "127.0.0.1:9001", EnvRuntimeProxy: "on", EnvRuntimeProxyPort: "9100", EnvRuntimeProxyUpstream: "127.0.0.1:9200"},
			RuntimeProxy{Enabled: true, Port: 9100, Upstream: "127.0.0.1:9200"}, ""},
		{"bad switch", map[string]string{EnvRuntimeProxy: "maybe"}, RuntimeProxy{Port: 9009}, EnvRuntimeProxy},
		{"bad port", map[string]string{EnvRuntimeProxyPort: "0"}, RuntimeProxy{Port: 9009}, EnvRuntimeProxyPort},
		{"port of the local API", map[string]string{EnvRuntimeProxy: "on", EnvRuntimeProxyPort: "1203"}, RuntimeProxy{Enabled: true, Port: 9009}, EnvRuntimeProxyPort},
		{"port of the telemetry listener", map[string]string{EnvRuntimeProxy: "on", EnvRuntimeProxyPort: "9100", EnvTelemetryPort: "9100"}, RuntimeProxy{Enabled: true, Port: 9009}, EnvRuntimeProxyPort},
		{"off: a port it would share is no concern", map[string]string{EnvRuntimeProxyPort: "1203"}, RuntimeProxy{Port: 1203}, ""},
		{"off, local API on the default proxy port: quiet", map[string]string{EnvHTTPPort: "9009"}, RuntimeProxy{Port: 9009}, ""},
		{"on, local API on the default proxy port: the proxy stays off", map[string]string{EnvRuntimeProxy: "on", EnvHTTPPort: "9009"}, RuntimeProxy{Port: 9009}, EnvRuntimeProxy},
		{"on, both ports collide: the proxy stays off", map[string]string{EnvRuntimeProxy: "on", EnvHTTPPort: "9009", EnvRuntimeProxyPort: "9009"}, RuntimeProxy{Port: 9009}, EnvRuntimeProxy},
		{"upstream is the proxy itself", map[string]string{EnvRuntimeAPI: "127.0.0.1:9001", EnvRuntimeProxy: "on", EnvRuntimeProxyUpstream: "localhost:9009"},
			RuntimeProxy{Enabled: true, Port: 9009, Upstream: "127.0.0.1:9001"}, EnvRuntimeProxyUpstream},
		{"upstream on the proxy's port on another host is fine", map[string]string{EnvRuntimeProxy: "on", EnvRuntimeProxyUpstream: "10.0.0.1:9009"},
			RuntimeProxy{Enabled: true, Port: 9009, Upstream: "10.0.0.1:9009"}, ""},
		{"upstream without port", map[string]string{EnvRuntimeAPI: "127.0.0.1:9001", EnvRuntimeProxyUpstream: "localhost"},
			RuntimeProxy{Port: 9009, Upstream: "127.0.0.1:9001"}, EnvRuntimeProxyUpstream},
		{"upstream with a URL", map[string]string{EnvRuntimeProxyUpstream: "http://127.0.0.1:1/x"}, RuntimeProxy{Port: 9009}, EnvRuntimeProxyUpstream},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, warnings := Load(env(tc.env))
			if cfg.Proxy != tc.want {
				t.Errorf("proxy = %+v, want %+v", cfg.Proxy, tc.want)
			}
			if tc.wantWarning == "" && len(warnings) != 0 || tc.wantWarning != "" && (len(warnings) != 1 || warnings[0].Variable != tc.wantWarning) {
				t.Errorf("warnings = %v, want one for %q", warnings, tc.wantWarning)
			}
		})
	}
}

package config

import (
	"log/slog"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	cfg, warnings := Load(env(nil))
	if len(warnings) != 0 {
		t.Fatalf("warnings = %v, want none", warnings)
	}
	want := Config{HTTPPort: 1203, MaxRecords: DefaultMaxRecords, MaxWait: DefaultMaxWait, LogLevel: slog.LevelInfo}
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
	want := Config{HTTPPort: 9001, MaxRecords: 5, MaxWait: 250 * time.Millisecond, LogLevel: slog.LevelDebug, RuntimeAPI: "127.0.0.1:9001"}
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

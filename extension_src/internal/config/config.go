// Package config reads the extension's settings from environment variables.
//
// Every setting has the prefix INVOCATION_HISTORY_EXTENSION_. An invalid value never stops the
// extension: it is reported as a Warning naming the variable and the value, and the default is used
// (the function must keep working whatever its configuration says).
package config

import (
	"fmt"
	"log/slog"
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
	// EnvLambdaLogLevel is Lambda's own log-level setting (advanced logging controls); used when
	// EnvLogLevel is unset.
	EnvLambdaLogLevel = "AWS_LAMBDA_LOG_LEVEL"
	// EnvRuntimeAPI is set by Lambda: host:port of the Runtime and Extensions APIs.
	EnvRuntimeAPI = "AWS_LAMBDA_RUNTIME_API"
)

// Defaults. DefaultMaxRecords is sized from measurement: about 300 bytes of heap per record
// (docs/performance.md), so a full store costs ~3 MB of the function's memory.
const (
	DefaultHTTPPort   = 1203
	DefaultMaxRecords = 10000
	DefaultMaxWait    = 2 * time.Second
	DefaultLogLevel   = slog.LevelInfo

	maxMaxRecords = 1_000_000
	maxMaxWait    = 30 * time.Second
)

// Config is the validated configuration.
type Config struct {
	HTTPPort   int           // port of the local API on 127.0.0.1
	MaxRecords int           // records retained; the oldest is evicted and counted as dropped
	MaxWait    time.Duration // upper bound for a caller's wait for its own request id
	LogLevel   slog.Level
	RuntimeAPI string // empty when not running inside Lambda
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
	}

	if v, ok := lookup(getenv, EnvHTTPPort); ok {
		if n, err := parseIntIn(v, 1, 65535); err != nil {
			warn(EnvHTTPPort, v, err.Error(), strconv.Itoa(DefaultHTTPPort))
		} else {
			cfg.HTTPPort = n
		}
	}
	if v, ok := lookup(getenv, EnvMaxRecords); ok {
		if n, err := parseIntIn(v, 1, maxMaxRecords); err != nil {
			warn(EnvMaxRecords, v, err.Error(), strconv.Itoa(DefaultMaxRecords))
		} else {
			cfg.MaxRecords = n
		}
	}
	if v, ok := lookup(getenv, EnvMaxWait); ok {
		if n, err := parseIntIn(v, 0, int(maxMaxWait/time.Millisecond)); err != nil {
			warn(EnvMaxWait, v, err.Error(), strconv.Itoa(int(DefaultMaxWait/time.Millisecond)))
		} else {
			cfg.MaxWait = time.Duration(n) * time.Millisecond
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

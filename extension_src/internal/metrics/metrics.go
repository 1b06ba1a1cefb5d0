// Package metrics writes the environment start/stop metrics as CloudWatch Embedded Metric Format
// (EMF) lines on stdout: Lambda sends the extension's stdout to the function's log group, where
// CloudWatch extracts the metrics. No API call, no extra permission.
//
// EMF specification: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
package metrics

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Metric names and dimension names: the contract dashboards and alarms are built on.
const (
	EnvironmentStarted  = "EnvironmentStarted"  // 1 per execution environment, at init
	EnvironmentStopped  = "EnvironmentStopped"  // 1 per execution environment, at SHUTDOWN
	EnvironmentLifetime = "EnvironmentLifetime" // milliseconds from extension start to SHUTDOWN
	InvocationsServed   = "InvocationsServed"   // invocations the environment recorded, at SHUTDOWN

	DimensionFunctionName    = "FunctionName"
	DimensionFunctionVersion = "FunctionVersion"
)

// Units (a subset of CloudWatch's StandardUnit).
const (
	unitCount        = "Count"
	unitMilliseconds = "Milliseconds"
)

// Environment identifies the execution environment in every line: the function name and version
// are dimensions; the rest are properties (searchable in the logs, not metrics, so they cost
// nothing in CloudWatch and may have any cardinality).
type Environment struct {
	FunctionName    string
	FunctionVersion string
	EnvironmentID   string
	InitType        string
}

// Emitter writes EMF lines to out (stdout in Lambda). It is safe for concurrent use.
type Emitter struct {
	mu        sync.Mutex
	out       io.Writer
	namespace string
	now       func() time.Time
}

// NewEmitter returns an emitter writing to out under namespace; now stamps the lines.
func NewEmitter(out io.Writer, namespace string, now func() time.Time) *Emitter {
	return &Emitter{out: out, namespace: namespace, now: now}
}

// Started writes the init line: EnvironmentStarted=1.
func (e *Emitter) Started(env Environment) error {
	return e.write(env, []metric{{EnvironmentStarted, unitCount, 1}}, nil)
}

// Stopped writes the shutdown line: EnvironmentStopped=1, the lifetime and the invocations served.
func (e *Emitter) Stopped(env Environment, lifetime time.Duration, served uint64, reason string) error {
	return e.write(env, []metric{
		{EnvironmentStopped, unitCount, 1},
		{EnvironmentLifetime, unitMilliseconds, float64(lifetime.Microseconds()) / 1000},
		{InvocationsServed, unitCount, float64(served)},
	}, map[string]any{"ShutdownReason": reason})
}

type metric struct {
	name  string
	unit  string
	value any // a number, or an array of up to MaxValuesPerLine numbers
}

// Durations writes one line of invocation durations (at most MaxValuesPerLine values; CloudWatch
// takes each value as a data point).
func (e *Emitter) Durations(env Environment, values []float64) error {
	if len(values) == 0 {
		return nil
	}
	return e.write(env, []metric{{InvocationDuration, unitMilliseconds, values[:min(len(values), MaxValuesPerLine)]}}, nil)
}

type metricDefinition struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type directive struct {
	Namespace  string             `json:"Namespace"`
	Dimensions [][]string         `json:"Dimensions"`
	Metrics    []metricDefinition `json:"Metrics"`
}

type metadata struct {
	Timestamp         int64       `json:"Timestamp"`
	CloudWatchMetrics []directive `json:"CloudWatchMetrics"`
}

func (e *Emitter) write(env Environment, metrics []metric, extra map[string]any) error {
	// Two dimension sets: per function (all versions together, what a dashboard of live
	// environments wants) and per function version. A dimension with an empty value would make
	// CloudWatch reject the line, so an unknown version drops the second set.
	dimensions := [][]string{{DimensionFunctionName}}
	line := map[string]any{DimensionFunctionName: env.FunctionName}
	if env.FunctionVersion != "" {
		dimensions = append(dimensions, []string{DimensionFunctionName, DimensionFunctionVersion})
		line[DimensionFunctionVersion] = env.FunctionVersion
	}
	d := directive{Namespace: e.namespace, Dimensions: dimensions}
	for _, m := range metrics {
		d.Metrics = append(d.Metrics, metricDefinition{Name: m.name, Unit: m.unit})
		line[m.name] = m.value
	}
	line["_aws"] = metadata{Timestamp: e.now().UnixMilli(), CloudWatchMetrics: []directive{d}}
	if env.EnvironmentID != "" {
		line["EnvironmentId"] = env.EnvironmentID
	}
	if env.InitType != "" {
		line["InitType"] = env.InitType
	}
	for k, v := range extra {
		if v != "" {
			line[k] = v
		}
	}
	b, err := json.Marshal(line)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err = e.out.Write(append(b, '\n'))
	return err
}

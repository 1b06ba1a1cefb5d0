package telemetryapi

import "encoding/json"

// SchemaVersion is the Telemetry API schema the extension subscribes with. 2025-01-29 is the
// current version: Lambda Managed Instances require it and it is backward compatible with Lambda
// (default) functions.
const SchemaVersion = "2025-01-29"

// EventType is the type of a telemetry event.
type EventType string

// Platform event types (https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html).
const (
	InitStart             EventType = "platform.initStart"
	InitRuntimeDone       EventType = "platform.initRuntimeDone"
	InitReport            EventType = "platform.initReport"
	Start                 EventType = "platform.start"
	RuntimeDone           EventType = "platform.runtimeDone"
	Report                EventType = "platform.report"
	RestoreStart          EventType = "platform.restoreStart"
	RestoreRuntimeDone    EventType = "platform.restoreRuntimeDone"
	RestoreReport         EventType = "platform.restoreReport"
	Extension             EventType = "platform.extension"
	TelemetrySubscription EventType = "platform.telemetrySubscription"
	LogsDropped           EventType = "platform.logsDropped"
)

// Stream is a telemetry stream an extension can subscribe to.
type Stream string

// Streams. The extension takes only the platform stream: function and extension logs are not
// needed for the history and would include the extension's own log lines.
const (
	StreamPlatform  Stream = "platform"
	StreamFunction  Stream = "function"
	StreamExtension Stream = "extension"
)

// InitTypeManagedInstances is the initializationType (and AWS_LAMBDA_INITIALIZATION_TYPE) of an
// execution environment on Lambda Managed Instances.
const InitTypeManagedInstances = "lambda-managed-instances"

// Event is one element of a batch Lambda posts to the listener. Record is decoded according to
// Type; unknown types are counted and ignored.
type Event struct {
	Time   string          `json:"time"` // RFC 3339; parsed only where used, so a bad one costs only itself
	Type   EventType       `json:"type"`
	Record json.RawMessage `json:"record"`
}

// initRecord covers platform.initStart, platform.initRuntimeDone and platform.initReport (and
// their restore counterparts); fields a type does not have stay empty.
type initRecord struct {
	InitializationType string `json:"initializationType"`
	Phase              string `json:"phase"`
	RuntimeVersion     string `json:"runtimeVersion"`
	RuntimeVersionArn  string `json:"runtimeVersionArn"`
	Status             string `json:"status"`
	ErrorType          string `json:"errorType"`
	Metrics            struct {
		DurationMs float64 `json:"durationMs"`
	} `json:"metrics"`
}

type tracing struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// invokeRecord covers platform.start, platform.runtimeDone and platform.report.
type invokeRecord struct {
	RequestID   string   `json:"requestId"`
	Version     string   `json:"version"`
	FunctionArn string   `json:"functionArn"` // platform.start on Lambda Managed Instances
	Status      string   `json:"status"`
	ErrorType   string   `json:"errorType"`
	Tracing     *tracing `json:"tracing"`
	Metrics     struct {
		DurationMs       float64 `json:"durationMs"`
		BilledDurationMs float64 `json:"billedDurationMs"`
		MaxMemoryUsedMB  float64 `json:"maxMemoryUsedMB"`
		InitDurationMs   float64 `json:"initDurationMs"`
	} `json:"metrics"`
}

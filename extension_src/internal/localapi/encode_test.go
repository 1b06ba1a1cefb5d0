package localapi

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/invocation-history/extension/internal/history"
)

// decode turns JSON into generic values, so two encodings compare by meaning, not bytes.
func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON %q: %v", b, err)
	}
	return v
}

func TestAppendRecordMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 23, 9, 0, 0, 123456789, time.UTC)
	for _, r := range []history.Record{
		{AwsRequestID: "a", InvocatedAt: at, Sequence: 1, ColdStart: true},
		{AwsRequestID: "b", InvocatedAt: at, Sequence: 2, DeadlineMs: 1795424684697, InvokedFunctionArn: "arn:aws:lambda:us-east-1:1:function:f", TraceID: "Root=1-a;Parent=b;Sampled=0"},
		{AwsRequestID: "c", InvocatedAt: at, Sequence: 3, Status: "error", DurationMs: 12.345, BilledDurationMs: 13, MaxMemoryUsedMB: 64, InitDurationMs: 150.5, ErrorType: "Runtime.Unknown"},
		{AwsRequestID: "d", InvocatedAt: at, Sequence: 4, RuntimeReceivedAt: at, RuntimeRespondedAt: at.Add(time.Millisecond), Outcome: "success", ResponseBytes: 6291456},
		{AwsRequestID: "quote\" back\\slash\n\t\x01 <html> & \u2028 é 😀 \xff", InvocatedAt: at, Sequence: 5, DurationMs: 1e-9},
		{AwsRequestID: "big", InvocatedAt: at, Sequence: 6, DurationMs: 1e22},
	} {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got := appendRecord(nil, &r)
		if !reflect.DeepEqual(decode(t, got), decode(t, want)) {
			t.Errorf("appendRecord = %s\nencoding/json = %s", got, want)
		}
	}
}

func TestNonFiniteDurationsAreOmittedNotInvalidJSON(t *testing.T) {
	r := history.Record{AwsRequestID: "x", DurationMs: math.NaN(), InitDurationMs: math.Inf(1)}
	if v := decode(t, appendRecord(nil, &r)).(map[string]any); v["durationMs"] != nil || v["initDurationMs"] != nil {
		t.Fatalf("got %v", v)
	}
}

// FuzzAppendRecordMatchesEncodingJSON keeps the hand-written encoder equivalent to the json tags.
func FuzzAppendRecordMatchesEncodingJSON(f *testing.F) {
	f.Add("id", "arn", "Root=1", "success", "Runtime.Error", 12.5, int64(13), int64(1795424684697))
	f.Add("\x00\"\\\xff\u2029", "", "", "", "", 0.0, int64(0), int64(-1))
	f.Fuzz(func(t *testing.T, id, arn, trace, status, errorType string, duration float64, billed, deadline int64) {
		if math.IsNaN(duration) || math.IsInf(duration, 0) {
			return // encoding/json refuses them; appendRecord omits them (tested above)
		}
		r := history.Record{AwsRequestID: id, InvocatedAt: time.Unix(0, deadline).UTC(), Sequence: uint64(billed & 0xffff),
			DeadlineMs: deadline, InvokedFunctionArn: arn, TraceID: trace, Status: status, ErrorType: errorType,
			DurationMs: duration, BilledDurationMs: billed, Outcome: status, ResponseBytes: billed}
		want, err := json.Marshal(r)
		if err != nil {
			return // e.g. a year outside 0-9999: time.Time refuses to encode it
		}
		got := appendRecord(nil, &r)
		if !reflect.DeepEqual(decode(t, got), decode(t, want)) {
			t.Fatalf("appendRecord = %s\nencoding/json = %s", got, want)
		}
	})
}

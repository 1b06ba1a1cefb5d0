package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// emf is the part of an EMF line CloudWatch reads.
type emf struct {
	AWS struct {
		Timestamp         int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct{ Name, Unit string }
		} `json:"CloudWatchMetrics"`
	} `json:"_aws"`
}

// checkEMF validates one line against the EMF specification's rules and returns its members.
func checkEMF(t *testing.T, line string) (emf, map[string]any) {
	t.Helper()
	var doc emf
	var members map[string]any
	if err := json.Unmarshal([]byte(line), &doc); err != nil {
		t.Fatalf("not JSON: %v: %s", err, line)
	}
	_ = json.Unmarshal([]byte(line), &members)
	if doc.AWS.Timestamp <= 0 || len(doc.AWS.CloudWatchMetrics) != 1 {
		t.Fatalf("bad _aws: %s", line)
	}
	d := doc.AWS.CloudWatchMetrics[0]
	if d.Namespace == "" || len(d.Dimensions) == 0 || len(d.Metrics) == 0 {
		t.Fatalf("bad directive: %s", line)
	}
	for _, set := range d.Dimensions {
		for _, dim := range set {
			if v, ok := members[dim].(string); !ok || v == "" {
				t.Fatalf("dimension %s has no string value: %s", dim, line)
			}
		}
	}
	for _, m := range d.Metrics {
		switch v := members[m.Name].(type) {
		case float64:
		case []any: // EMF: an array of at most 100 numbers
			if len(v) == 0 || len(v) > MaxValuesPerLine {
				t.Fatalf("metric %s has %d values: %s", m.Name, len(v), line)
			}
			for _, x := range v {
				if _, ok := x.(float64); !ok {
					t.Fatalf("metric %s has a value that is not a number: %s", m.Name, line)
				}
			}
		default:
			t.Fatalf("metric %s has no numeric value: %s", m.Name, line)
		}
	}
	return doc, members
}

func TestStartedAndStoppedLinesAreValidEMF(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		env      Environment
		wantDims string
	}{
		{"with version", Environment{FunctionName: "demo", FunctionVersion: "7", EnvironmentID: "e1", InitType: "on-demand"}, "[[FunctionName] [FunctionName FunctionVersion]]"},
		{"version unknown", Environment{FunctionName: "demo"}, "[[FunctionName]]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			e := NewEmitter(&out, "Team/History", func() time.Time { return at })
			if err := e.Started(tc.env); err != nil {
				t.Fatal(err)
			}
			if err := e.Stopped(tc.env, 1500*time.Millisecond, 42, "spindown"); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != 2 {
				t.Fatalf("lines = %q", lines)
			}
			started, m := checkEMF(t, lines[0])
			if started.AWS.Timestamp != at.UnixMilli() || started.AWS.CloudWatchMetrics[0].Namespace != "Team/History" || m["EnvironmentStarted"] != 1.0 || m["FunctionName"] != "demo" {
				t.Errorf("started = %s", lines[0])
			}
			if got := fmt.Sprint(started.AWS.CloudWatchMetrics[0].Dimensions); got != tc.wantDims {
				t.Errorf("dimensions = %s, want %s", got, tc.wantDims)
			}
			_, m = checkEMF(t, lines[1])
			if m["EnvironmentStopped"] != 1.0 || m["EnvironmentLifetime"] != 1500.0 || m["InvocationsServed"] != 42.0 || m["ShutdownReason"] != "spindown" {
				t.Errorf("stopped = %s", lines[1])
			}
		})
	}
}

func TestDurationsLineIsValidEMF(t *testing.T) {
	var out bytes.Buffer
	e := NewEmitter(&out, "InvocationHistory", time.Now)
	if err := e.Durations(Environment{FunctionName: "demo", FunctionVersion: "1"}, []float64{1.5, 40.12, 3}); err != nil {
		t.Fatal(err)
	}
	if err := e.Durations(Environment{FunctionName: "demo"}, nil); err != nil || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("an empty batch wrote a line (%v): %q", err, out.String())
	}
	doc, m := checkEMF(t, strings.TrimSuffix(out.String(), "\n"))
	if metric := doc.AWS.CloudWatchMetrics[0].Metrics[0]; metric.Name != InvocationDuration || metric.Unit != "Milliseconds" || fmt.Sprint(m[InvocationDuration]) != "[1.5 40.12 3]" {
		t.Fatalf("line = %s", out.String())
	}
}

func TestDurationsAreBatchedByCountAgeAndShutdown(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	d := NewDurations()
	for i := range MaxValuesPerLine + 5 {
		d.Add(float64(i), t0)
	}
	select {
	case <-d.Full():
	default:
		t.Fatal("no signal with a full line waiting")
	}
	if got := d.Take(t0, false); len(got) != MaxValuesPerLine || got[0] != 0 {
		t.Fatalf("full batch = %v", got)
	}
	if got := d.Take(t0.Add(MaxDurationAge/2), false); got != nil {
		t.Fatalf("5 young values were taken: %v", got)
	}
	if got := d.Take(t0.Add(MaxDurationAge), false); len(got) != 5 || got[0] != MaxValuesPerLine {
		t.Fatalf("aged batch = %v", got)
	}
	d.Add(7, t0)
	if got := d.Take(t0, true); len(got) != 1 {
		t.Fatalf("flush at shutdown = %v", got)
	}
	if got := d.Take(t0, true); got != nil {
		t.Fatalf("nothing left, got %v", got)
	}
}

func TestDurationsWaitingAreBounded(t *testing.T) {
	d := NewDurations()
	for range maxPendingDurations + 3 {
		d.Add(1, time.Now())
	}
	if d.Dropped() != 3 {
		t.Fatalf("dropped = %d, want 3", d.Dropped())
	}
}

package localapi

import (
	"bufio"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/invocation-history/extension/internal/history"
)

// The list endpoint streams its answer: records are copied from the store a page at a time and
// encoded without reflection into a reused buffer, so a full store (10,000 records, ~2.5 MB of
// JSON) costs a few milliseconds and ~100 KB of memory per request instead of a copy of the
// store plus the whole body built in memory. appendRecord must stay equivalent to the json tags
// on history.Record: FuzzAppendRecordMatchesEncodingJSON checks it.

const (
	pageRecords = 256
	writeBuffer = 32 << 10
)

type listEncoder struct {
	page []history.Record
	buf  []byte
	w    *bufio.Writer
}

var encoders = sync.Pool{New: func() any {
	return &listEncoder{page: make([]history.Record, 0, pageRecords), buf: make([]byte, 0, 4096), w: bufio.NewWriterSize(nil, writeBuffer)}
}}

// streamList writes the ListResponse for the window (after, upTo] of store.
func streamList(w http.ResponseWriter, store *history.Store, after, upTo uint64, head ListResponse) {
	enc := encoders.Get().(*listEncoder)
	defer encoders.Put(enc)
	enc.w.Reset(w)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)

	_, _ = enc.w.WriteString(`{"invocations":[`)
	first := true
	for {
		enc.page = store.Page(after, upTo, enc.page)
		if len(enc.page) == 0 {
			break
		}
		buf := enc.buf[:0]
		for i := range enc.page {
			if !first {
				buf = append(buf, ',')
			}
			first = false
			buf = appendRecord(buf, &enc.page[i])
		}
		if _, err := enc.w.Write(buf); err != nil {
			return // the caller went away
		}
		enc.buf = buf[:0]
		after = enc.page[len(enc.page)-1].Sequence
		clear(enc.page) // drop string references until the next use
	}
	buf := append(enc.buf[:0], `],"environmentId":`...)
	buf = appendString(buf, head.EnvironmentID)
	buf = append(buf, `,"served":`...)
	buf = strconv.AppendUint(buf, head.Served, 10)
	buf = append(buf, `,"retained":`...)
	buf = strconv.AppendInt(buf, int64(head.Retained), 10)
	buf = append(buf, `,"dropped":`...)
	buf = strconv.AppendUint(buf, head.Dropped, 10)
	buf = append(buf, `,"cursor":`...)
	buf = strconv.AppendUint(buf, head.Cursor, 10)
	if head.WaitedFor != nil {
		buf = append(buf, `,"waitedFor":{"requestId":`...)
		buf = appendString(buf, head.WaitedFor.RequestID)
		buf = append(buf, `,"found":`...)
		buf = strconv.AppendBool(buf, head.WaitedFor.Found)
		buf = append(buf, '}')
	}
	buf = append(buf, "}\n"...)
	_, _ = enc.w.Write(buf)
	_ = enc.w.Flush()
	enc.buf = buf[:0]
	enc.w.Reset(nil)
}

// appendRecord appends r as JSON, with the same names and omissions as its json tags.
func appendRecord(b []byte, r *history.Record) []byte {
	b = append(b, `{"awsRequestId":`...)
	b = appendString(b, r.AwsRequestID)
	b = append(b, `,"invocatedAt":`...)
	b = appendTime(b, r.InvocatedAt)
	b = append(b, `,"sequence":`...)
	b = strconv.AppendUint(b, r.Sequence, 10)
	if r.DeadlineMs != 0 {
		b = append(b, `,"deadlineMs":`...)
		b = strconv.AppendInt(b, r.DeadlineMs, 10)
	}
	b = appendOptionalString(b, `,"invokedFunctionArn":`, r.InvokedFunctionArn)
	b = appendOptionalString(b, `,"traceId":`, r.TraceID)
	b = append(b, `,"coldStart":`...)
	b = strconv.AppendBool(b, r.ColdStart)
	b = appendOptionalString(b, `,"status":`, r.Status)
	b = appendOptionalFloat(b, `,"durationMs":`, r.DurationMs)
	if r.BilledDurationMs != 0 {
		b = append(b, `,"billedDurationMs":`...)
		b = strconv.AppendInt(b, r.BilledDurationMs, 10)
	}
	if r.MaxMemoryUsedMB != 0 {
		b = append(b, `,"maxMemoryUsedMB":`...)
		b = strconv.AppendInt(b, r.MaxMemoryUsedMB, 10)
	}
	b = appendOptionalFloat(b, `,"initDurationMs":`, r.InitDurationMs)
	b = appendOptionalString(b, `,"errorType":`, r.ErrorType)
	if !r.RuntimeReceivedAt.IsZero() {
		b = append(b, `,"runtimeReceivedAt":`...)
		b = appendTime(b, r.RuntimeReceivedAt)
	}
	if !r.RuntimeRespondedAt.IsZero() {
		b = append(b, `,"runtimeRespondedAt":`...)
		b = appendTime(b, r.RuntimeRespondedAt)
	}
	b = appendOptionalString(b, `,"outcome":`, r.Outcome)
	if r.ResponseBytes != 0 {
		b = append(b, `,"responseBytes":`...)
		b = strconv.AppendInt(b, r.ResponseBytes, 10)
	}
	return append(b, '}')
}

func appendOptionalString(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return appendString(append(b, key...), v)
}

// appendOptionalFloat writes v as encoding/json does; zero (unknown) and non-finite values are
// omitted (JSON has no NaN or infinity).
func appendOptionalFloat(b []byte, key string, v float64) []byte {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return b
	}
	b = append(b, key...)
	if abs := math.Abs(v); abs < 1e-6 || abs >= 1e21 {
		return strconv.AppendFloat(b, v, 'e', -1, 64)
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string: quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced by U+FFFD, and U+2028/U+2029 escaped for JavaScript readers.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

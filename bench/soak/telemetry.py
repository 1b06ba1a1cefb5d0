"""The stream of hostile telemetry: batches posted straight to the extension's telemetry listener,
beside the real ones the RIE posts, each of a kind whose effect on the listener's counters is known
in advance. The soak adds up what it sent and compares the sums with the shutdown line.

What the counters mean (extension_src/src/telemetry/listener.rs, events.rs):
    rejected  a request answered 4xx as a whole: not POST, not a JSON array, JSON a parser cannot
              represent (1e400, nesting past the parser's depth), a body over the listener's limit
    invalid   an element that is not an event object, an event of a known type whose record has
              the wrong shape, no request id, or a value outside what Lambda documents
    ignored   an element of a type the extension does not know (and null)
    events    an element of a known type with valid values

Nothing here may create a record: a valid platform.start on Managed Instances would (that is how
records are made there), so every platform.start sent is invalid, and the soak's check that served
equals the number of invokes proves none slipped through. Valid updates go to request ids never
invoked (fresh UUIDs): the store holds them, bounded, until it drops them, so held + dropped equals
what was sent.
"""

from __future__ import annotations

import datetime as dt
import http.client
import itertools
import json
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

from bench.harness import summary

# The soak pins the subscription's maxBytes so that it knows the listener's body limit, which is
# maxBytes plus 64 KiB for the array around the events (listener.rs body_limit), and what the
# listener still reads past it to answer 413 instead of resetting (DRAIN_BYTES).
MAX_BYTES = 262_144
BODY_LIMIT = MAX_BYTES + (64 << 10)
DRAIN_BYTES = 64 << 10
# Bounds of a record (history/record.rs, shared by every source): longest request id, error type or
# version kept, longest ARN and trace header.
MAX_TEXT = 256
MAX_ARN = 2048
MAX_TRACE = 2048
# Far past serde_json's nesting limit (128) and deep enough to overflow a recursive parser's stack.
DEEP_NESTING = 5_000


@dataclass
class Expected:
    """What one request does to the listener's counters, and the answers it may get (None: the
    connection closed without one)."""

    rejected: int = 0
    invalid: int = 0
    ignored: int = 0
    events: int = 0
    unknown_ids: int = 0  # valid updates for request ids never invoked
    statuses: tuple[int | None, ...] = (200,)

    def add(self, other: "Expected") -> None:
        for name in ("rejected", "invalid", "ignored", "events", "unknown_ids"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def totals(self) -> dict:
        return {"rejected": self.rejected, "invalid": self.invalid, "ignored": self.ignored,
                "events": self.events, "unknownIds": self.unknown_ids}  # fmt: skip


@dataclass
class Request:
    """One request to the listener: an HTTP POST (or another method) of a body, or raw bytes on a
    socket (raw is set) for what http.client cannot send."""

    kind: str
    expected: Expected
    body: bytes | Iterator[bytes] = b""
    method: str = "POST"
    chunked: bool = False
    raw: bytes | None = None


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dumps(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def report(request_id: str, **record) -> dict:
    return {"time": now(), "type": "platform.report", "record": {"requestId": request_id, **record}}


def rejected(status: int, *more: int | None) -> Expected:
    return Expected(rejected=1, statuses=(status, *more))


def _not_json() -> Request:
    return Request("not-json", rejected(400), body=b"\x00\xff{{ not json at all")


def _empty_body() -> Request:
    return Request("empty-body", rejected(400), body=b"")


def _not_an_array() -> Request:
    return Request("not-an-array", rejected(400), body=dumps(report(str(uuid.uuid4()))))


def _truncated() -> Request:
    return Request("truncated", rejected(400), body=dumps([report(str(uuid.uuid4()))])[:-7])


def _trailing_garbage() -> Request:
    return Request("trailing-garbage", rejected(400), body=dumps([report(str(uuid.uuid4()))]) + b" ]x")


def _number_overflow() -> Request:
    # A number no f64 holds: the parser refuses it, so the whole body is malformed.
    body = b'[{"time":"%s","type":"platform.report","record":{"requestId":"%s","metrics":{"durationMs":1e400}}}]'
    return Request("number-overflow", rejected(400), body=body % (now().encode(), str(uuid.uuid4()).encode()))


def _deep_nesting() -> Request:
    # Nesting far past any parser's depth limit, where the extension skips values unread (an
    # unknown field, a field of the wrong type, an element that is no event): skipping must not
    # recurse, so the batch is taken and only the elements themselves count.
    nested = b"[" * DEEP_NESTING + b"]" * DEEP_NESTING
    rid = str(uuid.uuid4()).encode()
    body = (b'[{"type":"platform.report","record":{"requestId":"%s","extra":%s}},'
            b'{"type":"platform.report","record":{"requestId":"x","metrics":%s}},%s]') % (rid, nested, nested, nested)
    return Request("deep-nesting", Expected(events=1, unknown_ids=1, invalid=2), body=body)


def _wrong_method() -> Request:
    return Request("wrong-method", rejected(405), method="GET")


def _oversized() -> Request:
    # A valid batch just over the limit, within what the listener drains: a clean 413.
    events, size = [], 2
    while size <= BODY_LIMIT + 1000:
        event = report(str(uuid.uuid4()), status="success", errorType="E" * 200)
        events.append(event)
        size += len(dumps(event)) + 1
    return Request("oversized", rejected(413), body=dumps(events))


def _oversized_chunked() -> Request:
    # No Content-Length: the limit must hold on the bytes as they arrive.
    def chunks() -> Iterator[bytes]:
        yield b"["
        sent = 1
        while sent <= BODY_LIMIT + 1000:
            chunk = dumps(report(str(uuid.uuid4()), errorType="E" * 200)) + b","
            sent += len(chunk)
            yield chunk
        yield b"null]"

    return Request("oversized-chunked", rejected(413), body=chunks(), chunked=True)


def _declared_huge() -> Request:
    # A Content-Length of 50 MB, then a little of it: refused unread. The listener may close
    # before we finish sending, so no answer at all is accepted too; it still counts the request.
    head = (b"POST / HTTP/1.1\r\nHost: sandbox.localdomain\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n")  # fmt: skip
    return Request("declared-huge", rejected(413, None), raw=head + b"[" + b" " * (32 << 10))


def _not_http() -> Request:
    # Bytes that are not HTTP (a TLS ClientHello's start): the HTTP layer answers before the
    # listener's handler runs, so no counter moves.
    return Request("not-http", Expected(statuses=(400, None)), raw=b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")


# Elements that are no event at all, or a known type with a record of the wrong shape.
def _wrong_shapes() -> Request:
    rid = str(uuid.uuid4())
    elements = [
        1, "platform.report", [], True, {"type": 7}, {"type": ["platform.report"]},
        {"time": 5, "type": "platform.report", "record": {"requestId": rid}},
        {"type": "platform.report"},  # no record
        {"type": "platform.report", "record": []},
        {"type": "platform.report", "record": "x"},
        {"type": "platform.report", "record": {"requestId": 5}},
        {"type": "platform.report", "record": {"requestId": ""}},
        {"type": "platform.report", "record": {"status": "success"}},  # no request id
        {"type": "platform.report", "record": {"requestId": rid, "tracing": "Root=1-x"}},
        {"type": "platform.report", "record": {"requestId": rid, "metrics": [1, 2]}},
        {"type": "platform.start", "record": {"requestId": ["a"]}},
        {"type": "platform.start", "record": {"requestId": rid, "functionArn": 12}},
        {"type": "platform.initStart", "record": {"runtimeVersion": 7}},
        {"type": "platform.initReport", "record": {"metrics": "fast"}},
    ]  # fmt: skip
    return Request("wrong-shapes", Expected(invalid=len(elements)), body=dumps(elements))


# Well-formed events whose values are outside what Lambda documents.
def _out_of_range() -> Request:
    rid = str(uuid.uuid4())
    m = lambda **metrics: report(rid, metrics=metrics)  # noqa: E731
    elements = [
        report(rid, status="meh"), report(rid, status="SUCCESS"), report(rid, status=""),
        m(durationMs=-1), m(durationMs=1e308), m(durationMs=1e7), m(durationMs="12"),
        m(billedDurationMs=1.5), m(billedDurationMs=18446744073709551616), m(billedDurationMs=-2),
        m(maxMemoryUsedMB=1e9), m(maxMemoryUsedMB=-3), m(initDurationMs=9e15),
        report(rid, errorType="E" * (MAX_TEXT + 1)), report("r" * (MAX_TEXT + 1)),
        {"time": now(), "type": "platform.runtimeDone", "record": {"requestId": rid, "status": "done"}},
        {"time": now(), "type": "platform.runtimeDone", "record": {"requestId": rid, "metrics": {"durationMs": -0.5}}},
        # platform.start creates records on Managed Instances: each of these must not
        {"time": now(), "type": "platform.start", "record": {"requestId": rid, "functionArn": "a" * (MAX_ARN + 1)}},
        {"time": now(), "type": "platform.start", "record": {"requestId": rid, "tracing": {"value": "T" * (MAX_TRACE + 1)}}},
        {"time": now(), "type": "platform.start", "record": {"requestId": "s" * 10_000}},
        {"time": now(), "type": "platform.initStart", "record": {"runtimeVersion": "v" * (MAX_TEXT + 1)}},
        {"time": now(), "type": "platform.initReport", "record": {"status": "bogus"}},
        {"time": now(), "type": "platform.initReport", "record": {"metrics": {"durationMs": 1e300}}},
        {"time": now(), "type": "platform.initRuntimeDone", "record": {"initializationType": "i" * (MAX_TEXT + 1)}},
    ]  # fmt: skip
    # An empty status is "not given", so that one element is valid: a report for an unknown id.
    return Request("out-of-range", Expected(invalid=len(elements) - 1, events=1, unknown_ids=1), body=dumps(elements))


def _unknown_types() -> Request:
    rid = str(uuid.uuid4())
    elements = [
        {"time": now(), "type": "platform.bogus", "record": {"requestId": rid}},
        {"time": now(), "type": "function", "record": "a log line"},
        {"time": now(), "type": "extension", "record": {"message": "x"}},
        {"time": now(), "type": "platform.REPORT", "record": {"requestId": rid}},
        None, {}, {"record": {"requestId": rid}}, {"type": None, "record": 1},
    ]  # fmt: skip
    return Request("unknown-types", Expected(ignored=len(elements)), body=dumps(elements))


def _other_known() -> Request:
    # Known types the history keeps nothing of: valid events, applied as nothing.
    elements = [
        {"time": now(), "type": "platform.extension", "record": {"name": "soak", "state": "Ready", "events": []}},
        {"time": now(), "type": "platform.logsDropped", "record": {"reason": "soak", "droppedRecords": 1, "droppedBytes": 2}},
        {"time": now(), "type": "platform.telemetrySubscription", "record": {"name": "soak", "state": "Subscribed", "types": []}},
    ]  # fmt: skip
    return Request("other-known", Expected(events=len(elements)), body=dumps(elements))


def _unknown_ids() -> Request:
    # Valid updates, the largest strings allowed, for request ids that never run: held, then dropped.
    elements = []
    for phase in ("platform.runtimeDone", "platform.report"):
        for _ in range(4):
            record = {"requestId": str(uuid.uuid4()), "status": "error", "errorType": "E" * MAX_TEXT,
                      "metrics": {"durationMs": 12.5, "billedDurationMs": 13, "maxMemoryUsedMB": 128}}  # fmt: skip
            elements.append({"time": now(), "type": phase, "record": record})
    return Request("unknown-ids", Expected(events=len(elements), unknown_ids=len(elements)), body=dumps(elements))


def _mixed() -> Request:
    rid = str(uuid.uuid4())
    elements = [report(rid, status="success"), 17, {"type": "platform.nope"}, report(rid, status="maybe"), None]
    return Request("mixed", Expected(events=1, unknown_ids=1, invalid=2, ignored=2), body=dumps(elements))


def _empty_array() -> Request:
    return Request("empty-array", Expected(), body=b"[]")


# Accepted batches of a few small elements: their answer time is the listener's latency.
SMALL_ACCEPTED = ("empty-array", "mixed", "other-known", "unknown-types")

KINDS: tuple[Callable[[], Request], ...] = (
    _wrong_shapes, _not_json, _out_of_range, _unknown_types, _empty_body, _unknown_ids, _not_an_array,
    _other_known, _truncated, _mixed, _trailing_garbage, _number_overflow, _wrong_method, _deep_nesting,
    _empty_array, _oversized, _oversized_chunked, _declared_huge, _not_http,
)  # fmt: skip


def send(port: int, request: Request, timeout: float = 10.0) -> int | None:
    """Send one request to the listener on 127.0.0.1:port, on a connection of its own (a retry on a
    reused connection could send a request twice, and the counts must be exact); the answer's status,
    or None when the listener closed without one."""
    if request.raw is not None:
        return _send_raw(port, request.raw, timeout)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.connect()  # outside the try: a listener that refuses the connection never saw the request
    try:
        headers = {"Content-Type": "application/json", "Host": "sandbox.localdomain"}
        if request.method == "POST":
            conn.request("POST", "/", body=request.body, headers=headers, encode_chunked=request.chunked)
        else:
            conn.request(request.method, "/", headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    except (ConnectionError, http.client.RemoteDisconnected):
        return None
    finally:
        conn.close()


def _send_raw(port: int, data: bytes, timeout: float) -> int | None:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the listener may answer and close before it has read everything
        answer = b""
        try:
            while b"\r\n" not in answer and (chunk := sock.recv(4096)):
                answer += chunk
        except OSError:
            pass
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/1.") and parts[1].isdigit() else None


@dataclass
class Sender:
    """A thread posting one request after another, the kinds in turn, with a pause between them,
    until stop(); it always completes a round of every kind, so a short soak sends each once."""

    port: int
    pause: float
    expected: Expected = field(default_factory=Expected)
    sent: Counter = field(default_factory=Counter)
    answers: Counter = field(default_factory=Counter)  # "kind status" -> count
    unexpected: list[str] = field(default_factory=list)
    unexpected_count: int = 0
    # How long the listener took to answer an accepted batch of a few elements, in ms: the RIE
    # waits for each answer before it posts its next batch.
    small_batch_ms: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-telemetry", daemon=True)

    def start(self) -> "Sender":
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._unexpected("the telemetry sender did not finish within its timeout")

    def _run(self) -> None:
        for i in itertools.count():
            if self._stop.is_set() and i % len(KINDS) == 0:
                return
            request = KINDS[i % len(KINDS)]()
            started = time.perf_counter()
            try:
                status = send(self.port, request)
            except OSError as e:  # could not even connect: the listener is gone
                self._unexpected(f"{request.kind}: {e!r}")
                status = "error"
            else:
                # Only a request that reached the listener counts: every kind's effect is on arrival.
                self.expected.add(request.expected)
                if status not in request.expected.statuses:
                    self._unexpected(f"{request.kind}: answered {status}, want one of {request.expected.statuses}")
                elif request.kind in SMALL_ACCEPTED:
                    self.small_batch_ms.append((time.perf_counter() - started) * 1000)
            self.sent[request.kind] += 1
            self.answers[f"{request.kind} {status}"] += 1
            if self.pause:
                time.sleep(self.pause)

    def _unexpected(self, message: str) -> None:
        self.unexpected_count += 1
        if len(self.unexpected) < 20:
            self.unexpected.append(message)

    def result(self) -> dict:
        return {
            "sent": dict(sorted(self.sent.items())),
            "requests": sum(self.sent.values()),
            "expected": self.expected.totals(),
            "answers": dict(sorted(self.answers.items())),
            "unexpectedAnswers": self.unexpected_count,
            "unexpectedSample": self.unexpected,
            "smallBatchAnswerMs": {k: round(v, 3) for k, v in summary(self.small_batch_ms).items()},
        }

"""Concurrent readers of the local API during the soak: a few threads on 127.0.0.1, each a request
at a time with a pause between them, until stop(). Every answer is checked against what the API
promises; a status other than 200 is an error unless the API documents it for that request (404
for a record that is not retained, 429 when 64 callers already wait).

Lists are streamed a page at a time (bounded lock hold), so a list read while invokes evict records
is not a snapshot: records evicted after the window was taken are skipped. The readers count those
reads (`readsMissingRecords`) rather than failing them; everything else about a list answer is an
invariant: its counters agree (served = retained + dropped), sequences increase within the window
(after, cursor], and nothing outside the window is returned.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from urllib.parse import quote

from tools.local_lambda import local_api_get

KINDS = ("limit", "after", "environment", "by-id", "by-id-unknown", "wait-known", "wait-unknown")
WAIT_MS = 50  # the unknown-id waits end by timeout: short, so a reader is never parked long


def list_problems(answer: dict, *, after: int = 0, limit: int = 0, max_records: int) -> tuple[list[str], int]:
    """What is wrong with a list answer (an empty list when nothing), and how many records of its
    window it skipped (evicted while it was streamed)."""
    problems = []
    served, retained, dropped = answer["served"], answer["retained"], answer["dropped"]
    if served != retained + dropped:
        problems.append(f"served {served} != retained {retained} + dropped {dropped}")
    if retained > max_records:
        problems.append(f"retained {retained} > maxRecords {max_records}")
    sequences = [r["sequence"] for r in answer["invocations"]]
    if any(b <= a for a, b in zip(sequences, sequences[1:])):
        problems.append("sequences not increasing")
    # The window the answer's counters describe: (first - 1, served], cut by after and limit.
    first = max(after + 1, served - retained + 1, served - limit + 1 if limit else 0)
    width = max(0, served - first + 1)
    if sequences and (sequences[0] < first or sequences[-1] > served):
        problems.append(f"sequences {sequences[0]}..{sequences[-1]} outside the window {first}..{served}")
    if len(sequences) > width:
        problems.append(f"{len(sequences)} records for a window of {width}")
    cursor = served if width else after
    if answer["cursor"] != cursor:
        problems.append(f"cursor {answer['cursor']}, want {cursor}")
    return problems, max(0, width - len(sequences))


@dataclass
class KindStats:
    requests: int = 0
    ok: int = 0
    documented: int = 0  # 404 / 429 where the API documents them
    errors: int = 0
    reads_missing_records: int = 0
    records_missing: int = 0
    slowest_ms: float = 0.0

    def as_dict(self) -> dict:
        return {"requests": self.requests, "ok": self.ok, "documented4xx": self.documented, "errors": self.errors,
                "readsMissingRecords": self.reads_missing_records, "recordsMissing": self.records_missing,
                "slowestMs": round(self.slowest_ms, 3)}  # fmt: skip


@dataclass
class Readers:
    """`count` threads cycling through KINDS, and one reading the whole store every `full_pause`."""

    port: int
    count: int
    pause: float
    full_pause: float
    max_records: int
    seed: int = 1
    stats: dict[str, KindStats] = field(default_factory=lambda: {k: KindStats() for k in (*KINDS, "full")})
    error_sample: list[str] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._recent: deque[tuple[str, int]] = deque(maxlen=256)  # (request id, sequence) seen in answers
        self._threads = [threading.Thread(target=self._loop, args=(i,), name=f"soak-reader-{i}", daemon=True)
                         for i in range(self.count)]  # fmt: skip
        if self.full_pause > 0:
            self._threads.append(threading.Thread(target=self._full_loop, name="soak-reader-full", daemon=True))

    def start(self) -> "Readers":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():
                self._error("full", f"{thread.name} did not finish within {timeout}s")

    def result(self) -> dict:
        with self._lock:
            return {
                "threads": len(self._threads),
                "requests": sum(s.requests for s in self.stats.values()),
                "errors": sum(s.errors for s in self.stats.values()),
                "byKind": {k: s.as_dict() for k, s in self.stats.items()},
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "errorSample": self.error_sample,
            }

    # -- the loops ---------------------------------------------------------------------------------
    def _loop(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        cursor = 0
        for i in range(index, 1 << 62):
            if self._stop.is_set():
                return
            kind = KINDS[i % len(KINDS)]
            try:
                cursor = self._one(kind, rng, cursor)
            except Exception as e:  # a connection error, a timeout, a body that is not JSON
                self._error(kind, f"{kind}: {e!r}")
            self._stop.wait(self.pause)

    def _full_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._list("full", "/invocations")
            except Exception as e:
                self._error("full", f"full: {e!r}")
            self._stop.wait(self.full_pause)

    def _one(self, kind: str, rng: random.Random, cursor: int) -> int:
        if kind == "limit":
            limit = rng.randint(1, 100)
            answer = self._list(kind, f"/invocations?limit={limit}", limit=limit)
            if answer:
                with self._lock:
                    self._recent.extend((r["awsRequestId"], r["sequence"]) for r in answer["invocations"][-8:])
        elif kind == "after":
            answer = self._list(kind, f"/invocations?after={cursor}", after=cursor)
            if answer:
                return answer["cursor"]
        elif kind == "environment":
            status, body, _ = self._get(kind, "/environment")
            if status == 200:
                self._check_environment(json.loads(body))
        elif kind == "by-id":
            if known := self._known(rng):
                request_id, _ = known
                status, body, _ = self._get(kind, f"/invocations/{quote(request_id, safe='')}", documented=(404,))
                if status == 200 and json.loads(body)["awsRequestId"] != request_id:
                    self._error(kind, f"by-id {request_id}: another record {body[:200]!r}")
        elif kind == "by-id-unknown":
            self._get(kind, f"/invocations/{uuid.uuid4()}?waitMs={WAIT_MS}", want=404)
        elif kind == "wait-known":
            if known := self._known(rng):
                request_id, sequence = known
                answer = self._list(kind, f"/invocations?requestId={quote(request_id, safe='')}&waitMs=500&limit=1",
                                    limit=1, documented=(429,))  # fmt: skip
                # Not found is right only once the record has left the window the answer describes.
                if answer and not answer["waitedFor"]["found"] and sequence > answer["served"] - answer["retained"]:
                    self._error(kind, f"wait for retained {request_id} (sequence {sequence}) not found")
        elif kind == "wait-unknown":
            answer = self._list(kind, f"/invocations?requestId={uuid.uuid4()}&waitMs={WAIT_MS}&limit=1", limit=1,
                                documented=(429,))  # fmt: skip
            if answer and answer["waitedFor"]["found"]:
                self._error(kind, "a request id never invoked was found")
        return cursor

    # -- requests and checks -------------------------------------------------------------------------
    def _get(self, kind: str, path: str, documented: tuple[int, ...] = (), want: int = 200) -> tuple[int, bytes, dict]:
        started = time.perf_counter()
        status, body, headers = local_api_get(self.port, path, timeout=10)
        elapsed = (time.perf_counter() - started) * 1000
        with self._lock:
            stats = self.stats[kind]
            stats.requests += 1
            stats.slowest_ms = max(stats.slowest_ms, elapsed)
            self.statuses[status] += 1
            if status == want:
                stats.ok += 1
            elif status in documented:
                stats.documented += 1
        if status != want and status not in documented:
            self._error(kind, f"GET {path}: {status} {body[:200]!r}")
        return status, body, headers

    def _list(self, kind: str, path: str, *, after: int = 0, limit: int = 0, documented: tuple[int, ...] = ()) -> dict | None:
        status, body, _ = self._get(kind, path, documented)
        if status != 200:
            return None
        answer = json.loads(body)
        problems, missing = list_problems(answer, after=after, limit=limit, max_records=self.max_records)
        with self._lock:
            if missing:
                self.stats[kind].reads_missing_records += 1
                self.stats[kind].records_missing += missing
        for problem in problems:
            self._error(kind, f"GET {path}: {problem}")
        return answer

    def _check_environment(self, environment: dict) -> None:
        counts = environment["counts"]
        if counts["served"] != counts["retained"] + counts["dropped"]:
            self._error("environment", f"/environment counts disagree: {counts}")
        if counts["retained"] > self.max_records or counts["pendingUpdates"] > 1024:
            self._error("environment", f"/environment counts past their bounds: {counts}")

    def _known(self, rng: random.Random) -> tuple[str, int] | None:
        with self._lock:
            return rng.choice(self._recent) if self._recent else None

    def _error(self, kind: str, message: str) -> None:
        with self._lock:
            self.stats[kind].errors += 1
            if len(self.error_sample) < 20:
                self.error_sample.append(message)

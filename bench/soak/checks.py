"""What the soak reads out of the logs and the final listing, and the checks on them: pure
functions of their inputs, so that tests can show each check fails when it should."""

from __future__ import annotations

import re

EXTENSION_TAG = "extension=invocation-history-extension"
_START = re.compile(r"^START RequestId: (\S+)", re.MULTILINE)
_LOGFMT = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def trace_header(run: int, index: int) -> str:
    """The X-Ray header the soak sends with invoke `index` of run `run`: the RIE hands it to the
    extension with the event, so each record says which invoke it is. Sampled: the RIE's
    managed-instances mode leaves an unsampled trace out of platform.start."""
    return f"{trace_root(run, index)};Parent=53995c3f42cd8ad8;Sampled=1"


def trace_root(run: int, index: int) -> str:
    return f"Root=1-{run >> 32:08x}-{run & 0xFFFFFFFF:08x}{index:016x}"


def started_request_ids(logs: str) -> list[str]:
    """The request ids the RIE started, in order (its `START RequestId:` lines)."""
    return _START.findall(logs)


def logfmt(line: str) -> dict[str, str]:
    return {k: v[1:-1] if v.startswith('"') else v for k, v in _LOGFMT.findall(line)}


def shutdown_summary(logs: str) -> dict[str, str] | None:
    """The extension's summary line (msg=shutdown), parsed; None when it wrote none."""
    lines = [line for line in logs.splitlines() if "msg=shutdown" in line and EXTENSION_TAG in line]
    return logfmt(lines[-1]) if lines else None


def extension_warnings(logs: str) -> list[str]:
    """The extension's own lines at WARN or ERROR."""
    return [line for line in logs.splitlines()
            if EXTENSION_TAG in line and re.search(r"\blevel=(WARN|ERROR)\b", line)]  # fmt: skip


def window_problems(listing: dict, *, invoked: list[str], traces: list[str], invokes: int, max_records: int,
                    with_telemetry: bool) -> list[str]:  # fmt: skip
    """Everything wrong with the final, quiet listing (GET /invocations, nothing running): each
    invoke made exactly one record, the counters add up, the retained window is exactly the newest
    sequences with no gap, and its records are the soak's last invokes, in order: their request ids
    (from the RIE's START lines, `invoked`) and trace headers (sent by the soak, `traces`)."""
    problems = []
    served, retained, dropped = listing["served"], listing["retained"], listing["dropped"]
    records = listing["invocations"]
    if served != invokes:
        problems.append(f"served {served}, but the soak invoked {invokes} times")
    if served != retained + dropped:
        problems.append(f"served {served} != retained {retained} + dropped {dropped}")
    if retained != min(invokes, max_records):
        problems.append(f"retained {retained}, want min(invokes, maxRecords) = {min(invokes, max_records)}")
    if len(records) != retained:
        problems.append(f"{len(records)} records listed, retained says {retained}")
    sequences = [r["sequence"] for r in records]
    want = list(range(served - retained + 1, served + 1))
    if sequences != want:
        missing = sorted(set(want) - set(sequences))
        extra = sorted(set(sequences) - set(want))
        problems.append(f"window is not {want[:1]}..{want[-1:]} without gaps: {len(missing)} missing "
                        f"(first {missing[:5]}), {len(extra)} unexpected (first {extra[:5]})")  # fmt: skip
    if len(invoked) != invokes:
        problems.append(f"the RIE started {len(invoked)} invocations, the soak made {invokes}")
    tail = len(records)
    ids = [r["awsRequestId"] for r in records]
    want_ids = invoked[-tail:] if tail else []
    if ids != want_ids:
        absent = [i for i in want_ids if i not in set(ids)]
        problems.append(f"request ids of the window differ from the RIE's last {tail} starts: "
                        f"{len(absent)} absent (first {absent[:3]})")  # fmt: skip
    if len(set(ids)) != len(ids):
        problems.append(f"{len(ids) - len(set(ids))} request ids appear twice in the window")
    want_traces = traces[-tail:] if tail else []
    wrong = [(r["sequence"], r.get("traceId")) for r, t in zip(records, want_traces) if not (r.get("traceId") or "").startswith(t)]
    if len(want_traces) != tail or wrong:
        problems.append(f"{len(wrong)} records without the trace header of their invoke (first {wrong[:2]})")
    if with_telemetry:
        incomplete = [r["sequence"] for r in records if r.get("status") != "success" or not r.get("durationMs")]
        if incomplete:
            problems.append(f"{len(incomplete)} records without telemetry's status and duration (first {incomplete[:5]})")
    return problems


def rss_growth(samples: list[dict], max_records: int, key: str = "rss") -> float | None:
    """Growth of the extension's memory once the store is full: the largest value sampled after
    max_records invokes against the value at max_records (the bench's definition); None when the
    run did not go past max_records."""
    at = next((s for s in samples if s["invokes"] == max_records), None)
    after = [s for s in samples if s["invokes"] > max_records]
    if at is None or not after or not at[key]:
        return None
    return (max(s[key] for s in after) - at[key]) / at[key]


def rss_trend(samples: list[dict], after_invokes: int, key: str = "rss") -> float | None:
    """The least-squares slope of the samples taken after `after_invokes`, in bytes per 10,000
    invokes: a leak shows as a steady slope, allocator churn as scatter around a flat line."""
    points = [(s["invokes"], s[key]) for s in samples if s["invokes"] > after_invokes and s.get(key) is not None]
    if len(points) < 3:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if not var:
        return None
    return 10_000 * sum((x - mean_x) * (y - mean_y) for x, y in points) / var

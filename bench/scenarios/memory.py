"""Scenario 3, the extension's memory: our extension and both floors side by side, invoked in turn:
VmRSS idle (after the first invoke, which starts extensions), when the store reaches max_records,
and sampled up to memory_invokes; then the local API on our full store (scenario 4, which needs
that store). Also the store's heap per record, from the crate's own measurement: RSS deltas are
coarse (pages, allocator slack)."""

from __future__ import annotations

import os
import re
import subprocess
import time

from bench.harness import FLOORS, ROOT, BenchLambda, Counts, cleanup_all, ratio, start_all
from bench.scenarios import local_api

# The Rust crate's measurement of its store: it prints heap_per_record_bytes=<float>.
HEAP_COMMAND = ("cargo", "test", "--release", "--test", "memory", "--", "--nocapture")
HEAP_TEST_SOURCES = ("extension_src/tests/memory.rs", "extension_src/tests/memory/main.rs")
KEY = {"floor": "floor", "floor-go": "floorGo"}  # configuration -> its key in the results


def run(counts: Counts) -> tuple[dict, dict, dict]:
    """The memory results, the local API's, and our extension's /environment."""
    envs = start_all({
        "ours": BenchLambda("ours", env={"INVOCATION_HISTORY_EXTENSION_MAX_RECORDS": str(counts.max_records)}),
        **{floor: BenchLambda(floor) for floor in FLOORS},
    })  # fmt: skip
    try:
        for local in envs.values():
            local.invoke_raw()
        time.sleep(0.2)
        ours = envs["ours"]
        environment = ours.get_json("/environment")
        total = max(counts.memory_invokes, counts.max_records)
        checkpoints = {counts.max_records, total}
        step = max(1, total // max(1, counts.memory_samples))
        checkpoints.update(range(step, total + 1, step))

        def sample(done: int) -> dict:
            point = {"invokes": done, "records": min(done, counts.max_records)}
            for config, local in envs.items():
                point[config] = local.memory()
            return point

        series = [sample(1)]
        done = 1
        started = time.perf_counter()
        for target in sorted(checkpoints):
            while done < target:
                for local in envs.values():
                    local.invoke_raw()
                done += 1
            series.append(sample(done))
        invoke_seconds = time.perf_counter() - started
        retained = ours.get_json("/invocations?limit=1")["retained"]

        api = local_api.run(ours, counts)
        after_api = ours.memory()
    finally:
        cleanup_all(envs)

    at_full = next(s for s in series if s["invokes"] == counts.max_records)
    after_full = [s for s in series if s["invokes"] >= counts.max_records]
    growth = None
    if len(after_full) > 1:
        # Flat: the largest RSS seen after the store filled, against the RSS when it filled.
        growth = 100 * (max(s["ours"]["rss"] for s in after_full) - at_full["ours"]["rss"]) / at_full["ours"]["rss"]
    idle, end = series[0], series[-1]
    memory = {
        "maxRecords": counts.max_records,
        "invokes": done,
        "invokesPerSecond": round(len(envs) * (done - 1) / invoke_seconds, 1),
        "retainedAtEnd": retained,
        "idle": idle["ours"],
        "atMaxRecords": at_full["ours"],
        "atEnd": end["ours"],
        "afterApiLoad": after_api,
        **{KEY[f]: {"idle": idle[f], "atMaxRecords": at_full[f], "atEnd": end[f]} for f in FLOORS},
        "ratios": {
            name: ratio(point["ours"]["rss"], point[f]["rss"])
            for f in FLOORS
            for name, point in ((f"rss idle ours/{f}", idle), (f"rss at maxRecords ours/{f}", at_full), (f"rss at end ours/{f}", end))
        },
        "bytesPerRecordRss": round((at_full["ours"]["rss"] - idle["ours"]["rss"]) / counts.max_records, 1),
        "bytesPerRecordRssOverFloor": round(
            ((at_full["ours"]["rss"] - at_full["floor"]["rss"]) - (idle["ours"]["rss"] - idle["floor"]["rss"])) / counts.max_records, 1
        ),
        "rssGrowthAfterFullPercent": None if growth is None else round(growth, 2),
        "series": series,
    }
    return memory, api, environment


def heap_per_record() -> dict:
    """The store's heap per record from the crate's memory test. Absent while the crate has no such
    test (the Go extension's tree); a test that fails is a failed scenario, not a missing number."""
    if not any((ROOT / source).exists() for source in HEAP_TEST_SOURCES):
        return {"bytes": None, "reason": f"no {' or '.join(HEAP_TEST_SOURCES)}"}
    out = subprocess.run(HEAP_COMMAND, cwd=ROOT / "extension_src", env=dict(os.environ), capture_output=True, text=True, timeout=900)
    match = re.search(r"heap_per_record_bytes=([0-9.eE+-]+)", out.stdout)
    if out.returncode != 0 or not match:
        raise RuntimeError(f"{' '.join(HEAP_COMMAND)} failed (exit {out.returncode}) or printed no heap_per_record_bytes=:\n{out.stdout}{out.stderr}")
    return {"bytes": float(match.group(1)), "command": " ".join(HEAP_COMMAND)}

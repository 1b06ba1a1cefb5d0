"""The scenarios of `make bench`, one module each; bench/run.py runs them in this order:

    cold_start   1  cold start (RIE start -> first invoke, the extension's start-up, SIGTERM -> exit)
    warm_invoke  2  warm invoke latency (2b: a function that works function_work_ms)
    memory       3  the extension's VmRSS over invokes; the store's heap per record
    local_api    4  /invocations latency and load on the full store (inside memory's run)
    zip_size     5  the layer zips
    proxy, telemetry   the optional modes, run when /environment's features show the extension has them
    export       7  the S3 export to a local S3 (moto): latency on vs off, post-invoke time, objects, shutdown
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable

from bench.harness import Counts, say
from bench.scenarios import proxy, telemetry


@dataclass
class Mode:
    """An optional mode of the extension, benchmarked when /environment's features show the
    extension has it (each scenario turns its mode on and checks that it is)."""

    key: str  # its name in --scenarios and in results["optionalModes"]
    title: str
    feature: str
    available: Callable[[dict], bool]
    run: Callable[[Counts], dict]


MODES = [
    Mode("proxy", "proxy mode (added latency, 6 MB body throughput)", "runtimeProxy", lambda f: isinstance(f.get("runtimeProxy"), bool), proxy.run),
    Mode("telemetry", "telemetry mode (start-up with subscription)", "telemetry", lambda f: f.get("telemetry") in ("on", "unsupported"), telemetry.run),
]


def optional_modes(environment: dict, counts: Counts, chosen: set[str], timings: dict) -> dict:
    features = environment.get("features", {})
    result = {}
    for mode in MODES:
        if mode.key not in chosen:
            result[mode.key] = {"available": None, "reason": "not in --scenarios"}
            continue
        if not mode.available(features):
            why = f"features.{mode.feature}={json.dumps(features.get(mode.feature))}"
            say(f"  {mode.title}: not available ({why}); skipped")
            result[mode.key] = {"available": False, "reason": why}
            continue
        say(f"- {mode.title}")
        t = time.perf_counter()
        result[mode.key] = mode.run(counts)
        timings[mode.key] = round(time.perf_counter() - t, 1)
    return result

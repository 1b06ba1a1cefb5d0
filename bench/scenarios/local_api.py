"""Scenario 4, the local API's latency and throughput on a full store, measured by bench/loadgen
(Go, keep-alive, reads every body): /invocations?limit=100 and the whole store, on one connection
and under load. Runs inside the memory scenario, which fills the store."""

from __future__ import annotations

import json
import subprocess

from bench.harness import BenchLambda, Counts, programs


def loadgen(url: str, connections: int, requests: int = 0, seconds: float = 60.0, warmup: int = 0) -> dict:
    command = [str(programs().loadgen), "-url", url, "-c", str(connections), "-n", str(requests), "-d", f"{seconds}s", "-warmup", str(warmup)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=seconds + 120)
    return json.loads(out.stdout)


def run(local: BenchLambda, counts: Counts) -> dict:
    base = f"http://127.0.0.1:{local.api_port}"
    warm = max(1, counts.api_requests // 20)
    return {
        "last100": loadgen(f"{base}/invocations?limit=100", 1, counts.api_requests, warmup=warm),
        "fullStore": loadgen(f"{base}/invocations", 1, max(20, counts.api_requests // 5), warmup=warm),
        "last100Load": loadgen(f"{base}/invocations?limit=100", counts.load_connections, seconds=counts.load_seconds, warmup=5),
        "fullStoreLoad": loadgen(f"{base}/invocations", counts.load_connections, seconds=counts.load_seconds, warmup=1),
        "client": "bench/loadgen (Go, keep-alive, reads the whole body)",
    }

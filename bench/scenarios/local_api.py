"""Scenario 4, the local API's latency and throughput on a full store, measured by bench/loadgen
(Go, one kept connection per client, reads every body): /invocations?limit=100 and the whole store,
on one connection and under load. Runs inside the memory scenario, which fills the store.

Beside each sequential measurement, in the same loadgen run and on the same connection, the URLs
taking turns in a rotating order: a noise floor, the cheapest answer the same server gives (a GET of
a path it does not serve: the router's 404 JSON, no store, no encoder), and /invocations?limit=1 (one
record, the same handler as limit=100). Whatever the machine's scheduling does to the tail falls
on the floor and the measured request alike, so "last 100 p99 minus floor p99" is what answering
100 records adds over a trivial answer. The raw p99 stays the target's value; the floor is beside it.
"""

from __future__ import annotations

import json
import subprocess

from bench.harness import BenchLambda, Counts, programs

# A path the local API does not serve: its answer is the router's 404 (the documented JSON error).
NOISE_FLOOR_PATH = "/bench-noise-floor"
# bench/loadgen's client: the exchange on one kept connection in the calling goroutine (see its doc).
CLIENT = "direct"


def loadgen(urls: str | list[str], connections: int, requests: int = 0, seconds: float = 60.0, warmup: int = 0,
            client: str = CLIENT) -> dict | list[dict]:  # fmt: skip
    """One loadgen run: its result, or with several URLs (taking turns) a result per URL."""
    urls = [urls] if isinstance(urls, str) else urls
    command = [str(programs().loadgen), "-c", str(connections), "-n", str(requests), "-d", f"{seconds}s", "-warmup", str(warmup), "-client", client]
    for url in urls:
        command += ["-url", url]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=seconds + 120)
    return json.loads(out.stdout)


def checked(result: dict, status: int) -> dict:
    """A loadgen result whose every request was answered with `status`."""
    if result["errors"] or result["statuses"] != [status] or result["requests"] == 0:
        raise RuntimeError(f"{result['url']}: expected every answer {status}, got {result}")
    return result


def over_floor(measured: dict, floor: dict) -> dict:
    """What a measured request takes over the noise floor measured beside it, per percentile."""
    return {p: round(measured[p] - floor[p], 4) for p in ("p50Ms", "p90Ms", "p99Ms")}


def run(local: BenchLambda, counts: Counts) -> dict:
    base = f"http://127.0.0.1:{local.api_port}"
    warm = max(1, counts.api_requests // 20)
    floor_url, last100_url, full_url = base + NOISE_FLOOR_PATH, f"{base}/invocations?limit=100", f"{base}/invocations"
    floor, limit1, last100 = loadgen([floor_url, f"{base}/invocations?limit=1", last100_url], 1, counts.api_requests, warmup=warm)
    full_floor, full = loadgen([floor_url, full_url], 1, max(20, counts.api_requests // 5), warmup=warm)
    for result, status in ((floor, 404), (full_floor, 404), (limit1, 200), (last100, 200), (full, 200)):
        checked(result, status)
    return {
        "last100": last100,
        "fullStore": full,
        "noiseFloor": floor,
        "limit1": limit1,
        "noiseFloorWithFullStore": full_floor,
        "overNoiseFloor": {"last100": over_floor(last100, floor), "limit1": over_floor(limit1, floor), "fullStore": over_floor(full, full_floor)},
        "last100Load": loadgen(last100_url, counts.load_connections, seconds=counts.load_seconds, warmup=5),
        "fullStoreLoad": loadgen(full_url, counts.load_connections, seconds=counts.load_seconds, warmup=1),
        "client": f"bench/loadgen -client {CLIENT} (Go, one kept connection each, the exchange in the calling goroutine, reads the whole body)",
        "noiseFloorRequest": f"GET {NOISE_FLOOR_PATH} (the router's 404 JSON), interleaved on the same connection",
    }

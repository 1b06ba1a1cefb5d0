"""`make bench`: what the invocation history extension costs, as ratios measured in one run.

Every scenario runs the same function (bench/noop-function: a standard-library custom runtime that
answers {} and never calls the extension) under AWS's Lambda Runtime Interface Emulator (RIE) in
three configurations, in the same session and interleaved, so noise from other work on the
machine falls on all three alike:

    baseline  no extension
    floor     bench/floor: a Go extension that only registers and loops /event/next
    ours      invocation-history-extension, as `make build` built it

Scenarios (issue 6): 1 cold start, 2 warm invoke latency (2b: the same with a function that works
10 ms), 3 extension memory (RSS), 4 local API latency and load, 5 layer zip size, 6 the optional
modes, when /environment's features show the extension has them: the Runtime API proxy (ours with
the proxy on against ours without it: added latency, a 6 MB answer) and telemetry (start-up with
the subscription against telemetry off, on the RIE's standard and managed-instances modes).
Results go to bench/results/<date>.json and <date>.png (bench/results/tmp/ for a quick run, so it
never replaces the published one), and a table to stdout.

    python -m bench.run            # quick: about a minute
    python -m bench.run --full     # the published numbers
    python -m bench.run --help     # every count is a parameter

Invokes are POSTed with http.client on one keep-alive connection, not through boto3 (whose own
overhead of about a millisecond would dilute the ratios).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import http.client
import io
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tools.local_lambda import EXTENSION, EXTENSION_NAME, ROOT, WRAPPER, LocalLambda, free_port, wait_until

BENCH = ROOT / "bench"
BIN = ROOT / "build/bench"
FLOOR_NAME = "floor-extension"  # registered name == file name in /opt/extensions
FUNCTION = BIN / "bootstrap"
FLOOR = BIN / FLOOR_NAME
LOADGEN = BIN / "loadgen"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
CONFIGS = ("baseline", "floor", "ours")
ARCHES = {"x86_64": "amd64", "arm64": "arm64"}
MIB = 1024 * 1024
# Extra environment for our extension's environments (--ours-env), for what-if runs such as GOGC=50.
OURS_ENV: dict[str, str] = {}

# The targets of issue 6: name -> (unit, limit). "Met" means value <= limit.
TARGETS = {
    "extension start -> first /event/next p50": ("ms", 5.0),
    "warm invoke p50 ratio vs baseline": ("x", 1.05),
    "warm invoke p50 ratio vs floor": ("x", 1.02),
    "RSS at 10,000 records": ("MiB", 10.0),
    "RSS growth once the store is full": ("%", 5.0),
    "/invocations last 100 records p99": ("ms", 1.0),
    "/invocations full store p99": ("ms", 20.0),
    "layer zip x86_64": ("MiB", 3.0),
    "layer zip arm64": ("MiB", 3.0),
}


@dataclass
class Counts:
    """Repeat counts and warm-ups; --full takes the published ones, each flag overrides one."""

    cold_starts: int = 10
    warmup: int = 200
    warm_invokes: int = 2000
    max_records: int = 10_000
    memory_invokes: int = 12_000
    memory_samples: int = 12
    api_requests: int = 300
    load_seconds: float = 3.0
    load_connections: int = 4
    function_work_ms: float = 10.0
    proxy_invokes: int = 2000
    proxy_body_invokes: int = 20
    proxy_body_bytes: int = 6 * MIB - 4096  # Lambda's limit is 6 MB (MiB) including its framing
    telemetry_starts: int = 10

    # Scenario 2b: a tenth of scenario 2's counts (each invoke takes function_work_ms longer).
    @property
    def work_invokes(self) -> int:
        return max(50, self.warm_invokes // 10)

    @property
    def work_warmup(self) -> int:
        return max(5, self.warmup // 10)


QUICK = Counts()
FULL = Counts(
    cold_starts=40, warmup=1000, warm_invokes=10_000, memory_invokes=100_000, memory_samples=40,
    api_requests=2000, load_seconds=10.0, proxy_invokes=10_000, proxy_body_invokes=100, telemetry_starts=40,
)  # fmt: skip


# -- statistics -----------------------------------------------------------------------------------
def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (the same definition as bench/loadgen)."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), -(-len(ordered) * p // 100)))
    return ordered[int(rank) - 1]


def summary(samples: list[float]) -> dict:
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "median": statistics.median(samples),
        "p50": percentile(samples, 50),
        "p90": percentile(samples, 90),
        "p99": percentile(samples, 99),
        "mean": statistics.fmean(samples),
        "min": min(samples),
        "max": max(samples),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


# -- building -------------------------------------------------------------------------------------
def go_build(module: str, out: Path, goarch: str | None = None) -> Path:
    """Build one of bench/'s Go modules with the layer's flags (static, stripped, no build id)."""
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    if goarch:
        env.update(GOOS="linux", GOARCH=goarch)
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", str(out), "."],
        cwd=BENCH / module, env=env, check=True,
    )  # fmt: skip
    return out


def build_tools() -> None:
    go_build("noop-function", FUNCTION)
    go_build("floor", FLOOR)
    go_build("loadgen", LOADGEN)
    if not EXTENSION.exists():
        raise SystemExit(f"missing {EXTENSION}: run `make build` (or `make bench`)")


# -- one execution environment ---------------------------------------------------------------------
class BenchLambda(LocalLambda):
    """LocalLambda with what measuring needs: a tight port poll, raw keep-alive invokes, the
    extension's process, and the variants of scenario 6 (the Runtime API proxy through the
    wrapper, the RIE's managed-instances mode)."""

    def __init__(self, config: str, env: dict | None = None, work_ms: float = 0, *, proxy: bool | None = None,
                 managed: bool = False, response_bytes: int = 0):  # fmt: skip
        """proxy: None runs the function directly; False and True run it through
        /opt/invocation-history-wrapper (an exec when the proxy is off), with the proxy off or on,
        so that the two sides of the proxy scenario differ by the proxy alone. managed: the RIE's
        managed-instances mode, which has a real Telemetry API (as tests/local/test_telemetry.py
        starts it). response_bytes: the function answers a JSON string of that size."""
        self.config = config
        self.api_port = free_port()
        extensions = {"baseline": {}, "floor": {FLOOR_NAME: FLOOR}, "ours": None}[config]
        env = {
            "INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(self.api_port),
            "BENCH_FUNCTION_WORK_MS": str(work_ms),
            **({"BENCH_FUNCTION_RESPONSE_BYTES": str(response_bytes)} if response_bytes else {}),
            **(OURS_ENV if config == "ours" else {}),
            **(env or {}),
        }
        bootstrap, opt_files = [str(FUNCTION)], {}
        if proxy is not None:
            opt_files[WRAPPER.name] = WRAPPER
            bootstrap = [f"/opt/{WRAPPER.name}", str(FUNCTION)]
            if proxy:
                env.update({"INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY": "on", "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_PORT": str(free_port())})
        # Cold starts take a few ms: probe the invoke endpoint every 0.5 ms, not LocalLambda's 20.
        super().__init__(bootstrap, env=env, extensions=extensions, opt_files=opt_files,
                         managed_instances=1 if managed else 0, poll_interval=0.0005)
        self._conn: http.client.HTTPConnection | None = None

    @property
    def extension_name(self) -> str | None:
        return {"baseline": None, "floor": FLOOR_NAME, "ours": EXTENSION_NAME}[self.config]

    def invoke_raw(self, body: bytes = b"{}") -> float:
        """POST one invoke on a kept-alive connection; return its latency in ms."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        for _ in range(200):
            start = time.perf_counter()
            self._conn.request("POST", INVOKE_PATH, body=body)
            response = self._conn.getresponse()
            payload = response.read()
            elapsed = (time.perf_counter() - start) * 1000
            # The managed-instances mode answers 400 "no idle runtimes" until its runtime is at /next.
            if not (self.managed_instances and response.status == 400):
                break
            time.sleep(0.005)
        self.last_payload_bytes = len(payload)
        if response.status != 200 or response.getheader("X-Amz-Function-Error"):
            raise RuntimeError(f"{self.config}: invoke failed {response.status} {payload[:200]!r}\n{self.logs()[-3000:]}")
        return elapsed

    def stop(self, timeout: float = 10.0) -> int:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        return super().stop(timeout)

    def extension_pid(self) -> int | None:
        """The extension's PID: a descendant of the RIE whose executable has the extension's name."""
        name = self.extension_name
        if name is None or self.process is None:
            return None
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
        todo = list(children.get(self.process.pid, []))
        while todo:
            pid = todo.pop()
            try:
                argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            if os.path.basename(argv0) == name:
                return pid
            todo.extend(children.get(pid, []))
        return None

    def memory(self) -> dict | None:
        """VmRSS and VmHWM of the extension, in bytes."""
        pid = self.extension_pid()
        if pid is None:
            return None
        fields = {}
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) * 1024
        # rss and hwm are what the targets use; anon is the private part (heap, stacks), file is
        # the mapped binary's pages (shared with the page cache, about the same for any Go binary).
        return {"rss": fields["VmRSS"], "hwm": fields["VmHWM"], "anon": fields.get("RssAnon"), "file": fields.get("RssFile")}

    def startup_ms(self, timeout: float = 2.0) -> float | None:
        """startupMs from the extension's ready line (main() start -> just before the first /event/next)."""
        if self.extension_name is None:
            return None
        pattern = re.compile(rf"msg=ready extension={re.escape(self.extension_name)} .*?startupMs=([0-9.]+)")
        match = wait_until(lambda: pattern.search(self.logs()), timeout)
        if match:
            return float(match.group(1))
        raise RuntimeError(f"{self.config}: no ready line with startupMs in the logs:\n{self.logs()[-3000:]}")

    def init_report_ms(self) -> float | None:
        match = re.search(r"INIT REPORT\(durationMs: ([0-9.]+)\)", self.logs())
        return float(match.group(1)) if match else None

    def get_json(self, path: str) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return json.loads(response.read())
        finally:
            conn.close()



def rotated(configs: tuple[str, ...], i: int) -> list[str]:
    """The configurations in an order that rotates each round, so none is always first."""
    k = i % len(configs)
    return list(configs[k:] + configs[:k])


def say(message: str) -> None:
    print(message, flush=True)


def start_all(envs: dict[str, BenchLambda]) -> dict[str, BenchLambda]:
    """Start every environment; when one fails, stop those already running before raising."""
    try:
        for local in envs.values():
            local.start()
    except BaseException:
        for local in envs.values():
            local.cleanup()
        raise
    return envs


def interleaved(envs: dict[str, BenchLambda], invokes: int, warmup: int) -> dict[str, list[float]]:
    """Warm each environment up, then invoke each once per round, in an order that rotates:
    latencies in ms by configuration."""
    for local in envs.values():
        for _ in range(warmup):
            local.invoke_raw()
    samples: dict[str, list[float]] = {c: [] for c in envs}
    for i in range(invokes):
        for config in rotated(tuple(envs), i):
            samples[config].append(envs[config].invoke_raw())
    return samples


# -- scenario 1: cold start ------------------------------------------------------------------------
def cold_start(counts: Counts) -> dict:
    """RIE start -> first invoke answered (extensions start lazily at that invoke), the RIE's
    INIT REPORT, the extension's own start-up time, and SIGTERM -> exit."""
    samples = {c: {"coldMs": [], "initReportMs": [], "extensionStartupMs": [], "stopMs": []} for c in CONFIGS}
    for i in range(counts.cold_starts):
        for config in rotated(CONFIGS, i):
            local = BenchLambda(config)
            try:
                start = time.perf_counter()
                local.start()
                local.invoke_raw()
                cold = (time.perf_counter() - start) * 1000
                startup = local.startup_ms()
                before_stop = time.perf_counter()
                code = local.stop()
                stopped = (time.perf_counter() - before_stop) * 1000
                if code != 0:
                    raise RuntimeError(f"{config}: RIE exited {code}:\n{local.logs()[-3000:]}")
                s = samples[config]
                s["coldMs"].append(cold)
                s["stopMs"].append(stopped)
                if (init := local.init_report_ms()) is not None:
                    s["initReportMs"].append(init)
                if startup is not None:
                    s["extensionStartupMs"].append(startup)
            finally:
                local.cleanup()
    result = {c: {k: summary(v) for k, v in samples[c].items() if v} for c in CONFIGS}
    for c in CONFIGS:
        result[c]["samples"] = {k: [round(x, 3) for x in v] for k, v in samples[c].items() if v}
    p50 = lambda c, k: result[c].get(k, {}).get("p50")  # noqa: E731
    result["ratios"] = {
        "coldMs p50 ours/baseline": ratio(p50("ours", "coldMs"), p50("baseline", "coldMs")),
        "coldMs p50 ours/floor": ratio(p50("ours", "coldMs"), p50("floor", "coldMs")),
        "extensionStartupMs p50 ours/floor": ratio(p50("ours", "extensionStartupMs"), p50("floor", "extensionStartupMs")),
    }  # fmt: skip
    return result


# -- scenario 2: warm invoke latency ---------------------------------------------------------------
def warm_invoke(counts: Counts, work_ms: float = 0) -> dict:
    """Three environments side by side; each round invokes each once, in a rotating order."""
    envs = start_all({c: BenchLambda(c, work_ms=work_ms) for c in CONFIGS})
    invokes, warmup = (counts.work_invokes, counts.work_warmup) if work_ms else (counts.warm_invokes, counts.warmup)
    try:
        samples = interleaved(envs, invokes, warmup)
        memory = {c: envs[c].memory() for c in ("floor", "ours")}
    finally:
        for local in envs.values():
            local.cleanup()
    result = {c: summary(samples[c]) for c in CONFIGS}
    result["ratios"] = {
        f"{p} ours/{other}": ratio(result["ours"][p], result[other][p])
        for other in ("baseline", "floor") for p in ("p50", "p90", "p99")
    }  # fmt: skip
    result["ratios"]["p50 floor/baseline"] = ratio(result["floor"]["p50"], result["baseline"]["p50"])
    result["extensionMemoryAfter"] = memory
    result["functionWorkMs"] = work_ms
    return result


# -- scenarios 3 and 4: memory, then the local API on the full store ---------------------------------
def loadgen(url: str, connections: int, requests: int = 0, seconds: float = 60.0, warmup: int = 0) -> dict:
    command = [str(LOADGEN), "-url", url, "-c", str(connections), "-n", str(requests), "-d", f"{seconds}s", "-warmup", str(warmup)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=seconds + 120)
    return json.loads(out.stdout)


def memory_and_api(counts: Counts) -> tuple[dict, dict, dict]:
    """Our extension and the floor side by side, invoked alternately: RSS idle (after the first
    invoke, which starts extensions), at max_records records, and sampled up to memory_invokes;
    then the local API on our full store."""
    envs = {
        "ours": BenchLambda("ours", env={"INVOCATION_HISTORY_EXTENSION_MAX_RECORDS": str(counts.max_records)}),
        "floor": BenchLambda("floor"),
    }
    try:
        for local in envs.values():
            local.start().invoke_raw()
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

        api = local_api(ours, counts)
        after_api = ours.memory()
    finally:
        for local in envs.values():
            local.cleanup()

    at_full = next(s for s in series if s["invokes"] == counts.max_records)
    after_full = [s for s in series if s["invokes"] >= counts.max_records]
    growth = None
    if len(after_full) > 1:
        # Flat: the largest RSS seen after the store filled, against the RSS when it filled.
        growth = 100 * (max(s["ours"]["rss"] for s in after_full) - at_full["ours"]["rss"]) / at_full["ours"]["rss"]
    idle = series[0]
    memory = {
        "maxRecords": counts.max_records,
        "invokes": done,
        "invokesPerSecond": round(2 * (done - 1) / invoke_seconds, 1),
        "retainedAtEnd": retained,
        "idle": idle["ours"],
        "atMaxRecords": at_full["ours"],
        "atEnd": series[-1]["ours"],
        "afterApiLoad": after_api,
        "floor": {"idle": idle["floor"], "atMaxRecords": at_full["floor"], "atEnd": series[-1]["floor"]},
        "ratios": {
            "rss idle ours/floor": ratio(idle["ours"]["rss"], idle["floor"]["rss"]),
            "rss at maxRecords ours/floor": ratio(at_full["ours"]["rss"], at_full["floor"]["rss"]),
            "rss at end ours/floor": ratio(series[-1]["ours"]["rss"], series[-1]["floor"]["rss"]),
        },
        "bytesPerRecordRss": round((at_full["ours"]["rss"] - idle["ours"]["rss"]) / counts.max_records, 1),
        "bytesPerRecordRssOverFloor": round(
            ((at_full["ours"]["rss"] - at_full["floor"]["rss"]) - (idle["ours"]["rss"] - idle["floor"]["rss"])) / counts.max_records, 1
        ),
        "rssGrowthAfterFullPercent": None if growth is None else round(growth, 2),
        "series": series,
    }
    return memory, api, environment


def local_api(local: BenchLambda, counts: Counts) -> dict:
    base = f"http://127.0.0.1:{local.api_port}"
    warm = max(1, counts.api_requests // 20)
    return {
        "last100": loadgen(f"{base}/invocations?limit=100", 1, counts.api_requests, warmup=warm),
        "fullStore": loadgen(f"{base}/invocations", 1, max(20, counts.api_requests // 5), warmup=warm),
        "last100Load": loadgen(f"{base}/invocations?limit=100", counts.load_connections, seconds=counts.load_seconds, warmup=5),
        "fullStoreLoad": loadgen(f"{base}/invocations", counts.load_connections, seconds=counts.load_seconds, warmup=1),
        "client": "bench/loadgen (Go, keep-alive, reads the whole body)",
    }


# -- scenario 5: layer zip size --------------------------------------------------------------------
def zip_sizes() -> dict:
    """Our layer zips (`make layer`) against the floor extension zipped the same way."""
    result = {}
    for arch, goarch in ARCHES.items():
        ours = ROOT / f"dist/invocation-history-extension-{arch}.zip"
        floor_binary = go_build("floor", BIN / arch / FLOOR_NAME, goarch)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            info = zipfile.ZipInfo(f"extensions/{FLOOR_NAME}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100755 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, floor_binary.read_bytes())
        result[arch] = {
            "ours": ours.stat().st_size if ours.exists() else None,
            "floor": len(buffer.getvalue()),
        }
        result[arch]["ratio ours/floor"] = ratio(result[arch]["ours"], result[arch]["floor"])
    return result


# -- scenario 6: the Runtime API proxy and telemetry modes -------------------------------------------
PROXY_CONFIGS = ("ours", "ours+proxy")


def proxy_mode(counts: Counts) -> dict:
    """Our extension with the Runtime API proxy on against the same without it, side by side and
    interleaved. Both run the function through /opt/invocation-history-wrapper (without the proxy's
    address file it only execs), so the proxy's loopback hop is the only difference. 1: warm
    invokes of the no-op function; 2: a body of proxy_body_bytes (just under Lambda's 6 MB) each."""
    def environments(**kw) -> dict[str, BenchLambda]:
        return start_all({c: BenchLambda("ours", proxy=c == "ours+proxy", **kw) for c in PROXY_CONFIGS})

    def answered_last(local: BenchLambda) -> dict:
        # The proxy records the runtime's answer before passing Lambda's reply on, but the RIE may
        # answer the invoker first: give the record a moment to carry its outcome.
        wait_until(lambda: "outcome" in local.get_json("/invocations?limit=1")["invocations"][-1], 2.0)
        return local.get_json("/invocations?limit=1")["invocations"][-1]

    result: dict = {"available": True, "configs": {"ours": "proxy off, wrapper as the bootstrap", "ours+proxy": "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY=on"}}
    envs = environments()
    try:
        latency = interleaved(envs, counts.proxy_invokes, counts.warmup)
        proxied = envs["ours+proxy"]
        features = proxied.get_json("/environment")["features"]
        last = answered_last(proxied)
        if features.get("runtimeProxy") is not True or "outcome" not in last:
            raise RuntimeError(f"the proxy is not in the runtime's path: features {features}, last record {last}\n{proxied.logs()[-3000:]}")
        if "outcome" in envs["ours"].get_json("/invocations?limit=1")["invocations"][-1]:
            raise RuntimeError("the run without the proxy recorded a proxy outcome")
    finally:
        for local in envs.values():
            local.cleanup()
    result["latency"] = {c: summary(latency[c]) for c in PROXY_CONFIGS}
    result["latency"]["ratios"] = {f"{p} proxy/ours": ratio(result["latency"]["ours+proxy"][p], result["latency"]["ours"][p]) for p in ("p50", "p90", "p99")}
    result["latency"]["addedMs"] = {p: round(result["latency"]["ours+proxy"][p] - result["latency"]["ours"][p], 4) for p in ("p50", "p90", "p99")}

    size = counts.proxy_body_bytes
    envs = environments(response_bytes=size)
    try:
        body = interleaved(envs, counts.proxy_body_invokes, max(2, counts.proxy_body_invokes // 10))
        for config, local in envs.items():
            if local.last_payload_bytes != size:
                raise RuntimeError(f"{config}: answer of {local.last_payload_bytes} bytes, expected {size}")
        recorded = answered_last(envs["ours+proxy"]).get("responseBytes")
    finally:
        for local in envs.values():
            local.cleanup()
    result["body"] = {"bytes": size, "responseBytesRecorded": recorded}
    for c in PROXY_CONFIGS:
        result["body"][c] = summary(body[c])
        result["body"][c]["MBps p50"] = round(size / 1e6 / (result["body"][c]["p50"] / 1000), 1)
    result["body"]["ratios"] = {f"{p} proxy/ours": ratio(result["body"]["ours+proxy"][p], result["body"]["ours"][p]) for p in ("p50", "p90", "p99")}
    result["body"]["addedMs"] = {p: round(result["body"]["ours+proxy"][p] - result["body"]["ours"][p], 3) for p in ("p50", "p99")}
    return result


TELEMETRY_SETTINGS = ("on", "off")


def telemetry_mode(counts: Counts) -> dict:
    """Extension start -> first /event/next (the ready line's startupMs) with the telemetry
    subscription (the default) against INVOCATION_HISTORY_EXTENSION_TELEMETRY=off, fresh starts
    alternating, on the RIE's standard mode (the subscription is answered Telemetry.NotSupported)
    and its managed-instances mode (a real Telemetry API; the extension registers for SHUTDOWN only)."""
    result: dict = {"available": True}
    for mode in ("standard", "managedInstances"):
        samples: dict[str, list[float]] = {s: [] for s in TELEMETRY_SETTINGS}
        feature: dict[str, str] = {}
        for i in range(counts.telemetry_starts):
            for setting in rotated(TELEMETRY_SETTINGS, i):
                local = BenchLambda("ours", env={"INVOCATION_HISTORY_EXTENSION_TELEMETRY": setting}, managed=mode == "managedInstances")
                try:
                    local.start()
                    local.invoke_raw()
                    samples[setting].append(local.startup_ms())
                    if setting not in feature:
                        feature[setting] = local.get_json("/environment")["features"]["telemetry"]
                    if (code := local.stop()) != 0:
                        raise RuntimeError(f"telemetry {setting} ({mode}): RIE exited {code}:\n{local.logs()[-3000:]}")
                finally:
                    local.cleanup()
        r = {s: summary(samples[s]) for s in TELEMETRY_SETTINGS}
        r["features.telemetry"] = feature
        r["samples"] = {s: [round(x, 3) for x in v] for s, v in samples.items()}
        r["ratios"] = {f"{p} on/off": ratio(r["on"][p], r["off"][p]) for p in ("p50", "p90")}
        r["addedMs"] = {p: round(r["on"][p] - r["off"][p], 3) for p in ("p50", "p90")}
        result[mode] = r
    expected = {"standard": "unsupported", "managedInstances": "on"}
    for mode, want in expected.items():
        if result[mode]["features.telemetry"] != {"on": want, "off": "off"}:
            raise RuntimeError(f"{mode}: features.telemetry {result[mode]['features.telemetry']}, expected on: {want!r}, off: 'off'")
    return result


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
    Mode("proxy", "proxy mode (added latency, 6 MB body throughput)", "runtimeProxy", lambda f: isinstance(f.get("runtimeProxy"), bool), proxy_mode),
    Mode("telemetry", "telemetry mode (start-up with subscription)", "telemetry", lambda f: f.get("telemetry") in ("on", "unsupported"), telemetry_mode),
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


# -- Go benchmark: heap per record -------------------------------------------------------------------
def heap_per_record() -> float:
    """The store's heap per record from its Go benchmark: RSS deltas are coarse (pages, GC slack)."""
    out = subprocess.run(
        ["go", "test", "-run=^$", "-bench=StoreMemoryPerRecord", "-benchtime=3x", "./internal/history"],
        cwd=ROOT / "extension_src", capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    match = re.search(r"([0-9.]+) bytes/record", out.stdout)
    if out.returncode != 0 or not match:  # a broken benchmark is a failed scenario, not a missing number
        raise RuntimeError(f"go test -bench=StoreMemoryPerRecord failed (exit {out.returncode}):\n{out.stdout}{out.stderr}")
    return float(match.group(1))


# -- targets, table, chart ----------------------------------------------------------------------------
def targets(results: dict) -> dict:
    cold, warm, mem, api, zips = (results.get(k) for k in ("coldStart", "warmInvoke", "memory", "localApi", "zipSize"))
    values = {}
    if cold:
        values["extension start -> first /event/next p50"] = cold["ours"]["extensionStartupMs"]["p50"]
    if warm:
        values["warm invoke p50 ratio vs baseline"] = warm["ratios"]["p50 ours/baseline"]
        values["warm invoke p50 ratio vs floor"] = warm["ratios"]["p50 ours/floor"]
    if mem:
        values["RSS at 10,000 records"] = mem["atMaxRecords"]["rss"] / MIB if mem["maxRecords"] == 10_000 else None
        values["RSS growth once the store is full"] = mem["rssGrowthAfterFullPercent"]
    if api:
        values["/invocations last 100 records p99"] = api["last100"]["p99Ms"]
        values["/invocations full store p99"] = api["fullStore"]["p99Ms"] if mem and mem["maxRecords"] == 10_000 else None
    if zips:
        for arch in ARCHES:
            size = zips[arch]["ours"]
            values[f"layer zip {arch}"] = None if size is None else size / MIB
    out = {}
    for name, (unit, limit) in TARGETS.items():
        value = values.get(name)
        out[name] = {
            "value": None if value is None else round(value, 4),
            "unit": unit,
            "limit": limit,
            "met": None if value is None else value <= limit,
        }
    return out


def fmt(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def table(results: dict) -> str:
    lines = []
    add = lines.append
    if cold := results.get("coldStart"):
        add("cold start (ms)                       baseline     floor      ours   ours/base  ours/floor")
        for key, label in (("coldMs", "RIE start -> first invoke, p50"), ("initReportMs", "RIE INIT REPORT, p50"),
                           ("extensionStartupMs", "extension start -> /event/next, p50"), ("stopMs", "SIGTERM -> RIE exit, p50")):  # fmt: skip
            v = [cold[c].get(key, {}).get("p50") for c in CONFIGS]
            add(f"  {label:35} {fmt(v[0]):>8} {fmt(v[1]):>9} {fmt(v[2]):>9} {fmt(ratio(v[2], v[0])):>11} {fmt(ratio(v[2], v[1])):>11}")
    if warm := results.get("warmInvoke"):
        add(f"warm invoke (ms, n={warm['ours']['n']})")
        for p in ("p50", "p90", "p99"):
            v = [warm[c][p] for c in CONFIGS]
            add(f"  {p:35} {fmt(v[0]):>8} {fmt(v[1]):>9} {fmt(v[2]):>9} {fmt(ratio(v[2], v[0])):>11} {fmt(ratio(v[2], v[1])):>11}")
    if warm := results.get("warmInvokeWithWork"):
        add(f"warm invoke, function works {warm['functionWorkMs']:g} ms (ms, n={warm['ours']['n']})")
        for p in ("p50", "p99"):
            v = [warm[c][p] for c in CONFIGS]
            add(f"  {p:35} {fmt(v[0]):>8} {fmt(v[1]):>9} {fmt(v[2]):>9} {fmt(ratio(v[2], v[0])):>11} {fmt(ratio(v[2], v[1])):>11}")
    if mem := results.get("memory"):
        add("extension memory (MiB)                floor      ours  ours/floor")
        fl = mem["floor"]
        rows = [("VmRSS idle (after 1st invoke)", fl["idle"], mem["idle"]),
                (f"VmRSS at {mem['maxRecords']:,} records", fl["atMaxRecords"], mem["atMaxRecords"]),
                (f"VmRSS after {mem['invokes']:,} invokes", fl["atEnd"], mem["atEnd"])]  # fmt: skip
        for label, f, o in rows:
            add(f"  {label:35} {fmt(f['rss'] / MIB, 2):>8} {fmt(o['rss'] / MIB, 2):>9} {fmt(ratio(o['rss'], f['rss']), 2):>11}")
        for label, key in (("RssAnon at the end", "anon"), ("RssFile at the end", "file")):
            add(f"  {label:35} {fmt(fl['atEnd'][key] / MIB, 2):>8} {fmt(mem['atEnd'][key] / MIB, 2):>9} {fmt(ratio(mem['atEnd'][key], fl['atEnd'][key]), 2):>11}")
        add(f"  {'VmHWM at the end':35} {fmt(fl['atEnd']['hwm'] / MIB, 2):>8} {fmt(mem['atEnd']['hwm'] / MIB, 2):>9}")
        add(f"  {'VmRSS after the local API load':35} {'':>8} {fmt(mem['afterApiLoad']['rss'] / MIB, 2):>9}")
        add(f"  {'RSS growth after the store is full':35} {'':>8} {fmt(mem['rssGrowthAfterFullPercent'], 2):>8}%")
        add(f"  {'RSS bytes/record (at full - idle)':35} {'':>8} {fmt(mem['bytesPerRecordRss'], 0):>9}")
        if results.get("heapBytesPerRecord"):
            add(f"  {'heap bytes/record (Go benchmark)':35} {'':>8} {fmt(results['heapBytesPerRecord'], 0):>9}")
    if api := results.get("localApi"):
        add("local API (ms)                          p50       p90       p99     req/s")
        for key, label in (("last100", "/invocations?limit=100, 1 conn"), ("fullStore", "/invocations (full store), 1 conn"),
                           ("last100Load", f"limit=100, {api['last100Load']['connections']} conns"),
                           ("fullStoreLoad", f"full store, {api['fullStoreLoad']['connections']} conns")):  # fmt: skip
            r = api[key]
            add(f"  {label:35} {fmt(r['p50Ms']):>6} {fmt(r['p90Ms']):>9} {fmt(r['p99Ms']):>9} {r['rps']:>9.0f}")
    if zips := results.get("zipSize"):
        add("layer zip (bytes)                      floor      ours  ours/floor")
        for arch in ARCHES:
            z = zips[arch]
            add(f"  {arch:35} {z['floor']:>8} {z['ours'] or 0:>9} {fmt(z['ratio ours/floor'], 2):>11}")
    modes = results.get("optionalModes", {})
    if (proxy := modes.get("proxy", {})).get("latency"):
        lat, body = proxy["latency"], proxy["body"]
        add("Runtime API proxy (ms)                    ours  ours+proxy  proxy/ours    added ms")
        for p in ("p50", "p90", "p99"):
            a, b = lat["ours"][p], lat["ours+proxy"][p]
            add(f"  {'warm invoke ' + p + ', n=' + str(lat['ours']['n']):35} {fmt(a):>8} {fmt(b):>11} {fmt(ratio(b, a)):>11} {fmt(b - a):>11}")
        for p in ("p50", "p99"):
            a, b = body["ours"][p], body["ours+proxy"][p]
            label = f"{body['bytes'] / MIB:.2f} MiB answer {p}, n={body['ours']['n']}"
            add(f"  {label:35} {fmt(a, 2):>8} {fmt(b, 2):>11} {fmt(ratio(b, a)):>11} {fmt(b - a, 2):>11}")
        add(f"  {'6 MB answer MB/s at p50':35} {body['ours']['MBps p50']:>8.1f} {body['ours+proxy']['MBps p50']:>11.1f}")
    if (tel := modes.get("telemetry", {})).get("standard"):
        add("telemetry: extension start -> /event/next (ms)   off        on     on/off    added ms")
        for mode, label in (("standard", "RIE standard (NotSupported)"), ("managedInstances", "RIE managed instances (real API)")):
            r = tel[mode]
            for p in ("p50", "p90"):
                add(f"  {label + ' ' + p + ', n=' + str(r['on']['n']):45} {fmt(r['off'][p]):>8} {fmt(r['on'][p]):>9} {fmt(ratio(r['on'][p], r['off'][p])):>9} {fmt(r['on'][p] - r['off'][p]):>11}")
    for key, mode in modes.items():
        if mode.get("available") is False:
            add(f"{key} mode: not available ({mode['reason']})")
    if tg := results.get("targets"):
        add("targets")
        for name, t in tg.items():
            met = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
            add(f"  {name:45} {fmt(t['value'], 3):>9} {t['unit']:<3} <= {t['limit']:<6} {met}")
    return "\n".join(lines)


def chart(results: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("  chart: matplotlib is not installed (make bench installs it); skipped")
        return False
    colors = {"baseline": "#9e9e9e", "floor": "#4c72b0", "ours": "#dd8452"}
    modes = results.get("optionalModes", {})
    nrows = 3 if any(m.get("available") for m in modes.values()) else 2
    fig, axes = plt.subplots(nrows, 3, figsize=(17, 4.5 * nrows))
    fig.suptitle(f"invocation-history-extension vs baseline and floor — {results['date']} ({'full' if results['full'] else 'quick'} run)")
    if cold := results.get("coldStart"):
        ax = axes[0][0]
        data = [cold[c]["samples"]["coldMs"] for c in CONFIGS]
        box = ax.boxplot(data, patch_artist=True, showfliers=True)
        ax.set_xticks(range(1, len(CONFIGS) + 1), CONFIGS)
        for patch, c in zip(box["boxes"], CONFIGS):
            patch.set_facecolor(colors[c])
        ax.set_title(f"cold start: RIE start → first invoke (n={len(data[0])})")
        ax.set_ylabel("ms")
    if warm := results.get("warmInvoke"):
        ax = axes[0][1]
        width = 0.27
        for i, c in enumerate(CONFIGS):
            vals = [warm[c][p] for p in ("p50", "p90", "p99")]
            bars = ax.bar([x + (i - 1) * width for x in range(3)], vals, width, label=c, color=colors[c])
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks(range(3), ["p50", "p90", "p99"])
        ax.set_title(f"warm invoke latency (n={warm['ours']['n']} each, interleaved)")
        ax.set_ylabel("ms")
        ax.legend()
    if mem := results.get("memory"):
        ax = axes[1][0]
        xs = [s["invokes"] for s in mem["series"]]
        for config in ("floor", "ours"):
            ax.plot(xs, [s[config]["rss"] / MIB for s in mem["series"]], marker=".", color=colors[config], label=f"{config} VmRSS")
            ax.plot(xs, [s[config]["hwm"] / MIB for s in mem["series"]], linestyle="--", color=colors[config], alpha=0.5, label=f"{config} VmHWM")
        ax.axvline(mem["maxRecords"], color="black", linestyle=":", label=f"store full ({mem['maxRecords']:,})")
        ax.axhline(10, color="red", linestyle=":", label="target 10 MB (MiB here)")
        ax.set_ylim(bottom=0)
        ax.set_title("extension memory over invokes")
        ax.set_xlabel("invokes")
        ax.set_ylabel("MiB")
        ax.legend(fontsize=8)
    if api := results.get("localApi"):
        ax = axes[1][1]
        labels = ["last 100\n1 conn", "full store\n1 conn", f"last 100\n{api['last100Load']['connections']} conns", f"full store\n{api['fullStoreLoad']['connections']} conns"]
        keys = ["last100", "fullStore", "last100Load", "fullStoreLoad"]
        for i, p in enumerate(("p50Ms", "p99Ms")):
            bars = ax.bar([x + (i - 0.5) * 0.38 for x in range(4)], [api[k][p] for k in keys], 0.38, label=p[:3], color=["#dd8452", "#8c4a1f"][i])
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_yscale("log")
        ax.set_xticks(range(4), labels, fontsize=8)
        ax.set_title("local API /invocations latency (ms, log scale)")
        ax.legend()
    ax = axes[0][2]
    rows = []
    for key, label in (("warmInvoke", "noop function"), ("warmInvokeWithWork", "function works {w:g} ms")):
        if w := results.get(key):
            rows.append((label.format(w=w["functionWorkMs"]), w))
    if rows:
        width = 0.38
        for i, other in enumerate(("baseline", "floor")):
            vals = [ratio(w["ours"]["p50"], w[other]["p50"]) for _, w in rows]
            bars = ax.bar([x + (i - 0.5) * width for x in range(len(rows))], vals, width, label=f"ours / {other}", color=colors[other])
            ax.bar_label(bars, fmt="%.3f", fontsize=8)
        ax.axhline(1.05, color="#9e9e9e", linestyle=":", label="target vs baseline 1.05")
        ax.axhline(1.02, color=colors["floor"], linestyle=":", label="target vs floor 1.02")
        ax.set_xticks(range(len(rows)), [label for label, _ in rows])
        ax.set_ylim(0.9, max(1.25, ax.get_ylim()[1]))
        ax.set_title("warm invoke p50 ratios")
        ax.legend(fontsize=8, loc="upper right")
    ax = axes[1][2]
    if zips := results.get("zipSize"):
        width = 0.38
        for i, config in enumerate(("floor", "ours")):
            bars = ax.bar([x + (i - 0.5) * width for x in range(len(ARCHES))], [(zips[a][config] or 0) / MIB for a in ARCHES], width, label=config, color=colors[config])
            ax.bar_label(bars, fmt="%.2f", fontsize=8)
        ax.axhline(3, color="red", linestyle=":", label="target 3 MB (MiB here)")
        ax.set_xticks(range(len(ARCHES)), list(ARCHES))
        ax.set_title("layer zip size (MiB)")
        ax.legend(fontsize=8, loc="lower right")
    if nrows == 3:
        chart_modes(modes, axes[2], colors)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def chart_modes(modes: dict, axes, colors: dict) -> None:
    """Scenario 6's row: the proxy's latency and 6 MB answers, telemetry's start-up cost."""
    proxy_colors = {"ours": colors["ours"], "ours+proxy": "#8c4a1f"}
    for ax, key, title in ((axes[0], "latency", "proxy: warm invoke, no-op function"), (axes[1], "body", "proxy: {mib:.2f} MiB answer")):
        part = modes.get("proxy", {}).get(key)
        if not part:
            ax.set_axis_off()
            continue
        for i, c in enumerate(PROXY_CONFIGS):
            bars = ax.bar([x + (i - 0.5) * 0.38 for x in range(3)], [part[c][p] for p in ("p50", "p90", "p99")], 0.38, label=c, color=proxy_colors[c])
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks(range(3), ["p50", "p90", "p99"])
        ax.set_title(f"{title.format(mib=part.get('bytes', 0) / MIB)} (n={part['ours']['n']} each, interleaved)")
        ax.set_ylabel("ms")
        ax.legend(fontsize=8)
    ax = axes[2]
    tel = modes.get("telemetry", {})
    if not tel.get("standard"):
        ax.set_axis_off()
        return
    labels = [("standard", "RIE standard\n(NotSupported)"), ("managedInstances", "RIE managed instances\n(real Telemetry API)")]
    for i, (setting, color) in enumerate((("off", "#9e9e9e"), ("on", colors["ours"]))):
        bars = ax.bar([x + (i - 0.5) * 0.38 for x in range(len(labels))], [tel[m][setting]["p50"] for m, _ in labels], 0.38, label=f"telemetry {setting}", color=color)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(range(len(labels)), [label for _, label in labels], fontsize=8)
    ax.set_title(f"extension start → first /event/next, p50 (n={tel['standard']['on']['n']} starts each)")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    go = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "extension_src"], cwd=ROOT, capture_output=True, text=True).stdout.strip())
    return {
        "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "arch": platform.machine(),
        "go": go, "python": platform.python_version(), "commit": commit + ("-dirty" if dirty else ""),
        "loadAverageAtStart": os.getloadavg(),
    }  # fmt: skip


# -- main --------------------------------------------------------------------------------------------
SCENARIOS = ("cold", "warm", "warm-work", "memory", "zip", "gobench", "proxy", "telemetry")


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Counts]:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the published counts (issue 6)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where <date>.json and <date>.png go; default bench/results for --full (the published run), "
                             "bench/results/tmp (ignored by git) for any other run")
    parser.add_argument("--date", default=dt.date.today().isoformat(), help="file name stem of the results")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--ours-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the environments that run our extension (repeatable), e.g. GOGC=50 for a "
                             "what-if run; the RIE passes it to the function too, and the floor and baseline never see it")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated subset of {','.join(SCENARIOS)}")
    for f in dataclasses.fields(Counts):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=None, help=f"quick {getattr(QUICK, f.name)}, full {getattr(FULL, f.name)}")
    args = parser.parse_args(argv)
    if args.out_dir is None:
        args.out_dir = BENCH / "results" if args.full else BENCH / "results/tmp"
    counts = dataclasses.replace(FULL if args.full else QUICK)
    for f in dataclasses.fields(Counts):
        if (value := getattr(args, f.name)) is not None:
            setattr(counts, f.name, value)
    return args, counts


def main(argv: list[str] | None = None) -> dict:
    args, counts = parse_args(argv)
    OURS_ENV.clear()
    OURS_ENV.update(item.split("=", 1) for item in args.ours_env)
    chosen = set(args.scenarios.split(","))
    if unknown := chosen - set(SCENARIOS):
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    began = time.perf_counter()
    say(f"bench: {'full' if args.full else 'quick'} run, {dataclasses.asdict(counts)}")
    build_tools()
    results: dict = {"date": args.date, "full": args.full, "counts": dataclasses.asdict(counts), "machine": machine(), "oursEnv": dict(OURS_ENV),
                     "invokeClient": "http.client, one keep-alive connection per environment (not boto3)",
                     "function": "bench/noop-function (standard-library custom runtime, answers {})"}  # fmt: skip
    timings = {}

    def run(label: str, key: str, fn: Callable[[], object]) -> None:
        say(f"- {label}")
        t = time.perf_counter()
        results[key] = fn()
        timings[key] = round(time.perf_counter() - t, 1)

    if "cold" in chosen:
        run(f"cold start: {counts.cold_starts} fresh starts per configuration", "coldStart", lambda: cold_start(counts))
    if "warm" in chosen:
        run(f"warm invoke: {counts.warm_invokes} interleaved invokes per configuration after {counts.warmup} warm-up", "warmInvoke", lambda: warm_invoke(counts))
    if "warm-work" in chosen:
        run(f"warm invoke, function working {counts.function_work_ms} ms: {counts.work_invokes} interleaved invokes per configuration",
            "warmInvokeWithWork", lambda: warm_invoke(counts, counts.function_work_ms))  # fmt: skip
    environment = None
    if "memory" in chosen:
        say(f"- memory: {counts.memory_invokes} invokes, store of {counts.max_records}; then the local API on the full store")
        t = time.perf_counter()
        results["memory"], results["localApi"], environment = memory_and_api(counts)
        timings["memory+localApi"] = round(time.perf_counter() - t, 1)
    if "zip" in chosen:
        run("layer zip size", "zipSize", zip_sizes)
    if "gobench" in chosen:
        run("heap per record (Go benchmark of the store)", "heapBytesPerRecord", heap_per_record)
    if environment is None and chosen & {m.key for m in MODES}:
        local = BenchLambda("ours").start()
        try:
            local.invoke_raw()
            environment = local.get_json("/environment")
        finally:
            local.cleanup()
    results["optionalModes"] = optional_modes(environment or {}, counts, chosen, timings)
    results["features"] = (environment or {}).get("features")
    results["targets"] = targets(results)
    timings["total"] = round(time.perf_counter() - began, 1)
    results["secondsPerScenario"] = timings

    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / f"{args.date}.json"
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    say("")
    say(table(results))
    say("")
    say(f"results: {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path}")
    if not args.no_chart:
        png = args.out_dir / f"{args.date}.png"
        if chart(results, png):
            say(f"chart:   {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")
    say(f"took {timings['total']} s")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])

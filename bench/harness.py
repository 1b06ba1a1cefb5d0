"""What every scenario of `make bench` shares: the configurations, the counts, statistics, building
the bench's own programs, and BenchLambda (one execution environment under the RIE, with what
measuring needs). The scenarios are in bench/scenarios/, the CLI in bench/run.py.

The configurations, run side by side in one session and interleaved, so that noise from other work
on the machine falls on all of them alike:

    baseline  no extension
    floor     bench/floor-rs: a Rust extension that only registers and loops /event/next, built as
              the extension is (static musl, the same release profile): the least any extension costs
    floor-go  bench/floor: the same in Go, the floor of the Go extension's published runs, kept as a
              reference row so the change of floor stays visible
    ours      invocation-history-extension, as `make build` built it
"""

from __future__ import annotations

import http.client
import os
import platform
import re
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tools.local_lambda import (
    EXTENSION,
    EXTENSION_NAME,
    ROOT,
    WRAPPER,
    LocalLambda,
    NoIdleRuntime,
    free_port,
    local_api_json,
    wait_until,
)

BENCH = ROOT / "bench"
BIN = ROOT / "build/bench"
FLOOR_NAME = "floor-extension"  # registered name == file name in /opt/extensions, for both floors
FUNCTION = BIN / "bootstrap"
LOADGEN = BIN / "loadgen"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
CONFIGS = ("baseline", "floor", "floor-go", "ours")
FLOORS = ("floor", "floor-go")
EXTENSIONS = ("floor", "floor-go", "ours")  # the configurations that run an extension
# Architecture as Lambda names it -> Go's GOARCH and Rust's target triple.
ARCHES = {"x86_64": "amd64", "arm64": "arm64"}
RUST_TARGETS = {"x86_64": "x86_64-unknown-linux-musl", "arm64": "aarch64-unknown-linux-musl"}
HOST_ARCH = {"aarch64": "arm64", "amd64": "x86_64"}.get(platform.machine(), platform.machine())
MIB = 1024 * 1024
# Starts the build information the Go linker writes into every Go binary, stripped or not.
GO_BUILD_INFO_MAGIC = b"\xff Go buildinf:"
# Extra environment for our extension's environments (--ours-env), for what-if runs.
OURS_ENV: dict[str, str] = {}


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
    export_invokes: int = 1000
    export_shutdowns: int = 5

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
    export_invokes=10_000, export_shutdowns=20,
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


def say(message: str) -> None:
    print(message, flush=True)


# -- building -------------------------------------------------------------------------------------
def go_build(module: str, out: Path, goarch: str | None = None) -> Path:
    """Build one of bench/'s Go modules with the Go layer's flags (static, stripped, no build id)."""
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    if goarch:
        env.update(GOOS="linux", GOARCH=goarch)
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", str(out), "."],
        cwd=BENCH / module, env=env, check=True,
    )  # fmt: skip
    return out


def floor_go(arch: str = HOST_ARCH) -> Path:
    """The Go floor for arch, built (a Go build of an unchanged module takes a moment)."""
    return go_build("floor", BIN / arch / "floor-go" / FLOOR_NAME, ARCHES[arch])


def floor_rs(arch: str = HOST_ARCH) -> Path:
    """The Rust floor for arch, built as the extension is: static musl, --locked, the release
    profile of bench/floor-rs/Cargo.toml (the extension's). CARGO_TARGET_DIR, when set, is shared."""
    triple = RUST_TARGETS[arch]
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR") or BIN / "cargo-target")
    env = dict(os.environ)
    # Links static arm64 binaries without a C cross-compiler (issue 11).
    env.setdefault("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld")
    command = ["cargo", "build", "--quiet", "--release", "--locked", "--target", triple, "--target-dir", str(target_dir)]
    try:
        done = subprocess.run(command, cwd=BENCH / "floor-rs", env=env, capture_output=True, text=True)
    except FileNotFoundError:
        raise SystemExit("cargo is needed to build the bench's floor (bench/floor-rs): install Rust with rustup") from None
    if done.returncode != 0:
        raise SystemExit(
            f"building bench/floor-rs for {triple} failed (exit {done.returncode}):\n{done.stderr}\n"
            f"(the musl targets: `rustup target add {' '.join(RUST_TARGETS.values())}`)"
        )
    return target_dir / triple / "release" / FLOOR_NAME


@dataclass
class Programs:
    """The executables the environments run, for this machine's architecture."""

    function: Path
    loadgen: Path
    floors: dict[str, Path]  # configuration -> the floor extension it runs


PROGRAMS: Programs | None = None


def build_programs() -> Programs:
    """Build the function, the load generator and both floors; the extension comes from `make build`."""
    global PROGRAMS
    if not EXTENSION.exists():
        raise SystemExit(f"missing {EXTENSION}: run `make build` (or `make bench`)")
    go_build("noop-function", FUNCTION)
    go_build("loadgen", LOADGEN)
    PROGRAMS = Programs(FUNCTION, LOADGEN, {"floor": floor_rs(), "floor-go": floor_go()})
    return PROGRAMS


def programs() -> Programs:
    if PROGRAMS is None:
        raise RuntimeError("build_programs() first")
    return PROGRAMS


def extension_build() -> dict:
    """What the extension under test is, so that a results file says which implementation it
    measured: its size, and for a Go binary (one with Go's build information) the Go that built it."""
    is_go = GO_BUILD_INFO_MAGIC in EXTENSION.read_bytes()
    return {"bytes": EXTENSION.stat().st_size, "language": "Go" if is_go else "Rust", "go": tool_version("go", "version", str(EXTENSION)) if is_go else None}


def tool_version(*command: str) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return done.stdout.strip().rsplit(": ", 1)[-1] if done.returncode == 0 else None


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "extension_src"], cwd=ROOT, capture_output=True, text=True).stdout.strip())
    return {
        "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "arch": platform.machine(),
        "go": tool_version("go", "version"), "rustc": tool_version("rustc", "--version"), "python": platform.python_version(),
        "commit": commit + ("-dirty" if dirty else ""), "loadAverageAtStart": os.getloadavg(),
    }  # fmt: skip


# -- one execution environment ---------------------------------------------------------------------
class BenchLambda(LocalLambda):
    """LocalLambda with what measuring needs: a tight port poll, raw keep-alive invokes, the
    extension's process, and the variants of the optional modes (the Runtime API proxy through the
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
        built = programs()
        extensions = {FLOOR_NAME: built.floors[config]} if config in FLOORS else {"baseline": {}, "ours": None}[config]
        env = {
            "INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(self.api_port),
            "BENCH_FUNCTION_WORK_MS": str(work_ms),
            **({"BENCH_FUNCTION_RESPONSE_BYTES": str(response_bytes)} if response_bytes else {}),
            **(OURS_ENV if config == "ours" else {}),
            **(env or {}),
        }
        bootstrap, opt_files = [str(built.function)], {}
        if proxy is not None:
            opt_files[WRAPPER.name] = WRAPPER
            bootstrap = [f"/opt/{WRAPPER.name}", str(built.function)]
            if proxy:
                env.update({"INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY": "on", "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_PORT": str(free_port())})
        # Cold starts take a few ms: probe the invoke endpoint every 0.5 ms, not LocalLambda's 20;
        # extensions start as they are, without the launcher that keeps their last log lines.
        super().__init__(bootstrap, env=env, extensions=extensions, opt_files=opt_files,
                         managed_instances=1 if managed else 0, poll_interval=0.0005,
                         extension_output_direct=False)  # fmt: skip
        self._conn: http.client.HTTPConnection | None = None

    @property
    def extension_name(self) -> str | None:
        return FLOOR_NAME if self.config in FLOORS else {"baseline": None, "ours": EXTENSION_NAME}[self.config]

    def invoke_raw(self, body: bytes = b"{}") -> float:
        """POST one invoke on a kept-alive connection; return its latency in ms (of the attempt the
        RIE took, when the managed-instances mode refused earlier ones)."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn = self._conn

        def attempt() -> tuple[float, http.client.HTTPResponse, bytes]:
            start = time.perf_counter()
            conn.request("POST", INVOKE_PATH, body=body)
            response = conn.getresponse()
            payload = response.read()
            elapsed = (time.perf_counter() - start) * 1000
            if self.refused(response.status):
                raise NoIdleRuntime
            return elapsed, response, payload

        elapsed, response, payload = self.until_accepted(attempt)
        self.last_payload_bytes = len(payload)
        if response.status != 200 or response.getheader("X-Amz-Function-Error"):
            raise RuntimeError(f"{self.config}: invoke failed {response.status} {payload[:200]!r}\n{self.logs()[-3000:]}")
        return elapsed

    def get_json(self, path: str) -> dict:
        """GET path from our extension's local API."""
        return local_api_json(self.api_port, path, timeout=10)

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
        # the mapped binary's pages (shared with the page cache).
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


# -- running environments side by side ---------------------------------------------------------------
def rotated(configs: tuple[str, ...], i: int) -> list[str]:
    """The configurations in an order that rotates each round, so none is always first."""
    k = i % len(configs)
    return list(configs[k:] + configs[:k])


def start_all(envs: dict[str, BenchLambda]) -> dict[str, BenchLambda]:
    """Start every environment; when one fails, stop those already running before raising."""
    try:
        for local in envs.values():
            local.start()
    except BaseException:
        cleanup_all(envs)
        raise
    return envs


def cleanup_all(envs: dict[str, BenchLambda]) -> None:
    for local in envs.values():
        local.cleanup()


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


def sampled(samples: dict[str, list[float]]) -> dict[str, list[float]]:
    """Samples as a results file keeps them (µs resolution)."""
    return {k: [round(x, 3) for x in v] for k, v in samples.items() if v}

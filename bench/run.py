"""`make bench`: what the invocation history extension costs, as ratios measured in one run.

Every scenario runs the same function (bench/noop-function: a standard-library custom runtime that
answers {} and never calls the extension) under AWS's Lambda Runtime Interface Emulator (RIE) in
four configurations, in the same session and interleaved, so noise from other work on the machine
falls on all of them alike:

    baseline  no extension
    floor     bench/floor-rs: a Rust extension that only registers and loops /event/next, built as
              the extension is (static musl): the least any extension can cost
    floor-go  bench/floor: the same in Go, the floor of the Go extension's published runs
    ours      invocation-history-extension, as `make build` built it

Scenarios (bench/scenarios/, one module each): 1 cold start, 2 warm invoke latency (2b: the same
with a function that works 10 ms), 3 extension memory (RSS; heap per record from the crate's own
measurement), 4 local API latency and load, 5 layer zip size, and the optional modes, when
/environment's features show the extension has them: the Runtime API proxy (ours with the proxy on
against ours without it: added latency, a 6 MB answer) and telemetry (start-up with the subscription
against telemetry off, on the RIE's standard and managed-instances modes); 7 the S3 export to a
local S3 (moto), on against off. The targets of issue 11 are checked beside the Go extension's last
published figures, and issue 12's for the export. Results go to bench/results/<date>.json
and <date>.png (bench/results/tmp/ for a quick run, so it never replaces the published one), and a
table to stdout.

    python -m bench.run            # quick: a few minutes
    python -m bench.run --full     # the published numbers
    python -m bench.run --help     # every count is a parameter

Invokes are POSTed with http.client on one keep-alive connection, not through boto3 (whose own
overhead of about a millisecond would dilute the ratios).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Callable

from bench import report, targets
from bench.harness import BENCH, FULL, OURS_ENV, QUICK, ROOT, BenchLambda, Counts, build_programs, extension_build, machine, say
from bench.scenarios import MODES, cold_start, export, memory, optional_modes, warm_invoke, zip_size

SCENARIOS = ("cold", "warm", "warm-work", "memory", "zip", "heap", "proxy", "telemetry", "export")
# Earlier names, still accepted: the heap measurement was the Go store's benchmark.
SCENARIO_ALIASES = {"gobench": "heap"}


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Counts]:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the published counts")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where <date>.json and <date>.png go; default bench/results for --full (the published run), "
                             "bench/results/tmp (ignored by git) for any other run")  # fmt: skip
    parser.add_argument("--date", default=dt.date.today().isoformat(), help="file name stem of the results")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--ours-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the environments that run our extension (repeatable), for what-if "
                             "runs; the RIE passes it to the function too, and the floors and baseline never see it")  # fmt: skip
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated subset of {','.join(SCENARIOS)} (gobench: heap)")  # fmt: skip
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
    chosen = {SCENARIO_ALIASES.get(name, name) for name in args.scenarios.split(",")}
    if unknown := chosen - set(SCENARIOS):
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    began = time.perf_counter()
    say(f"bench: {'full' if args.full else 'quick'} run, {dataclasses.asdict(counts)}")
    build_programs()
    results: dict = {"date": args.date, "full": args.full, "counts": dataclasses.asdict(counts), "machine": machine(),
                     "extension": extension_build(), "oursEnv": dict(OURS_ENV),
                     "invokeClient": "http.client, one keep-alive connection per environment (not boto3)",
                     "function": "bench/noop-function (standard-library custom runtime, answers {})",
                     "floors": {"floor": "bench/floor-rs (Rust, static musl)", "floor-go": "bench/floor (Go)"}}  # fmt: skip
    timings = {}

    def run(label: str, key: str, fn: Callable[[], object]) -> None:
        say(f"- {label}")
        t = time.perf_counter()
        results[key] = fn()
        timings[key] = round(time.perf_counter() - t, 1)

    if "cold" in chosen:
        run(f"cold start: {counts.cold_starts} fresh starts per configuration", "coldStart", lambda: cold_start.run(counts))
    if "warm" in chosen:
        run(f"warm invoke: {counts.warm_invokes} interleaved invokes per configuration after {counts.warmup} warm-up", "warmInvoke", lambda: warm_invoke.run(counts))
    if "warm-work" in chosen:
        run(f"warm invoke, function working {counts.function_work_ms} ms: {counts.work_invokes} interleaved invokes per configuration",
            "warmInvokeWithWork", lambda: warm_invoke.run(counts, counts.function_work_ms))  # fmt: skip
    environment = None
    if "memory" in chosen:
        say(f"- memory: {counts.memory_invokes} invokes, store of {counts.max_records}; then the local API on the full store")
        t = time.perf_counter()
        results["memory"], results["localApi"], environment = memory.run(counts)
        timings["memory+localApi"] = round(time.perf_counter() - t, 1)
    if "zip" in chosen:
        run("layer zip size", "zipSize", zip_size.run)
    if "heap" in chosen:
        run(f"heap per record ({' '.join(memory.HEAP_COMMAND)} in extension_src)", "heapPerRecord", memory.heap_per_record)
        results["heapBytesPerRecord"] = results["heapPerRecord"]["bytes"]
    if environment is None and chosen & {m.key for m in MODES}:
        local = BenchLambda("ours").start()
        try:
            local.invoke_raw()
            environment = local.get_json("/environment")
        finally:
            local.cleanup()
    results["optionalModes"] = optional_modes(environment or {}, counts, chosen, timings)
    if "export" in chosen:
        run(f"S3 export to a local S3: {counts.export_invokes} interleaved invokes on vs off per RIE mode, {counts.export_shutdowns} shutdowns each",
            "export", lambda: export.run(counts))  # fmt: skip
    results["features"] = (environment or {}).get("features")
    go = targets.published_go()
    results["goPublished"] = {k: v for k, v in go.items() if k != "values"}
    results["targets"] = targets.check(results, go)
    results["exportTargets"] = targets.check_export(results)
    timings["total"] = round(time.perf_counter() - began, 1)
    results["secondsPerScenario"] = timings

    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / f"{args.date}.json"
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    say("")
    say(report.table(results))
    say("")
    say(f"results: {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path}")
    if not args.no_chart:
        png = args.out_dir / f"{args.date}.png"
        if report.chart(results, png):
            say(f"chart:   {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")
    say(f"took {timings['total']} s")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])

"""`make soak`: the reliability run (issue 11). See bench/soak/__init__.py and docs/reliability.md.

    python -m bench.soak                                # 100,000 invokes, managed-instances mode
    python -m bench.soak --invokes 300 --max-records 100
    python -m bench.soak --mode standard                # INVOKE events make the records; no telemetry
    python -m bench.soak --help
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import BIN, GO_BUILD_INFO_MAGIC, INVOKE_PATH, BenchLambda, go_build, machine, say, summary
from bench.soak import checks, readers, telemetry
from tools.local_lambda import EXTENSION, EXTENSION_NAME, RIE, ROOT, LocalLambda, NoIdleRuntime, free_port, listening, local_api_json, wait_until

MODES = ("managed", "standard")
# The RIE's managed-instances Telemetry API deadlocks when a batch is due (its buffering timeout
# passed, or it is full) while the previous batch's POST is still unanswered: it drops the batch and
# announces that with a platform.logsDropped event sent from the very loop that reads those events,
# on an unbuffered channel, so the loop waits on itself. From then on every platform event blocks,
# and with it every invoke and the RIE's shutdown. This is its warning just before. A timeoutMs well
# above the listener's answer time (--telemetry-timeout-ms) makes it rare; the run reports it when
# it happens rather than blaming the extension.
RIE_TELEMETRY_DEADLOCK = "could not send batch to telemetry Subscriber as previous batch hasn't processed yet"
OUT_DIR = ROOT / "build/soak"
FUNCTION = BIN / "bootstrap"  # bench/noop-function, the bench's: answers {} and never calls the extension


class SoakLambda(LocalLambda):
    """One execution environment for the soak, with the bench's way of finding the extension's
    process and reading its memory, and invokes that carry a trace header."""

    extension_name = EXTENSION_NAME
    extension_pid = BenchLambda.extension_pid
    memory = BenchLambda.memory

    def __post_init__(self) -> None:
        super().__post_init__()
        self._conn: http.client.HTTPConnection | None = None
        self.refusals = 0

    def invoke_traced(self, trace: str) -> float:
        """POST one invoke with this X-Amzn-Trace-Id on a kept-alive connection; its latency in ms.
        The RIE's managed-instances mode refuses invokes until the runtime is back at /next: those
        are retried at once (the bench's invoke_raw sends no headers, hence this one)."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn = self._conn

        def attempt() -> tuple[float, int, bytes, str | None]:
            start = time.perf_counter()
            conn.request("POST", INVOKE_PATH, body=b"{}", headers={"X-Amzn-Trace-Id": trace})
            response = conn.getresponse()
            payload = response.read()
            if self.refused(response.status):
                self.refusals += 1
                raise NoIdleRuntime
            return (time.perf_counter() - start) * 1000, response.status, payload, response.getheader("X-Amz-Function-Error")

        elapsed, status, payload, function_error = self.until_accepted(attempt, attempts=20_000, pause=0.0002)
        if status != 200 or function_error:
            raise RuntimeError(f"invoke answered {status} {function_error or ''} {payload[:200]!r}")
        return elapsed

    def stop(self, timeout: float = 10.0) -> int:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        return super().stop(timeout)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description="The reliability run of issue 11.")
    parser.add_argument("--invokes", type=int, default=100_000)
    parser.add_argument("--max-records", type=int, default=10_000, help="INVOCATION_HISTORY_EXTENSION_MAX_RECORDS")
    parser.add_argument("--mode", choices=MODES, default="managed",
                        help="managed: the RIE's managed-instances mode, with a Telemetry API, so the invalid "
                             "telemetry stream runs (default); standard: INVOKE events, no telemetry")  # fmt: skip
    parser.add_argument("--readers", type=int, default=3, help="local API reader threads (plus one full-store reader)")
    parser.add_argument("--reader-pause-ms", type=float, default=2.0, help="pause of each reader between requests")
    parser.add_argument("--full-read-pause-s", type=float, default=1.0, help="pause between full-store reads (0: none)")
    parser.add_argument("--hostile-telemetry", action=argparse.BooleanOptionalAction, default=True,
                        help="post the invalid telemetry stream (managed mode); --no-hostile-telemetry for a control run")  # fmt: skip
    parser.add_argument("--telemetry-pause-ms", type=float, default=2.0, help="pause between invalid telemetry posts")
    parser.add_argument("--telemetry-timeout-ms", type=int, default=1000,
                        help="the subscription's buffering timeoutMs (INVOCATION_HISTORY_EXTENSION_TELEMETRY_TIMEOUT_MS; "
                             "the extension's default is 25): see RIE_TELEMETRY_DEADLOCK")  # fmt: skip
    parser.add_argument("--sample-every", type=int, default=1000, help="sample the extension's memory every N invokes")
    parser.add_argument("--rss-growth-limit", type=float, default=0.05,
                        help="fail when VmRSS grows more than this fraction after the store is full")  # fmt: skip
    parser.add_argument("--deadline-s", type=float, default=3600.0, help="give up invoking after this long")
    parser.add_argument("--extension", type=Path, default=EXTENSION,
                        help="the extension binary to run (default: what `make build` built)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help=f"results JSON (default {OUT_DIR.relative_to(ROOT)}/soak-<mode>.json)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if args.invokes < 1 or args.max_records < 1 or args.sample_every < 1:
        parser.error("--invokes, --max-records and --sample-every must be positive")
    return args


class Soak:
    def __init__(self, args: argparse.Namespace, argv: list[str]):
        self.args = args
        self.argv = argv
        self.managed = args.mode == "managed"
        self.run_id = (int(time.time()) << 32) | random.Random(args.seed).getrandbits(32)
        self.checks: list[dict] = []
        self.samples: list[dict] = []
        self.latencies: list[float] = []
        self.traces: list[str] = []
        self.failures: list[str] = []
        self.diagnostics: dict | None = None
        self.logs = ""

    def check(self, name: str, ok: bool, detail="") -> bool:
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        return ok

    def run(self) -> dict:
        args = self.args
        if not (args.extension.exists() and RIE.exists()):
            raise SystemExit(f"missing {args.extension} or {RIE}: run `make build rie` (or `make soak`)")
        go_build("noop-function", FUNCTION)
        self.api_port, self.telemetry_port = free_port(), free_port()
        env = {
            "INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(self.api_port),
            "INVOCATION_HISTORY_EXTENSION_MAX_RECORDS": str(args.max_records),
            # A port of our choosing, so the soak knows where to post (and, in standard mode, where
            # nothing may listen), and the maxBytes the listener's body limit derives from.
            "INVOCATION_HISTORY_EXTENSION_TELEMETRY_PORT": str(self.telemetry_port),
            "INVOCATION_HISTORY_EXTENSION_TELEMETRY_MAX_BYTES": str(telemetry.MAX_BYTES),
            "INVOCATION_HISTORY_EXTENSION_TELEMETRY_TIMEOUT_MS": str(args.telemetry_timeout_ms),
        }
        local = SoakLambda([str(FUNCTION)], env=env, extensions={EXTENSION_NAME: args.extension},
                           managed_instances=1 if self.managed else 0)  # fmt: skip
        started = time.perf_counter()
        local.start()
        try:
            result = self._drive(local)
        finally:
            local.cleanup()
        result["durationS"] = round(time.perf_counter() - started, 1)
        return result

    def _drive(self, local: SoakLambda) -> dict:
        args = self.args
        # The RIE's standard mode starts extensions with the first invoke: make it before anything
        # else, so both modes start the same way (the bench's "idle" is also after one invoke).
        self.invoke(local, 0)
        local.wait_for_log("msg=ready", timeout=10)
        pid = local.extension_pid()
        self.check("extension process found", pid is not None, pid)
        environment = local_api_json(self.api_port, "/environment")
        want_telemetry = "on" if self.managed else "unsupported"
        self.check("telemetry subscription", environment["features"]["telemetry"] == want_telemetry,
                   f"features.telemetry={environment['features']['telemetry']}, want {want_telemetry}")  # fmt: skip
        if self.managed:
            uri = f"destinationURI=http://sandbox.localdomain:{self.telemetry_port}"
            self.check("subscribed with the soak's telemetry port", uri in local.logs(), uri)
        else:
            self.check("no telemetry listener without a subscription", not listening(self.telemetry_port, timeout=1),
                       f"127.0.0.1:{self.telemetry_port}")  # fmt: skip
        self.sample(local, 1, pid)

        reader_pool = readers.Readers(self.api_port, args.readers, args.reader_pause_ms / 1000, args.full_read_pause_s,
                                      args.max_records, seed=args.seed or 1).start()  # fmt: skip
        hostile = self.managed and args.hostile_telemetry
        sender = telemetry.Sender(self.telemetry_port, args.telemetry_pause_ms / 1000).start() if hostile else None
        invoke_started = time.perf_counter()
        deadline = time.monotonic() + args.deadline_s
        done = 1
        try:
            for i in range(1, args.invokes):
                if time.monotonic() > deadline:
                    self.failures.append(f"deadline of {args.deadline_s}s passed after {done} invokes")
                    break
                self.invoke(local, i)
                done += 1
                if done % args.sample_every == 0 or done == args.max_records:
                    self.sample(local, done, pid)
                if done % 10_000 == 0:
                    say(f"  {done} invokes, {done / (time.perf_counter() - invoke_started):.0f}/s")
        except Exception as e:  # an invoke failed: the run goes on to its checks, which fail
            self.failures.append(f"invoke {done + 1}: {e!r}")
            self.diagnostics = diagnose(local, pid, (self.api_port, self.telemetry_port))
        invoke_seconds = time.perf_counter() - invoke_started
        reader_pool.stop()
        if sender:
            sender.stop()
        self.check("every invoke succeeded", not self.failures and done == args.invokes,
                   self.failures[:3] or f"{done} invokes, {local.refusals} refusals retried")  # fmt: skip

        # Quiet now. Telemetry makes the records on Managed Instances, 25 ms after the fact.
        def settled() -> dict | None:
            listing = local_api_json(self.api_port, "/invocations", timeout=30)
            records = listing["invocations"]
            complete = not self.managed or all(r.get("status") for r in records)
            return listing if listing["served"] >= done and complete else None

        listing = wait_until(settled, timeout=30, interval=0.2) or local_api_json(self.api_port, "/invocations", timeout=30)
        environment = local_api_json(self.api_port, "/environment")
        self.sample(local, done, pid, final=True)
        exit_code = local.stop()
        logs = local.logs()
        self.logs = logs

        invoked = checks.started_request_ids(logs)
        problems = checks.window_problems(listing, invoked=invoked, traces=self.traces[:done], invokes=done,
                                          max_records=args.max_records, with_telemetry=self.managed)  # fmt: skip
        self.check("served = retained + dropped, window complete and in order", not problems, problems or (
            f"served {listing['served']} = retained {listing['retained']} + dropped {listing['dropped']}; "
            f"sequences {listing['served'] - listing['retained'] + 1}..{listing['served']}"))  # fmt: skip
        reads = reader_pool.result()
        self.check("local API readers saw no error", reads["errors"] == 0, reads["errorSample"][:5] or f"{reads['requests']} requests")

        summary_line = checks.shutdown_summary(logs) or {}
        self.check("shutdown summary line", bool(summary_line), summary_line.get("reason"))
        counts = environment["counts"]
        for key, value in (("invocationsServed", listing["served"]), ("retained", listing["retained"]), ("dropped", listing["dropped"])):
            self.check(f"shutdown {key} = listing", summary_line.get(key) == str(value), f"{summary_line.get(key)} vs {value}")
        sent = sender.result() if sender else None
        if sent:
            self._telemetry_checks(sent, summary_line, counts)
        if self.managed:
            stalls = [line for line in logs.splitlines() if RIE_TELEMETRY_DEADLOCK in line]
            self.check("the RIE's telemetry subscriber never fell a batch behind (an RIE deadlock follows)", not stalls,
                       stalls[:1] or f"timeoutMs {args.telemetry_timeout_ms}")  # fmt: skip
        warnings = checks.extension_warnings(logs)
        self.check("no WARN or ERROR line from the extension", not warnings, warnings[:3])
        self.check("RIE exited cleanly", exit_code == 0, exit_code)
        memory = self._memory()
        # The target is the value after the run against the value at a full store; under the
        # soak's load the samples between scatter with the bodies in flight (telemetry batches of up
        # to 320 KiB, whole-store reads), bounded by design, so the largest is reported, not judged.
        if memory["growthRssAtEnd"] is not None:
            self.check(f"VmRSS at the end within +{args.rss_growth_limit:.0%} of the full store's",
                       memory["growthRssAtEnd"] <= args.rss_growth_limit,
                       f"{memory['growthRssAtEnd']:+.2%} (largest sample {memory['growthRss']:+.2%})")  # fmt: skip

        return {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python -m bench.soak", *self.argv]),
            "machine": machine(),
            "extension": describe_binary(args.extension),
            "config": {"mode": args.mode, "invokes": args.invokes, "maxRecords": args.max_records, "readers": args.readers,
                       "readerPauseMs": args.reader_pause_ms, "fullReadPauseS": args.full_read_pause_s,
                       "hostileTelemetry": bool(sender),
                       "telemetryPauseMs": args.telemetry_pause_ms if sender else None,
                       "telemetryTimeoutMs": args.telemetry_timeout_ms if self.managed else None,
                       "sampleEvery": args.sample_every, "rssGrowthLimit": args.rss_growth_limit},  # fmt: skip
            "invokes": {"done": done, "refusalsRetried": local.refusals, "seconds": round(invoke_seconds, 1),
                        "perSecond": round(done / invoke_seconds, 1) if invoke_seconds else None,
                        "latencyMs": {k: round(v, 3) for k, v in summary(self.latencies).items()}},  # fmt: skip
            "final": {"served": listing["served"], "retained": listing["retained"], "dropped": listing["dropped"],
                      "firstSequence": listing["invocations"][0]["sequence"] if listing["invocations"] else None,
                      "counts": counts, "startedByRie": len(invoked)},  # fmt: skip
            "memory": memory,
            "readers": reads,
            "telemetry": sent,
            "shutdown": summary_line,
            "checks": self.checks,
            "ok": all(c["ok"] for c in self.checks),
            **({"diagnostics": self.diagnostics} if self.diagnostics else {}),
        }

    def _telemetry_checks(self, sent: dict, line: dict, counts: dict) -> None:
        want = sent["expected"]
        self.check("telemetry listener answered as documented", sent["unexpectedAnswers"] == 0,
                   sent["unexpectedSample"][:3] or f"{sent['requests']} requests")  # fmt: skip
        for key, name in (("invalid", "telemetryInvalid"), ("rejected", "telemetryRejected"), ("ignored", "telemetryIgnored")):
            self.check(f"shutdown {name} = sent", line.get(name) == str(want[key]), f"{line.get(name)} vs {want[key]} sent")
        events = int(line.get("telemetryEvents", -1))
        self.check("shutdown telemetryEvents >= valid events sent", events >= want["events"], f"{events} vs {want['events']} sent")
        # Valid updates for request ids never invoked: held (one id each) until the bounds drop them.
        held, dropped = counts["pendingUpdates"], counts["pendingUpdatesDropped"]
        self.check("held + dropped updates = unknown-id updates sent", held + dropped == want["unknownIds"],
                   f"{held} held + {dropped} dropped vs {want['unknownIds']} sent")  # fmt: skip
        self.check("shutdown pendingUpdatesDropped = /environment", line.get("pendingUpdatesDropped") == str(dropped),
                   f"{line.get('pendingUpdatesDropped')} vs {dropped}")  # fmt: skip

    def invoke(self, local: SoakLambda, index: int) -> None:
        self.traces.append(checks.trace_root(self.run_id, index))
        self.latencies.append(local.invoke_traced(checks.trace_header(self.run_id, index)))

    def sample(self, local: SoakLambda, done: int, pid: int | None, final: bool = False) -> None:
        current = local.extension_pid()
        if current != pid:
            self.failures.append(f"the extension's process changed from {pid} to {current} at {done} invokes")
        memory = local.memory() or {"rss": None, "hwm": None, "anon": None, "file": None}
        self.samples.append({"invokes": done, **({"final": True} if final else {}), **memory})

    def _memory(self) -> dict:
        mib = lambda s, k: round(s[k] / 2**20, 3) if s and s.get(k) else None  # noqa: E731
        at = next((s for s in self.samples if s["invokes"] == self.args.max_records and not s.get("final")), None)
        end = self.samples[-1]
        growth = checks.rss_growth(self.samples, self.args.max_records)
        anon = checks.rss_growth(self.samples, self.args.max_records, "anon")
        # The slope once the store has turned over once (the ring and the held updates at their bounds).
        trend = checks.rss_trend([s for s in self.samples if not s.get("final")], 2 * self.args.max_records)
        return {
            "startMiB": {"rss": mib(self.samples[0], "rss"), "anon": mib(self.samples[0], "anon")},
            "atMaxRecordsMiB": {"rss": mib(at, "rss"), "anon": mib(at, "anon")} if at else None,
            "endMiB": {"rss": mib(end, "rss"), "anon": mib(end, "anon"), "hwm": mib(end, "hwm")},
            "growthRss": round(growth, 4) if growth is not None else None,
            "growthRssAtEnd": round(end["rss"] / at["rss"] - 1, 4) if at and at["rss"] and end["rss"] else None,
            "growthAnon": round(anon, 4) if anon is not None else None,
            "trendKiBPer10kInvokes": round(trend / 1024, 2) if trend is not None else None,
            "samples": [[s["invokes"], s["rss"], s["anon"], s["hwm"]] for s in self.samples],
            "sampleColumns": ["invokes", "rssBytes", "anonBytes", "hwmBytes"],
        }


def diagnose(local: SoakLambda, pid: int | None, ports: tuple[int, ...]) -> dict:
    """What the processes and sockets were doing when an invoke failed: the sockets of the RIE's
    ports and the extension's (ss), and where each of the environment's processes waits."""
    wanted = {*ports, local.port, local.runtime_api_port}
    sockets = subprocess.run(["ss", "-tanpi"], capture_output=True, text=True).stdout.splitlines()
    found = [line for line in sockets if any(f":{p} " in line for p in wanted)]
    processes = {}
    for candidate in {pid, local.process.pid if local.process else None} - {None}:
        try:
            for task in Path(f"/proc/{candidate}/task").iterdir():
                stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
                processes[f"{candidate}/{task.name}"] = {"state": stat[0], "wchan": (task / "wchan").read_text()}
        except OSError:
            continue
    return {"ports": {"invoke": local.port, "runtimeApi": local.runtime_api_port, "others": list(ports)},
            "sockets": found[:200], "tasks": processes, "rieLogTail": local.logs()[-20_000:]}  # fmt: skip


def describe_binary(path: Path) -> dict:
    """Which extension the run measured: memory figures depend on the C library's allocator, so a
    static (musl, as the layer ships it) and a dynamic (glibc) build are told apart."""
    data = path.read_bytes()
    # A dynamic executable names its loader in .interp, within the first pages.
    interpreter = next((name for name in (b"ld-linux", b"ld-musl") if name in data[:4096]), None)
    return {
        "path": os.path.relpath(path, ROOT) if path.resolve().is_relative_to(ROOT) else str(path),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "language": "Go" if GO_BUILD_INFO_MAGIC in data else "Rust",
        "linking": f"dynamic ({interpreter.decode()})" if interpreter else "static",
    }


def table(result: dict) -> str:
    m, inv, final = result["memory"], result["invokes"], result["final"]
    lines = [
        f"soak ({result['config']['mode']}): {inv['done']} invokes in {inv['seconds']} s ({inv['perSecond']}/s), "
        f"p50 {inv['latencyMs'].get('p50')} ms, p99 {inv['latencyMs'].get('p99')} ms; extension "
        f"{result['extension']['language']}, {result['extension']['linking']}",
        f"  served {final['served']} = retained {final['retained']} + dropped {final['dropped']}",
        f"  VmRSS MiB: start {m['startMiB']['rss']}, at {result['config']['maxRecords']} records "
        f"{(m['atMaxRecordsMiB'] or {}).get('rss')}, end {m['endMiB']['rss']} (HWM {m['endMiB']['hwm']}); "
        f"growth after full: largest {_pct(m['growthRss'])}, at end {_pct(m['growthRssAtEnd'])}; RssAnon largest {_pct(m['growthAnon'])}; "
        f"trend {m['trendKiBPer10kInvokes']} KiB per 10,000 invokes",
        f"  readers: {result['readers']['requests']} requests, {result['readers']['errors']} errors",
    ]  # fmt: skip
    if result["telemetry"]:
        t = result["telemetry"]
        lines.append(f"  invalid telemetry: {t['requests']} requests, expected {t['expected']}; listener answered small "
                     f"batches in p50 {t['smallBatchAnswerMs'].get('p50')} ms, p99 {t['smallBatchAnswerMs'].get('p99')} ms, "
                     f"max {t['smallBatchAnswerMs'].get('max')} ms")  # fmt: skip
    for c in result["checks"]:
        detail = c["detail"] if isinstance(c["detail"], str) else json.dumps(c["detail"])
        lines.append(f"  {'PASS' if c['ok'] else 'FAIL'}  {c['name']}" + (f"  ({detail[:160]})" if detail else ""))
    lines.append("OK" if result["ok"] else "FAILED")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.2%}"


def main(argv: list[str] | None = None) -> dict:
    """Run the soak; write the results JSON and print the table. The result's "ok" says whether
    every check passed (the CLI exits 1 when not)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    soak = Soak(args, argv)
    say(f"soak: {args.invokes} invokes, mode {args.mode}, maxRecords {args.max_records} (extension {args.extension})")
    result = soak.run()
    out = args.out or OUT_DIR / f"soak-{args.mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    if not result["ok"]:  # the whole log is the evidence; tens of MB, so under build/ whatever --out says
        log = OUT_DIR / f"{out.stem}.rie.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(soak.logs)
        say(f"the RIE's log: {os.path.relpath(log, ROOT)}")
    say(table(result))
    say(f"results: {os.path.relpath(out, ROOT) if out.is_relative_to(ROOT) else out}")
    return result


def cli() -> int:
    return 0 if main()["ok"] else 1

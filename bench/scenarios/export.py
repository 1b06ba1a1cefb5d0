"""Scenario 7, the S3 export (issue 12): our extension with the export on against the same with it
off, sending over TLS (as to AWS's endpoints) to a real S3 server on loopback (moto in server mode
with the test CA's certificate, tools/local_s3.py, as
tests/local/test_export.py uses it), a batch due every EXPORT_MAX_INVOCATIONS invocations.

    latency     warm invokes as the caller sees them, export on vs off, interleaved, on the RIE's
                standard mode (on-demand, no Telemetry API; both sides run the function behind the
                exec wrapper with the Runtime API proxy on, which is what tells the extension the
                function answered, so due batches go out in the post-invoke window) and its
                managed-instances mode (a real Telemetry API: batches go out from the exporter's
                own task as they fall due, while invokes run)
    postInvoke  what Lambda bills after the function's answer, per invocation: the RIE's REPORT
                Duration (until every extension asked for its next event) minus its RTDONE
                duration (until the runtime answered), from its log, standard mode, on vs off;
                `windowUploads` counts the batches that went out in those windows
    written     objects and bytes per 10,000 invocations and the gzip ratio, read back from the
                local S3 after the managed-instances run; each invocation exactly once
    shutdown    SIGTERM -> RIE exit (the RIE sends SHUTDOWN and exits when the extension has),
                fresh environments, export on (a final batch of SHUTDOWN_INVOKES invocations to
                send) alternating with off; each sample's object is checked to be there
"""

from __future__ import annotations

import gzip
import json
import re
import time
from contextlib import contextmanager

from bench.harness import BenchLambda, Counts, cleanup_all, interleaved, ratio, rotated, sampled, start_all, summary, wait_until
from tools.local_s3 import TLS_CA, LocalS3

BUCKET = "bench-export"
EXPORT_MAX_INVOCATIONS = 100  # a batch every 100 invocations (issue 12)
SHUTDOWN_INVOKES = 50  # the final batch at SHUTDOWN: half a batch, so it is the only one
PER = 10_000  # objects and bytes are reported per this many invocations
SETTINGS = ("off", "on")
MODES = {"standard": False, "managedInstances": True}  # name -> BenchLambda(managed=)
# On the standard mode the proxy, in the runtime's path on both sides, opens the post-invoke window.
PROXY = {"standard": True, "managedInstances": None}  # name -> BenchLambda(proxy=)
PERCENTILES = ("p50", "p90", "p99")

# The RIE's log lines for one invocation (its INFO level, the default).
INVOKE_START = re.compile(r"INVOKE START\(requestId: ([0-9a-f-]+)\)")
INVOKE_RTDONE = re.compile(r"INVOKE RTDONE\(status: \w+, produced bytes: \d+, duration: ([0-9.]+)ms\)")
REPORT = re.compile(r"REPORT RequestId: ([0-9a-f-]+)\s+Duration: ([0-9.]+) ms")


def post_invoke_ms(log: str) -> list[float]:
    """Per invocation, in the order they ran: REPORT Duration - RTDONE duration (ms), the time from
    the runtime's answer until every extension asked for its next event, as the RIE logs them. An
    RTDONE line has no request id: it belongs to the INVOKE START before it (the RIE runs one
    invocation at a time in its standard mode), and pairs with that invocation's REPORT after it. Invocations
    missing either line are left out, and so is the cold one: its REPORT has an Init Duration, and
    its Duration counts the init."""
    runtime_done: dict[str, float] = {}
    out = []
    current = None
    for line in log.splitlines():
        if started := INVOKE_START.search(line):
            current = started.group(1)
        elif (done := INVOKE_RTDONE.search(line)) and current is not None:
            runtime_done[current] = float(done.group(1))
            current = None
        elif reported := REPORT.match(line):
            rid, total = reported.groups()
            if rid in runtime_done:
                out.append(round(float(total) - runtime_done.pop(rid), 3))
    return out


def export_env(s3: LocalS3, prefix: str) -> dict[str, str]:
    """The export on, to the local S3, under a prefix of the environment's own."""
    return {
        "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_BUCKET": BUCKET,
        "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_PREFIX": prefix,
        "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_ENDPOINT": s3.url,
        "INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_INVOCATIONS": str(EXPORT_MAX_INVOCATIONS),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        # Over TLS, as to AWS's endpoints: the local S3's certificate is the test CA's.
        "SSL_CERT_FILE": str(TLS_CA),
    }


def objects(s3: LocalS3, prefix: str) -> dict[str, bytes]:
    """The objects under prefix, by key."""
    client = s3.client()
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix) for o in page.get("Contents", [])]
    return {key: client.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def written(found: dict[str, bytes]) -> dict:
    """What the objects hold: counts, compressed and NDJSON bytes, the invocation lines' request ids."""
    compressed = sum(len(body) for body in found.values())
    ndjson = [gzip.decompress(body) for body in found.values()]
    lines = [json.loads(line) for text in ndjson for line in text.splitlines()]
    ids = [line["record"]["awsRequestId"] for line in lines if line["type"] == "invocation"]
    return {
        "objects": len(found),
        "compressedBytes": compressed,
        "ndjsonBytes": sum(len(text) for text in ndjson),
        "lines": len(lines),
        "invocationLines": len(ids),
        "distinctInvocations": len(set(ids)),
    }


def every_invocation_once(w: dict, served: int) -> dict:
    """w (from written()), once its objects hold each of the `served` invocations exactly once."""
    if w["invocationLines"] != served or w["distinctInvocations"] != served:
        raise RuntimeError(f"export written: {w['invocationLines']} invocation lines ({w['distinctInvocations']} distinct) for {served} invocations served")
    return w


def per_invocations(w: dict, per: int = PER) -> dict:
    """Objects and bytes scaled to `per` invocations, and the gzip ratio (NDJSON bytes / gzip bytes)."""
    n = w["invocationLines"]
    return {
        "invocations": per,
        "objects": round(w["objects"] * per / n, 1) if n else None,
        "compressedBytes": round(w["compressedBytes"] * per / n) if n else None,
        "ndjsonBytes": round(w["ndjsonBytes"] * per / n) if n else None,
        "gzipRatio": ratio(w["ndjsonBytes"], w["compressedBytes"]),
        "compressedBytesPerInvocation": round(w["compressedBytes"] / n, 1) if n else None,
    }


@contextmanager
def local_s3():
    with LocalS3(tls=True) as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        yield s3


def pair(s3: LocalS3, mode: str, prefix: str) -> dict[str, BenchLambda]:
    """Export off and on, side by side, in one RIE mode; started."""
    managed, proxy = MODES[mode], PROXY[mode]
    return start_all({
        "off": BenchLambda("ours", managed=managed, proxy=proxy),
        "on": BenchLambda("ours", env=export_env(s3, prefix), managed=managed, proxy=proxy),
    })  # fmt: skip


def export_counters(local: BenchLambda) -> dict:
    export = local.get_json("/environment").get("export")
    if export is None:
        raise RuntimeError(f"the export is not running: /environment has no export counters\n{local.logs()[-3000:]}")
    return export


def latency(s3: LocalS3, mode: str, counts: Counts) -> tuple[dict, dict]:
    """Interleaved warm invokes, export on vs off, in one RIE mode: the latency summary, and what the
    run left (the export's counters before SHUTDOWN, the RIE's logs, the objects' prefix)."""
    prefix = f"{mode}/"
    envs = pair(s3, mode, prefix)
    try:
        samples = interleaved(envs, counts.export_invokes, counts.warmup)
        served = counts.export_invokes + counts.warmup
        if mode == "managedInstances":
            # Records are complete once telemetry has reported them; their full batches go out then.
            full = served // EXPORT_MAX_INVOCATIONS * EXPORT_MAX_INVOCATIONS
            wait_until(lambda: export_counters(envs["on"])["invocations"] >= full, 10.0, interval=0.02)
        before_shutdown = export_counters(envs["on"])
        memory = {setting: local.memory() for setting, local in envs.items()}
        if "export" in envs["off"].get_json("/environment"):
            raise RuntimeError(f"export {mode}: the environment without the export variables runs an export")
        codes = {setting: local.stop() for setting, local in envs.items()}
        logs = {setting: local.logs() for setting, local in envs.items()}
    finally:
        cleanup_all(envs)
    if any(codes.values()):
        raise RuntimeError(f"export {mode}: RIE exit codes {codes}:\n{logs['on'][-3000:]}")
    result = {s: summary(samples[s]) for s in SETTINGS}
    result["ratios"] = {f"{p} on/off": ratio(result["on"][p], result["off"][p]) for p in PERCENTILES}
    result["addedMs"] = {p: round(result["on"][p] - result["off"][p], 4) for p in PERCENTILES}
    result["exportBeforeShutdown"] = before_shutdown
    # The extension's memory after the run, each side: what the export (and its TLS, on https) holds.
    result["memoryMiB"] = {s: {k: round(v / 2**20, 3) for k, v in m.items() if v is not None} for s, m in memory.items() if m}
    return result, {"logs": logs, "prefix": prefix, "served": served}


def post_invoke(logs: dict[str, str], invokes: int) -> dict:
    """The post-invoke time of the measured invokes (the last `invokes` of each log), on vs off."""
    samples = {s: post_invoke_ms(logs[s])[-invokes:] for s in SETTINGS}
    for setting, got in samples.items():
        if len(got) != invokes:
            raise RuntimeError(f"post-invoke {setting}: {len(got)} invocations with RTDONE and REPORT lines in the RIE's log, expected {invokes} "
                               "(the cold invocation's REPORT, with its Init Duration, is not one: --warmup must be at least 1)")
    result = {s: summary(samples[s]) for s in SETTINGS}
    result["addedMs"] = {k: round(result["on"][k] - result["off"][k], 4) for k in ("mean", "p50", "p99")}
    return result


def shutdown(s3: LocalS3, counts: Counts) -> dict:
    """SIGTERM -> RIE exit, fresh environments, export on (a final batch to send) and off alternating."""
    samples: dict[str, list[float]] = {s: [] for s in SETTINGS}
    final_batches = []
    for i in range(counts.export_shutdowns):
        for setting in rotated(SETTINGS, i):
            prefix = f"shutdown-{i}/"
            local = BenchLambda("ours", env=export_env(s3, prefix) if setting == "on" else None)
            try:
                local.start()
                for _ in range(SHUTDOWN_INVOKES):
                    local.invoke_raw()
                if setting == "on" and (early := export_counters(local))["batches"]:
                    raise RuntimeError(f"export shutdown: {early['batches']} batches before SHUTDOWN, expected none")
                began = time.perf_counter()
                code = local.stop()
                samples[setting].append((time.perf_counter() - began) * 1000)
                if code != 0:
                    raise RuntimeError(f"export shutdown {setting}: RIE exited {code}:\n{local.logs()[-3000:]}")
            finally:
                local.cleanup()
            if setting == "on":
                w = written(objects(s3, prefix))
                if w["objects"] != 1 or w["distinctInvocations"] != SHUTDOWN_INVOKES:
                    raise RuntimeError(f"export shutdown: the final batch was not written whole: {w}")
                final_batches.append(w)
    result = {s: summary(samples[s]) for s in SETTINGS}
    result["samples"] = sampled(samples)
    result["addedMs"] = {p: round(result["on"][p] - result["off"][p], 3) for p in ("p50", "p90")}
    result["finalBatch"] = {"invocations": SHUTDOWN_INVOKES, "compressedBytes p50": summary([w["compressedBytes"] for w in final_batches])["p50"]}
    return result


def run(counts: Counts) -> dict:
    result: dict = {
        "s3": "moto server mode on 127.0.0.1 (tools/local_s3.py)",
        "maxInvocations": EXPORT_MAX_INVOCATIONS,
        "configs": {"off": "no export variables", "on": f"INVOCATION_HISTORY_EXTENSION_EXPORT_* to the local S3, MAX_INVOCATIONS={EXPORT_MAX_INVOCATIONS}"},
    }
    with local_s3() as s3:
        runs = {}
        for mode in MODES:
            result.setdefault("latency", {})[mode], runs[mode] = latency(s3, mode, counts)
        standard = runs["standard"]
        result["postInvoke"] = post_invoke(standard["logs"], counts.export_invokes)
        # Batches written before SHUTDOWN on the standard mode went out in post-invoke windows.
        result["postInvoke"]["windowUploads"] = result["latency"]["standard"]["exportBeforeShutdown"]["batches"]
        managed = runs["managedInstances"]
        w = every_invocation_once(written(objects(s3, managed["prefix"])), managed["served"])
        result["written"] = {"mode": "managedInstances", **w, f"per{PER}": per_invocations(w)}
        standard_written = written(objects(s3, standard["prefix"]))
        result["writtenAtShutdownStandard"] = {**standard_written, "served": standard["served"]}
        result["shutdown"] = shutdown(s3, counts)
    return result

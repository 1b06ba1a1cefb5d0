"""The benchmark's S3 export scenario (bench/scenarios/export.py): a smoke run with tiny counts, end
to end on the RIE with moto's S3 server, and the parts of its logic a wrong number would come from:
the post-invoke time read from the RIE's log, what the objects hold, the check that every invocation
is written once. No timing is asserted: the numbers of so few samples mean nothing."""

from __future__ import annotations

import gzip
import json

import pytest

from bench import run
from bench.scenarios import export
from bench.targets import EXPORT_TARGETS
from tools.local_lambda import EXTENSION, RIE

# The RIE's own lines (INFO level), as it writes them for three invocations: the cold one (its REPORT
# has an Init Duration and its Duration counts the init), one without RTDONE (a runtime that never
# answered), and a warm one; the extension's lines in between are left out.
A, B, C = (f"6f0c7a4e-0000-4000-8000-00000000000{x}" for x in "abc")
RIE_LOG = f"""29 Nov 2026 22:09:14,094 [INFO] (rapid) INIT REPORT(durationMs: 11.833000)
29 Nov 2026 22:09:14,094 [INFO] (rapid) INVOKE START(requestId: {A})
29 Nov 2026 22:09:14,095 [INFO] (rapid) INVOKE RTDONE(status: success, produced bytes: 0, duration: 0.833000ms)
REPORT RequestId: {A}\tInit Duration: 0.04 ms\tDuration: 13.51 ms\tBilled Duration: 14 ms\tMemory Size: 3008 MB\tMax Memory Used: 3008 MB\t
START RequestId: {B} Version: $LATEST
29 Nov 2026 22:09:14,096 [INFO] (rapid) INVOKE START(requestId: {B})
END RequestId: {B}
REPORT RequestId: {B}\tDuration: 3000.00 ms\tBilled Duration: 3000 ms\tMemory Size: 3008 MB\tMax Memory Used: 3008 MB\t
START RequestId: {C} Version: $LATEST
29 Nov 2026 22:09:17,096 [INFO] (rapid) INVOKE START(requestId: {C})
29 Nov 2026 22:09:17,096 [INFO] (rapid) INVOKE RTDONE(status: success, produced bytes: 0, duration: 0.267000ms)
END RequestId: {C}
REPORT RequestId: {C}\tDuration: 0.32 ms\tBilled Duration: 1 ms\tMemory Size: 3008 MB\tMax Memory Used: 3008 MB\t
"""


def test_post_invoke_time_is_report_minus_its_own_runtime_done():
    # GIVEN the RIE's log of a cold invocation, one without RTDONE and a warm one
    # WHEN the scenario reads the post-invoke times from it
    got = export.post_invoke_ms(RIE_LOG)
    # THEN only the warm, complete invocation counts, as its REPORT Duration minus its RTDONE duration
    assert got == [round(0.32 - 0.267, 3)]
    # ... and without its INVOKE START line, its RTDONE is not taken for the unanswered one before it
    assert export.post_invoke_ms(RIE_LOG.replace(f"INVOKE START(requestId: {C})", "")) == []


def batch(*lines: dict) -> bytes:
    return gzip.compress("".join(json.dumps(line) + "\n" for line in lines).encode())


def invocation(request_id: str) -> dict:
    return {"type": "invocation", "complete": True, "record": {"awsRequestId": request_id}}


def test_written_counts_what_the_objects_hold_and_every_invocation_once_catches_a_duplicate():
    # GIVEN two objects: the environment's start line and three invocation lines, one of them twice
    found = {"k1": batch({"type": "environment", "event": "start"}, invocation("a"), invocation("b")), "k2": batch(invocation("b"))}
    # WHEN the scenario reads them
    w = export.written(found)
    # THEN it counts objects, lines and bytes as they are
    assert (w["objects"], w["lines"], w["invocationLines"], w["distinctInvocations"]) == (2, 4, 3, 2)
    assert w["compressedBytes"] == len(found["k1"]) + len(found["k2"])
    assert w["ndjsonBytes"] == sum(len(gzip.decompress(b)) for b in found.values())
    # ... scales them per 10,000 invocations from the invocation lines
    per = export.per_invocations(w, 300)
    assert per["objects"] == 200 and per["gzipRatio"] == round(w["ndjsonBytes"] / w["compressedBytes"], 4)
    # ... and the duplicate fails the exactly-once check, which passes on a clean set
    with pytest.raises(RuntimeError, match="2 distinct"):
        export.every_invocation_once(w, 3)
    assert export.every_invocation_once(export.written({"k1": found["k1"]}), 2)


@pytest.mark.timeout(180)
def test_quick_export_run_reads_every_invocation_back(tmp_path, capsys):
    # GIVEN the extension and the RIE that `make test` builds
    if not (EXTENSION.exists() and RIE.exists()):
        pytest.skip("run with `make test` (needs the extension build and the RIE)")
    # WHEN the harness runs the export scenario with tiny counts (250 invokes: batches of 100 and a rest)
    results = run.main(["--out-dir", str(tmp_path), "--date", "smoke", "--no-chart", "--scenarios", "export",
                        "--warmup", "2", "--export-invokes", "248", "--export-shutdowns", "1"])  # fmt: skip
    # THEN each RIE mode has its interleaved latencies on and off
    saved = json.loads((tmp_path / "smoke.json").read_text())
    assert saved == json.loads(json.dumps(results))
    exported = saved["export"]
    for mode in ("standard", "managedInstances"):
        assert exported["latency"][mode]["on"]["n"] == exported["latency"][mode]["off"]["n"] == 248
    # ... the standard mode sent its full batches in post-invoke windows (the proxy says when the
    # function answered), the rest at SHUTDOWN, every invocation once
    assert exported["latency"]["standard"]["exportBeforeShutdown"]["batches"] == 2
    assert exported["postInvoke"]["windowUploads"] == 2 and exported["postInvoke"]["on"]["n"] == 248
    assert exported["writtenAtShutdownStandard"]["distinctInvocations"] == 250
    # ... managed instances sent its full batches while it ran, and the objects hold all 250 once
    assert exported["latency"]["managedInstances"]["exportBeforeShutdown"]["batches"] >= 2
    written = exported["written"]
    assert written["distinctInvocations"] == written["invocationLines"] == 250 and written["objects"] == 3
    assert written["per10000"]["objects"] == 120 and written["per10000"]["gzipRatio"] > 1
    # ... a shutdown sample each way, the final batch written whole
    assert exported["shutdown"]["on"]["n"] == exported["shutdown"]["off"]["n"] == 1
    assert exported["shutdown"]["finalBatch"]["invocations"] == export.SHUTDOWN_INVOKES
    # ... and issue 12's targets are listed, in the JSON and the table
    assert set(saved["exportTargets"]) == set(EXPORT_TARGETS)
    assert all(t["value"] is not None for t in saved["exportTargets"].values())
    out = capsys.readouterr().out
    assert "S3 export" in out and "targets (issue 12)" in out

"""The extension against a second, independent emulator: the `lambda-simulator` crate.

The RIE's standard mode has no Telemetry API, and its managed-instances mode sends no
platform.runtimeDone nor billed duration or memory. lambda-simulator (Rust, crates.io) implements
the Extensions, Runtime and Telemetry APIs and sends platform.start, platform.runtimeDone and
platform.report, so the standard-Lambda enrichment path (INVOKE records filled in by telemetry)
runs end to end on real-shaped traffic. Its fidelity is judged in tests/simulator/src/main.rs:
no errorType, memory always half the configured size, whole-millisecond durations, no timeouts.

`make test` builds the driver with cargo (`make simulator-driver`); without cargo this is skipped.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess

import pytest

from tools.local_lambda import EXTENSION, ROOT

DRIVER = ROOT / "tests/simulator/target/release/simulator-driver"


@pytest.fixture(scope="module")
def run():
    if not DRIVER.exists():
        if shutil.which("cargo") is None:
            pytest.skip("cargo is not installed: the lambda-simulator driver cannot be built")
        pytest.fail(f"{DRIVER} is missing: build it with `make simulator-driver`")
    result = subprocess.run(
        [str(DRIVER), "--extension", str(EXTENSION), "--invocations", "4", "--handler-ms", "20"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return result.returncode, json.loads(result.stdout), result.stderr


def test_every_driver_check_passes(run):
    code, report, stderr = run
    failed = [c for c in report["checks"] if not c["ok"]]
    assert code == 0 and report["ok"] and not failed, (failed, stderr[-3000:])


def test_records_are_enriched_from_the_simulators_platform_report(run):
    _, report, _ = run
    reports = {
        e["record"]["requestId"]: e["record"] for e in report["telemetry"] if e.get("type") == "platform.report"
    }
    records = report["records"]["invocations"]  # the extension's own GET /invocations answer
    assert len(records) == 4 and set(reports) == {r["awsRequestId"] for r in records}
    for record in records:
        sent = reports[record["awsRequestId"]]
        assert record["status"] == sent["status"]
        assert record["durationMs"] == sent["metrics"]["durationMs"]
        assert record["billedDurationMs"] == sent["metrics"]["billedDurationMs"]
        assert record["maxMemoryUsedMB"] == sent["metrics"]["maxMemoryUsedMB"]
    assert [r["status"] for r in records] == ["success", "error", "success", "success"]


def test_environment_reports_telemetry_on_and_the_init(run):
    _, report, _ = run
    environment = report["environment"]
    assert environment["features"]["telemetry"] == "on"
    assert environment["initDurationMs"] > 0


def test_shutdown_exits_zero_within_the_budget(run):
    _, report, _ = run
    assert report["extensionExitCode"] == 0 and report["shutdownToExitMs"] < 2000


def test_on_demand_with_telemetry_the_export_uploads_in_the_post_invoke_windows(tmp_path):
    # GIVEN the simulator, which has what the RIE has in no single mode: INVOKE events and telemetry
    # (platform.runtimeDone, the signal the post-invoke window waits for), and the export on with a
    # batch due at every invocation and the platform's events riding along as log events
    from tools.local_s3 import REGION, LocalS3

    if not DRIVER.exists():
        pytest.skip(f"{DRIVER} is missing: build it with `make simulator-driver`")
    with LocalS3() as s3:
        s3.client().create_bucket(Bucket="history")
        env = {
            "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_BUCKET": "history",
            "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_ENDPOINT": s3.url,
            "INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_INVOCATIONS": "1",
            "INVOCATION_HISTORY_EXTENSION_EXPORT_LOGS": "platform",
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
        }
        args = [arg for name, value in env.items() for arg in ("--env", f"{name}={value}")]
        # WHEN it serves 4 invocations and shuts down
        result = subprocess.run(
            [str(DRIVER), "--extension", str(EXTENSION), "--invocations", "4", "--handler-ms", "20", *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        report = json.loads(result.stdout)
        objects = s3.objects("history")
    assert result.returncode == 0 and report["ok"], result.stderr[-3000:]
    # THEN batches went out in the post-invoke windows while it ran (the driver asked /environment
    # before SHUTDOWN): an invocation is complete once its report is in, which is after the next
    # INVOKE, so each window sends the one before
    export = report["environment"]["export"]
    assert export["batches"] >= 2 and export["droppedBatches"] == 0, export
    # ... and at SHUTDOWN the rest: every invocation exactly once, complete, carrying its own
    # platform events (start, runtimeDone, report), matched by request id
    lines = [json.loads(line) for key in sorted(objects) for line in gzip.decompress(objects[key]).decode().splitlines()]
    invocations = [line for line in lines if line["type"] == "invocation"]
    ids = [r["awsRequestId"] for r in report["records"]["invocations"]]
    assert sorted(line["record"]["awsRequestId"] for line in invocations) == sorted(ids)
    for line in invocations:
        own = {event["type"] for event in line["logs"] if event["record"].get("requestId") == line["record"]["awsRequestId"]}
        assert len(own) == len(line["logs"]), line["logs"]
        if line["complete"]:
            assert {"platform.start", "platform.runtimeDone", "platform.report"} <= own, line
    assert sum(line["complete"] for line in invocations) >= 3, [line["complete"] for line in invocations]

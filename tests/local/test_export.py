"""The S3 export end to end: the extension under AWS's emulator (RIE) writes to a real S3 server on
loopback (moto), and every invocation of the run is read back from the objects exactly once."""

from __future__ import annotations

import concurrent.futures
import gzip
import json
import os
import re
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from tests.local.test_proxy import start_proxied
from tools.local_lambda import GO_BOOTSTRAP, ROOT, LocalLambda, free_port, local_api_get, python_function, wait_until
from tools.local_s3 import REGION, TLS_CA, LocalS3

SPEC = OpenAPI.from_file_path(str(ROOT / "docs/api/openapi.yaml"))

BUCKET = "history"
KEY = re.compile(r"^exports/function=function/date=\d{4}-\d{2}-\d{2}/hour=\d{2}/[0-9a-f]{32}-(\d{6})\.ndjson\.gz$")


@pytest.fixture
def s3():
    with LocalS3() as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        yield s3


def export_env(s3: LocalS3, **extra: str) -> dict[str, str]:
    return {
        "INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(free_port()),
        "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_BUCKET": BUCKET,
        "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_PREFIX": "exports/",
        "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_ENDPOINT": s3.url,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        **extra,
    }


def all_lines_of(s3: LocalS3) -> tuple[list[str], list[dict]]:
    """The objects' keys and every line in them, in key order."""
    objects = s3.objects(BUCKET)
    keys = sorted(objects)
    return keys, [json.loads(line) for key in keys for line in gzip.decompress(objects[key]).decode().splitlines()]


def lines_of(s3: LocalS3) -> tuple[list[str], list[dict], list[dict]]:
    """The objects' keys, the invocation lines and the environment lines, in key order."""
    keys, lines = all_lines_of(s3)
    return (
        keys,
        [line for line in lines if line["type"] == "invocation"],
        [line for line in lines if line["type"] == "environment"],
    )


def check_environment_lines(environment: list[dict], reason: str, served: int) -> None:
    """The environment's first line (who it is) and its last (why it ended, what it served)."""
    assert [line["event"] for line in environment] == ["start", "shutdown"], environment
    start, end = environment
    assert start["functionName"] == "function" and start["environmentId"] == end["environmentId"]
    assert end["reason"] == reason and end["served"] == served, end


def summary(logs: str) -> str:
    return next(line for line in logs.splitlines() if "msg=shutdown" in line and "invocation-history" in line)


def test_managed_instances_export_every_invocation_once_in_batches(s3):
    # GIVEN Managed Instances (concurrent invokes, records from telemetry) and batches of 5
    env = export_env(s3, INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_INVOCATIONS="5")
    with LocalLambda([str(GO_BOOTSTRAP)], env=env, managed_instances=4) as local:
        # WHEN it serves 20 invocations, 4 at a time, and then stops
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            ids = {a["requestId"] for a in pool.map(lambda _: local.invoke({}), range(20))}
        # ... the four full batches go out while it runs, and /environment counts them, as the spec says
        port = int(env["INVOCATION_HISTORY_EXTENSION_HTTP_PORT"])

        def exported() -> dict | None:
            status, body, _ = local_api_get(port, "/environment")
            SPEC.validate_response(
                MockRequest("http://127.0.0.1:1203", "get", "/environment"),
                MockResponse(body, status_code=status, content_type="application/json"),
            )
            export = json.loads(body)["export"]
            return export if export["invocations"] == 20 else None

        export = wait_until(exported, timeout=5.0, interval=0.05)
        assert export and export["batches"] == 4 and export["queuedBatches"] == 0 and export["droppedBatches"] == 0, (
            export
        )
        assert local.stop() == 0
        logs = local.logs()
    # THEN the objects hold every invocation exactly once, complete, as the local API shows records
    keys, lines, environment = lines_of(s3)
    check_environment_lines(environment, re.search(r" reason=(\S+)", summary(logs)).group(1), 20)
    assert all(KEY.match(k) for k in keys), keys
    assert [int(KEY.match(k).group(1)) for k in keys] == list(range(1, len(keys) + 1))
    got = [line["record"]["awsRequestId"] for line in lines]
    assert sorted(got) == sorted(ids) and len(got) == 20, logs
    assert all(line["complete"] for line in lines), lines
    assert all(line["record"]["status"] == "success" and line["record"]["durationMs"] > 0 for line in lines)
    assert len(keys) >= 4, "batches of at most 5 invocations"
    # ... and the summary line counts them
    line = summary(logs)
    assert (
        "exportInvocations=20" in line and "exportDroppedInvocations=0" in line and f"exportBatches={len(keys)}" in line
    ), line


def test_on_demand_the_export_goes_out_at_shutdown(s3, start_lambda):
    # GIVEN the standard RIE (no Telemetry API): a record is finished once the next invocation began
    local = start_lambda("go", env=export_env(s3))
    ids = [local.invoke({})["requestId"] for _ in range(3)]
    assert s3.objects(BUCKET) == {}, "nothing uploaded while the environment serves"
    # WHEN it shuts down
    assert local.stop() == 0
    # THEN one object holds the three, the last marked incomplete (no report will ever come)
    keys, lines, environment = lines_of(s3)
    check_environment_lines(environment, re.search(r" reason=(\S+)", summary(local.logs())).group(1), 3)
    assert len(keys) == 1 and KEY.match(keys[0]), keys
    assert [line["record"]["awsRequestId"] for line in lines] == ids
    assert [line["complete"] for line in lines] == [True, True, False]
    assert "exportInvocations=3" in summary(local.logs())


def test_on_demand_with_the_proxy_a_due_batch_goes_out_in_the_post_invoke_window(s3, start_lambda):
    # GIVEN the standard RIE (no Telemetry API) with the Runtime API proxy on and the runtime behind
    # the wrapper, a batch due at every invocation: the proxy says when the function answered
    local = start_proxied(
        start_lambda, python_function(), env=export_env(s3, INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_INVOCATIONS="1")
    )
    # WHEN it serves three invocations
    ids = [local.invoke({})["requestId"] for _ in range(3)]
    # THEN while it still runs, the first two are in S3: each went out in the window after the next
    # invocation answered (a record is finished once a newer one exists, without telemetry)
    stored = wait_until(lambda: [line["record"]["awsRequestId"] for line in lines_of(s3)[1]], timeout=5.0)
    assert stored == ids[:2], local.logs()
    # ... and SHUTDOWN sends the last, every invocation once
    assert local.stop() == 0
    assert [line["record"]["awsRequestId"] for line in lines_of(s3)[1]] == ids
    assert "exportInvocations=3" in summary(local.logs())


def test_with_the_proxy_on_but_not_in_the_runtimes_path_batches_wait_for_shutdown(s3, start_lambda):
    # GIVEN the proxy on, but the runtime talks to Lambda directly (no exec wrapper): the proxy never
    # sees an invocation, so nothing can say the function answered
    local = start_proxied(
        start_lambda,
        python_function(),
        env=export_env(s3, INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_INVOCATIONS="1"),
        through_wrapper=False,
    )
    # WHEN it serves three invocations THEN each is answered and nothing is uploaded while it runs
    ids = [local.invoke({})["requestId"] for _ in range(3)]
    assert s3.objects(BUCKET) == {}
    # ... and SHUTDOWN sends them all
    assert local.stop() == 0
    assert [line["record"]["awsRequestId"] for line in lines_of(s3)[1]] == ids


def test_the_export_goes_over_tls_to_a_server_the_named_ca_signed(start_lambda):
    # GIVEN S3 over https, its certificate signed by a CA that SSL_CERT_FILE names
    with LocalS3(tls=True) as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        local = start_lambda("go", env=export_env(s3, SSL_CERT_FILE=str(TLS_CA)))
        ids = [local.invoke({})["requestId"] for _ in range(2)]
        # WHEN the environment shuts down
        assert local.stop() == 0
        # THEN its object went over TLS and holds both invocations
        _, lines, _ = lines_of(s3)
        assert [line["record"]["awsRequestId"] for line in lines] == ids, local.logs()
        assert "exportBatches=1" in summary(local.logs())


def test_an_unreachable_s3_never_fails_the_function_and_every_loss_is_counted(start_lambda):
    dead = free_port()
    env = {
        "INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(free_port()),
        "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_BUCKET": BUCKET,
        "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_ENDPOINT": f"http://127.0.0.1:{dead}",
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    local = start_lambda("go", env=env)
    for _ in range(3):
        local.invoke({})
    assert local.stop() == 0
    line = summary(local.logs())
    assert "exportBatches=0" in line and "exportDroppedInvocations=3" in line, line


LOGGING_HANDLER = """
import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    logger.info("hello from %s", context.aws_request_id)
    print("a print names no request id")
    return {"requestId": context.aws_request_id}
"""


def record_of(event: dict) -> dict | str:
    """A log event's record: an object, or a line of text (the emulator sends JSON lines as strings)."""
    record = event["record"]
    if isinstance(record, str) and record.startswith("{"):
        return json.loads(record)
    return record


@pytest.fixture
def shared_dir():
    """A directory the emulator's runtime user can read: in managed-instances mode the RIE runs the
    runtime as another user, to whom pytest's tmp_path (and the home of a pyenv Python) is closed."""
    path = Path(tempfile.mkdtemp(prefix="export-logs-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def runtime_python() -> str:
    """A Python of this version that another user can run, with the venv's awslambdaric on its path."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        path = Path(candidate).resolve()
        if path.is_file() and all(p.stat().st_mode & 0o005 == 0o005 for p in [path, *path.parents]):
            return str(path)
    pytest.skip(f"no {version} that the emulator's runtime user can run (pyenv's lives under /root)")


def test_managed_instances_logs_ride_with_their_invocation(s3, shared_dir):
    # GIVEN a Python function (awslambdaric, JSON log format) that logs through `logging` (its lines
    # carry the request id) and prints (a line with no id), 2 invocations at a time
    task = shared_dir / "task"
    task.mkdir(mode=0o755)
    (task / "handler.py").write_text(LOGGING_HANDLER)
    os.chmod(task / "handler.py", 0o644)
    bootstrap = shared_dir / "bootstrap"
    site_packages = sysconfig.get_paths()["purelib"]
    # The emulator's mode sets its own LAMBDA_TASK_ROOT: the handler is found through PYTHONPATH.
    python_path = f"{task}:{site_packages}"
    bootstrap.write_text(f"#!/bin/sh\nPYTHONPATH={python_path} exec {runtime_python()} -m awslambdaric handler.handler\n")
    bootstrap.chmod(0o755)
    env = export_env(s3, AWS_LAMBDA_LOG_FORMAT="JSON", INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_INVOCATIONS="3")
    with LocalLambda([str(bootstrap)], env=env, managed_instances=2, task_root=task) as local:
        # WHEN it serves 6 invocations and stops
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            ids = {a["requestId"] for a in pool.map(lambda _: local.invoke({}), range(6))}
        assert local.stop() == 0
        logs = local.logs()
    keys, lines = all_lines_of(s3)
    invocations = [line for line in lines if line["type"] == "invocation"]
    assert sorted(line["record"]["awsRequestId"] for line in invocations) == sorted(ids), logs
    # THEN each invocation's line carries its own `logging` line, and only lines naming it
    for line in invocations:
        request_id = line["record"]["awsRequestId"]
        records = [record_of(event) for event in line["logs"]]
        assert all(event["type"] == "function" for event in line["logs"]), line
        assert [r["message"] for r in records if isinstance(r, dict)] == [f"hello from {request_id}"], line
        assert all(isinstance(r, dict) and r["requestId"] == request_id for r in records), line
    # ... the prints, which no invocation can claim while two run at once, are lines of their own
    alone = [line for line in lines if line["type"] == "log"]
    # (Two runtimes printing at once can share one stdout line: `print` writes the text and its line
    # break separately. So the prints are counted by their text, not by lines.)
    printed = "a print names no request id"
    prints = [line for line in alone if isinstance(line["event"]["record"], str) and printed in line["event"]["record"]]
    assert sum(line["event"]["record"].count(printed) for line in prints) == 6, alone
    assert all(line["requestId"] is None for line in prints), alone
    # (The extension's own output reaches its log file directly here, not through the emulator, so
    # that its last lines are kept: extension events are covered by the exporter's unit tests.)
    # ... and the summary counts every log event written, none dropped
    written = sum(len(line["logs"]) for line in invocations) + len(alone)
    line = summary(logs)
    assert f"exportLogEvents={written}" in line and "exportDroppedLogEvents=0" in line, line

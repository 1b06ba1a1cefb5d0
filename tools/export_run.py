"""Several execution environments at once under AWS's Lambda emulator, exporting their history to a local S3.

Each environment is the RIE's managed-instances mode (a real Telemetry API, so records carry status and duration;
concurrent invokes) with the extension's S3 export on, to a moto server on loopback (tools/local_s3.py). The
function is a small Python handler under awslambdaric that fails when asked to and sleeps as long as asked, so a
run has errors and durations worth looking at. What the run did (environments, request ids, which failed) is kept
so that what the export says can be checked against it (tests/local/test_history_query.py) or shown (`make
timeline-demo`).
"""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import botocore.exceptions

from tools.local_lambda import LocalLambda, NoIdleRuntime, free_port, local_api_json
from tools.local_s3 import REGION, LocalS3

HANDLER = """
import time


class AskedToFail(Exception):
    pass


def handler(event, context):
    time.sleep(event.get("sleepMs", 0) / 1000)
    if event.get("fail"):
        raise AskedToFail("the caller asked this invocation to fail")
    return {"requestId": context.aws_request_id}
"""


@dataclass
class Plan:
    """One environment: how many invocations, how many at once, which fail (every `fail_every`-th, 0: none), how
    long each sleeps, and when it starts and stops relative to the run's start."""

    invocations: int
    concurrency: int = 2
    fail_every: int = 0
    sleep_ms: int = 0
    start_after_s: float = 0.0
    linger_s: float = 0.0


@dataclass
class Served:
    """What one environment did, as its caller saw it."""

    environment_id: str
    request_ids: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    shutdown_code: int | None = None


def runtime_python() -> str:
    """A Python of this version that the emulator's runtime user can run (it is not root in managed-instances
    mode, and pytest's or pyenv's directories under /root are closed to it)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        path = Path(candidate).resolve()
        if path.is_file() and all(p.stat().st_mode & 0o005 == 0o005 for p in [path, *path.parents]):
            return str(path)
    raise RuntimeError(f"no {version} that the emulator's runtime user can run (pyenv's lives under /root)")


class FunctionDir:
    """The handler and a one-line bootstrap, in a directory another user can read."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="export-run-", dir="/tmp"))
        self.path.chmod(0o755)
        self.task = self.path / "task"
        self.task.mkdir(mode=0o755)
        (self.task / "handler.py").write_text(HANDLER)
        (self.task / "handler.py").chmod(0o644)
        self.bootstrap = self.path / "bootstrap"
        # The emulator's mode sets its own LAMBDA_TASK_ROOT: the handler is found through PYTHONPATH.
        python_path = f"{self.task}:{sysconfig.get_paths()['purelib']}"
        self.bootstrap.write_text(f"#!/bin/sh\nPYTHONPATH={python_path} exec {runtime_python()} -m awslambdaric handler.handler\n")
        self.bootstrap.chmod(0o755)

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def export_env(s3: LocalS3, bucket: str, prefix: str, max_invocations: int) -> dict[str, str]:
    return {
        "INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(free_port()),
        "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_BUCKET": bucket,
        "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_PREFIX": prefix,
        "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_ENDPOINT": s3.url,
        "INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_INVOCATIONS": str(max_invocations),
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }


def invoke(local: LocalLambda, payload: dict) -> dict:
    """One invoke, retried while the emulator has no idle runtime; the answer, an error's included (the
    managed-instances mode sets no FunctionError: a failed invocation's answer has an errorType)."""

    def attempt():
        try:
            return local.client.invoke(FunctionName="function", Payload=json.dumps(payload))
        except botocore.exceptions.ClientError as e:
            if local.refused(e.response["ResponseMetadata"]["HTTPStatusCode"]):
                raise NoIdleRuntime from e
            raise

    return json.loads(local.until_accepted(attempt)["Payload"].read())


def serve(local: LocalLambda, plan: Plan) -> Served:
    """Start `local`, invoke it as `plan` says, stop it; what it served."""
    time.sleep(plan.start_after_s)
    local.start()
    try:
        payloads = [
            {"fail": plan.fail_every > 0 and i % plan.fail_every == plan.fail_every - 1, "sleepMs": plan.sleep_ms}
            for i in range(plan.invocations)
        ]
        with concurrent.futures.ThreadPoolExecutor(plan.concurrency) as pool:
            answers = list(pool.map(lambda p: invoke(local, p), payloads))
        # Asked once the environment has served: the extension starts with the first invocation's init.
        served = Served(local_api_json(int(local.env["INVOCATION_HISTORY_EXTENSION_HTTP_PORT"]), "/environment")["environmentId"])
        for answer in answers:
            served.request_ids.append(answer["requestId"])
            if "errorType" in answer:
                served.failed.append(answer["requestId"])
        time.sleep(plan.linger_s)
        served.shutdown_code = local.stop()
        return served
    finally:
        local.cleanup()


def run(s3: LocalS3, bucket: str, plans: list[Plan], prefix: str = "invocation-history/", max_invocations: int = 4,
        ) -> list[Served]:  # fmt: skip
    """Run one environment per plan, all at once, each exporting to `s3://bucket/prefix`; what each served, in
    plan order. The bucket must exist."""
    function = FunctionDir()
    try:
        locals_ = [
            LocalLambda([str(function.bootstrap)], env=export_env(s3, bucket, prefix, max_invocations),
                        managed_instances=max(p.concurrency, 1), task_root=function.task)
            for p in plans
        ]  # fmt: skip
        results: list[Served | BaseException | None] = [None] * len(plans)

        def one(i: int) -> None:
            try:
                results[i] = serve(locals_[i], plans[i])
            except BaseException as e:  # noqa: BLE001 - raised below, once every environment is down
                results[i] = e

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(plans))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return results  # type: ignore[return-value]
    finally:
        function.cleanup()

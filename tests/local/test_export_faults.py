"""The S3 export's faults end to end (issue 12): the real extension under AWS's emulator (RIE) writes to an S3
that fails. The failures S3 answers with, slow answers, answers that never come and connections closed
mid-request come from tools/fault_s3.py on loopback; a missing bucket comes from moto (a real S3 server),
and absent credentials from the environment itself.

For each fault: every invocation succeeds with the extension's answer, the extension exits 0, and the
shutdown summary line counts every loss exactly (`exportDroppedBatches`, `exportDroppedInvocations`:
what was never stored) and every retry as the policy says: on-demand (the standard emulator, which
uploads at SHUTDOWN only) a retryable failure is tried again at once until 5 attempts or the deadline;
on Managed Instances (uploads from the exporter's own task) after a backoff (0.5 s, then doubling), the
batch staying queued meanwhile, and at once from SHUTDOWN on. A refusal (403, a missing bucket) is not
tried again. Where an upload can outlive SHUTDOWN, the extension still exits before the emulator's
deadline (2 s after SIGTERM, when it kills what is left) with a margin: its exit is recorded by a wrapper
script.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.fault_s3 import Fault, FaultS3
from tools.local_lambda import (
    EXTENSION,
    EXTENSION_NAME,
    GO_BOOTSTRAP,
    ROOT,
    LocalLambda,
    free_port,
    local_api_json,
    wait_until,
)
from tools.local_s3 import REGION, LocalS3

BUCKET = "history"
RECORD_EXIT = ROOT / "tests/local/fixtures/record-exit.sh"
# The emulator's SHUTDOWN deadline, from its receipt of SIGTERM: past it, it kills the extension.
SHUTDOWN_DEADLINE_MS = 2000
# The issue asks for what is left to go out within Lambda's deadline "with a margin": the extension keeps 50 ms
# of it for its summary line and exit (lifecycle/event_loop.rs, MARGIN_MS); the tests ask for this much of that.
EXIT_MARGIN_MS = 20
MAX_ATTEMPTS = 5  # exporter.rs: attempts of one batch before it is dropped
# On Managed Instances a batch of this many invocations goes out while the environment serves.
BATCH = 2
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
# The emulator's own lines saying it killed an extension that outlived the deadline (standard mode; managed
# instances).
KILLED = re.compile(r'did not exit after deadline|"Sending SIGKILL to process" name=extension-')


@dataclass
class Environment:
    """One execution environment with the export on: the extension runs behind a wrapper that records
    how and when it exited."""

    local: LocalLambda
    port: int
    exit_file: Path
    stop_sent_ns: int = 0

    def invoke(self, count: int) -> list[str]:
        """`count` invocations one after another; each must succeed with the function's own answer, which
        lists the history the extension served it (its own record last). Returns the request ids."""
        ids = []
        for _ in range(count):
            answer = self.local.invoke({})
            assert answer["invocations"][-1]["awsRequestId"] == answer["requestId"], answer
            ids.append(answer["requestId"])
        assert len(set(ids)) == count
        return ids

    def export(self) -> dict:
        """The export's counters as `/environment` shows them now."""
        return local_api_json(self.port, "/environment")["export"]

    def stop(self) -> None:
        """SIGTERM to the emulator, which sends SHUTDOWN; returns once it has exited."""
        self.stop_sent_ns = time.time_ns()
        assert self.local.stop() == 0
        # The emulator waits for its extensions; one it killed never records its exit.
        assert wait_until(self.exit_file.exists, timeout=0.5), f"the extension's exit was not recorded\n{self.logs()}"

    def logs(self) -> str:
        return self.local.logs()

    def exit_status(self) -> dict[str, str]:
        return dict(kv.split("=") for kv in self.exit_file.read_text().split())

    def summary(self) -> dict[str, str]:
        """The attributes of the extension's shutdown line."""
        lines = [line for line in self.logs().splitlines() if "msg=shutdown" in line and EXTENSION_NAME in line]
        assert len(lines) == 1, f"one summary line expected\n{self.logs()}"
        return dict(re.findall(r"(\w+)=(\S+)", lines[0]))

    def export_counts(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.summary().items() if k.startswith("export")}

    def failures(self) -> list[dict[str, str]]:
        """The extension's `S3 export: upload failed` lines: key, error, attempt, retry."""
        return [
            dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
            for line in self.logs().splitlines()
            if 'msg="S3 export: upload failed"' in line
        ]

    def check_exit(self, within_deadline: bool = False) -> None:
        """Exit 0; `within_deadline`: before the emulator's SHUTDOWN deadline with the margin (the emulator
        did not have to kill it)."""
        status = self.exit_status()
        assert status["exit"] == "0", status
        if within_deadline:
            assert not KILLED.search(self.logs()), self.logs()
            exited_ms = (int(status["at_ns"]) - self.stop_sent_ns) / 1e6
            assert exited_ms < SHUTDOWN_DEADLINE_MS - EXIT_MARGIN_MS, (
                f"exited {exited_ms:.1f} ms after SIGTERM, the deadline {SHUTDOWN_DEADLINE_MS} ms\n{self.logs()}"
            )


@pytest.fixture
def exit_dir():
    """Where the wrapper writes the extension's exit: on Managed Instances the emulator runs extensions as
    another user, who must be able to write there."""
    path = Path(tempfile.mkdtemp(prefix="export-faults-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start(exit_dir):
    """start(endpoint, managed_instances=False, **env) -> a started Environment exporting to `endpoint`."""
    started: list[LocalLambda] = []

    def start(endpoint: str, managed_instances: bool = False, credentials: bool = True, **env: str) -> Environment:
        port = free_port()
        exit_file = exit_dir / f"exit-{len(started)}"
        env = {
            "INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(port),
            "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_BUCKET": BUCKET,
            "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_ENDPOINT": endpoint,
            "AWS_REGION": REGION,
            "EXTENSION_EXIT_FILE": str(exit_file),
            **(CREDENTIALS if credentials else {}),
            **env,
        }
        local = LocalLambda(
            [str(GO_BOOTSTRAP)], env=env, managed_instances=2 if managed_instances else 0,
            extensions={EXTENSION_NAME: RECORD_EXIT}, opt_files={"test/invocation-history-extension": EXTENSION},
        )  # fmt: skip
        started.append(local)
        local.start()
        return Environment(local, port, exit_file)

    yield start
    for local in started:
        local.cleanup()


def managed_instances(start, endpoint: str, **env: str) -> Environment:
    """Managed Instances exporting a batch every `BATCH` invocations."""
    return start(
        endpoint, managed_instances=True, INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_INVOCATIONS=str(BATCH), **env
    )


def stored_invocations(objects: dict[str, bytes]) -> list[str]:
    """The request id of every invocation line in `objects`, in key order."""
    lines = [json.loads(line) for key in sorted(objects) for line in gzip.decompress(objects[key]).splitlines()]
    return [line["record"]["awsRequestId"] for line in lines if line["type"] == "invocation"]


def attempts_by_key(s3: FaultS3) -> list[int]:
    """How many PUTs each object got, in the order the objects came."""
    keys = s3.keys_put()
    return [keys.count(key) for key in dict.fromkeys(keys)]


def check_failures_counted(env: Environment, attempts: int, refused: bool = False) -> None:
    """`attempts` failed uploads logged and counted: each one a retry but a batch's last (5th) attempt and a
    refusal."""
    failures = env.failures()
    assert len(failures) == attempts, env.logs()
    retries = [f for f in failures if f["retry"] == "true"]
    assert env.export_counts()["exportRetries"] == len(retries), env.logs()
    if refused:
        assert retries == [], failures


# -- on-demand: the standard emulator has no Telemetry API, so everything goes out at SHUTDOWN -------------------------


ERROR_ANSWERS = {
    "403 AccessDenied": (Fault.error(403, "AccessDenied"), 1),
    "500 InternalError": (Fault.error(500, "InternalError"), MAX_ATTEMPTS),
    "503 SlowDown": (Fault.error(503, "SlowDown"), MAX_ATTEMPTS),
    "400 RequestTimeout": (Fault.error(400, "RequestTimeout"), MAX_ATTEMPTS),
    "429 without a code": (Fault.error(429, ""), MAX_ATTEMPTS),
    "closed mid-request": (Fault.close(), MAX_ATTEMPTS),
}


@pytest.mark.parametrize("fault", sorted(ERROR_ANSWERS))
def test_on_demand_a_failing_s3_is_retried_as_the_policy_says_and_the_loss_counted(start, fault):
    answer, attempts = ERROR_ANSWERS[fault]
    # GIVEN an S3 that answers every PUT with the fault
    with FaultS3(answer) as s3:
        env = start(s3.url)
        # WHEN the function is invoked 3 times and the environment shuts down
        env.invoke(3)
        env.stop()
    env.check_exit()
    # THEN the one batch got its attempts (a refusal one, a retryable failure five, at once), nothing is stored
    assert attempts_by_key(s3) == [attempts], s3.keys_put()
    assert s3.objects == {}
    check_failures_counted(env, attempts, refused=attempts == 1)
    # ... and the summary counts the batch and its 3 invocations as dropped
    counts = env.export_counts()
    assert counts["exportBatches"] == 0 and counts["exportInvocations"] == 0, counts
    assert counts["exportDroppedBatches"] == 1 and counts["exportDroppedInvocations"] == 3, counts
    assert counts["exportRetries"] == attempts - 1, counts


def test_on_demand_a_500_then_success_stores_the_batch_once(start):
    # GIVEN an S3 whose first answer is a 500 and which then stores
    with FaultS3(Fault.error(500, "InternalError"), Fault.stored()) as s3:
        env = start(s3.url)
        ids = env.invoke(3)
        # WHEN the environment shuts down
        env.stop()
    env.check_exit()
    # THEN the batch went out twice under one key and is stored once, with every invocation once
    assert attempts_by_key(s3) == [2]
    assert stored_invocations(s3.objects) == ids
    counts = env.export_counts()
    assert counts["exportBatches"] == 1 and counts["exportInvocations"] == 3 and counts["exportRetries"] == 1, counts
    assert counts["exportDroppedBatches"] == 0 and counts["exportDroppedInvocations"] == 0, counts


def test_on_demand_a_missing_bucket_is_refused_once_and_the_loss_counted(start):
    # GIVEN a real S3 (moto) without the bucket
    with LocalS3() as s3:
        env = start(s3.url)
        env.invoke(3)
        # WHEN the environment shuts down
        env.stop()
    env.check_exit()
    # THEN S3's NoSuchBucket is not tried again, and the batch and its invocations are counted as dropped
    failures = env.failures()
    assert len(failures) == 1 and "NoSuchBucket" in failures[0]["error"], env.logs()
    check_failures_counted(env, 1, refused=True)
    counts = env.export_counts()
    assert counts["exportBatches"] == 0 and counts["exportDroppedBatches"] == 1, counts
    assert counts["exportDroppedInvocations"] == 3 and counts["exportRetries"] == 0, counts


@pytest.mark.parametrize("mode", ["on-demand", "managed-instances"])
@pytest.mark.parametrize("fault", ["answers after 10 s", "never answers"])
def test_an_s3_slower_than_the_shutdown_deadline_loses_the_batches_counted_within_the_deadline(start, mode, fault):
    # GIVEN an S3 that answers every PUT long after the emulator's 2 s SHUTDOWN deadline, or never; on-demand a
    # batch per invocation, on Managed Instances batches large enough that everything waits for SHUTDOWN
    with FaultS3(Fault.stored(delay=10) if fault == "answers after 10 s" else Fault.hang()) as s3:
        if mode == "on-demand":
            env = start(s3.url, INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_INVOCATIONS="1")
        else:
            env = start(s3.url, managed_instances=True)
        ids = env.invoke(3)
        # WHEN the environment shuts down
        env.stop()
    # THEN the extension gave up the first batch's upload at its deadline and exited 0 before the emulator's
    env.check_exit(within_deadline=True)
    assert attempts_by_key(s3) == [1] and s3.objects == {}
    check_failures_counted(env, 1)
    # ... and the summary counts every batch (those the deadline left no time for too) and invocation as dropped
    counts = env.export_counts()
    assert counts["exportBatches"] == 0 and counts["exportInvocations"] == 0, counts
    assert counts["exportDroppedBatches"] == (len(ids) if mode == "on-demand" else 1), counts
    assert counts["exportDroppedInvocations"] == len(ids), counts


def test_credentials_absent_turn_the_export_off_with_one_line_and_the_function_is_served(start):
    # GIVEN a real S3 with the bucket, and no credentials at all in the environment
    with LocalS3() as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        env = start(s3.url, credentials=False)
        # WHEN the function is invoked and the environment shuts down
        env.invoke(3)
        environment = local_api_json(env.port, "/environment")
        env.stop()
        objects = s3.objects(BUCKET)
    env.check_exit()
    # THEN one line says the export is off and why; the extension serves the function without it
    off = [line for line in env.logs().splitlines() if "S3 export off" in line]
    assert len(off) == 1 and "no credentials" in off[0], env.logs()
    assert environment["features"]["s3Export"] is False and "export" not in environment, environment
    assert objects == {}
    summary = env.summary()
    assert summary["invocationsServed"] == "3" and not [k for k in summary if k.startswith("export")], summary


# -- Managed Instances: batches go out from the exporter's own task while the environment serves -----------------------


def test_managed_instances_repeated_500s_are_retried_with_backoff_then_dropped_and_counted(start):
    # GIVEN an S3 that answers every PUT with a 500
    with FaultS3(Fault.error(500, "InternalError")) as s3:
        env = managed_instances(start, s3.url)
        env.invoke(BATCH)
        # WHEN the batch fails twice (its first retry after the backoff) while the environment serves
        assert s3.wait_for_puts(2, timeout=5.0), env.logs()
        export = wait_until(lambda: (e := env.export())["retries"] >= 2 and e, timeout=2.0, interval=0.02)
        # THEN it stays queued meanwhile, nothing dropped yet
        assert export and export["queuedBatches"] == 1 and export["droppedBatches"] == 0, env.export()
        # ... and at SHUTDOWN it is tried at once up to its 5th attempt, as is the environment's last batch
        env.stop()
    env.check_exit()
    assert attempts_by_key(s3) == [MAX_ATTEMPTS, MAX_ATTEMPTS], s3.keys_put()
    check_failures_counted(env, 2 * MAX_ATTEMPTS)
    # ... and both batches, with the invocations of the first, are counted as dropped
    counts = env.export_counts()
    assert counts["exportBatches"] == 0 and counts["exportRetries"] == 2 * (MAX_ATTEMPTS - 1), counts
    assert counts["exportDroppedBatches"] == 2 and counts["exportDroppedInvocations"] == BATCH, counts


def test_managed_instances_a_put_that_hangs_never_holds_the_function_and_is_counted_at_shutdown(start):
    # GIVEN an S3 that reads every PUT and never answers, and a batch's PUT under way
    with FaultS3(Fault.hang()) as s3:
        env = managed_instances(start, s3.url)
        ids = env.invoke(BATCH)
        assert s3.wait_for_puts(1, timeout=5.0), env.logs()
        # WHEN the function is invoked meanwhile
        # THEN every invocation succeeds, with the history the extension serves it (Environment.invoke)
        ids += env.invoke(3)
        # ... and when the environment shuts down, well after that PUT began (not within the 50 ms margin:
        # test_managed_instances_shutdown_in_the_middle_of_a_put_...), the extension gives up at its deadline
        time.sleep(0.2)
        env.stop()
    env.check_exit(within_deadline=True)
    # ... after the batch's second attempt (from SHUTDOWN, cut at the deadline), counting as dropped that batch and
    # the two written at SHUTDOWN (invocations 3 and 4; 5 with the environment's last line), none stored
    assert attempts_by_key(s3) == [2] and s3.objects == {}, s3.keys_put()
    check_failures_counted(env, 2)
    counts = env.export_counts()
    assert counts["exportBatches"] == 0 and counts["exportDroppedBatches"] == 3, counts
    assert counts["exportDroppedInvocations"] == len(ids), counts


def test_managed_instances_a_500_then_success_is_stored_once_after_the_backoff(start):
    # GIVEN an S3 whose first answer is a 500 and which then stores
    with FaultS3(Fault.error(500, "InternalError"), Fault.stored()) as s3:
        env = managed_instances(start, s3.url)
        ids = env.invoke(BATCH)
        # WHEN the batch is retried after its backoff while the environment serves
        export = wait_until(lambda: (e := env.export())["batches"] == 1 and e, timeout=5.0, interval=0.02)
        assert export and export["retries"] == 1 and export["queuedBatches"] == 0, env.export()
        env.stop()
    env.check_exit()
    # THEN it is stored once with every invocation once; the environment's last batch follows it
    assert attempts_by_key(s3) == [2, 1], s3.keys_put()
    assert stored_invocations(s3.objects) == ids
    counts = env.export_counts()
    assert counts["exportBatches"] == 2 and counts["exportInvocations"] == BATCH, counts
    assert counts["exportRetries"] == 1, counts
    assert counts["exportDroppedBatches"] == 0 and counts["exportDroppedInvocations"] == 0, counts


@pytest.mark.parametrize("fault", ["403 AccessDenied", "missing bucket"])
def test_managed_instances_a_refusal_drops_the_batch_at_once_counted(start, fault):
    # GIVEN an S3 that refuses every PUT: a 403, or a real S3 (moto) without the bucket
    with FaultS3(Fault.error(403, "AccessDenied")) if fault == "403 AccessDenied" else LocalS3() as s3:
        env = managed_instances(start, s3.url)
        env.invoke(BATCH)
        # WHEN the batch goes out while the environment serves
        # THEN it is dropped at its first refusal, not retried
        export = wait_until(lambda: (e := env.export())["droppedBatches"] == 1 and e, timeout=5.0, interval=0.02)
        assert export and export["retries"] == 0 and export["queuedBatches"] == 0, env.export()
        assert export["droppedInvocations"] == BATCH, export
        env.stop()
    env.check_exit()
    # ... as is the environment's last batch at SHUTDOWN, each with S3's code in its one line
    code = "AccessDenied" if fault == "403 AccessDenied" else "NoSuchBucket"
    failures = env.failures()
    assert len(failures) == 2 and all(code in f["error"] for f in failures), env.logs()
    check_failures_counted(env, 2, refused=True)
    if isinstance(s3, FaultS3):
        assert attempts_by_key(s3) == [1, 1], s3.keys_put()
    counts = env.export_counts()
    assert counts["exportBatches"] == 0 and counts["exportRetries"] == 0, counts
    assert counts["exportDroppedBatches"] == 2 and counts["exportDroppedInvocations"] == BATCH, counts


@pytest.fixture
def dead_port():
    """A loopback port where nothing listens and nothing else can while the test runs: bound, never listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def test_managed_instances_an_unreachable_s3_is_retried_then_every_loss_counted(start, dead_port):
    # GIVEN an endpoint where nothing listens
    env = managed_instances(start, f"http://127.0.0.1:{dead_port}")
    env.invoke(BATCH)
    # WHEN the batch has failed once while the environment serves, and the environment shuts down
    export = wait_until(lambda: (e := env.export())["retries"] >= 1 and e, timeout=5.0, interval=0.02)
    assert export and export["queuedBatches"] == 1 and export["droppedBatches"] == 0, env.export()
    env.stop()
    env.check_exit()
    # THEN both batches used their 5 attempts, and are counted as dropped with the invocations
    check_failures_counted(env, 2 * MAX_ATTEMPTS)
    counts = env.export_counts()
    assert counts["exportRetries"] == 2 * (MAX_ATTEMPTS - 1), counts
    assert counts["exportDroppedBatches"] == 2 and counts["exportDroppedInvocations"] == BATCH, counts


def test_managed_instances_shutdown_in_the_middle_of_a_put_loses_it_counted_within_the_deadline(start):
    # GIVEN an S3 that reads every PUT and never answers
    with FaultS3(Fault.hang()) as s3:
        env = managed_instances(start, s3.url)
        ids = env.invoke(BATCH)
        # WHEN SHUTDOWN comes while the batch's PUT is under way
        assert s3.wait_for_puts(1, timeout=5.0), env.logs()
        env.stop()
    # THEN the extension exits 0 before the emulator's deadline
    env.check_exit(within_deadline=True)
    # ... and counts the batch under way and every invocation as dropped, none stored
    assert s3.objects == {}
    counts = env.export_counts()
    assert counts["exportBatches"] == 0 and counts["exportDroppedInvocations"] == len(ids), counts
    assert counts["exportDroppedBatches"] >= len(set(s3.keys_put())), (counts, s3.keys_put())

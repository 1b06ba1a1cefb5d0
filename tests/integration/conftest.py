"""Where the integration tests run.

- Deployed stacks: the outputs file of `make deploy` (cdk-outputs.json, or CDK_OUTPUTS_FILE) and AWS credentials.
  An endpoint setting (AWS_ENDPOINT_URL_LAMBDA) on loopback means a local cloud started by hand (`make up`).
- Otherwise the same app, synthesized (into a temporary directory, or LOCAL_CLOUD_ASSEMBLY if set) and started
  locally by `python -m tools.local_cloud` for the tests of this package, then stopped (issue 15).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tools.local_lambda import RIE

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Bounds of the local cloud's start (it takes well under a second once synthesized) and stop (SHUTDOWN, 2 s each).
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


@dataclass
class Target:
    """The stacks the tests invoke: on AWS ("aws") or started here ("local")."""

    kind: str
    outputs_file: Path
    #: Lambda endpoint (None: the SDK's default, AWS).
    endpoint_url: str | None = None
    region: str | None = None
    #: Outputs the local cloud left out, by (stack, output), with its reason (e.g. a container image).
    left_out: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def local(self) -> bool:
        return self.kind == "local"


def _on_loopback(url: str) -> bool:
    return urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


def _configured_deployment() -> Path | None:
    if os.environ.get("CDK_OUTPUTS_FILE"):
        return Path(os.environ["CDK_OUTPUTS_FILE"])
    default = REPO_ROOT / "cdk-outputs.json"
    return default if default.is_file() else None


@pytest.fixture(scope="package")
def target(tmp_path_factory):
    outputs_file = _configured_deployment()
    if outputs_file is not None:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_LAMBDA")
        kind = "local" if endpoint and _on_loopback(endpoint) else "aws"
        yield Target(kind, outputs_file, endpoint, os.environ.get("AWS_REGION"))
        return

    missing = [tool for tool in ("unshare", "mount") if shutil.which(tool) is None]
    if not RIE.exists():
        missing.append(f"{RIE} (make rie)")
    if missing:
        pytest.skip(f"no deployed stacks, and no local run without {', '.join(missing)}")
    workdir = tmp_path_factory.mktemp("local-cloud")
    command = [sys.executable, "-m", "tools.local_cloud", "--outputs-file", str(workdir / "outputs.json"),
               "--status-file", str(workdir / "status.json")]  # fmt: skip
    if os.environ.get("LOCAL_CLOUD_ASSEMBLY"):
        command += ["--assembly", os.environ["LOCAL_CLOUD_ASSEMBLY"]]
    else:
        command += ["--assembly", str(workdir / "cdk.out"), "--synth"]
    log_path = workdir / "local-cloud.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        status_file = workdir / "status.json"
        # Synthesis comes first and may build the layer (Rust, bounded by the test's timeout): the start's own
        # bound counts from its end.
        deadline = None if "--synth" in command else time.monotonic() + START_TIMEOUT_S
        while not status_file.exists():
            if process.poll() is not None:
                pytest.fail(f"tools.local_cloud exited with {process.returncode}:\n{log_path.read_text()}")
            if deadline is None and "synthesized into" in log_path.read_text():
                deadline = time.monotonic() + START_TIMEOUT_S
            if deadline is not None and time.monotonic() > deadline:
                pytest.fail(f"tools.local_cloud did not start within {START_TIMEOUT_S} s:\n{log_path.read_text()}")
            time.sleep(0.1)
        status = json.loads(status_file.read_text())
        print(log_path.read_text())  # what runs, what does not and why (shown with -s or on failure)
        left_out = {(stack, output): reason for stack, outputs in status["outputsLeftOut"].items()
                    for output, reason in outputs.items()}  # fmt: skip
        yield Target("local", workdir / "outputs.json", status["endpoint"], status["region"], left_out)
    finally:
        # Ctrl-C's path: every environment gets SHUTDOWN, every file goes.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"tools.local_cloud did not stop within {STOP_TIMEOUT_S} s:\n{log_path.read_text()}")
    assert process.returncode == 0, log_path.read_text()
    assert not (workdir / "outputs.json").exists(), "the local cloud left its outputs file behind"

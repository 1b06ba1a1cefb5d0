"""The deployed sample functions, invoked with boto3: the same history checks as the local end-to-end tests.

Needs the outputs file of `make deploy` (`cdk deploy --outputs-file cdk-outputs.json`; another path via
CDK_OUTPUTS_FILE) and AWS credentials; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app import CONTAINER_STACK, DEMO_STACK

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUTS_FILE = Path(os.environ.get("CDK_OUTPUTS_FILE", REPO_ROOT / "cdk-outputs.json"))

# (stack, output) of every deployed sample function
FUNCTIONS = [
    (DEMO_STACK, "GoSampleFunctionName"),
    (DEMO_STACK, "PythonSampleFunctionName"),
    (DEMO_STACK, "PythonProxySampleFunctionName"),
    (CONTAINER_STACK, "ContainerSampleFunctionName"),
]


@pytest.fixture(scope="module")
def outputs() -> dict:
    if not OUTPUTS_FILE.is_file():
        pytest.skip(f"no deployed stacks: {OUTPUTS_FILE} not found (run `make deploy`, or set CDK_OUTPUTS_FILE)")
    return json.loads(OUTPUTS_FILE.read_text())


@pytest.fixture(scope="module")
def lambda_client(outputs):
    import boto3
    from botocore.config import Config

    session = boto3.Session()
    if session.get_credentials() is None:
        pytest.skip("no AWS credentials (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
    if session.region_name is None:
        pytest.skip("no AWS region (set AWS_REGION to the region of the deployed stacks)")
    # No retries: a retried invoke would add an invocation the checks do not expect.
    return session.client("lambda", config=Config(retries={"max_attempts": 1, "mode": "standard"},
                                                  read_timeout=30))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stack,output", FUNCTIONS, ids=[o for _, o in FUNCTIONS])
def test_deployed_function_sees_its_history_grow(outputs, lambda_client, stack, output):
    name = outputs.get(stack, {}).get(output)
    if not name:
        pytest.skip(f"{stack}.{output} not in {OUTPUTS_FILE}: that stack was not deployed")
    from tests.shared.history_checks import check_history_grows

    def invoke(payload: dict) -> dict:
        response = lambda_client.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
        body = response["Payload"].read()
        assert "FunctionError" not in response, f"{name} failed: {body[:2000]!r}"
        return json.loads(body)

    # GIVEN a deployed sample function with the extension
    # WHEN it is invoked several times
    # THEN each answer lists every earlier request id in order, and its own
    answers = check_history_grows(invoke, times=3)
    assert len(answers) == 3
    # AND on Lambda the Telemetry API is on, and records carry what platform.report says. The report
    # of invocation N reaches the extension while it runs N+1 (the environment is frozen between
    # them), so only records two or more before the one asking are sure to have it.
    last = answers[-1]
    assert last["environment"]["features"]["telemetry"] == "on", last["environment"]
    newest = max(r["sequence"] for r in last["invocations"])
    settled = [r for r in last["invocations"] if r["sequence"] <= newest - 2]
    assert all(r.get("status") == "success" and r.get("durationMs", 0) > 0 for r in settled), settled
    if output == "PythonProxySampleFunctionName":
        # AND through the Runtime API proxy (AWS_LAMBDA_EXEC_WRAPPER, which only a deployed managed
        # runtime applies) every record was created when the runtime took its event, and the
        # earlier ones carry their outcome
        records = answers[-1]["invocations"]
        assert all("runtimeReceivedAt" in r for r in records), records
        assert all(r.get("outcome") == "success" for r in records[:-1]), records

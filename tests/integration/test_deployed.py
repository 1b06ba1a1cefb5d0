"""The sample functions as deployed, invoked with boto3: the same history checks as the local end-to-end tests.

Against the stacks of `make deploy` when its outputs file is there (`cdk deploy --outputs-file cdk-outputs.json`;
another path via CDK_OUTPUTS_FILE) with AWS credentials; otherwise against the same app synthesized and started
locally by tools.local_cloud (see conftest.py). What the local Lambda lacks is stated per target below.
"""

from __future__ import annotations

import json

import pytest

from app import CONTAINER_STACK, DEMO_STACK

# (stack, output) of every deployed sample function
FUNCTIONS = [
    (DEMO_STACK, "GoSampleFunctionName"),
    (DEMO_STACK, "PythonSampleFunctionName"),
    (DEMO_STACK, "PythonProxySampleFunctionName"),
    (CONTAINER_STACK, "ContainerSampleFunctionName"),
]


@pytest.fixture(scope="module")
def outputs(target) -> dict:
    if not target.outputs_file.is_file():
        pytest.skip(f"no deployed stacks: {target.outputs_file} not found (run `make deploy`, or set CDK_OUTPUTS_FILE)")
    return json.loads(target.outputs_file.read_text())


@pytest.fixture(scope="module")
def lambda_client(outputs, target):
    import boto3
    from botocore.config import Config

    # No retries: a retried invoke would add an invocation the checks do not expect.
    config = Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=30)
    if target.local:
        # The local endpoint takes any credentials, as AWS's emulators do.
        return boto3.client("lambda", endpoint_url=target.endpoint_url, region_name=target.region or "us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local", config=config)  # fmt: skip
    session = boto3.Session()
    if session.get_credentials() is None:
        pytest.skip("no AWS credentials (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
    if session.region_name is None:
        pytest.skip("no AWS region (set AWS_REGION to the region of the deployed stacks)")
    return session.client("lambda", config=config)


# The first test includes synthesizing the app (which may build the layer with Rust) and starting it locally.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("stack,output", FUNCTIONS, ids=[o for _, o in FUNCTIONS])
def test_deployed_function_sees_its_history_grow(target, outputs, lambda_client, stack, output):
    name = outputs.get(stack, {}).get(output)
    if not name:
        default = "the local cloud did not run it (make up prints why)" if target.local else "that stack was not deployed"
        reason = target.left_out.get((stack, output), default)
        pytest.skip(f"{stack}.{output} not in {target.outputs_file}: {reason}")
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
    last = answers[-1]
    if target.local:
        # AND locally (the RIE's standard mode answers the Telemetry API with Telemetry.NotSupported) the extension
        # says so, and no record carries a telemetry field: what is not known is omitted, never invented
        assert last["environment"]["features"]["telemetry"] == "unsupported", last["environment"]
        assert not any("status" in r or "durationMs" in r for r in last["invocations"]), last["invocations"]
    else:
        # AND on Lambda the Telemetry API is on, and records carry what platform.report says. The report
        # of invocation N reaches the extension while it runs N+1 (the environment is frozen between
        # them), so only records two or more before the one asking are sure to have it.
        assert last["environment"]["features"]["telemetry"] == "on", last["environment"]
        newest = max(r["sequence"] for r in last["invocations"])
        settled = [r for r in last["invocations"] if r["sequence"] <= newest - 2]
        assert all(r.get("status") == "success" and r.get("durationMs", 0) > 0 for r in settled), settled
    if output == "PythonProxySampleFunctionName":
        # AND through the Runtime API proxy (AWS_LAMBDA_EXEC_WRAPPER, which a managed runtime applies on Lambda
        # and tools.local_cloud applies the same way) every record was created when the runtime took its event,
        # and the earlier ones carry their outcome
        assert last["environment"]["features"]["runtimeProxy"] is True, last["environment"]
        records = last["invocations"]
        assert all("runtimeReceivedAt" in r for r in records), records
        assert all(r.get("outcome") == "success" for r in records[:-1]), records

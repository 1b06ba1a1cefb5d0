"""tools.local_cloud end to end on the RIE: a small hand-written cloud assembly (code asset, layers, exec wrapper,
inline code, timeout) started as deployed and invoked with boto3 through the local Invoke API endpoint."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import boto3
import botocore.config
import pytest

from tests.unit.test_local_cloud import function, layer, write_assembly
from tools.local_cloud import LocalCloud, node_runtime_interface_client

HANDLER = '''
import json, os, sys

def handler(event, context):
    import greeting  # from the layer, /opt/python
    return {
        "greeting": greeting.GREETING,
        "env": {k: os.environ.get(k) for k in event.get("env", [])},
        "memory": context.memory_limit_in_mb,
        "functionName": context.function_name,
        "taskRoot": os.getcwd(),
        "argv0": sys.argv[0],
    }

def fails(event, context):
    raise ValueError("as asked")

def sleeper(event, context):
    import time
    time.sleep(5)
    return "woke up"
'''

# An exec wrapper as a layer ships one: it must run with the runtime's command as its arguments.
WRAPPER = '#!/bin/sh\nexport WRAPPED_BY="$0"\nexec "$@"\n'


@pytest.fixture
def cloud(tmp_path):
    out = tmp_path / "cdk.out"
    out.mkdir()
    (out / "asset.code").mkdir()
    (out / "asset.code/app.py").write_text(HANDLER)
    with zipfile.ZipFile(out / "asset.layer.zip", "w") as archive:
        archive.writestr("python/greeting.py", "GREETING = 'hello from the layer'\n")
        wrapper = zipfile.ZipInfo("wrap")
        wrapper.external_attr = 0o100755 << 16
        archive.writestr(wrapper, WRAPPER)
    stack = {
        "Resources": {
            "Layer": layer("layer.zip"),
            "Api": function(
                "code.zip",
                Handler="app.handler",
                MemorySize=256,
                Timeout=10,
                Layers=[{"Ref": "Layer"}],
                Environment={"Variables": {
                    "AWS_LAMBDA_EXEC_WRAPPER": "/opt/wrap",
                    "PEER": {"Ref": "Sleeper"},
                    "WHERE": {"Fn::Sub": "${AWS::Region}:${Sleeper.Arn}"},
                    "TABLE": {"Ref": "Table"},
                }},
            ),  # fmt: skip
            "Sleeper": function("code.zip", Handler="app.sleeper", Timeout=1),
            "Fails": function("code.zip", Handler="app.fails"),
            "Inline": function(None, Code={"ZipFile": "def handler(event, context):\n    return {'inline': True}\n"},
                               Handler="index.handler"),  # fmt: skip
            "NodeInline": function(None, Runtime="nodejs20.x", Handler="index.handler",
                                   Code={"ZipFile": "exports.handler = async (e) => ({node: process.version});"}),
            "Table": {"Type": "AWS::DynamoDB::Table"},
        },
        "Outputs": {"ApiName": {"Value": {"Ref": "Api"}}, "NodeName": {"Value": {"Ref": "NodeInline"}}},
    }
    write_assembly(out, {"App": stack}, {"App": {"code.zip": out / "asset.code", "layer.zip": out / "asset.layer.zip"}})
    local = LocalCloud(out, outputs_file=tmp_path / "outputs.json", region="eu-west-1")
    local.start()
    yield local
    local.stop()


@pytest.fixture
def client(cloud):
    return boto3.client(
        "lambda", endpoint_url=cloud.endpoint.url, region_name="eu-west-1", aws_access_key_id="local",
        aws_secret_access_key="local",
        config=botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=30, connect_timeout=2),
    )  # fmt: skip


def invoke(client, name: str, payload: dict | None = None) -> tuple[dict, object]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(payload or {}).encode())
    return response, json.loads(response["Payload"].read())


def test_a_function_runs_as_its_template_says(cloud, client, tmp_path):
    # GIVEN the assembly started locally, its outputs file naming the function by its local name
    outputs = json.loads((tmp_path / "outputs.json").read_text())
    name = outputs["App"]["ApiName"]
    assert name == "App-Api"
    # WHEN it is invoked by that name through the endpoint
    variables = ["PEER", "WHERE", "TABLE", "WRAPPED_BY", "AWS_LAMBDA_FUNCTION_TIMEOUT", "AWS_REGION",
                 "AWS_LAMBDA_FUNCTION_NAME"]  # fmt: skip
    response, answer = invoke(client, name, {"env": variables})
    # THEN the code asset is the task root, the layer is in /opt, the environment is the template's, resolved
    assert "FunctionError" not in response, answer
    assert answer["greeting"] == "hello from the layer"
    assert answer["memory"] == "256" and answer["functionName"] == name
    assert answer["env"] == {
        "PEER": "App-Sleeper",
        "WHERE": "eu-west-1:arn:aws:lambda:eu-west-1:000000000000:function:App-Sleeper",
        "TABLE": None,  # no local value: left unset, and named in the notes
        "WRAPPED_BY": "/opt/wrap",  # the runtime was started through AWS_LAMBDA_EXEC_WRAPPER
        "AWS_LAMBDA_FUNCTION_TIMEOUT": "10",
        "AWS_REGION": "eu-west-1",
        "AWS_LAMBDA_FUNCTION_NAME": name,
    }
    notes = cloud.status()["functions"][name]["notes"]
    assert any(n.startswith("TABLE left unset: Ref Table (AWS::DynamoDB::Table)") for n in notes), notes
    # AND an ARN reaches it as the name does
    response, again = invoke(client, f"arn:aws:lambda:eu-west-1:000000000000:function:{name}", {"env": []})
    assert again["functionName"] == name


def test_inline_code_runs_from_index(client):
    response, answer = invoke(client, "App-Inline")
    assert answer == {"inline": True}, response


def test_the_template_timeout_ends_a_long_invoke(client):
    # GIVEN a function with Timeout 1 that sleeps 5 s; WHEN invoked; THEN the invoke fails as timed out, as on Lambda
    response, answer = invoke(client, "App-Sleeper")
    assert response.get("FunctionError") == "Unhandled", answer
    assert answer == {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 1.00 seconds"}


def test_a_function_error_is_marked_as_lambda_marks_it(client):
    response, answer = invoke(client, "App-Fails")
    assert response.get("FunctionError") == "Unhandled", answer
    assert (answer["errorType"], answer["errorMessage"]) == ("ValueError", "as asked")


def test_an_unknown_function_or_version_is_not_found(client):
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="Function not found: nope"):
        client.invoke(FunctionName="nope", Payload=b"{}")
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="only \\$LATEST"):
        client.invoke(FunctionName="App-Api", Qualifier="live", Payload=b"{}")


def test_nodejs_runs_through_the_runtime_interface_client_or_says_why_not(cloud, client):
    if node_runtime_interface_client() is None:
        # THEN without it, the function is reported skipped with the reason, and its output left out
        reason = cloud.status()["skipped"]["App-NodeInline"]
        assert "not supported locally" in reason and "make node-ric" in reason
        assert "App-NodeInline is not run locally" in cloud.left_out["App"]["NodeName"]
        pytest.skip(f"Node.js: {reason}")
    response, answer = invoke(client, "App-NodeInline")
    assert answer["node"].startswith("v"), (response, answer)


def test_stop_leaves_nothing_behind(cloud, tmp_path):
    processes = [f.lambda_.process for f in cloud.functions.values()]
    cloud.stop()
    assert all(p.poll() is not None for p in processes)
    assert not (tmp_path / "outputs.json").exists()
    assert not cloud.workdir.exists()
    assert not any(Path(f.lambda_._tmp).exists() for f in cloud.functions.values())


def test_dry_run_and_event_invocations_are_answered_as_lambda_answers_them(client):
    assert client.invoke(FunctionName="App-Inline", InvocationType="DryRun")["StatusCode"] == 204
    assert client.invoke(FunctionName="App-Inline", InvocationType="Event", Payload=b"{}")["StatusCode"] == 202

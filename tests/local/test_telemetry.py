"""Telemetry enrichment, Lambda Managed Instances and the EMF metrics, end to end on the RIE.

The RIE's standard mode has no Telemetry API (it answers Telemetry.NotSupported); its
managed-instances mode (AWS_LAMBDA_MAX_CONCURRENCY set) has a real one, allows concurrent invokes
and refuses INVOKE registrations, like Lambda Managed Instances.
"""

from __future__ import annotations

import concurrent.futures
import json
import urllib.request
from pathlib import Path

import jsonschema
import pytest
from openapi_core.testing import MockRequest, MockResponse

from tests.local.test_api_contract import SPEC
from tools.local_lambda import GO_BOOTSTRAP, ROOT, LocalLambda, free_port, wait_until

TESTDATA = ROOT / "extension_src/src/telemetry/testdata"
SCHEMA = TESTDATA / "telemetry-event.schema.json"
CONCURRENCY = 4


def get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        body = r.read()
    # The spec's server is the default port; the answer's shape is what is checked.
    request = MockRequest("http://127.0.0.1:1203", "get", path.split("?")[0])
    SPEC.validate_response(request, MockResponse(body, status_code=200, content_type="application/json"))
    return json.loads(body)


EMF_SCHEMA = json.loads((Path(__file__).parent / "fixtures/emf.schema.json").read_text())


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def emf_lines(logs: str) -> list[dict]:
    """The extension's EMF lines, each checked against the specification (fixtures/emf.schema.json) and the rules
    the schema cannot express."""
    found = []
    for line in logs.splitlines():
        if not line.startswith('{"') or '"_aws"' not in line:
            continue
        doc = json.loads(line)
        jsonschema.Draft202012Validator(EMF_SCHEMA).validate(doc)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                assert all(isinstance(doc[d], str) and doc[d] for d in dimension_set)
            for metric in directive["Metrics"]:
                value = doc[metric["Name"]]
                assert is_number(value) or (
                    isinstance(value, list) and 1 <= len(value) <= 100 and all(map(is_number, value))
                ), metric
        found.append(doc)
    return found


@pytest.mark.parametrize("fixture", sorted(p.name for p in TESTDATA.glob("*.json") if p != SCHEMA))
def test_fixtures_match_the_event_schema(fixture):
    # The Go tests' fixtures are batches as Lambda posts them; they must be valid against the schema.
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(json.loads((TESTDATA / fixture).read_text()))


def test_schema_rejects_what_lambda_never_sends():
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    bad = [{"time": "2026-11-23T10:00:00Z", "type": "platform.report", "record": {"requestId": "a", "status": "meh", "metrics": {}}}]
    assert not validator.is_valid(bad)


def test_standard_rie_says_not_supported_and_records_stay_invoke_only(start_lambda):
    # GIVEN the RIE in its standard mode, whose Telemetry API answers 202 Telemetry.NotSupported
    port = free_port()
    local = start_lambda("go", env={"INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(port)})
    # WHEN the function is invoked
    ids = [local.invoke({})["requestId"] for _ in range(3)]
    # THEN /environment says telemetry is unsupported, the records are there without telemetry fields
    environment = get(port, "/environment")
    assert environment["features"]["telemetry"] == "unsupported"
    assert environment["managedInstances"] is False
    records = get(port, "/invocations")["invocations"]
    assert [r["awsRequestId"] for r in records] == ids
    assert not any("status" in r or "durationMs" in r for r in records)
    # ... and the extension said so once, then went on
    local.stop()
    logs = local.logs()
    assert logs.count("Telemetry.NotSupported") == 1
    assert "telemetry=unsupported" in logs and "invocationsServed=3" in logs


def test_environment_metrics_are_valid_emf(start_lambda):
    # GIVEN a function version and a custom namespace
    local = start_lambda("python", env={"AWS_LAMBDA_FUNCTION_VERSION": "7", "INVOCATION_HISTORY_EXTENSION_METRICS_NAMESPACE": "Test/History"})
    # WHEN it serves two invocations and shuts down
    local.invoke({})
    local.invoke({})
    assert local.stop() == 0
    # THEN one EMF line at init and one at shutdown, with the function name and version as dimensions
    started, stopped = emf_lines(local.logs())
    for doc in (started, stopped):
        directive = doc["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "Test/History"
        assert directive["Dimensions"] == [["FunctionName"], ["FunctionName", "FunctionVersion"]]
        assert doc["FunctionName"] == "function" and doc["FunctionVersion"] == "7"  # the RIE echoes the variable
        assert doc["EnvironmentId"] == started["EnvironmentId"]
    assert [m["Name"] for m in started["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == ["EnvironmentStarted"]
    assert started["EnvironmentStarted"] == 1
    assert [m["Name"] for m in stopped["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == ["EnvironmentStopped", "EnvironmentLifetime", "InvocationsServed"]
    assert stopped["EnvironmentStopped"] == 1 and stopped["InvocationsServed"] == 2 and stopped["EnvironmentLifetime"] > 0


@pytest.mark.parametrize("breaks", [
    lambda d: d["_aws"].pop("Timestamp"),
    lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(Unit="Millis"),
    lambda d: d["_aws"]["CloudWatchMetrics"][0].update(Namespace="AWS/Lambda"),
    lambda d: d["_aws"]["CloudWatchMetrics"][0]["Dimensions"].append(["D"] * 31),
])
def test_emf_schema_rejects_what_cloudwatch_rejects(breaks):
    doc = {"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["F"]],
                                                           "Metrics": [{"Name": "M", "Unit": "Count"}]}]}, "F": "f", "M": 1}
    jsonschema.Draft202012Validator(EMF_SCHEMA).validate(doc)
    breaks(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(EMF_SCHEMA).validate(doc)


def test_metrics_off_switch(start_lambda):
    local = start_lambda("go", env={"INVOCATION_HISTORY_EXTENSION_METRICS": "off"})
    local.invoke({})
    local.stop()
    assert emf_lines(local.logs()) == []


@pytest.fixture
def managed_instances():
    """Factory: an environment on the RIE in managed-instances mode running the Go sample."""
    started = []

    def start(env: dict | None = None) -> LocalLambda:
        env = {"INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(free_port()), **(env or {})}
        local = LocalLambda([str(GO_BOOTSTRAP)], env=env, managed_instances=CONCURRENCY)
        started.append(local)
        return local.start()

    yield start
    for local in started:
        local.cleanup()


def test_managed_instances_concurrent_invokes_are_all_recorded(managed_instances):
    # GIVEN the RIE in managed-instances mode: no INVOKE events, a real Telemetry API
    local = managed_instances()
    port = int(local.env["INVOCATION_HISTORY_EXTENSION_HTTP_PORT"])
    # WHEN it is invoked from several threads at once
    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        answers = list(pool.map(lambda _: local.invoke({}), range(5 * CONCURRENCY)))
    ids = {a["requestId"] for a in answers}
    assert len(ids) == 5 * CONCURRENCY
    # THEN every invocation is recorded, from telemetry, with its status and duration
    def complete():
        records = get(port, "/invocations")["invocations"]
        done = {r["awsRequestId"]: r for r in records if "durationMs" in r}
        return records if ids <= done.keys() else None

    records = wait_until(complete, timeout=3.0, interval=0.02)
    assert records, f"not all recorded with a duration: {get(port, '/invocations')}\n{local.logs()}"
    assert len(records) == len(ids)
    for r in records:
        assert r["status"] == "success" and r["durationMs"] > 0
        assert r["invokedFunctionArn"].endswith(":function:function")
    # ... the function, asking with its request id, saw its own record (created from platform.start)
    assert sum(a["requestId"] in [i["awsRequestId"] for i in a["invocations"]] for a in answers) == len(answers)
    environment = get(port, "/environment")
    assert environment["managedInstances"] is True and environment["features"]["telemetry"] == "on"
    assert environment["initType"] == "lambda-managed-instances" and environment["initStatus"] == "success"
    assert environment["initDurationMs"] > 0
    # ... it registered for SHUTDOWN only, and the shutdown metric counts every invocation
    assert local.stop() == 0
    logs = local.logs()
    assert "managedInstances=true" in logs and "telemetryInvalid=0" in logs
    lines = emf_lines(logs)
    assert lines[-1]["InvocationsServed"] == len(ids)
    # ... and every record's duration went out as InvocationDuration values, each once
    durations = sorted(v for line in lines if "InvocationDuration" in line for v in line["InvocationDuration"])
    assert durations == sorted(r["durationMs"] for r in records)


def test_managed_instances_with_telemetry_off_warns_that_history_is_empty(managed_instances):
    local = managed_instances({"INVOCATION_HISTORY_EXTENSION_TELEMETRY": "off"})
    local.invoke({})
    local.stop()
    assert "the history stays empty" in local.logs()

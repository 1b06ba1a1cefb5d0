"""What a hostile or careless caller did to the extension, end to end on the RIE (issue "The extension in Rust",
Hardening): each case is also a unit test in extension_src; here the built binary shows it under the emulator."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bench.harness import go_build

from tests.local.test_proxy import CUSTOM_RUNTIME, start_proxied
from tools.local_lambda import LocalLambda, free_port, local_api_get, wait_until


def raw(port: int, request: bytes, timeout: float = 5.0) -> tuple[int, dict]:
    """Sends bytes as they are and returns the status and the JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < content_length(answer):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, body = answer.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), json.loads(body)


def content_length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


@pytest.fixture
def api(start_lambda):
    local = start_lambda("go")
    local.invoke({})
    return int(local.env["INVOCATION_HISTORY_EXTENSION_HTTP_PORT"])


@pytest.mark.parametrize("query, names", [
    ("limit=1;after=0", ";"),
    ("requestId=%zz", "%zz"),
    ("=1", "no name"),
    ("limit=1&limit=2", "limit"),
    ("limt=1", "limt"),
])  # fmt: skip
def test_a_bad_query_is_a_400_naming_the_part_never_a_dropped_parameter(api, query, names):
    status, body, _ = local_api_get(api, f"/invocations?{query}")
    error = json.loads(body)
    assert status == 400 and error["errorType"] == "InvalidParameter"
    assert names in error["errorMessage"], error


@pytest.mark.parametrize("request_bytes, status, error_type", [
    (b"GET /invocations HTTP/1.1\r\nConnection: close\r\n\r\n", 400, "InvalidRequest"),  # no Host
    (b"GET /invocations HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (17 << 10) + b"\r\n\r\n", 431, "HeadersTooLarge"),
    (b"GET /invocations/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400, "InvalidParameter"),
    (b"NOT HTTP AT ALL\r\n\r\n", 400, "InvalidRequest"),
])  # fmt: skip
def test_errors_of_the_http_layer_are_the_documented_json(api, request_bytes, status, error_type):
    got_status, body = raw(api, request_bytes)
    assert (got_status, body["errorType"]) == (status, error_type)
    assert body["errorMessage"]


def test_idle_connections_never_lock_a_new_caller_out(api):
    # GIVEN far more idle keep-alive connections than the local API holds (128), each having made a request
    idle = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", api), timeout=5)
            s.sendall(b"GET /environment HTTP/1.1\r\nHost: x\r\n\r\n")
            idle.append(s)
        for s in idle[-20:]:
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
        # WHEN a new caller asks THEN it is answered at once
        started = time.monotonic()
        status, _, _ = local_api_get(api, "/invocations?limit=1", timeout=5)
        assert status == 200
        assert time.monotonic() - started < 2.0
    finally:
        for s in idle:
            s.close()


@pytest.mark.parametrize("spelling", ["localhost.:{port}", "127.1:{port}", "[::1]:{port}", "0x7f000001:{port}", "LOCALHOST:{port}"])
def test_an_upstream_that_is_the_proxy_itself_never_loops(start_lambda, spelling):
    # GIVEN the proxy on, its upstream the proxy's own address in some spelling, the runtime behind the wrapper
    port = free_port()
    local = start_proxied(start_lambda, CUSTOM_RUNTIME, env={
        "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_PORT": str(port),
        "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_UPSTREAM": spelling.format(port=port),
    })  # fmt: skip
    local.proxy_port = port
    # WHEN invoked THEN invocations keep working, each recorded once, and the refusal was said, naming the variable
    for i in range(3):
        assert local.invoke({"n": i})["echo"] == {"n": i}
    assert "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_UPSTREAM" in local.logs()
    assert json.loads(local_api_get(local.api_port, "/invocations")[1])["served"] == 3


@pytest.fixture(scope="module")
def slow_function(tmp_path_factory) -> Path:
    """bench/noop-function: answers after BENCH_FUNCTION_WORK_MS, so an invocation can be caught running."""
    return go_build("noop-function", tmp_path_factory.mktemp("noop") / "bootstrap")


def test_invalid_telemetry_is_counted_not_stored_and_a_repeated_start_is_one_record(slow_function):
    # GIVEN Managed Instances (a real Telemetry API on the RIE), the listener on a known port, a function taking 1.5 s
    telemetry_port, api_port = free_port(), free_port()
    env = {"INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(api_port), "INVOCATION_HISTORY_EXTENSION_TELEMETRY_PORT": str(telemetry_port),
           "BENCH_FUNCTION_WORK_MS": "1500"}
    with LocalLambda([str(slow_function)], env=env, managed_instances=2) as local, \
            concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(local.invoke, {})
        records = lambda: json.loads(local_api_get(api_port, "/invocations")[1])["invocations"]  # noqa: E731
        running = wait_until(lambda: [r for r in records() if "status" not in r], 3.0)
        assert running, f"no running invocation recorded from platform.start: {records()}"
        request_id = running[0]["awsRequestId"]

        def post(batch) -> int:
            body = batch if isinstance(batch, bytes) else json.dumps(batch).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{telemetry_port}/", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        report = {"requestId": "5e1d7c5a-0000-4000-8000-000000000001", "status": "success",
                  "metrics": {"durationMs": 1.5, "billedDurationMs": 2, "maxMemoryUsedMB": 40}}
        invalid = [
            {**report, "status": "fine"},
            {**report, "metrics": {**report["metrics"], "durationMs": 1e308}},
            {**report, "metrics": {**report["metrics"], "billedDurationMs": -5}},
            {**report, "errorType": "E" * 10_000},
        ]
        # WHEN invalid values, garbage and a second platform.start for the running request id arrive
        assert post([{"time": "2026-11-29T00:00:00Z", "type": "platform.report", "record": r} for r in invalid]) == 200
        assert post(b"{not json") == 400
        assert post([{"time": "2026-11-29T00:00:01Z", "type": "platform.start", "record": {"requestId": request_id}}]) == 200
        answer.result(timeout=10)
        # THEN nothing invalid was stored, the invocation is one record, and the extension said what it refused
        done = wait_until(lambda: [r for r in records() if "status" in r], 3.0)
        assert [r["awsRequestId"] for r in done] == [request_id] and done[0]["status"] == "success"
        assert len(records()) == 1
        assert local.stop() == 0
        shutdown = next(line for line in local.logs().splitlines() if "msg=shutdown" in line)
        assert "telemetryInvalid=4" in shutdown and "telemetryRejected=1" in shutdown, shutdown

"""Runtime API proxy mode, end to end on the RIE.

The RIE does not apply AWS_LAMBDA_EXEC_WRAPPER, so the wrapper runs as the bootstrap command with
the real runtime as its arguments: exactly what managed runtimes do with an exec wrapper.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import socket
import threading
import time
from pathlib import Path

import pytest
from openapi_core.testing import MockRequest, MockResponse

from tests.local.test_api_contract import SPEC
from tests.shared.history_checks import check_history_grows
from tools.local_lambda import GO_BOOTSTRAP, ROOT, WRAPPER, LocalLambda, build_example, free_port, python_function, wait_until

FIXTURES = Path(__file__).parent / "fixtures"
CUSTOM_RUNTIME = [str(ROOT / ".venv/bin/python"), str(FIXTURES / "custom_runtime.py")]
WRAPPER_IN_OPT = "/opt/invocation-history-wrapper"


def history(port: int, path: str = "/invocations") -> dict:
    """The local API's answer, checked against docs/api/openapi.yaml: the proxy's fields too."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    request = MockRequest("http://127.0.0.1:1203", "get", path.split("?")[0])
    SPEC.validate_response(request, MockResponse(body, status_code=response.status, content_type="application/json"))
    return json.loads(body)


def answered_record(port: int, timeout: float = 2.0) -> dict:
    """The newest record once the proxy has recorded the runtime's answer. The proxy records it
    before passing Lambda's 202 to the runtime, but the RIE may answer the invoker first."""
    wait_until(lambda: "outcome" in history(port)["invocations"][-1], timeout, interval=0.01)
    return history(port)["invocations"][-1]


def raw_invoke(local: LocalLambda, payload: dict) -> tuple[int, bytes]:
    """POST to the RIE's invoke endpoint, for answers that are not JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", local.port, timeout=30)
    conn.request("POST", "/2015-03-31/functions/function/invocations", body=json.dumps(payload))
    response = conn.getresponse()
    return response.status, response.read()


def start_proxied(start_lambda, bootstrap, env=None, through_wrapper=True, task_root=None, **kwargs):
    proxy_port = free_port()
    env = {
        "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY": "on",
        "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_PORT": str(proxy_port),
        **(env or {}),
    }
    if through_wrapper:
        bootstrap = [WRAPPER_IN_OPT, *bootstrap]
    opt_files = {"invocation-history-wrapper": WRAPPER, **kwargs.pop("opt_files", {})}
    extra = {"task_root": task_root} if task_root else {}
    local = start_lambda(bootstrap=bootstrap, env=env, opt_files=opt_files, **extra, **kwargs)
    local.proxy_port = proxy_port
    local.api_port = int(local.env["INVOCATION_HISTORY_EXTENSION_HTTP_PORT"])
    return local


def test_python_sample_through_the_proxy_records_each_outcome(start_lambda):
    # GIVEN the Python sample whose runtime talks to Lambda through the proxy
    local = start_proxied(start_lambda, python_function())
    # WHEN invoked several times THEN the history behaves exactly as without the proxy ...
    answers = check_history_grows(local.invoke, times=4, fresh=True)
    # ... and each finished invocation carries what the proxy saw on the wire
    records = history(local.api_port)["invocations"]
    for record, answer in zip(records, answers):
        assert record["awsRequestId"] == answer["requestId"]
        assert record["outcome"] == "success"
        assert record["runtimeReceivedAt"] <= record["runtimeRespondedAt"]
    status, body = raw_invoke(local, {})
    assert status == 200 and answered_record(local.api_port)["responseBytes"] == len(body)
    assert history(local.api_port, "/environment")["features"]["runtimeProxy"] is True
    local.stop()
    assert re.search(r"runtimeProxyForwarded=(\d+)", local.logs()), local.logs()


def test_raised_error_is_forwarded_and_recorded(start_lambda):
    local = start_proxied(
        start_lambda, [*python_function()[:-1], "app.handler"], task_root=FIXTURES / "python_app"
    )
    # WHEN the handler raises
    response = local.client.invoke(FunctionName="function", Payload=json.dumps({"fail": True}))
    error = json.loads(response["Payload"].read())
    # THEN Lambda's error reaches the caller unchanged (the proxy forwarded the error and its
    # status; the RIE, unlike Lambda, sets no X-Amz-Function-Error header either way) ...
    assert error["errorType"] == "OrderFailed" and error["errorMessage"] == "failed on purpose"
    # ... and the record says how it ended, with the runtime's error type header
    record = answered_record(local.api_port)
    assert record["outcome"] == "error"
    assert record["errorType"].endswith("OrderFailed")
    # AND the environment keeps serving
    assert local.invoke({})["requestId"]


def test_six_megabyte_response_passes_intact(start_lambda):
    local = start_proxied(
        start_lambda, [*python_function()[:-1], "app.handler"], task_root=FIXTURES / "python_app"
    )
    size = 6 * 1024 * 1024 - 4096  # under Lambda's 6 MB response limit with the JSON quotes
    status, body = raw_invoke(local, {"bytes": size})
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(json.dumps("x" * size).encode()).hexdigest()
    record = answered_record(local.api_port)
    assert record["outcome"] == "success" and record["responseBytes"] == size + 2


class TcpRelay:
    """A byte pipe between the proxy and the RIE that timestamps what the proxy sends: it shows when
    each chunk of a streamed response left the proxy. It does not parse or change anything."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.received: list[tuple[float, bytes]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source, target, record):
        try:
            while data := source.recv(65536):
                if record:
                    self.received.append((time.time(), data))
                target.sendall(data)
        except OSError:
            pass
        finally:
            try:
                target.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def arrival(self, marker: bytes) -> float:
        for at, data in self.received:
            if marker in data:
                return at
        raise AssertionError(f"{marker!r} never reached the upstream")

    def close(self):
        self.server.close()


def test_streamed_response_leaves_the_proxy_chunk_by_chunk():
    # GIVEN a custom runtime that streams its answer in chunks 300 ms apart, through the proxy,
    # with a byte relay between the proxy and the RIE to watch the wire
    local = LocalLambda(
        [WRAPPER_IN_OPT, *CUSTOM_RUNTIME],
        env={
            "INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(free_port()),
            "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY": "on",
            "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_PORT": str(free_port()),
        },
        opt_files={"invocation-history-wrapper": WRAPPER},
    )
    relay = TcpRelay(local.runtime_api_port)
    local.env["INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_UPSTREAM"] = f"127.0.0.1:{relay.port}"
    try:
        local.start()
        # WHEN it answers an invoke with a streamed response
        status, body = raw_invoke(local, {"mode": "stream", "chunks": 4, "delayMs": 300})
        assert status == 200
        lines = body.decode().splitlines()
        assert [line.split(" sent at ")[0] for line in lines] == ["chunk 0", "chunk 1", "chunk 2", "chunk 3"]
        sent = {line.split(" sent at ")[0]: float(line.split(" sent at ")[1]) for line in lines}
        # THEN the first chunk reached Lambda's side before the runtime had even written the third:
        # the proxy does not buffer
        assert relay.arrival(b"chunk 0") < sent["chunk 2"]
        assert relay.arrival(b"chunk 3") >= sent["chunk 3"]
        record = answered_record(int(local.env["INVOCATION_HISTORY_EXTENSION_HTTP_PORT"]))
        assert record["outcome"] == "success" and record["responseBytes"] == len(body)

        # AND a stream that fails mid-way ends with the runtime's error trailers, recorded
        raw_invoke(local, {"mode": "stream-error"})
        record = answered_record(int(local.env["INVOCATION_HISTORY_EXTENSION_HTTP_PORT"]))
        assert record["outcome"] == "error" and record["errorType"] == "Runtime.StreamFailed"
    finally:
        local.cleanup()
        relay.close()


def test_unknown_paths_are_forwarded(start_lambda):
    # GIVEN two environments running the same custom runtime, one through the proxy
    direct = start_lambda(bootstrap=CUSTOM_RUNTIME)
    proxied = start_proxied(start_lambda, CUSTOM_RUNTIME)
    probe = {"mode": "probe", "path": "/2018-06-01/runtime/not-a-real-path"}
    # WHEN the runtime requests a path the proxy knows nothing about
    # THEN it gets exactly what Lambda answers without the proxy
    assert proxied.invoke(probe) == direct.invoke(probe)
    assert proxied.invoke(probe)["status"] == 404
    # and the runtime really went through the proxy
    assert proxied.invoke({"x": 1})["runtimeApi"] == f"127.0.0.1:{proxied.proxy_port}"


def test_record_exists_before_the_function_runs(start_lambda):
    # With the proxy, the record is created when the runtime takes its event: a function asking
    # about itself at once, with no wait, always finds it.
    local = start_proxied(start_lambda, CUSTOM_RUNTIME)
    for _ in range(20):
        answer = local.invoke({"mode": "own-record"})
        assert answer["status"] == 200, answer


def test_upstream_down_gives_502_and_the_function_still_works(start_lambda):
    # GIVEN the proxy's upstream points at a port where nothing listens, and the runtime does NOT
    # use the proxy (bootstrap without the wrapper)
    dead = free_port()
    local = start_proxied(
        start_lambda, CUSTOM_RUNTIME, through_wrapper=False,
        env={"INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_UPSTREAM": f"127.0.0.1:{dead}"},
    )  # fmt: skip
    assert local.invoke({"x": 1})["echo"] == {"x": 1}  # extensions start at the first invoke
    # WHEN a client of the proxy asks anything THEN it gets a 502 with a JSON error
    conn = http.client.HTTPConnection("127.0.0.1", local.proxy_port, timeout=5)
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    response = conn.getresponse()
    body = json.loads(response.read())
    assert response.status == 502 and body["errorType"] == "Runtime.ProxyUpstreamUnavailable"
    assert f"127.0.0.1:{dead}" in body["errorMessage"]


@pytest.fixture(scope="module")
def chainproxy(tmp_path_factory) -> Path:
    """extension_src/examples/chain_proxy.rs: a second extension that is only a Runtime API proxy."""
    return build_example("chain_proxy", tmp_path_factory.mktemp("chainproxy") / "chain-proxy")


def test_two_proxies_chain(start_lambda, chainproxy):
    # GIVEN runtime -> our proxy -> a second proxy (another extension) -> Lambda
    chain_port = free_port()
    local = start_proxied(
        start_lambda, CUSTOM_RUNTIME,
        env={"CHAIN_PROXY_PORT": str(chain_port),
             "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_UPSTREAM": f"127.0.0.1:{chain_port}"},
        extensions={"invocation-history-extension": ROOT / "build/extension/invocation-history-extension",
                    "chain-proxy": chainproxy},
    )  # fmt: skip
    # WHEN invoked THEN everything works through both, and ours records the outcomes
    for i in range(3):
        assert local.invoke({"n": i})["echo"] == {"n": i}
    records = history(local.api_port)["invocations"]
    assert [r["outcome"] for r in records[:-1]] == ["success", "success"]
    local.stop()
    forwarded = int(re.search(r"chainproxy shutdown forwarded=(\d+)", local.logs()).group(1))
    assert forwarded >= 6  # at least a /next and a /response per invocation passed the second proxy


def test_go_sample_on_an_os_only_runtime_uses_the_proxy_through_its_bootstrap(start_lambda, tmp_path):
    # GIVEN a provided.al2023-style task: functions/go/proxy-bootstrap as `bootstrap`, the Go
    # sample beside it as `function` (OS-only runtimes ignore AWS_LAMBDA_EXEC_WRAPPER)
    task = tmp_path / "task"
    task.mkdir()
    (task / "bootstrap").write_bytes((ROOT / "functions/go/proxy-bootstrap").read_bytes())
    (task / "function").write_bytes(GO_BOOTSTRAP.read_bytes())
    for f in ("bootstrap", "function"):
        (task / f).chmod(0o755)
    local = start_proxied(start_lambda, [str(task / "bootstrap")], through_wrapper=False, task_root=task)
    # WHEN invoked THEN the Go sample works and its invocations carry the proxy's fields
    check_history_grows(local.invoke, times=3, fresh=True)
    records = history(local.api_port)["invocations"]
    assert all("runtimeReceivedAt" in r for r in records)
    assert [r.get("outcome") for r in records[:-1]] == ["success", "success"]

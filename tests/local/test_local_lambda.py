"""End to end on AWS's Lambda Runtime Interface Emulator: real extension, real runtimes."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest

from tests.shared.history_checks import check_answer, check_history_grows
from tools.local_lambda import EXTENSION, EXTENSION_NAME, ROOT, free_port


def test_history_grows_by_one_per_invoke_and_lists_every_earlier_request(start_lambda, function):
    # GIVEN a fresh environment running the extension and a sample function
    local = start_lambda(function)
    # WHEN it is invoked five times
    answers = check_history_grows(local.invoke, times=5, fresh=True)
    # THEN (checked above) each answer lists all earlier request ids in order plus its own,
    # and the environment's counters agree
    assert [a["environment"]["counts"]["served"] for a in answers] == [1, 2, 3, 4, 5]
    assert answers[-1]["environment"]["functionName"] == "function"


def test_current_invocation_is_always_included(start_lambda):
    # The INVOKE event reaches the extension and the runtime at the same moment; the Go sample asks
    # immediately. Over many back-to-back invokes the requestId wait must never miss.
    local = start_lambda("go")
    for _ in range(50):
        answer = local.invoke({})
        assert answer["invocations"][-1]["awsRequestId"] == answer["requestId"]


def test_another_port_works(start_lambda):
    # GIVEN the port variable names a port other than the default
    port = free_port()
    local = start_lambda("python", env={"INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(port)})
    # WHEN invoked THEN the function finds the extension there
    check_history_grows(local.invoke, times=2, fresh=True)
    assert f"port={port}" in local.wait_for_log("msg=ready")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/environment", timeout=2) as r:
        assert json.load(r)["counts"]["served"] == 2


def test_port_taken_function_still_answers_and_conflict_is_logged(start_lambda, squatter):
    # GIVEN another process holds the extension's port
    local = start_lambda("go", env={"INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(squatter)})
    # WHEN the function is invoked
    answer = local.invoke({})
    # THEN it still answers (with a clear message instead of the history) ...
    assert answer["requestId"]
    assert "invocation history extension unavailable" in answer["extensionError"]
    # ... the extension logs the conflict naming the variable and port, and keeps serving events
    logs = local.wait_for_log("local API not started")
    assert f"variable=INVOCATION_HISTORY_EXTENSION_HTTP_PORT port={squatter}" in logs
    local.invoke({})
    local.stop()
    assert "invocationsServed=2" in local.logs()


@pytest.mark.parametrize(
    "variable, value",
    [
        ("INVOCATION_HISTORY_EXTENSION_HTTP_PORT", "not-a-port"),
        ("INVOCATION_HISTORY_EXTENSION_MAX_RECORDS", "0"),
        ("INVOCATION_HISTORY_EXTENSION_MAX_WAIT_MS", "-5"),
        ("INVOCATION_HISTORY_EXTENSION_LOG_LEVEL", "loud"),
        ("AWS_LAMBDA_LOG_LEVEL", "verbose"),
        ("INVOCATION_HISTORY_EXTENSION_TELEMETRY", "maybe"),
        ("INVOCATION_HISTORY_EXTENSION_TELEMETRY_PORT", "port"),
        ("INVOCATION_HISTORY_EXTENSION_TELEMETRY_MAX_ITEMS", "5"),
        ("INVOCATION_HISTORY_EXTENSION_TELEMETRY_MAX_BYTES", "1"),
        ("INVOCATION_HISTORY_EXTENSION_TELEMETRY_TIMEOUT_MS", "0"),
        ("INVOCATION_HISTORY_EXTENSION_METRICS", "perhaps"),
        ("INVOCATION_HISTORY_EXTENSION_METRICS_NAMESPACE", "AWS/Lambda"),
        ("INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY", "sure"),
        ("INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_PORT", "99999"),
        ("INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_UPSTREAM", "no-port"),
    ],
)
def test_invalid_value_is_reported_and_default_used(start_lambda, variable, value):
    # GIVEN one invalid setting (an invalid port falls back to 1203, as the function does too)
    local = start_lambda("python", env={variable: value})
    # WHEN invoked THEN the function works as with the defaults ...
    answers = check_history_grows(local.invoke, times=2, fresh=True)
    limits = answers[-1]["environment"]["limits"]
    assert limits == {"maxRecords": 10000, "maxWaitMs": 2000}
    # ... and one warning names the variable, the value and the default
    logs = local.wait_for_log("invalid configuration")
    warnings = [line for line in logs.splitlines() if "invalid configuration" in line]
    assert len(warnings) == 1, warnings
    assert f'variable={variable} value={value}' in warnings[0] and "default=" in warnings[0]


def test_bounded_store_drops_oldest_and_counts_them(start_lambda):
    local = start_lambda("go", env={"INVOCATION_HISTORY_EXTENSION_MAX_RECORDS": "3"})
    answers = [local.invoke({}) for _ in range(5)]
    last = answers[-1]
    check_answer(last)
    assert [r["awsRequestId"] for r in last["invocations"]] == [a["requestId"] for a in answers[-3:]]
    counts = last["environment"]["counts"]
    assert (counts["served"], counts["retained"], counts["dropped"]) == (5, 3, 2)


def test_function_answers_clearly_without_the_extension(start_lambda, function):
    local = start_lambda(function, extensions={})
    answer = local.invoke({})
    assert answer["requestId"] and answer["invocations"] == []
    assert answer["extensionError"].startswith("invocation history extension unavailable")


def test_no_log_line_per_invocation_at_info(start_lambda):
    local = start_lambda("go")
    for _ in range(5):
        local.invoke({})
    local.stop()
    ours = [line for line in local.logs().splitlines() if "extension=invocation-history-extension" in line]
    assert [re.search(r"msg=(\w+)", line).group(1) for line in ours] == ["ready", "shutdown"]


def test_shutdown_ends_the_extension_with_exit_zero_in_time(start_lambda, exit_file):
    # GIVEN the extension runs behind a test wrapper that records its exit status
    local = start_lambda(
        "go",
        env={"EXTENSION_EXIT_FILE": str(exit_file)},
        extensions={EXTENSION_NAME: ROOT / "tests/local/fixtures/record-exit.sh"},
        opt_files={"test/invocation-history-extension": EXTENSION},
    )
    for _ in range(3):
        local.invoke({})
    # WHEN the RIE gets SIGTERM (it sends SHUTDOWN to extensions, with a 2 s budget)
    sent_ns = time.time_ns()
    assert local.stop() == 0
    # THEN the extension exited 0 well inside the budget, after one summary line
    status = dict(kv.split("=") for kv in exit_file.read_text().split())
    assert status["exit"] == "0"
    assert (int(status["at_ns"]) - sent_ns) / 1e6 < 1000
    summary = [line for line in local.logs().splitlines() if "msg=shutdown" in line]
    assert len(summary) == 1 and "invocationsServed=3" in summary[0] and "dropped=0" in summary[0]
    assert "lifetimeMs=" in summary[0]

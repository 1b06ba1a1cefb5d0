"""tools/environment.py on its own: the table `show` prints and the guards of `start` and `stop`.

Starting and stopping a real environment, invoking it and asking the extension is what the
workshop's own test does, block after block (test_workshop.py); these are the cases it never meets.
"""

from __future__ import annotations

import io
import json
import os
import socket

import pytest

from tools import environment


def show(document: dict, capsys) -> list[str]:
    assert environment.show(io.StringIO(json.dumps(document))) == 0
    return capsys.readouterr().out.splitlines()


def test_show_prints_only_the_fields_the_records_carry(capsys):
    records = [
        {"sequence": 1, "awsRequestId": "first", "coldStart": True, "status": "success", "durationMs": 2.5},
        {"sequence": 2, "awsRequestId": "second", "coldStart": False},
    ]
    assert show({"invocations": records}, capsys) == [
        "seq  request id  cold  status   durationMs",
        "1    first       yes   success  2.5",
        "2    second      no",
    ]


def test_show_marks_the_invocation_a_function_answered_for(capsys):
    answer = {
        "requestId": "b",
        "invocations": [{"sequence": 1, "awsRequestId": "a"}, {"sequence": 2, "awsRequestId": "b"}],
    }
    assert show(answer, capsys)[1:] == ["1    a", "2    b           <- this invocation"]


def test_show_reads_the_simulator_drivers_report(capsys):
    report = {"ok": True, "records": {"invocations": [{"sequence": 1, "awsRequestId": "a", "maxMemoryUsedMB": 128}]}}
    assert show(report, capsys) == ["seq  request id  memMB", "1    a           128"]


def test_show_says_when_there_is_nothing(capsys):
    assert show({"invocations": []}, capsys) == ["no records"]


@pytest.mark.parametrize("pair", ["NOEQUALS", "=value"])
def test_env_wants_name_equals_value(pair):
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        environment.parse_env([pair])


def test_python_handler_must_be_a_python_file(tmp_path):
    args = environment.argparse.Namespace(python_handler=str(tmp_path / "missing.py"), bootstrap=None, function="go")
    with pytest.raises(SystemExit, match="existing .py file"):
        environment.bootstrap_of(args)


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(environment, "STATE_DIR", tmp_path)
    return tmp_path


def test_start_refuses_a_second_environment(state_dir, capsys):
    (state_dir / "pid").write_text(str(os.getpid()))  # a live process stands for the running environment
    assert environment.start([]) == 1
    assert "already running" in capsys.readouterr().err


def test_stop_without_an_environment_says_so(state_dir, capsys):
    assert environment.stop() == 1
    assert "no environment is running" in capsys.readouterr().err
    (state_dir / "pid").write_text("999999999")  # a pid no process has
    assert environment.stop() == 1


def test_run_refuses_a_port_something_else_listens_on(capsys):
    # GIVEN 127.0.0.1:9000 held (by this test, or by whatever already holds it)
    squatter = socket.socket()
    try:
        squatter.bind(("127.0.0.1", environment.INVOKE_PORT))
        squatter.listen()
    except OSError:
        pass
    # WHEN an environment is asked to start THEN it refuses, naming the port, rather than let curl reach the squatter
    try:
        args = environment.argparse.Namespace(
            python_handler=None, bootstrap=None, function="go", env=[], runtime_proxy=False, managed_instances=0
        )
        assert environment.run(args) == 1
    finally:
        squatter.close()
    assert f"127.0.0.1:{environment.INVOKE_PORT}" in capsys.readouterr().err

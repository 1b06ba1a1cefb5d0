"""`python -m tools.local_s3 start|stop`, the workshop's local S3 (module 6), on a real moto server.

The workshop's own test runs it as a reader does, on port 5000 in a network namespace of its own; these run it on a
free port and check what a reader cannot see: the bucket it made takes objects, `stop` really stops the server, and
the guards (one server at a time, a port already taken, nothing to stop).
"""

from __future__ import annotations

import socket

import boto3
import pytest

from tools import local_s3
from tools.local_lambda import free_port


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(local_s3, "STATE_DIR", tmp_path / "local-s3")
    yield tmp_path / "local-s3"
    local_s3.stop(quiet=True)  # whatever a failed test left running


def client(port: int):
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name=local_s3.REGION,
                        aws_access_key_id="any", aws_secret_access_key="any")  # fmt: skip


def test_start_makes_the_buckets_and_stop_stops_the_server(state_dir, capsys):
    port = free_port()
    assert local_s3.main(["start", "--port", str(port), "--bucket", "first", "--bucket", "second"]) == 0
    assert f"local S3 up on http://127.0.0.1:{port}" in capsys.readouterr().out
    s3 = client(port)
    assert sorted(b["Name"] for b in s3.list_buckets()["Buckets"]) == ["first", "second"]
    s3.put_object(Bucket="first", Key="k", Body=b"v")
    assert s3.get_object(Bucket="first", Key="k")["Body"].read() == b"v"
    pid = local_s3.running_pid()
    assert pid is not None

    assert local_s3.main(["stop"]) == 0
    assert "local S3 stopped" in capsys.readouterr().out
    assert local_s3.running_pid_of(pid) is None
    assert not local_s3.listening(port)
    assert not (state_dir / "pid").exists()


def test_one_server_at_a_time(state_dir, capsys):
    port = free_port()
    assert local_s3.main(["start", "--port", str(port)]) == 0
    assert local_s3.main(["start", "--port", str(free_port())]) == 1
    assert "already running" in capsys.readouterr().err
    assert local_s3.listening(port)  # the first one is untouched


def test_a_port_in_use_is_refused(state_dir, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert local_s3.main(["start", "--port", str(taken.getsockname()[1])]) == 1
    assert "already in use" in capsys.readouterr().err
    assert local_s3.running_pid() is None


def test_stop_without_a_server_says_so(state_dir, capsys):
    assert local_s3.main(["stop"]) == 1
    assert "no local S3 is running" in capsys.readouterr().err

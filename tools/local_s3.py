"""A real S3 on loopback for the export's tests: moto's server in a process of its own.

    with LocalS3() as s3:                  # no authentication
        s3.client().create_bucket(Bucket="b")
    with LocalS3(setup_actions=4) as s3:   # IAM authentication after the first 4 requests
    with LocalS3(tls=True) as s3:          # https, with the test CA's certificate (TLS_CA)

moto checks SigV4 signatures and permissions only with authentication on, which it turns on after
`INITIAL_NO_AUTH_ACTION_COUNT` requests (the setup: a user, its key and policy, a bucket).

From a shell (the workshop's module 6), one server in the background on a port a person can type,
its objects in memory until it stops:

    python -m tools.local_s3 start [--port 5000] [--bucket NAME ...]
    python -m tools.local_s3 stop
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import boto3

from tools.local_lambda import ROOT, free_port, listening, wait_until

REGION = "us-east-1"
# Test-only TLS material (extension_src/testdata/tls): a server certificate for 127.0.0.1 and the CA
# that signed it, which a client trusts through SSL_CERT_FILE.
TLS_DIR = ROOT / "extension_src/testdata/tls"
TLS_CA = TLS_DIR / "ca.pem"
DEFAULT_PORT = 5000  # moto's own default
# Where `start` keeps the background server's pid and output (per clone: build/ is the clone's own).
STATE_DIR = ROOT / "build/local-s3"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def server_command(port: int, tls: bool = False) -> list[str]:
    tls_args = ["-s", "-c", str(TLS_DIR / "server.pem"), "-k", str(TLS_DIR / "server.key")] if tls else []
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port), *tls_args]


class LocalS3:
    def __init__(self, setup_actions: int | None = None, tls: bool = False) -> None:
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._tls = tls
        self._setup_actions = setup_actions
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> "LocalS3":
        env = dict(os.environ)
        if self._setup_actions is not None:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(self._setup_actions)
        self._process = subprocess.Popen(
            server_command(self.port, self._tls), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not listening(self.port):
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.__exit__()
                raise RuntimeError("moto's server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def client(self, service: str = "s3", key_id: str = "test", secret: str = "test"):
        return boto3.client(
            service, endpoint_url=self.url, region_name=REGION, aws_access_key_id=key_id, aws_secret_access_key=secret,
            verify=str(TLS_CA) if self._tls else None,
        )  # fmt: skip

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object of `bucket`, by key."""
        s3 = self.client()
        keys = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])
        ]
        return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def running_pid() -> int | None:
    """The pid of the server `start` left running, if it still runs (and is not a zombie)."""
    try:
        return running_pid_of(int((STATE_DIR / "pid").read_text()))
    except (FileNotFoundError, ValueError):
        return None


def start(port: int, buckets: list[str]) -> int:
    if (pid := running_pid()) is not None:
        print(f"a local S3 is already running (pid {pid}): python -m tools.local_s3 stop", file=sys.stderr)
        return 1
    if listening(port):
        print(f"127.0.0.1:{port} already in use: stop what listens there first, or choose --port", file=sys.stderr)
        return 1
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / "log", "wb") as log:
        # In the caller's process group, not a session of its own: what cleans up after a shell's jobs (a test's
        # runner) stops it too.
        process = subprocess.Popen(server_command(port), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    (STATE_DIR / "pid").write_text(str(process.pid))
    if not wait_until(lambda: process.poll() is not None or listening(port), START_TIMEOUT_S, interval=0.05) or (
        process.poll() is not None
    ):
        stop(quiet=True)
        print(f"moto's server did not start:\n{(STATE_DIR / 'log').read_text().rstrip()}", file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{port}"
    # moto takes any credentials; boto3 needs some to sign with.
    s3 = boto3.client("s3", endpoint_url=url, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
    for bucket in buckets:
        s3.create_bucket(Bucket=bucket)
    made = f", bucket{'s' if len(buckets) > 1 else ''} {', '.join(buckets)}" if buckets else ""
    print(f"local S3 up on {url} (region {REGION}, any credentials{made}; pid {process.pid}; "
          "stop it with: python -m tools.local_s3 stop)")  # fmt: skip
    return 0


def stop(quiet: bool = False) -> int:
    pid = running_pid()
    (STATE_DIR / "pid").unlink(missing_ok=True)
    if pid is None:
        if not quiet:
            print("no local S3 is running", file=sys.stderr)
        return 1
    try:
        os.kill(pid, signal.SIGTERM)
        if not wait_until(lambda: running_pid_of(pid) is None, STOP_TIMEOUT_S, interval=0.05):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it exited meanwhile
    if not quiet:
        print("local S3 stopped (its buckets and objects were in memory: they are gone)")
    return 0


def running_pid_of(pid: int) -> int | None:
    """pid, while that process runs (gone, or a zombie its parent has not reaped: None)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return None if stat.read().rsplit(")", 1)[1].split()[0] == "Z" else pid
    except FileNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.local_s3", description="A local S3 (moto's server) in the background, on 127.0.0.1."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser("start", help="start the server in the background and create the buckets")
    start_parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default: {DEFAULT_PORT}")
    start_parser.add_argument("--bucket", action="append", default=[], metavar="NAME", help="create it (repeatable)")
    commands.add_parser("stop", help="stop the server `start` started (its objects are lost)")
    args = parser.parse_args(argv)
    return start(args.port, args.bucket) if args.command == "start" else stop()


if __name__ == "__main__":
    sys.exit(main())

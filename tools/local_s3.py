"""A real S3 on loopback for the export's tests: moto's server in a process of its own.

    with LocalS3() as s3:                  # no authentication
        s3.client().create_bucket(Bucket="b")
    with LocalS3(setup_actions=4) as s3:   # IAM authentication after the first 4 requests
    with LocalS3(tls=True) as s3:          # https, with the test CA's certificate (TLS_CA)

moto checks SigV4 signatures and permissions only with authentication on, which it turns on after
`INITIAL_NO_AUTH_ACTION_COUNT` requests (the setup: a user, its key and policy, a bucket).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import boto3

from tools.local_lambda import ROOT, free_port

REGION = "us-east-1"
# Test-only TLS material (extension_src/testdata/tls): a server certificate for 127.0.0.1 and the CA
# that signed it, which a client trusts through SSL_CERT_FILE.
TLS_DIR = ROOT / "extension_src/testdata/tls"
TLS_CA = TLS_DIR / "ca.pem"


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
        tls = ["-s", "-c", str(TLS_DIR / "server.pem"), "-k", str(TLS_DIR / "server.key")] if self._tls else []
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port), *tls],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    self.__exit__()
                    raise RuntimeError("moto's server did not start")
                time.sleep(0.05)

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

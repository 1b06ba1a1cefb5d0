"""The S3 client of the export (extension_src/src/s3) against a real S3 server: moto in server mode,
with IAM authentication on, so a request whose SigV4 signature is wrong is refused as S3 would.
extension_src/examples/s3_put.rs puts one object the way the exporter does."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest

from tools.local_lambda import ROOT, build_example
from tools.local_s3 import REGION, TLS_CA, LocalS3

# The first actions are unauthenticated: the user, its key and policy, and the bucket. After
# them moto checks every request's signature and the caller's permissions.
SETUP_ACTIONS = 4
BUCKET = "history"
KEY = "history/function=fn/date=2026-11-29/hour=19/env1-000001.ndjson.gz"


@pytest.fixture(scope="module")
def s3_put(tmp_path_factory) -> Path:
    return build_example("s3_put", tmp_path_factory.mktemp("s3put") / "s3_put")


@pytest.fixture(scope="module")
def moto():
    """moto with authentication after SETUP_ACTIONS; yields its URL and a key pair allowed to write
    the bucket."""
    with LocalS3(setup_actions=SETUP_ACTIONS) as s3:
        iam = s3.client("iam")
        iam.create_user(UserName="exporter")
        key = iam.create_access_key(UserName="exporter")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="exporter", PolicyName="s3", PolicyDocument=json.dumps(policy))
        s3.client().create_bucket(Bucket=BUCKET)
        yield s3.url, key["AccessKeyId"], key["SecretAccessKey"]


def put(s3_put: Path, url: str, key_id: str, secret: str, bucket: str, key: str, body: bytes, tmp_path: Path, **env):
    file = tmp_path / "body"
    file.write_bytes(body)
    env = {"PATH": os.environ["PATH"], "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret, **env}
    return subprocess.run(
        [str(s3_put), url, REGION, bucket, key, str(file)], env=env, capture_output=True, text=True, timeout=30
    )


def test_a_signed_put_is_accepted_and_reads_back_whole(s3_put, moto, tmp_path):
    url, key_id, secret = moto
    body = gzip.compress(b'{"awsRequestId":"a"}\n{"awsRequestId":"b"}\n')
    done = put(s3_put, url, key_id, secret, BUCKET, KEY, body, tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
    s3 = boto3.client(
        "s3", endpoint_url=url, region_name=REGION, aws_access_key_id=key_id, aws_secret_access_key=secret
    )
    got = s3.get_object(Bucket=BUCKET, Key=KEY)
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-ndjson" and got["ContentEncoding"] == "gzip"


def test_a_wrong_secret_is_refused_and_not_retried(s3_put, moto, tmp_path):
    url, key_id, _ = moto
    done = put(s3_put, url, key_id, "not-the-secret", BUCKET, KEY, b"x", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("error retryable=false status 403: SignatureDoesNotMatch"), done.stdout


def test_a_missing_bucket_is_named_and_not_retried(s3_put, moto, tmp_path):
    url, key_id, secret = moto
    done = put(s3_put, url, key_id, secret, "no-such-bucket", KEY, b"x", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("error retryable=false status 404: NoSuchBucket"), done.stdout


@pytest.fixture
def tls_s3():
    """moto over https, its certificate signed by the test CA (TLS_CA), with the bucket."""
    with LocalS3(tls=True) as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        yield s3


def test_over_tls_the_put_checks_the_servers_certificate(s3_put, tls_s3, tmp_path):
    # GIVEN moto over https with a certificate our test CA signed
    body = gzip.compress(b'{"awsRequestId":"a"}\n')
    # WHEN the client trusts that CA (SSL_CERT_FILE, as the extension reads it), the PUT is stored
    done = put(s3_put, tls_s3.url, "test", "test", BUCKET, KEY, body, tmp_path, SSL_CERT_FILE=str(TLS_CA))
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
    assert tls_s3.objects(BUCKET) == {KEY: body}
    # ... and with only the built-in roots, which do not hold it, nothing is sent
    done = put(s3_put, tls_s3.url, "test", "test", BUCKET, "other", body, tmp_path)
    assert done.returncode == 1 and "certificate" in done.stdout, done.stdout + done.stderr
    assert list(tls_s3.objects(BUCKET)) == [KEY]


def qemu_aarch64() -> str:
    found = shutil.which("qemu-aarch64-static") or str(ROOT / ".local/bin/qemu-aarch64-static")
    if not os.access(found, os.X_OK):
        pytest.skip("no qemu-aarch64-static to run the arm64 build (make qemu-user)")
    return found


def test_the_arm64_build_speaks_tls_too(tls_s3, tmp_path):
    # GIVEN the example built for arm64 as the layer is (musl, rust-lld), run under qemu-user: the TLS
    # cryptography (graviola) has its own aarch64 assembly, which the x86_64 tests never run
    qemu = qemu_aarch64()
    s3_put_arm64 = build_example("s3_put", tmp_path / "s3_put_arm64", target="aarch64-unknown-linux-musl")
    runner = tmp_path / "s3_put"
    runner.write_text(f'#!/bin/sh\nexec {qemu} {s3_put_arm64} "$@"\n')
    runner.chmod(0o755)
    body = gzip.compress(b'{"awsRequestId":"arm64"}\n')
    # WHEN it puts an object over https, trusting the test CA
    done = put(runner, tls_s3.url, "test", "test", BUCKET, KEY, body, tmp_path, SSL_CERT_FILE=str(TLS_CA))
    # THEN the handshake, the AES-GCM record layer and the signature all held
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
    assert tls_s3.objects(BUCKET) == {KEY: body}

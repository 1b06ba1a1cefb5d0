"""tools.fault_s3, the fault-injecting S3 of the export's fault tests: each fault as a client sees it, and what the
server records, with http.client (no retries of its own) and boto3 (S3's error codes as an SDK reads them)."""

from __future__ import annotations

import http.client

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from tools.fault_s3 import Fault, FaultS3


def put(s3: FaultS3, path: str, body: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", s3.port, timeout=timeout)
    try:
        conn.request("PUT", path, body=body, headers={"Content-Type": "application/x-ndjson"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_a_stored_put_is_answered_200_and_kept_under_its_unquoted_key():
    with FaultS3() as s3:
        status, _ = put(s3, "/bucket/function%3Df/date%3D2026-01-01/a.ndjson.gz", b"body")
    assert status == 200
    assert s3.objects == {"function=f/date=2026-01-01/a.ndjson.gz": b"body"}
    assert [(p.bucket, p.key, p.body) for p in s3.puts] == [
        ("bucket", "function=f/date=2026-01-01/a.ndjson.gz", b"body")
    ]


def test_an_error_answer_carries_s3s_code_as_an_sdk_reads_it_and_stores_nothing():
    with FaultS3(Fault.error(403, "AccessDenied")) as s3:
        client = boto3.client(
            "s3", endpoint_url=s3.url, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s",
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )  # fmt: skip
        with pytest.raises(ClientError) as refused:
            client.put_object(Bucket="bucket", Key="k", Body=b"body")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert s3.objects == {} and s3.keys_put() == ["k"] and s3.puts[0].body == b"body"


def test_each_put_takes_the_next_fault_and_the_last_repeats_on_one_kept_connection():
    with FaultS3(Fault.error(500, "InternalError"), Fault.error(503, "SlowDown"), Fault.stored()) as s3:
        conn = http.client.HTTPConnection("127.0.0.1", s3.port, timeout=5)
        answers = []
        for i in range(4):
            conn.request("PUT", f"/bucket/k{i}", body=b"x")
            response = conn.getresponse()
            answers.append((response.status, response.read()))
        conn.close()
    assert [status for status, _ in answers] == [500, 503, 200, 200]
    assert b"<Code>InternalError</Code>" in answers[0][1] and b"<Code>SlowDown</Code>" in answers[1][1]
    assert sorted(s3.objects) == ["k2", "k3"] and s3.put_count() == 4


@pytest.mark.parametrize("fault", [Fault.hang(), Fault.stored(delay=30)], ids=["hang", "delay"])
def test_a_put_held_past_the_clients_patience_gets_no_answer_and_stop_releases_it(fault):
    with FaultS3(fault) as s3:
        with pytest.raises(TimeoutError):
            put(s3, "/bucket/k", b"body", timeout=0.3)
        # The request was read in full before the server held it.
        assert s3.wait_for_puts(1, timeout=1.0) and s3.puts[0].body == b"body"
    # Stopped: the held request ended without an answer, so nothing was stored.
    assert s3.objects == {}


def test_a_closed_request_ends_the_connection_with_no_answer_after_half_the_body():
    with FaultS3(Fault.close()) as s3:
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            put(s3, "/bucket/k", b"0123456789")
    assert s3.puts[0].body == b"01234" and s3.objects == {}


def test_wait_for_puts_returns_false_when_they_do_not_come():
    with FaultS3() as s3:
        assert s3.wait_for_puts(1, timeout=0.05) is False
        put(s3, "/bucket/k", b"x")
        assert s3.wait_for_puts(1, timeout=1.0) is True

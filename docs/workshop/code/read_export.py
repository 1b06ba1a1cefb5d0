"""Read the S3 export from a bucket with boto3 (module 6).

    python read_export.py BUCKET [PREFIX]               each object's key and what its lines are
    python read_export.py BUCKET [PREFIX] --sequence N  the line of invocation N, as JSON
"""

import argparse
import gzip
import json

import boto3

# The workshop's local S3 (python -m tools.local_s3 start): it takes any credentials.
s3 = boto3.client(
    "s3",
    endpoint_url="http://127.0.0.1:5000",
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
)


def objects(bucket, prefix):
    """(key, its lines) of every object under prefix, in key order: an environment's objects in sequence."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            yield obj["Key"], [json.loads(line) for line in gzip.decompress(body).splitlines()]


def kind(line):
    """What one line is: the environment's start or shutdown, invocation 3, a log event."""
    if line["type"] == "invocation":
        return f"invocation {line['record']['sequence']}"
    return f"{line['type']} {line.get('event', '')}".strip()


parser = argparse.ArgumentParser()
parser.add_argument("bucket")
parser.add_argument("prefix", nargs="?", default="")
parser.add_argument("--sequence", type=int, help="print this invocation's line")
args = parser.parse_args()
found = 0
for key, lines in objects(args.bucket, args.prefix):
    found += 1
    if args.sequence is None:
        print(f"{key}: {', '.join(kind(line) for line in lines)}")
    for line in lines:
        if line["type"] == "invocation" and line["record"]["sequence"] == args.sequence:
            print(json.dumps(line, indent=2))
if not found:
    print("no objects yet")

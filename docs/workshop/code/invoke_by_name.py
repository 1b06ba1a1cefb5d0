"""Invokes, with boto3, every function named in a CDK outputs file (the shape of `cdk deploy --outputs-file`: outputs
whose name ends in FunctionName), twice each, and prints what each function's extension had recorded.

boto3 decides where the calls go: AWS by default (`python invoke_by_name.py cdk-outputs.json` after a deploy), or the
local cloud of `make up` when AWS_ENDPOINT_URL_LAMBDA names it."""

import json
import sys

import boto3

outputs = json.loads(open(sys.argv[1]).read())
lambda_client = boto3.client("lambda")
for stack_outputs in outputs.values():
    for output, function_name in stack_outputs.items():
        if not output.endswith("FunctionName"):
            continue
        for _ in range(2):
            response = lambda_client.invoke(FunctionName=function_name, Payload=b"{}")
            answer = json.load(response["Payload"])
        environment = answer["environment"]
        print(
            f"{function_name}: status {response['StatusCode']}, {len(answer['invocations'])} invocations recorded, "
            f"telemetry {environment['features']['telemetry']}, "
            f"runtime proxy {'on' if environment['features']['runtimeProxy'] else 'off'}"
        )

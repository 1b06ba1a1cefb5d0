"""Asks the extension for the history as soon as the function starts, without naming itself."""

import json
import urllib.request


def handler(event, context):
    with urllib.request.urlopen("http://127.0.0.1:1203/invocations", timeout=2) as response:
        invocations = json.load(response)["invocations"]
    seen = [record["awsRequestId"] for record in invocations]
    return {"requestId": context.aws_request_id, "sawItself": context.aws_request_id in seen}

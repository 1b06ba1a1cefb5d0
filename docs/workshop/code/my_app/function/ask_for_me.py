"""Module 2's ask_for_me.py, asking on the port the construct sets: the function and the extension agree on it through
INVOCATION_HISTORY_EXTENSION_HTTP_PORT (1203 on Lambda; a free port of its own under `make up`)."""

import json
import os
import urllib.parse
import urllib.request


def handler(event, context):
    port = os.environ.get("INVOCATION_HISTORY_EXTENSION_HTTP_PORT", "1203")
    query = urllib.parse.urlencode({"requestId": context.aws_request_id, "waitMs": 500})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/invocations?{query}", timeout=2) as response:
        invocations = json.load(response)["invocations"]
    seen = [record["awsRequestId"] for record in invocations]
    return {"requestId": context.aws_request_id, "sawItself": context.aws_request_id in seen}

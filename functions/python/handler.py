"""Python sample function: returns the invocation history that includes its own invocation.

Standard library only, so it runs on the python3.13 managed runtime without packaging. If the
extension is absent or slow, the answer carries a clear message instead of failing the function.
"""

import json
import os
import urllib.error
import urllib.parse
import urllib.request

PORT_VARIABLE = "INVOCATION_HISTORY_EXTENSION_HTTP_PORT"
DEFAULT_PORT = 1203
# The extension answers once it has recorded this request id, waiting at most WAIT_MS; the client
# timeout stays above it so a missing or slow extension costs at most ~1.5 s.
WAIT_MS = 500
TIMEOUT_SECONDS = 1.5
MAX_BODY = 8 << 20


def _base_url():
    try:
        port = int(os.environ.get(PORT_VARIABLE, DEFAULT_PORT))
    except ValueError:
        port = DEFAULT_PORT  # the extension falls back to its default for an invalid value; so do we
    if not 0 < port < 65536:
        port = DEFAULT_PORT
    return f"http://127.0.0.1:{port}"


def _get_json(url):
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        return json.loads(response.read(MAX_BODY))


def _describe(error):
    if isinstance(error, urllib.error.HTTPError):
        return f"status {error.code}: {error.read(1024).decode('utf-8', 'replace')}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error)


def handler(event, context):
    request_id = getattr(context, "aws_request_id", "")
    answer = {"requestId": request_id, "invocations": []}
    base = _base_url()
    query = urllib.parse.urlencode({"requestId": request_id, "waitMs": WAIT_MS})
    try:
        answer["invocations"] = _get_json(f"{base}/invocations?{query}")["invocations"]
    except Exception as error:  # noqa: BLE001 - any failure becomes a message, never a failed invoke
        answer["extensionError"] = f"invocation history extension unavailable: {_describe(error)}"
        return answer
    try:
        answer["environment"] = _get_json(f"{base}/environment")
    except Exception as error:  # noqa: BLE001
        answer["extensionError"] = f"invocation history extension: environment unavailable: {_describe(error)}"
    return answer

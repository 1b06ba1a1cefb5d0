"""Live answers of the extension, running under the RIE, checked against docs/api/openapi.yaml."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from tools.local_lambda import ROOT

SPEC = OpenAPI.from_file_path(str(ROOT / "docs/api/openapi.yaml"))


def call(port: int, method: str, path: str, query: str = "") -> tuple[int, bytes, dict]:
    url = f"http://127.0.0.1:{port}{path}" + (f"?{query}" if query else "")
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


@pytest.fixture(scope="module")
def api():
    """An environment that has served three invocations; yields (port, request ids)."""
    from tools.local_lambda import LocalLambda, free_port, go_function

    port = free_port()
    local = LocalLambda(go_function(), env={"INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(port)}).start()
    ids = [local.invoke({})["requestId"] for _ in range(3)]
    yield port, ids
    local.cleanup()


CASES = [
    # (method, path, query, expected status)
    ("GET", "/invocations", "", 200),
    ("GET", "/invocations", "limit=2", 200),
    ("GET", "/invocations", "after=1&limit=1", 200),
    ("GET", "/invocations", "after=99", 200),
    ("GET", "/invocations", "requestId={id0}&waitMs=100", 200),
    ("GET", "/invocations", "requestId=never-seen&waitMs=10", 200),
    ("GET", "/invocations/{id1}", "", 200),
    ("GET", "/invocations/never-seen", "", 404),
    ("GET", "/environment", "", 200),
    ("GET", "/invocations", "limit=0", 400),
    ("GET", "/invocations", "bogus=1", 400),
    ("GET", "/environment", "x=1", 400),
    ("POST", "/invocations", "", 405),
    ("DELETE", "/invocations/{id1}", "", 405),
]


@pytest.mark.parametrize("method, path, query, status", CASES)
def test_live_answer_matches_the_spec(api, method, path, query, status):
    port, ids = api
    fill = {f"id{i}": v for i, v in enumerate(ids)}
    path, query = path.format(**fill), query.format(**fill)
    got_status, body, headers = call(port, method, path, query)
    assert got_status == status, body
    if method == "GET":  # openapi-core validates operations the spec declares; 405 is checked below
        request = MockRequest("http://127.0.0.1:1203", method.lower(), path, args=dict(p.split("=") for p in query.split("&") if p))
        SPEC.validate_response(request, MockResponse(body, status_code=got_status, content_type="application/json"))
    else:
        assert headers["Allow"] == "GET, HEAD"
        assert body.startswith(b'{"errorMessage":') or b'"errorType":"MethodNotAllowed"' in body


def test_unknown_path_is_a_json_404(api):
    port, _ = api
    status, body, headers = call(port, "GET", "/nothing-here")
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert b'"errorType":"NotFound"' in body


def test_spec_itself_is_valid():
    import yaml
    from openapi_spec_validator import validate

    validate(yaml.safe_load((ROOT / "docs/api/openapi.yaml").read_text()))

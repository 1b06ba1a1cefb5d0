"""The example's Python function (examples/my-app/functions/python) under AWS's Lambda emulator (RIE) with the layer
zip's files in /opt, as Lambda unpacks the layer (tools/local_lambda.py: a private mount namespace, never the
machine's /opt): what its README says it answers."""

from __future__ import annotations

import platform
import zipfile

import pytest

from tools.local_lambda import EXTENSION_NAME, RIE, LocalLambda, free_port

from .conftest import LAYER_ZIPS, REPO_ROOT

HOST_ARCH = {"x86_64": "x86_64", "aarch64": "arm64"}.get(platform.machine())


@pytest.fixture
def layer_dir(tmp_path):
    """The layer zip of this machine's architecture, unpacked (modes kept)."""
    assert RIE.exists(), f"missing {RIE}: run the tests with `make test`"
    assert HOST_ARCH, f"no layer for {platform.machine()}"
    with zipfile.ZipFile(LAYER_ZIPS[HOST_ARCH]) as zf:
        zf.extractall(tmp_path)
        for info in zf.infolist():
            (tmp_path / info.filename).chmod(info.external_attr >> 16 & 0o777 or 0o755)
    return tmp_path


def test_the_python_function_answers_its_environments_history(layer_dir):
    # GIVEN the example's Python handler on the RIE, the extension and the wrapper from the layer zip in /opt
    local = LocalLambda(
        [str(REPO_ROOT / ".venv/bin/python"), "-m", "awslambdaric", "index.handler"],
        env={"INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(free_port())},
        extensions={EXTENSION_NAME: layer_dir / "extensions" / EXTENSION_NAME},
        opt_files={"invocation-history-wrapper": layer_dir / "invocation-history-wrapper"},
        task_root=REPO_ROOT / "examples" / "my-app" / "functions" / "python",
    )
    with local:
        # WHEN it is invoked twice
        first, second = local.invoke(), local.invoke()
    # THEN each answer counts the invocations so far, its own included (the handler waits for its own record), and
    # the newest record is a new invocation each time
    assert first["recorded"] == 1 and second["recorded"] == 2, (first, second)
    assert first["newest"]["awsRequestId"] != second["newest"]["awsRequestId"], (first, second)
    assert first["newest"]["coldStart"] is True and second["newest"]["coldStart"] is False

"""Fixtures that run the sample functions and the extension under AWS's Lambda emulator (RIE).

`make test` builds the extension and the Go sample and installs the RIE before pytest runs.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tools.local_lambda import EXTENSION, GO_BOOTSTRAP, RIE, LocalLambda, free_port, go_function, python_function

FUNCTIONS = {"go": go_function, "python": python_function}


def pytest_collection_modifyitems(config, items):
    missing = [p for p in (RIE, EXTENSION, GO_BOOTSTRAP) if not p.exists()]
    if missing:
        raise pytest.UsageError(f"missing {', '.join(map(str, missing))}: run the tests with `make test`")


@pytest.fixture
def start_lambda():
    """Factory: start_lambda(function="go", env={...}, ...) -> started LocalLambda, cleaned up after."""
    started: list[LocalLambda] = []

    def start(function: str = "go", env: dict | None = None, bootstrap: list[str] | None = None, **kwargs) -> LocalLambda:
        env = dict(env or {})
        # A free port per environment, unless the test sets one: tests never depend on 1203 being free.
        env.setdefault("INVOCATION_HISTORY_EXTENSION_HTTP_PORT", str(free_port()))
        local = LocalLambda(bootstrap or FUNCTIONS[function](), env=env, **kwargs)
        started.append(local)
        return local.start()

    yield start
    for local in started:
        local.cleanup()


@pytest.fixture(params=sorted(FUNCTIONS))
def function(request) -> str:
    return request.param


@pytest.fixture
def squatter():
    """A process-owned socket listening on a port, so the extension cannot bind it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


@pytest.fixture
def exit_file(tmp_path) -> Path:
    return tmp_path / "extension-exit"

"""The workshop (docs/workshop/), run as a reader would: every sh block, in order, in one shell.

Each block is one test, in the order of the modules and of the text; a block that fails stops the
rest (they are skipped, naming it). The shell runs in a network namespace of its own, with only
its loopback: the workshop uses the fixed ports a reader types (9000 for invokes, 1203 for the
extension), and other work on this machine may hold them. `make test` builds what the workshop's
`make` commands would otherwise build, so here they only run.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time

import pytest

from tests.workshop.runner import Block, Shell, matches, parse
from tools.local_lambda import EXTENSION, GO_BOOTSTRAP, RIE, ROOT

WORKSHOP = ROOT / "docs/workshop"
MODULES = sorted(WORKSHOP.glob("[0-9][0-9]-*.md"))
BLOCKS = [block for module in MODULES for block in parse(module)]
# Code shown for reading, not run (a `file` directive, or any block other than sh and mermaid): each must be the
# code that does run.
SHOWN = [block for block in BLOCKS if block.file or block.language not in ("sh", "mermaid")]
RUN = [block for block in BLOCKS if block.language == "sh" and block not in SHOWN]
SIMULATOR_DRIVER = ROOT / "tests/simulator/target/release/simulator-driver"  # module 3 runs it
# Module 8's `make up` runs the arm64 Go sample under user-mode emulation on an x86_64 machine (`make qemu-user`).
QEMU = ROOT / ".local/bin/qemu-aarch64-static"
BLOCK_TIMEOUT_S = 280.0  # under pytest-timeout's 300 s per test (pyproject.toml)


def isolated_loopback() -> list[str]:
    """The command prefix that runs the shell in a new network namespace with its loopback up."""
    userns = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return ["unshare", *userns, "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def build_the_wheel() -> None:
    """Module 7's `make dist`, run here first with the network: offline, pip could not fetch the package's build
    backend (hatchling), and in the workshop's shell `make dist` then only finds the wheel up to date, as `make demo`
    finds what `make test` built. Make's own variables are dropped, as the shell drops them."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}
    built = subprocess.run(["make", "--no-print-directory", "dist"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=BLOCK_TIMEOUT_S)  # fmt: skip
    if built.returncode != 0:
        pytest.fail(f"make dist failed:\n{built.stdout}{built.stderr}")


@pytest.fixture(scope="session")
def workshop(tmp_path_factory):
    for tool in ("unshare", "ip", "curl"):
        if shutil.which(tool) is None:
            pytest.fail(f"the workshop test needs {tool}")
    # The shell has no network but its loopback, so what the workshop's make commands download must be there.
    needed = [RIE, EXTENSION, GO_BOOTSTRAP, SIMULATOR_DRIVER]
    if platform.machine() == "x86_64" and shutil.which("qemu-aarch64-static") is None:
        needed.append(QEMU)
    missing = [str(p.relative_to(ROOT)) for p in needed if not p.exists()]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: run the workshop's test with `make test` "
            "(or `make demo simulator-driver qemu-user` first)"
        )
    build_the_wheel()
    shell = Shell(ROOT, tmp_path_factory.mktemp("workshop"), prefix=isolated_loopback())
    state = {"shell": shell, "failed": None, "started": time.monotonic(), "ran": 0}
    yield state
    shell.close()
    # A block that failed may have left the workshop's environment or its local S3 (module 6) running.
    for tool in ("tools.environment", "tools.local_s3"):
        subprocess.run([str(ROOT / ".venv/bin/python"), "-m", tool, "stop"], cwd=ROOT, capture_output=True, timeout=60)
    print(f"\nworkshop: {state['ran']} blocks run in {time.monotonic() - state['started']:.1f}s")


def test_the_workshop_has_its_modules():
    assert [m.name[:2] for m in MODULES] == ["01", "02", "03", "04", "05", "06", "07", "08"]
    assert all(any(b.source == m for b in RUN) for m in MODULES), "every module runs something"


@pytest.mark.parametrize("block", SHOWN, ids=[b.where for b in SHOWN])
def test_code_shown_is_the_code_that_runs(block: Block):
    assert block.file, f"{block.where}: a {block.language or 'plain'} block needs <!-- workshop: file PATH -->"
    path = ROOT / block.file
    assert path.is_file(), f"{block.where}: {block.file} does not exist"
    assert block.text in path.read_text(), f"{block.where}: the block is not (or no longer) in {block.file}"


@pytest.mark.parametrize("block", RUN, ids=[b.where for b in RUN])
def test_block(block: Block, workshop):
    if block.skip:
        pytest.skip(f"{block.where}: {block.skip}")
    if workshop["failed"]:
        pytest.skip(f"an earlier block failed: {workshop['failed']}")
    workshop["failed"] = block.where  # until it passes
    output, failures = workshop["shell"].run(block, workshop["ran"], BLOCK_TIMEOUT_S)
    workshop["ran"] += 1
    assert not failures, f"{block.where}: a command failed:\n{failures}\n--- output:\n{output}"
    if block.expected is not None:
        assert matches(block.expected, output), (
            f"{block.where}: the output is not what the text shows\n--- expected:\n{block.expected}--- got:\n{output}"
        )
    workshop["failed"] = None


def test_blocks_cover_every_module_file():
    # Nothing numbered hides outside the pattern the test reads.
    numbered = sorted(p for p in WORKSHOP.glob("*.md") if p.name[0].isdigit())
    assert numbered == MODULES

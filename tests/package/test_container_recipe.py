"""The container recipe of examples/my-app (Dockerfile, .dockerignore, the commands its README gives), checked
without Docker: hadolint passes, the base image is pinned, and for each architecture every file the Dockerfile copies
is in the build context that .dockerignore lets through, the layer zip's files land where Lambda would have unpacked
the layer, and the binary is the one of that architecture."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import LAYER_ZIPS, REPO_ROOT

EXAMPLE_DIR = REPO_ROOT / "examples" / "my-app"
DOCKERFILE = EXAMPLE_DIR / "Dockerfile"
#: Docker's architecture names (TARGETARCH), and the layer zip of each.
DOCKER_ARCHES = {"amd64": "x86_64", "arm64": "arm64"}
#: ELF e_machine of each layer architecture.
ELF_MACHINE = {"x86_64": 0x3E, "arm64": 0xB7}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments and the parser directive dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines if line and not line.startswith("#")
    ]


def copies(dockerfile: Path, target_arch: str) -> list[tuple[list[str], str]]:
    """Each COPY from the build context as (sources, destination), TARGETARCH and the base image's variables
    expanded."""
    variables = {"TARGETARCH": target_arch, "LAMBDA_TASK_ROOT": "/var/task"}
    found = []
    for instruction, arguments in instructions(dockerfile):
        if instruction != "COPY":
            continue
        words = shlex.split(re.sub(r"\$\{(\w+)\}", lambda m: variables[m.group(1)], arguments))
        assert not any(w.startswith("--from") for w in words), "the recipe copies from the build context only"
        paths = [w for w in words if not w.startswith("--")]
        found.append((paths[:-1], paths[-1]))
    return found


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parent directories decides; `*` and `?`
    stay within one path segment."""
    excluded = False
    parts = path.split("/")
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = re.compile(
            "".join(
                "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in pattern.lstrip("!").strip("/")
            )
        )
        if any(regex.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negated
    return excluded


def unzip_steps(text: str) -> dict[str, str]:
    """The documented `unzip -o -d layer/<docker arch> .../invocation-history-extension-<arch>.zip` steps."""
    return dict(re.findall(r"unzip -o -d layer/(\w+) \S*/invocation-history-extension-(\w+)\.zip", text))


def readme_layer_commands() -> str:
    """The shell lines of the README's container block that prepare the build context (all but `docker ...`)."""
    readme = (EXAMPLE_DIR / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```sh\n(.*?)```", readme, re.S) if "unzip" in b]
    return "\n".join(line for line in block.splitlines() if not line.startswith("docker "))


@pytest.fixture(scope="module")
def build_context(tmp_path_factory) -> tuple[Path, set[str]]:
    """A copy of the example, in a clone-like tree whose dist/ is this repository's, with the README's commands run
    in it as written; and the paths .dockerignore sends to the build."""
    commands = readme_layer_commands()
    steps = unzip_steps(commands)
    assert steps == DOCKER_ARCHES, f"the README's unzip steps: {steps}"
    assert unzip_steps(DOCKERFILE.read_text()) == steps, "the Dockerfile's header gives the README's unzip steps"
    clone = tmp_path_factory.mktemp("clone")
    (clone / "dist").symlink_to(REPO_ROOT / "dist")
    context = clone / "examples" / "my-app"
    shutil.copytree(EXAMPLE_DIR, context, ignore=shutil.ignore_patterns("cdk.out", ".venv", "layer", "__pycache__"))
    result = subprocess.run(["sh", "-ec", commands], cwd=context, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{commands}\n{result.stdout}{result.stderr}"
    patterns = [
        line.strip()
        for line in (context / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    files = {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()}
    sent = {f for f in files if not dockerignore_excludes(patterns, f)}
    return context, sent


def test_the_dockerfile_passes_hadolint():
    # GIVEN the recipe's Dockerfile WHEN hadolint lints it THEN it finds nothing
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run(
        [str(hadolint if hadolint.exists() else "hadolint"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_image_is_pinned():
    # GIVEN the FROM lines WHEN their image references are read THEN each names a digest or an exact release tag
    # (three or more numeric parts), never a moving tag such as `3.13` or `latest`
    images = [arguments.split()[0] for instruction, arguments in instructions(DOCKERFILE) if instruction == "FROM"]
    assert images
    for image in images:
        pinned = re.search(r"@sha256:[0-9a-f]{64}$", image) or re.fullmatch(r"[^:@]+:\d+(\.\d+){2,}", image)
        assert pinned, f"{image} is not pinned"
    # AND the README names the same release for the digest lookup
    assert f"imagetools inspect\n{images[0]}" in (EXAMPLE_DIR / "README.md").read_text()


@pytest.mark.parametrize("docker_arch", sorted(DOCKER_ARCHES))
def test_every_copy_source_is_in_the_build_context(build_context, docker_arch):
    context, sent = build_context
    # GIVEN the build context as .dockerignore narrows it WHEN the Dockerfile's COPY sources are expanded for the
    # architecture THEN each is a file sent to the build
    sources = [source for paths, _ in copies(DOCKERFILE, docker_arch) for source in paths]
    assert sources
    for source in sources:
        assert source in sent, f"COPY {source}: not in the build context (sent: {sorted(sent)})"
    # AND nothing else is sent (not cdk.out, .venv, the Node.js function, the other architecture)
    assert sent - {s for arch in DOCKER_ARCHES for paths, _ in copies(DOCKERFILE, arch) for s in paths} == set()


@pytest.mark.parametrize("docker_arch", sorted(DOCKER_ARCHES))
def test_the_layer_lands_where_lambda_unpacks_it(build_context, docker_arch):
    context, _ = build_context
    arch = DOCKER_ARCHES[docker_arch]
    # GIVEN the files of the layer zip, which Lambda unpacks into /opt
    with zipfile.ZipFile(LAYER_ZIPS[arch]) as zf:
        layer_files = {f"/opt/{info.filename}" for info in zf.infolist() if not info.is_dir()}
    # WHEN the Dockerfile's COPY lines are expanded for the architecture
    destinations = {}
    for paths, destination in copies(DOCKERFILE, docker_arch):
        for source in paths:
            destinations[
                destination.rstrip("/") + "/" + Path(source).name if destination.endswith("/") else destination
            ] = context / source
    # THEN every file of the layer is copied to its place under /opt, executable (--chmod=755 on each)
    from_layer = {dest: src for dest, src in destinations.items() if dest.startswith("/opt/")}
    assert set(from_layer) == layer_files
    assert all(
        "--chmod=755" in arguments
        for instruction, arguments in instructions(DOCKERFILE)
        if instruction == "COPY" and "/opt/" in arguments
    )
    # AND the wrapper is where the construct's runtime_proxy points AWS_LAMBDA_EXEC_WRAPPER
    from invocation_history_cdk.settings import WRAPPER_PATH

    assert WRAPPER_PATH in from_layer
    # AND the extension is the binary of the image's architecture (ELF e_machine), not the other one
    extension = from_layer["/opt/extensions/invocation-history-extension"].read_bytes()
    assert extension[:4] == b"\x7fELF" and int.from_bytes(extension[18:20], "little") == ELF_MACHINE[arch]
    # AND the handler the image runs (CMD) is copied into the task root
    (cmd,) = [arguments for instruction, arguments in instructions(DOCKERFILE) if instruction == "CMD"]
    module = cmd.strip('[]"').split(".")[0]
    assert f"/var/task/{module}.py" in destinations


def test_the_docs_recipe_is_the_dockerfiles():
    # GIVEN the Dockerfile lines docs/construct.md shows WHEN they are looked up in the example's Dockerfile THEN each
    # is there as written
    docs = (REPO_ROOT / "docs" / "construct.md").read_text()
    (block,) = re.findall(r"```dockerfile\n(.*?)```", docs, re.S)
    dockerfile_lines = DOCKERFILE.read_text().splitlines()
    for line in block.splitlines():
        assert line in dockerfile_lines, line

"""Building the layer zip from the extension's source (``extension_src/``) with ``build-layer.sh``: the same script,
flags and bytes as ``make layer``, with the local Rust toolchain when its ``rustc`` is at least the crate's
``rust-version`` and has the architecture's musl target installed, otherwise inside the official Rust image through
Docker. Built zips are cached by a hash of the extension's source, so an app with several layers (or several synths)
builds each architecture once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path
from typing import Callable, Optional

#: The official Rust image used when no suitable local toolchain is found (its release decides the bytes, as locally).
DEFAULT_DOCKER_IMAGE = "rust:1.95.0"  # the release the published zips are built with: same release, same bytes

#: Default source of the extension: ``extension_src/`` of the repository this package is in (an editable install or
#: a checkout); an installed wheel has none there and uses its packaged zips.
DEFAULT_SOURCE_DIR = Path(__file__).resolve().parents[3] / "extension_src"

#: Where the wheel built by ``make dist`` carries the prebuilt layer zips (``hatch_build.py`` puts them there).
PACKAGED_LAYERS_DIR = Path(__file__).resolve().parent / "layers"


def _package_version() -> str:
    try:
        return importlib.metadata.version("invocation-history-cdk")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


#: This package's version, the extension's version its wheel carries.
PACKAGE_VERSION = _package_version()

#: The Rust target each layer architecture is built for (as in build-layer.sh): static musl binaries.
RUST_TARGETS = {"x86_64": "x86_64-unknown-linux-musl", "arm64": "aarch64-unknown-linux-musl"}
_ARCH_NAMES = tuple(RUST_TARGETS)
# Bumped when the recipe (not the source) changes, so cached zips and asset hashes follow it.
_RECIPE = "build-layer.sh/3"
# The one place a build command is executed (tests replace it to check the command without running Docker).
_run = subprocess.run


class LayerBuildError(RuntimeError):
    """The extension could not be built for the layer (no suitable Rust toolchain, no Docker, or the build failed)."""



def _package(source_dir: Path) -> dict:
    """The ``[package]`` table of the crate's ``Cargo.toml`` (empty when it cannot be read)."""
    try:
        return tomllib.loads((Path(source_dir) / "Cargo.toml").read_text()).get("package") or {}
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def extension_version(source_dir: Path = DEFAULT_SOURCE_DIR) -> str:
    """The crate's ``version`` in ``Cargo.toml`` ("unknown" when it cannot be read)."""
    version = _package(source_dir).get("version")
    return version if isinstance(version, str) else "unknown"


#: What the build reads besides ``src/`` and ``wrapper/`` (paths relative to the source dir).
_BUILD_INPUTS = (
    "Cargo.toml", "Cargo.lock", "build.rs", "build-layer.sh", "rust-toolchain", "rust-toolchain.toml",
    ".cargo/config.toml", "tools/layerzip/Cargo.toml", "tools/layerzip/Cargo.lock",
)
_BUILD_INPUT_DIRS = ("src", "wrapper", "tools/layerzip/src")


def source_hash(source_dir: Path = DEFAULT_SOURCE_DIR) -> str:
    """SHA-256 of what the build reads, by path: the crate's manifest, lock file, toolchain and cargo settings, every
    file under ``src/``, the build script, the zip tool's source, and the exec wrapper it puts in the zip
    (``wrapper/``). Go files, tests outside ``src/`` and cargo's ``target/`` are not part of the layer."""
    source_dir = Path(source_dir)
    files = [source_dir / rel for rel in _BUILD_INPUTS]
    for top in _BUILD_INPUT_DIRS:
        files += (source_dir / top).rglob("*")
    digest = hashlib.sha256(_RECIPE.encode())
    for path in sorted(set(files)):
        relative = path.relative_to(source_dir)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts[1:]):
            continue  # editors' swap files and the like; .cargo/config.toml itself is listed by name
        digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def required_rust_version(source_dir: Path = DEFAULT_SOURCE_DIR) -> tuple[int, ...]:
    """The crate's ``rust-version`` in ``Cargo.toml`` as a version tuple, e.g. (1, 92)."""
    declared = _package(source_dir).get("rust-version")
    if not isinstance(declared, str) or not re.fullmatch(r"\d+(?:\.\d+)*", declared):
        raise LayerBuildError(f"{source_dir}/Cargo.toml has no rust-version in [package]")
    return tuple(int(p) for p in declared.split("."))


def _ask(command: list[str], cwd: Path) -> Optional[str]:
    """What ``command`` prints, or None when it cannot run or fails (a toolchain that does not answer is absent)."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def local_rust(
    source_dir: Path = DEFAULT_SOURCE_DIR, which: Optional[Callable[[str], Optional[str]]] = None
) -> Optional[tuple[tuple[int, ...], frozenset[str]]]:
    """The local toolchain as used in ``source_dir`` (where a rust-toolchain file would apply): the version of its
    ``rustc`` and the targets whose standard library it has; None without cargo and rustc on PATH."""
    which = which or shutil.which
    cargo, rustc = which("cargo"), which("rustc")
    if not cargo or not rustc:
        return None
    version = _ask([rustc, "--version"], source_dir)
    sysroot = _ask([rustc, "--print", "sysroot"], source_dir)
    match = re.match(r"rustc (\d+(?:\.\d+)*)", version or "")
    if not match or not sysroot:
        return None
    installed = frozenset(t for t in RUST_TARGETS.values() if (Path(sysroot) / "lib/rustlib" / t / "lib").is_dir())
    return tuple(int(p) for p in match.group(1).split(".")), installed


def build_command(
    architecture: str,
    out_zip: Path,
    *,
    source_dir: Path = DEFAULT_SOURCE_DIR,
    docker_image: str = DEFAULT_DOCKER_IMAGE,
    which: Optional[Callable[[str], Optional[str]]] = None,
) -> list[str]:
    """The command that builds the layer zip: the local toolchain when suitable, else Docker; raises when neither is
    there."""
    which = which or shutil.which
    source_dir = Path(source_dir).resolve()
    target = RUST_TARGETS[architecture]
    need = required_rust_version(source_dir)
    have = local_rust(source_dir, which)
    if have is not None and have[0] >= need and target in have[1]:
        return ["sh", str(source_dir / "build-layer.sh"), architecture, str(out_zip)]
    docker = which("docker")
    if docker:
        out_dir = Path(out_zip).resolve().parent
        name = Path(out_zip).name
        # Root inside the container: rustup adds the target to the image's toolchain, which root owns. The zip is
        # then handed to the caller's user, so nothing root-owned is left in the cache.
        owner = f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else ""
        script = (
            'sh build-layer.sh --add-targets "$1" && sh build-layer.sh "$1" "/out/$2"'
            ' && { [ -z "$3" ] || chown "$3" "/out/$2"; }'
        )
        return [
            docker, "run", "--rm", "-v", f"{source_dir}:/src:ro", "-v", f"{out_dir}:/out", "-w", "/src",
            docker_image, "sh", "-c", script, "build-layer", architecture, name, owner,
        ]
    if have is None:
        found = "no cargo and rustc on PATH"
    elif have[0] < need:
        found = "rustc " + ".".join(map(str, have[0])) + " on PATH"
    else:
        found = f"rustc on PATH without the {target} target: `rustup target add {target}` adds it"
    raise LayerBuildError(
        f"InvocationHistoryLayer cannot build the extension: it needs Rust >= {'.'.join(map(str, need))} with the "
        f"{target} target ({found}) or Docker (docker not found) to run {source_dir}/build-layer.sh: install either, "
        f"or pass code=lambda_.Code.from_asset('dist/invocation-history-extension-{architecture}.zip') built with "
        "`make layer`"
    )


def cargo_target_dir(source_dir: Path, cache_dir: Path) -> Path:
    """Where a local build keeps cargo's work for the next source change, unless ``CARGO_TARGET_DIR`` says otherwise:
    the crate's own ``target/``, as cargo and ``make`` use it, or ``cache_dir/cargo-target`` when the source is
    read-only. Its path does not reach the bytes (build-layer.sh remaps it)."""
    if os.access(source_dir, os.W_OK):
        return source_dir / "target"
    return cache_dir.resolve() / "cargo-target"


def build_layer_zip(
    architecture: str,
    *,
    source_dir: Path = DEFAULT_SOURCE_DIR,
    cache_dir: Optional[Path] = None,
    docker_image: str = DEFAULT_DOCKER_IMAGE,
) -> tuple[Path, str]:
    """Build (or reuse) the layer zip for ``architecture``; returns its path and the asset hash to publish it under."""
    source_dir = Path(source_dir).resolve()
    digest = source_hash(source_dir)
    asset_hash = hashlib.sha256(f"{digest}/{architecture}".encode()).hexdigest()
    cache_dir = Path(cache_dir) if cache_dir is not None else source_dir.parent / "build" / "layer-cache"
    target = cache_dir / f"invocation-history-extension-{architecture}-{digest[:16]}.zip"
    if target.is_file():  # its name carries the source hash: a zip of this source for this architecture
        return target, asset_hash
    cache_dir.mkdir(parents=True, exist_ok=True)
    env = {"CARGO_TARGET_DIR": str(cargo_target_dir(source_dir, cache_dir)), **os.environ}
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as tmp:
        out = Path(tmp) / target.name
        cmd = build_command(architecture, out, source_dir=source_dir, docker_image=docker_image)
        result = _run(cmd, capture_output=True, text=True, env=env)
        if result.returncode != 0 or not out.is_file():
            raise LayerBuildError(
                f"building the extension layer for {architecture} failed (exit {result.returncode}): "
                f"{' '.join(cmd)}\n{result.stderr.strip()}"
            )
        os.replace(out, target)
    return target, asset_hash


def packaged_layer_zip(architecture: str) -> Optional[Path]:
    """The prebuilt layer zip for ``architecture`` that the wheel carries, or None (an install built from source)."""
    path = PACKAGED_LAYERS_DIR / f"invocation-history-extension-{architecture}.zip"
    return path if path.is_file() else None

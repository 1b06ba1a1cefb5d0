"""Fixtures for the package's tests: the wheel as `make dist` builds it, and scratch virtual environments that have
only the package's dependencies (aws-cdk-lib, constructs, jsii: this repository's, found through a .pth file so the
tests need no download) and a PATH without Rust, Go or Docker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import aws_cdk
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO_ROOT / "invocation-history-cdk"
LAYER_ZIPS = {arch: REPO_ROOT / "dist" / f"invocation-history-extension-{arch}.zip" for arch in ("x86_64", "arm64")}
TOOLCHAINS = ("cargo", "rustc", "go", "docker")


def build_wheel(out_dir: Path, *, layers: Path | None) -> Path:
    """`make dist`'s command (mk/dist.mk): the package's wheel, with the zips in ``layers`` when given."""
    env = {k: v for k, v in os.environ.items() if k != "INVOCATION_HISTORY_CDK_LAYERS"}
    if layers is not None:
        env["INVOCATION_HISTORY_CDK_LAYERS"] = str(layers)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out_dir),
                    str(PACKAGE_DIR)], check=True, env=env, timeout=300)
    (wheel,) = out_dir.glob("invocation_history_cdk-*.whl")
    return wheel


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    missing = [str(path) for path in LAYER_ZIPS.values() if not path.is_file()]
    assert not missing, f"no layer zips to package: {', '.join(missing)}: run `make layer`"
    return build_wheel(tmp_path_factory.mktemp("wheel"), layers=REPO_ROOT / "dist")


class ScratchVenv:
    """A fresh virtual environment whose PATH has the venv, /usr/bin and /bin only: no Rust, Go or Docker."""

    def __init__(self, root: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
        self.root = root
        self.python = root / "bin" / "python"
        site = Path(subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True, timeout=60).stdout.strip())
        # The package's dependencies, from this repository's venv: its site-packages is added as a plain path, so
        # its .pth files (the editable install of the package) are not read.
        (site / "dependencies.pth").write_text(str(Path(aws_cdk.__file__).resolve().parents[1]) + "\n")
        self.env = {"PATH": f"{root / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", str(root))}
        found = [tool for tool in TOOLCHAINS if shutil.which(tool, path=self.env["PATH"])]
        assert not found, f"the scratch PATH should have no toolchain, has {found}"

    def pip_install(self, *args: str) -> None:
        # This repository's pip runs for the scratch interpreter (--python), with the scratch PATH. It sees this
        # repository's editable install of the package through dependencies.pth: --ignore-installed installs into
        # the scratch venv all the same, and never uninstalls anything.
        subprocess.run([sys.executable, "-m", "pip", "--python", str(self.python), "install", "--quiet", "--no-deps",
                        "--ignore-installed", *args], check=True, env={**os.environ, "PATH": self.env["PATH"]},
                       timeout=300)

    def run(self, script: str, cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.python), "-c", script], cwd=cwd, env=self.env, capture_output=True, text=True,
                              timeout=300)


@pytest.fixture
def scratch_venv(tmp_path) -> ScratchVenv:
    return ScratchVenv(tmp_path / "venv")


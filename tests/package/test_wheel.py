"""The package as users get it: the wheel of `make dist` carries both layer zips, installs into a fresh virtual
environment and synthesizes an app with no Rust, Go or Docker on the PATH; `pip install git+...#subdirectory=` works."""

from __future__ import annotations

import hashlib
import shutil
import json
import subprocess
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

from .conftest import LAYER_ZIPS, PACKAGE_DIR, REPO_ROOT, ScratchVenv

#: A user's app (Python and Node.js functions, the Aspect with the export), run as a script.
USER_APP = Path(__file__).with_name("user_app.py")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_wheel_carries_both_layer_zips_as_built(wheel):
    # GIVEN the wheel of `make dist` WHEN its files are listed THEN both zips are inside, byte for byte
    with zipfile.ZipFile(wheel) as zf:
        for arch, built in LAYER_ZIPS.items():
            assert zf.read(f"invocation_history_cdk/layers/{built.name}") == built.read_bytes(), arch
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    # AND it asks for aws-cdk-lib 2.x and constructs 10.x only, no alpha module
    requires = {Requirement(line.split(": ", 1)[1]) for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ")}
    ranges = {r.name: r.specifier for r in requires}
    assert set(ranges) == {"aws-cdk-lib", "constructs"}
    assert "2.999.0" in ranges["aws-cdk-lib"] and "3.0.0" not in ranges["aws-cdk-lib"]
    assert "10.99.0" in ranges["constructs"] and "11.0.0" not in ranges["constructs"]


def test_the_wheel_is_reproducible(wheel, tmp_path):
    # GIVEN the wheel WHEN it is built again from the same files THEN the bytes are the same
    from .conftest import build_wheel

    again = build_wheel(tmp_path, layers=REPO_ROOT / "dist")
    assert sha256(again) == sha256(wheel)


def test_installed_wheel_synthesizes_without_a_toolchain(wheel, scratch_venv: ScratchVenv, tmp_path):
    # GIVEN the wheel installed into a fresh venv whose PATH has no Rust, Go or Docker
    scratch_venv.pip_install(str(wheel))
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    # WHEN a user's app attaches the extension to a Python function on x86_64 and a Node.js one on arm64
    result = scratch_venv.run_file(USER_APP, cwd=app_dir)
    # THEN it synthesizes from the installed package (not this repository)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.split()[-1]).is_relative_to(scratch_venv.root), result.stdout
    # AND each function has the layer of its architecture, whose asset is the packaged zip, byte for byte
    template = json.loads((app_dir / "cdk.out" / "UserApp.template.json").read_text())
    resources = template["Resources"]
    for function_id, arch in (("Api", "x86_64"), ("Edge", "arm64")):
        (fn,) = [r for logical_id, r in resources.items()
                 if r["Type"] == "AWS::Lambda::Function" and logical_id.startswith(function_id)]
        (layer_ref,) = fn["Properties"]["Layers"]
        layer = resources[layer_ref["Ref"]]
        assert layer["Properties"]["CompatibleArchitectures"] == [arch]
        key = layer["Properties"]["Content"]["S3Key"]
        asset = app_dir / "cdk.out" / f"asset.{key.removesuffix('.zip')}.zip"
        assert sha256(asset) == sha256(LAYER_ZIPS[arch]), arch
        assert fn["Properties"]["Environment"]["Variables"] == {
            "INVOCATION_HISTORY_EXTENSION_HTTP_PORT": "1203", "INVOCATION_HISTORY_EXTENSION_MAX_RECORDS": "1000"}
    # AND the Aspect gave the other stack's function its layer, the export and its grant
    exported = json.loads((app_dir / "cdk.out" / "Exported.template.json").read_text())["Resources"]
    (worker,) = [r for r in exported.values() if r["Type"] == "AWS::Lambda::Function"]
    assert len(worker["Properties"]["Layers"]) == 1
    assert worker["Properties"]["Environment"]["Variables"]["INVOCATION_HISTORY_EXTENSION_EXPORT_S3_PREFIX"] == (
        "invocation-history/")
    (policy,) = [r for r in exported.values() if r["Type"] == "AWS::IAM::Policy"]
    assert [s["Action"] for s in policy["Properties"]["PolicyDocument"]["Statement"]] == ["s3:PutObject"]


def test_pip_install_from_git_subdirectory(scratch_venv: ScratchVenv, tmp_path):
    # GIVEN a git repository with the package's directory as it is here (nothing else: the package needs nothing from
    # outside it), reached through a file URL: no network
    clone = tmp_path / "repo"
    subdir = PACKAGE_DIR.relative_to(REPO_ROOT).as_posix()
    shutil.copytree(PACKAGE_DIR, clone / subdir, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "dist"))
    git = ["git", "-C", str(clone), "-c", "user.name=test", "-c", "user.email=test@example.com"]
    for command in (["init", "--quiet"], ["add", "."], ["commit", "--quiet", "-m", "package"]):
        subprocess.run(git + command, check=True, timeout=60)
    # WHEN pip installs the package from it
    scratch_venv.pip_install(f"git+file://{clone}#subdirectory={subdir}")
    # THEN it imports; without prebuilt zips a layer says what to do, and takes a zip as code=
    script = f"""
import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from invocation_history_cdk import InvocationHistoryLayer
stack = cdk.Stack(cdk.App(), "T")
try:
    InvocationHistoryLayer(stack, "Built")
except ValueError as error:
    print("refused:", error)
InvocationHistoryLayer(stack, "Given", code=lambda_.Code.from_asset({str(LAYER_ZIPS["arm64"])!r}))
print("given: ok")
"""
    result = scratch_venv.run(script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "carries no prebuilt layer zip for arm64" in result.stdout and "make dist" in result.stdout, result.stdout
    assert result.stdout.rstrip().endswith("given: ok")


def test_the_package_version_is_the_extensions():
    # GIVEN the package's pyproject and the extension's Cargo.toml WHEN their versions are read THEN they agree: the
    # wheel's layer description names the package's version as the extension's
    package = tomllib.loads((PACKAGE_DIR / "pyproject.toml").read_text())["project"]["version"]
    crate = tomllib.loads((REPO_ROOT / "extension_src" / "Cargo.toml").read_text())["package"]["version"]
    assert package == crate

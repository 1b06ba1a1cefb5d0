"""The package as users get it: the wheel of `make dist` carries both layer zips, installs into a fresh virtual
environment and synthesizes the example app (examples/my-app) with no Rust, Go or Docker on the PATH;
`pip install git+...#subdirectory=` works."""

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

#: The sample user app: a Python function on x86_64 and a Node.js one on arm64, the extension on both in one call.
EXAMPLE_DIR = REPO_ROOT / "examples" / "my-app"


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


def test_the_example_app_synthesizes_from_the_wheel_without_a_toolchain(wheel, scratch_venv: ScratchVenv, tmp_path):
    # GIVEN a copy of examples/my-app and a fresh venv whose PATH has no Rust, Go or Docker, into which its
    # requirements.txt installs the package from the wheel's directory, as the example's README says
    app_dir = tmp_path / "my-app"
    shutil.copytree(EXAMPLE_DIR, app_dir, ignore=shutil.ignore_patterns("cdk.out", ".venv", "layer", "__pycache__"))
    scratch_venv.pip_install("--no-index", "--find-links", str(wheel.parent), "-r", str(app_dir / "requirements.txt"))
    origin = scratch_venv.run("import importlib.util; print(importlib.util.find_spec('invocation_history_cdk').origin)",
                              cwd=app_dir)
    assert Path(origin.stdout.strip()).is_relative_to(scratch_venv.root), origin
    # WHEN the command of its cdk.json runs, as `cdk synth` runs it (the CLI names the output directory)
    app_command = json.loads((app_dir / "cdk.json").read_text())["app"]
    result = subprocess.run(app_command, shell=True, cwd=app_dir, capture_output=True, text=True, timeout=300,
                            env={**scratch_venv.env, "CDK_OUTDIR": "cdk.out"})
    # THEN it synthesizes
    assert result.returncode == 0, result.stderr
    resources = json.loads((app_dir / "cdk.out" / "MyApp.template.json").read_text())["Resources"]
    functions = {logical_id: r["Properties"] for logical_id, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    assert len(functions) == 2, functions
    layers = [r for r in resources.values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert len(layers) == 2, "one layer per architecture"
    # AND each function has the layer of its own architecture, whose asset is the packaged zip, byte for byte
    for name, runtime, arch, handler in (("Api", "python3.13", "x86_64", "functions/python/index.py"),
                                         ("Worker", "nodejs22.x", "arm64", "functions/node/index.mjs")):
        (fn,) = [props for logical_id, props in functions.items() if logical_id.startswith(name)]
        assert fn["Runtime"] == runtime and fn["Architectures"] == [arch], fn
        (layer_ref,) = fn["Layers"]
        layer = resources[layer_ref["Ref"]]["Properties"]
        assert layer["CompatibleArchitectures"] == [arch]
        asset = app_dir / "cdk.out" / f"asset.{layer['Content']['S3Key'].removesuffix('.zip')}.zip"
        assert sha256(asset) == sha256(LAYER_ZIPS[arch]), arch
        variables = fn["Environment"]["Variables"]
        assert {k: v for k, v in variables.items() if k != "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_BUCKET"} == {
            "INVOCATION_HISTORY_EXTENSION_HTTP_PORT": "1203", "INVOCATION_HISTORY_EXTENSION_MAX_RECORDS": "1000",
            "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_PREFIX": "invocation-history/"}, name
        assert resources[variables["INVOCATION_HISTORY_EXTENSION_EXPORT_S3_BUCKET"]["Ref"]]["Type"] == "AWS::S3::Bucket"
        # AND its code is the example's function directory
        code = app_dir / "cdk.out" / f"asset.{fn['Code']['S3Key'].removesuffix('.zip')}"
        assert (code / Path(handler).name).read_bytes() == (app_dir / handler).read_bytes(), name
    # AND each role may write the export's prefix, nothing else; the dashboard graphs both functions
    policies = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::IAM::Policy"]
    assert len(policies) == 2
    for policy in policies:
        assert [s["Action"] for s in policy["PolicyDocument"]["Statement"]] == ["s3:PutObject"]
    assert [r["Type"] for r in resources.values()].count("AWS::CloudWatch::Dashboard") == 1


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

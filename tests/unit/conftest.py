"""Fixtures for the CDK tests: the whole app synthesized once per session, with fixed account and region and the
context (feature flags) of cdk.json, so the templates are the same on every machine and run."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

import invocation_history_cdk.build as layer_build

REPO_ROOT = Path(__file__).resolve().parents[2]  # app.py is importable through pyproject's pythonpath

ACCOUNT = "123456789012"
REGION = "eu-west-1"
ENV = cdk.Environment(account=ACCOUNT, region=REGION)


def cdk_json_context() -> dict:
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


def new_app(outdir: Path, **extra_context) -> cdk.App:
    """An App as the CLI would make it from cdk.json, writing to ``outdir``."""
    return cdk.App(outdir=str(outdir), context={**cdk_json_context(), **extra_context})


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory):
    """The whole app (``app.create_stacks``), synthesized once: (stacks by name, cloud assembly)."""
    import app as cdk_app

    app = new_app(tmp_path_factory.mktemp("cdk.out"))
    stacks = cdk_app.create_stacks(app, ENV)
    assembly = app.synth()
    return stacks, assembly


@pytest.fixture(scope="session")
def templates(synthesized) -> dict[str, Template]:
    stacks, _ = synthesized
    return {name: Template.from_stack(stack) for name, stack in stacks.items()}


@pytest.fixture
def packaged_layers(tmp_path, monkeypatch) -> Path:
    """A package whose wheel carries layer zips (``make dist``): stand-ins in a directory of their own."""
    layers = tmp_path / "layers"
    layers.mkdir()
    for arch in ("x86_64", "arm64"):
        with zipfile.ZipFile(layers / f"invocation-history-extension-{arch}.zip", "w") as zf:
            zf.writestr("extensions/invocation-history-extension", f"#!/bin/sh\n# {arch}\n")
    monkeypatch.setattr(layer_build, "PACKAGED_LAYERS_DIR", layers)
    return layers

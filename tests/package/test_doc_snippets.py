"""Every Python snippet of the construct's docs runs as written: docs/construct.md, the README's "Use the construct"
section, the package's README and the example's README.

Each snippet runs on its own, as the body of a stack's constructor, in a fresh app that gives it the names the docs
promise (docs/construct.md, "The snippets"): ``self`` and ``stack`` (the stack), ``api`` (a Python function on x86_64),
``worker`` (a Node.js function on arm64), ``python_function`` (Python on arm64) and ``go_function``
(``provided.al2023`` on arm64). Everything else a snippet uses it must import or define itself. The app is then
synthesized, so a wrong import, call, argument or a setting the construct refuses fails the test. A snippet that is
deliberately partial (a signature, a fragment) is preceded by ``<!-- snippet: partial -->`` in the Markdown and only
compiled.
"""

from __future__ import annotations

import os
import re

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import cx_api

import invocation_history_cdk.build as layer_build

from .conftest import LAYER_ZIPS, REPO_ROOT

PARTIAL = "<!-- snippet: partial -->"
README_SECTION = "## Use the construct in your CDK app"


def construct_section_of_readme() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    start = readme.index(README_SECTION)
    end = readme.find("\n## ", start + len(README_SECTION))
    return readme[start : end if end != -1 else None]


DOCUMENTS = {
    "docs/construct.md": lambda: (REPO_ROOT / "docs" / "construct.md").read_text(),
    "README.md (Use the construct)": construct_section_of_readme,
    "invocation-history-cdk/README.md": lambda: (REPO_ROOT / "invocation-history-cdk" / "README.md").read_text(),
    "examples/my-app/README.md": lambda: (REPO_ROOT / "examples" / "my-app" / "README.md").read_text(),
}


def python_snippets(markdown: str) -> list[tuple[int, str, bool]]:
    """(line, code, partial) of each ```python block; indented blocks (in lists) are dedented."""
    snippets = []
    for match in re.finditer(r"^( *)```python\n(.*?)^\1```", markdown, re.S | re.M):
        indent, body = match.group(1), match.group(2)
        code = "\n".join(line[len(indent) :] for line in body.splitlines())
        before = markdown[: match.start()].rstrip().splitlines()
        partial = bool(before) and before[-1].strip() == PARTIAL
        snippets.append((markdown[: match.start()].count("\n") + 1, code, partial))
    return snippets


SNIPPETS = [
    pytest.param(code, partial, id=f"{doc}:{line}")
    for doc, read in DOCUMENTS.items()
    for line, code, partial in python_snippets(read())
]


def test_every_document_has_snippets():
    # GIVEN the documents WHEN their snippets are collected THEN each has some: a moved heading or a changed fence
    # does not silently leave a document untested
    for doc, read in DOCUMENTS.items():
        assert python_snippets(read()), doc


@pytest.fixture
def packaged_zips(monkeypatch):
    """The package as the wheel installs it: the layer zips of `make layer` packaged, so no snippet builds."""
    missing = [str(path) for path in LAYER_ZIPS.values() if not path.is_file()]
    assert not missing, f"no layer zips: {', '.join(missing)}: run `make layer`"
    monkeypatch.setattr(layer_build, "PACKAGED_LAYERS_DIR", REPO_ROOT / "dist")


def function(
    stack: cdk.Stack,
    id: str,
    runtime: lambda_.Runtime,
    architecture: lambda_.Architecture,
    code: lambda_.Code | None = None,
) -> lambda_.Function:
    return lambda_.Function(
        stack,
        id,
        runtime=runtime,
        architecture=architecture,
        handler="index.handler",
        code=code or lambda_.Code.from_inline("def handler(event, context): return {}"),
    )


@pytest.mark.parametrize(("code", "partial"), SNIPPETS)
def test_snippet_runs_as_written(code, partial, packaged_zips, tmp_path, monkeypatch):
    compiled = compile(code, "<snippet>", "exec")
    if partial:
        return  # marked partial in the document: compiled only
    # GIVEN a stack with the functions the docs promise (and the example's directory as the working directory, for a
    # snippet that names its files)
    monkeypatch.chdir(REPO_ROOT / "examples" / "my-app")
    for cls, method in ((lambda_.Code, "from_asset"), (lambda_.DockerImageCode, "from_image_asset")):
        # CDK resolves an asset's relative path against the working directory of its Node.js process, which started
        # before the chdir: resolve it here, as `cdk synth` in that directory would.
        original = getattr(cls, method)
        monkeypatch.setattr(
            cls,
            method,
            staticmethod(
                lambda path, *args, _original=original, **kwargs: _original(os.path.abspath(path), *args, **kwargs)
            ),
        )
    go_code = tmp_path / "go"
    go_code.mkdir()
    (go_code / "bootstrap").write_bytes(b"")
    app = cdk.App(outdir=str(tmp_path / "cdk.out"))
    stack = cdk.Stack(app, "Snippet", env=cdk.Environment(account="123456789012", region="eu-west-1"))
    names = {
        "self": stack,
        "stack": stack,
        "api": function(stack, "Api", lambda_.Runtime.PYTHON_3_13, lambda_.Architecture.X86_64),
        "worker": function(
            stack,
            "Worker",
            lambda_.Runtime.NODEJS_22_X,
            lambda_.Architecture.ARM_64,
            lambda_.Code.from_inline("exports.handler = async () => ({})"),
        ),
        "python_function": function(stack, "PythonFunction", lambda_.Runtime.PYTHON_3_13, lambda_.Architecture.ARM_64),
        "go_function": function(
            stack,
            "GoFunction",
            lambda_.Runtime.PROVIDED_AL2023,
            lambda_.Architecture.ARM_64,
            lambda_.Code.from_asset(str(go_code)),
        ),
    }
    # WHEN the snippet runs in it and the app is synthesized
    exec(compiled, names)
    assembly = app.synth()
    # THEN nothing failed, and no construct reported an error
    errors = [
        m
        for m in assembly.get_stack_artifact(stack.artifact_id).messages
        if m.level == cx_api.SynthesisMessageLevel.ERROR
    ]
    assert not errors, [m.entry.data for m in errors]

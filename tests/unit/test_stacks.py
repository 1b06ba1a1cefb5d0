"""The app's three stacks: one snapshot per template, and explicit assertions for what matters."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template
from syrupy.extensions.json import JSONSnapshotExtension

import app as cdk_app
from stacks.invocation_history_layer import ENV_HTTP_PORT, build_layer_zip
from stacks.layer_stack import PARAMETER_NAME, parse_share_with

from .conftest import ENV, new_app

ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def mask_asset_hashes(data, path):
    """Replace the content hash in S3 keys and image tags.

    Why: each hash names the content of extension_src/ or functions/ (source hashes, the same on every machine; see
    test_asset_hashes_name_the_source). They change with every code edit, which is not an infrastructure change;
    the snapshot guards the infrastructure. Only these two fields are masked.
    """
    keys = [str(p[0]) for p in path]
    if isinstance(data, str) and keys and (keys[-1] == "S3Key" or "ImageUri" in keys):
        return ASSET_HASH.sub("<asset-hash>", data)
    return data


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


# GIVEN the app synthesized with cdk.json's context for a fixed account and region
# THEN each stack's template matches its reviewed snapshot (one JSON file per stack, so a diff names the stack)

def test_layer_stack_template(templates, snapshot_json):
    assert templates[cdk_app.LAYER_STACK].to_json() == snapshot_json(matcher=mask_asset_hashes)


def test_demo_stack_template(templates, snapshot_json):
    assert templates[cdk_app.DEMO_STACK].to_json() == snapshot_json(matcher=mask_asset_hashes)


def test_container_stack_template(templates, snapshot_json):
    assert templates[cdk_app.CONTAINER_STACK].to_json() == snapshot_json(matcher=mask_asset_hashes)


def test_asset_hashes_name_the_source(templates):
    # GIVEN the layer zips are published under a hash of extension_src/ (not of the built bytes)
    layers = templates[cdk_app.LAYER_STACK].find_resources("AWS::Lambda::LayerVersion")
    keys = {res["Properties"]["CompatibleArchitectures"][0]: res["Properties"]["Content"]["S3Key"]
            for res in layers.values()}
    # THEN the S3 key is derived from the source hash alone: the same template on every machine and Go release
    for arch, key in keys.items():
        _, asset_hash = build_layer_zip(arch)
        assert key == hashlib.sha256(asset_hash.encode()).hexdigest() + ".zip"


# ---- layer stack --------------------------------------------------------------------------------------------------

def test_layer_stack_publishes_one_layer_per_architecture(templates):
    t = templates[cdk_app.LAYER_STACK]
    t.resource_count_is("AWS::Lambda::LayerVersion", 2)
    for arch in ("x86_64", "arm64"):
        t.has_resource_properties("AWS::Lambda::LayerVersion", {
            "CompatibleArchitectures": [arch],
            "CompatibleRuntimes": Match.absent(),  # any runtime
            "LicenseInfo": "MIT",
            "Description": Match.string_like_regexp(rf"^Invocation History extension 0\.1\.0 for {arch}"),
        })
        t.has_resource_properties("AWS::SSM::Parameter", {
            "Name": PARAMETER_NAME.format(arch=arch), "Type": "String", "Value": {"Ref": Match.any_value()},
        })
    assert set(t.find_outputs("*")) >= {"LayerVersionArnX8664", "LayerVersionArnArm64"}


def test_layers_are_not_shared_by_default(templates):
    templates[cdk_app.LAYER_STACK].resource_count_is("AWS::Lambda::LayerVersionPermission", 0)


def test_sharing_context_grants_accounts_and_organizations(tmp_path):
    # GIVEN the share context lists an account and an organization (as `-c key=a,b` would)
    app = new_app(tmp_path, **{"invocationHistory:layerShareWith": "111122223333,o-abcdef1234"})
    stacks = cdk_app.create_stacks(app, ENV)
    t = Template.from_stack(stacks[cdk_app.LAYER_STACK])
    # THEN each layer grants GetLayerVersion to exactly those
    t.resource_count_is("AWS::Lambda::LayerVersionPermission", 4)
    t.has_resource_properties("AWS::Lambda::LayerVersionPermission",
                              {"Action": "lambda:GetLayerVersion", "Principal": "111122223333"})
    t.has_resource_properties("AWS::Lambda::LayerVersionPermission", {
        "Action": "lambda:GetLayerVersion", "Principal": "*", "OrganizationId": "o-abcdef1234",
    })


@pytest.mark.parametrize("value", ["*", "12345", "o-X", "arn:aws:iam::111122223333:root"])
def test_sharing_context_rejects_anything_but_accounts_and_organizations(value):
    with pytest.raises(ValueError, match=r"invocationHistory:layerShareWith has .*12-digit account id"):
        parse_share_with(value)


def test_sharing_context_accepts_a_json_list():
    assert parse_share_with(["111122223333", "o-abcdef1234"]) == ["111122223333", "o-abcdef1234"]
    assert parse_share_with([]) == [] and parse_share_with(None) == []


# ---- demo stack ---------------------------------------------------------------------------------------------------

def _logical_id(t: Template, type_: str, props: dict) -> str:
    found = t.find_resources(type_, {"Properties": props})
    assert len(found) == 1, found
    return next(iter(found))


@pytest.mark.parametrize("runtime,arch,handler", [
    ("provided.al2023", "arm64", "bootstrap"),
    ("python3.13", "x86_64", "handler.handler"),
])
def test_demo_function_has_the_layer_of_its_architecture(templates, runtime, arch, handler):
    t = templates[cdk_app.DEMO_STACK]
    layer = _logical_id(t, "AWS::Lambda::LayerVersion", {"CompatibleArchitectures": [arch]})
    t.has_resource_properties("AWS::Lambda::Function", {
        "Runtime": runtime,
        "Handler": handler,
        "Architectures": [arch],
        "Layers": [{"Ref": layer}],
        "Environment": {"Variables": {ENV_HTTP_PORT: "1203"}},
    })


def test_demo_functions_log_to_their_own_short_lived_log_group(templates):
    t = templates[cdk_app.DEMO_STACK]
    t.resource_count_is("AWS::Logs::LogGroup", 2)
    t.all_resources_properties("AWS::Logs::LogGroup", {"RetentionInDays": 7})
    for fn in t.find_resources("AWS::Lambda::Function").values():
        assert set(fn["Properties"]["LoggingConfig"]["LogGroup"]) == {"Ref"}


def test_demo_is_not_publicly_invocable(templates):
    t = templates[cdk_app.DEMO_STACK]
    t.resource_count_is("AWS::Lambda::Url", 0)
    t.resource_count_is("AWS::Lambda::Permission", 0)
    t.resource_count_is("AWS::Lambda::Function", 2)
    assert set(t.find_outputs("*")) >= {"GoSampleFunctionName", "PythonSampleFunctionName"}


@pytest.mark.parametrize("stack", [cdk_app.DEMO_STACK, cdk_app.CONTAINER_STACK])
def test_function_roles_may_only_write_their_own_logs(templates, stack):
    t = templates[stack]
    # no managed policies (AWSLambdaBasicExecutionRole writes to any log group)
    t.all_resources_properties("AWS::IAM::Role", {"ManagedPolicyArns": Match.absent()})
    policies = t.find_resources("AWS::IAM::Policy")
    assert len(policies) == len(t.find_resources("AWS::Lambda::Function"))
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        (statement,) = statements
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
        # the ARN of one log group of this stack, not a wildcard
        log_group, attribute = statement["Resource"]["Fn::GetAtt"]
        assert attribute == "Arn"
        assert t.to_json()["Resources"][log_group]["Type"] == "AWS::Logs::LogGroup"


# ---- container stack ----------------------------------------------------------------------------------------------

def test_container_function_is_an_image_with_the_extension_settings(templates):
    t = templates[cdk_app.CONTAINER_STACK]
    t.has_resource_properties("AWS::Lambda::Function", {
        "PackageType": "Image",
        "Architectures": ["arm64"],
        "Layers": Match.absent(),
        "Environment": {"Variables": {ENV_HTTP_PORT: "1203"}},
        "Code": {"ImageUri": Match.any_value()},
    })
    t.all_resources_properties("AWS::Logs::LogGroup", {"RetentionInDays": 7})
    assert "ContainerSampleFunctionName" in t.find_outputs("*")


def test_container_image_is_only_staged_at_synth(synthesized):
    # GIVEN no Docker engine on this machine: synthesis must only stage the build context
    _, assembly = synthesized
    manifest = json.loads(Path(assembly.directory, f"{cdk_app.CONTAINER_STACK}.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    # THEN the image asset records how to build it at deploy time (cdk-assets runs docker build then)
    assert image["source"]["dockerFile"] == "functions/container/Dockerfile"
    assert image["source"]["platform"] == "linux/arm64"
    staged = Path(assembly.directory, image["source"]["directory"])
    # AND the staged context holds what the Dockerfile copies, and nothing else of the developer's tree
    assert (staged / "functions/container/Dockerfile").is_file()
    assert (staged / "extension_src/build-layer.sh").is_file()
    assert (staged / "functions/go/main.go").is_file()
    for absent in (".venv", "node_modules", "cdk.out", "tests", "functions/python", "dist", "build", ".git"):
        assert not (staged / absent).exists(), absent
    assert not list(staged.rglob("*_test.go"))

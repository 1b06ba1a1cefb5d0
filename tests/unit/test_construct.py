"""The InvocationHistoryLayer construct: props, validation errors, both build paths, prebuilt code."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Annotations, Match, Template

import invocation_history_cdk.build as layer_build
import invocation_history_cdk.layer as layer_module
from invocation_history_cdk import InvocationHistoryLayer, LayerBuildError, extension_environment, grant_export

from .conftest import ENV, REPO_ROOT

ARM, X86 = lambda_.Architecture.ARM_64, lambda_.Architecture.X86_64


@pytest.fixture
def stack():
    return cdk.Stack(cdk.App(), "Test", env=ENV)


def python_function(scope, id="Api", architecture=ARM, **kwargs):
    return lambda_.Function(scope, id, runtime=lambda_.Runtime.PYTHON_3_13, handler="index.handler",
                            code=lambda_.Code.from_inline("def handler(e, c): return {}"), architecture=architecture,
                            **kwargs)


def os_only_function(scope, code_dir: Path, runtime=lambda_.Runtime.PROVIDED_AL2023, id="Go"):
    (code_dir / "bootstrap").write_text("#!/bin/sh\n")
    return lambda_.Function(scope, id, runtime=runtime, handler="bootstrap", code=lambda_.Code.from_asset(
        str(code_dir)), architecture=ARM)


def environment_of(stack, id) -> dict:
    (fn,) = [r for logical_id, r in Template.from_stack(stack).find_resources("AWS::Lambda::Function").items()
             if logical_id.startswith(id)]
    return fn["Properties"].get("Environment", {}).get("Variables", {})


@pytest.fixture
def prebuilt(tmp_path) -> lambda_.Code:
    """A stand-in layer zip: construct tests that are not about building do not build."""
    path = tmp_path / "layer.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("extensions/invocation-history-extension", "#!/bin/sh\n")
    return lambda_.Code.from_asset(str(path))


# ---- props ----------------------------------------------------------------------------------------------------------

def test_defaults_to_arm64_any_runtime_mit(stack, prebuilt):
    InvocationHistoryLayer(stack, "History", code=prebuilt)
    Template.from_stack(stack).has_resource_properties("AWS::Lambda::LayerVersion", {
        "CompatibleArchitectures": ["arm64"],
        "CompatibleRuntimes": Match.absent(),
        "LicenseInfo": "MIT",
        "Description": f"Invocation History extension {layer_build.extension_version()} for arm64, any runtime",
    })


def test_prebuilt_code_skips_the_build(stack, prebuilt, monkeypatch):
    # GIVEN a build would fail
    def no_build(*args, **kwargs):
        raise AssertionError("built although code= was given")

    monkeypatch.setattr(layer_module, "build_layer_zip", no_build)
    # WHEN a layer gets prebuilt code THEN it is used as it is
    layer = InvocationHistoryLayer(stack, "History", architecture=X86, code=prebuilt)
    assert layer.architecture.name == "x86_64"
    Template.from_stack(stack).has_resource_properties("AWS::Lambda::LayerVersion",
                                                       {"CompatibleArchitectures": ["x86_64"]})


def test_the_packaged_zip_of_the_architecture_is_used_without_a_build(stack, packaged_layers, monkeypatch):
    # GIVEN a wheel with both zips, and a build that would fail
    def no_build(*args, **kwargs):
        raise AssertionError("built although the wheel carries the zip")

    monkeypatch.setattr(layer_module, "build_layer_zip", no_build)
    # WHEN an x86_64 layer is made without code or source_dir
    InvocationHistoryLayer(stack, "History", architecture=X86)
    assembly = cdk.App.of(stack).synth()
    # THEN its asset is the packaged x86_64 zip, byte for byte, and its description names the package's version
    (layer,) = Template.from_stack(stack).find_resources("AWS::Lambda::LayerVersion").values()
    key = layer["Properties"]["Content"]["S3Key"]
    staged = Path(assembly.directory) / f"asset.{key.removesuffix('.zip')}.zip"
    assert staged.read_bytes() == (packaged_layers / "invocation-history-extension-x86_64.zip").read_bytes()
    assert layer["Properties"]["Description"].startswith(f"Invocation History extension {layer_build.PACKAGE_VERSION} ")


def test_source_dir_builds_even_when_the_wheel_carries_a_zip(stack, packaged_layers, prebuilt, monkeypatch):
    # GIVEN a wheel with both zips WHEN a layer names the extension's source
    built = []

    def fake_build(architecture, **kwargs):
        built.append((architecture, kwargs["source_dir"]))
        return packaged_layers / "invocation-history-extension-arm64.zip", "0" * 64

    monkeypatch.setattr(layer_module, "build_layer_zip", fake_build)
    InvocationHistoryLayer(stack, "History", source_dir=REPO_ROOT / "extension_src")
    # THEN that source is built
    assert built == [("arm64", REPO_ROOT / "extension_src")]


def test_without_packaged_zips_or_source_the_error_names_the_ways_out(stack, monkeypatch, tmp_path):
    # GIVEN an install built from source (no zips) outside a checkout (no extension_src beside it)
    monkeypatch.setattr(layer_build, "PACKAGED_LAYERS_DIR", tmp_path / "none")
    monkeypatch.setattr(layer_module, "DEFAULT_SOURCE_DIR", tmp_path / "extension_src")
    # WHEN a layer is made without code THEN the error says what to install or pass
    with pytest.raises(ValueError, match=r"carries no prebuilt layer zip for arm64 .*make dist.*source_dir=.*code="):
        InvocationHistoryLayer(stack, "History")


def test_add_function_attaches_layer_and_sets_environment(stack, prebuilt):
    layer = InvocationHistoryLayer(stack, "History", code=prebuilt)
    layer.add_function(python_function(stack), port=9001, max_records=50, max_wait_ms=0, log_level="debug")
    t = Template.from_stack(stack)
    layer_id = next(iter(t.find_resources("AWS::Lambda::LayerVersion")))
    t.has_resource_properties("AWS::Lambda::Function", {
        "Layers": [{"Ref": layer_id}],
        "Environment": {"Variables": {
            "INVOCATION_HISTORY_EXTENSION_HTTP_PORT": "9001",
            "INVOCATION_HISTORY_EXTENSION_MAX_RECORDS": "50",
            "INVOCATION_HISTORY_EXTENSION_MAX_WAIT_MS": "0",
            "INVOCATION_HISTORY_EXTENSION_LOG_LEVEL": "DEBUG",
        }},
    })


def test_extension_environment_defaults_write_only_the_port():
    assert extension_environment() == {"INVOCATION_HISTORY_EXTENSION_HTTP_PORT": "1203"}
    assert extension_environment(runtime_proxy=False) == {"INVOCATION_HISTORY_EXTENSION_HTTP_PORT": "1203"}


@pytest.mark.parametrize("kwargs,written", [
    ({"telemetry": False}, {"INVOCATION_HISTORY_EXTENSION_TELEMETRY": "off"}),
    ({"telemetry": True}, {"INVOCATION_HISTORY_EXTENSION_TELEMETRY": "on"}),
    ({"metrics": False}, {"INVOCATION_HISTORY_EXTENSION_METRICS": "off"}),
    ({"metrics": True, "metrics_namespace": "Team/Payments"}, {
        "INVOCATION_HISTORY_EXTENSION_METRICS": "on",
        "INVOCATION_HISTORY_EXTENSION_METRICS_NAMESPACE": "Team/Payments",
    }),
    ({"metrics_namespace": "My App:prod #1"}, {"INVOCATION_HISTORY_EXTENSION_METRICS_NAMESPACE": "My App:prod #1"}),
])
def test_telemetry_and_metrics_switches_are_written_only_when_given(stack, prebuilt, kwargs, written):
    # GIVEN a layer WHEN a function is added with a telemetry or metrics setting
    InvocationHistoryLayer(stack, "History", code=prebuilt).add_function(python_function(stack), **kwargs)
    # THEN exactly that setting is written besides the port: the rest keep the extension's defaults
    assert environment_of(stack, "Api") == {"INVOCATION_HISTORY_EXTENSION_HTTP_PORT": "1203", **written}


# ---- the Runtime API proxy ------------------------------------------------------------------------------------------

PROXY_ON = {
    "INVOCATION_HISTORY_EXTENSION_HTTP_PORT": "1203",
    "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY": "on",
    "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_PORT": "9009",
}


def test_runtime_proxy_on_a_managed_runtime_sets_the_exec_wrapper(stack, prebuilt):
    # GIVEN a Python function WHEN the proxy is turned on
    InvocationHistoryLayer(stack, "History", code=prebuilt).add_function(python_function(stack), runtime_proxy=True)
    # THEN the extension runs the proxy on 9009 and Lambda starts the runtime through the layer's wrapper
    assert environment_of(stack, "Api") == {**PROXY_ON, "AWS_LAMBDA_EXEC_WRAPPER": "/opt/invocation-history-wrapper"}


def test_runtime_proxy_port_is_written(stack, prebuilt):
    layer = InvocationHistoryLayer(stack, "History", code=prebuilt)
    layer.add_function(python_function(stack), port=1300, runtime_proxy=True, runtime_proxy_port=1203)
    env = environment_of(stack, "Api")
    assert env["INVOCATION_HISTORY_EXTENSION_HTTP_PORT"] == "1300"
    assert env["INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_PORT"] == "1203"


@pytest.mark.parametrize("runtime", [lambda_.Runtime.PROVIDED_AL2023, lambda_.Runtime.PROVIDED_AL2])
def test_runtime_proxy_on_an_os_only_runtime_leaves_the_wrapper_to_the_bootstrap(stack, prebuilt, tmp_path, runtime):
    # GIVEN an OS-only runtime, which does not apply AWS_LAMBDA_EXEC_WRAPPER
    fn = os_only_function(stack, tmp_path, runtime)
    # WHEN the proxy is turned on
    InvocationHistoryLayer(stack, "History", code=prebuilt).add_function(fn, runtime_proxy=True)
    # THEN the extension's variables are set but no wrapper (it would do nothing), and synth says what to do instead
    assert environment_of(stack, "Go") == PROXY_ON
    Annotations.from_stack(stack).has_info("/Test/Go", Match.string_like_regexp(
        rf"proxy is on but {runtime.name} does not apply exec wrappers: the function's bootstrap must run "
        r"`exec /opt/invocation-history-wrapper <program>`"))


def test_runtime_proxy_accepts_its_own_wrapper_already_set(stack, prebuilt):
    fn = python_function(stack, environment={"AWS_LAMBDA_EXEC_WRAPPER": "/opt/invocation-history-wrapper"})
    InvocationHistoryLayer(stack, "History", code=prebuilt).add_function(fn, runtime_proxy=True)
    assert environment_of(stack, "Api")["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/invocation-history-wrapper"


def test_runtime_proxy_refuses_to_replace_another_exec_wrapper(stack, prebuilt):
    # GIVEN a function that already starts its runtime through another wrapper
    fn = python_function(stack, environment={"AWS_LAMBDA_EXEC_WRAPPER": "/opt/otel-instrument"})
    layer = InvocationHistoryLayer(stack, "History", code=prebuilt)
    # WHEN the proxy is turned on THEN the error names the function, the wrapper it has and how to chain the two
    with pytest.raises(ValueError, match=r"cannot turn the runtime proxy on for function 'Api': it already has "
                                         r"AWS_LAMBDA_EXEC_WRAPPER='/opt/otel-instrument' and Lambda runs only one "
                                         r"wrapper: remove it, or chain the two \(end your wrapper with "
                                         r"`exec /opt/invocation-history-wrapper"):
        layer.add_function(fn, runtime_proxy=True)
    assert environment_of(stack, "Api") == {"AWS_LAMBDA_EXEC_WRAPPER": "/opt/otel-instrument"}  # nothing half-applied


def test_exec_wrapper_replaced_after_add_function_fails_synth(prebuilt):
    # GIVEN the proxy is on WHEN the function's wrapper is overwritten later (the proxy would sit idle)
    app = cdk.App()
    stack = cdk.Stack(app, "Test", env=ENV)
    fn = python_function(stack)
    InvocationHistoryLayer(stack, "History", code=prebuilt).add_function(fn, runtime_proxy=True)
    fn.add_environment("AWS_LAMBDA_EXEC_WRAPPER", "/opt/other")
    # THEN synthesis stops and says which function and what to keep
    with pytest.raises(Exception, match=r"function 'Api' has the Invocation History runtime proxy on, but "
                                        r"AWS_LAMBDA_EXEC_WRAPPER was changed to '/opt/other' after add_function"):
        app.synth()


# ---- the S3 export ------------------------------------------------------------------------------------------------

EXPORT_BUCKET = "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_BUCKET"
EXPORT_PREFIX = "INVOCATION_HISTORY_EXTENSION_EXPORT_S3_PREFIX"


def policy_statements(stack) -> list[dict]:
    """Every statement of every IAM policy in ``stack``."""
    return [statement for policy in Template.from_stack(stack).find_resources("AWS::IAM::Policy").values()
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]]


def logical_id(stack, construct) -> str:
    return stack.resolve(stack.get_logical_id(construct.node.default_child))


def objects_arn(stack, bucket, prefix) -> dict:
    """What an object ARN pattern of ``bucket`` renders as in the template."""
    return {"Fn::Join": ["", [{"Fn::GetAtt": [logical_id(stack, bucket), "Arn"]}, f"/{prefix}*"]]}


def test_export_writes_the_bucket_and_the_default_prefix_and_nothing_else(stack, prebuilt):
    # GIVEN a bucket of the stack WHEN a function is added with only export_bucket
    bucket = s3.Bucket(stack, "Exports")
    InvocationHistoryLayer(stack, "History", code=prebuilt).add_function(python_function(stack), export_bucket=bucket)
    # THEN the bucket and the prefix the grant covers are written; the limits and logs keep the extension's defaults
    assert environment_of(stack, "Api") == {
        "INVOCATION_HISTORY_EXTENSION_HTTP_PORT": "1203",
        EXPORT_BUCKET: {"Ref": logical_id(stack, bucket)},
        EXPORT_PREFIX: "invocation-history/",
    }


def test_export_settings_are_written_exactly_as_given(stack, prebuilt):
    bucket = s3.Bucket(stack, "Exports")
    InvocationHistoryLayer(stack, "History", code=prebuilt).add_function(
        python_function(stack), export_bucket=bucket, export_prefix="team/history/", export_max_invocations=100,
        export_max_bytes=1024, export_max_age_ms=3_600_000, export_logs=["extension", "platform"])
    assert environment_of(stack, "Api") == {
        "INVOCATION_HISTORY_EXTENSION_HTTP_PORT": "1203",
        EXPORT_BUCKET: {"Ref": logical_id(stack, bucket)},
        EXPORT_PREFIX: "team/history/",
        "INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_INVOCATIONS": "100",
        "INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_BYTES": "1024",
        "INVOCATION_HISTORY_EXTENSION_EXPORT_MAX_AGE_MS": "3600000",
        "INVOCATION_HISTORY_EXTENSION_EXPORT_LOGS": "platform,extension",
    }


@pytest.mark.parametrize("logs,written", [
    ([], "none"),
    ("none", "none"),
    ("function", "function"),
    ("extension, function", "function,extension"),
    (("extension", "function", "function"), "function,extension"),
    (frozenset({"platform", "function", "extension"}), "platform,function,extension"),
])
def test_export_logs_are_written_in_the_variables_form(logs, written):
    env = extension_environment(export_bucket="my-exports", export_logs=logs)
    assert env["INVOCATION_HISTORY_EXTENSION_EXPORT_LOGS"] == written


def test_export_grants_put_object_on_the_prefix_only(stack, prebuilt):
    # GIVEN a function whose role has no other policy
    bucket = s3.Bucket(stack, "Exports")
    InvocationHistoryLayer(stack, "History", code=prebuilt).add_function(
        python_function(stack), export_bucket=bucket, export_prefix="team/history/")
    # THEN its one statement allows PutObject on <bucket>/<prefix>* and nothing else: no read, list, delete, ACL,
    # multipart or KMS (the bucket has S3-managed encryption)
    assert policy_statements(stack) == [
        {"Action": "s3:PutObject", "Effect": "Allow", "Resource": objects_arn(stack, bucket, "team/history/")}]


def test_export_to_a_bucket_made_elsewhere_names_it(stack, prebuilt):
    bucket = s3.Bucket.from_bucket_name(stack, "Exports", "team-exports")
    InvocationHistoryLayer(stack, "History", code=prebuilt).add_function(python_function(stack), export_bucket=bucket)
    assert environment_of(stack, "Api")[EXPORT_BUCKET] == "team-exports"
    (statement,) = policy_statements(stack)
    assert statement["Resource"] == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"},
                                                       ":s3:::team-exports/invocation-history/*"]]}


def test_export_to_a_kms_bucket_may_generate_data_keys_through_s3_only(stack, prebuilt):
    # GIVEN a bucket encrypted with a customer managed key
    bucket = s3.Bucket(stack, "Exports", encryption=s3.BucketEncryption.KMS)
    InvocationHistoryLayer(stack, "History", code=prebuilt).add_function(python_function(stack), export_bucket=bucket)
    # THEN the role may also ask that key for data keys (what S3 does for each object it encrypts), only through S3
    # in the bucket's region: no Decrypt, Encrypt or other key
    key_id = logical_id(stack, bucket.encryption_key)
    assert policy_statements(stack) == [
        {"Action": "s3:PutObject", "Effect": "Allow", "Resource": objects_arn(stack, bucket, "invocation-history/")},
        {"Action": "kms:GenerateDataKey", "Effect": "Allow", "Resource": {"Fn::GetAtt": [key_id, "Arn"]},
         "Condition": {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}},
    ]


def test_export_to_an_imported_kms_bucket_uses_its_key(stack, prebuilt):
    key_arn = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    bucket = s3.Bucket.from_bucket_attributes(stack, "Exports", bucket_name="team-exports",
                                              encryption_key=kms.Key.from_key_arn(stack, "Key", key_arn))
    InvocationHistoryLayer(stack, "History", code=prebuilt).add_function(python_function(stack), export_bucket=bucket)
    kms_statements = [s for s in policy_statements(stack) if s["Action"] == "kms:GenerateDataKey"]
    assert [s["Resource"] for s in kms_statements] == [key_arn]


def test_grant_export_serves_functions_that_carry_the_extension_themselves(stack):
    # GIVEN a role of a container-image function, which sets extension_environment() itself
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    bucket = s3.Bucket(stack, "Exports")
    env = extension_environment(export_bucket=bucket, export_prefix="images/")
    grant = grant_export(role, bucket, env[EXPORT_PREFIX])
    assert grant.success
    assert stack.resolve(env[EXPORT_BUCKET]) == {"Ref": logical_id(stack, bucket)}
    assert policy_statements(stack) == [
        {"Action": "s3:PutObject", "Effect": "Allow", "Resource": objects_arn(stack, bucket, "images/")}]


# ---- validation errors: each names the prop, the value and the fix ------------------------------------------------

def test_architecture_mismatch_names_both_and_the_fix(stack, prebuilt):
    layer = InvocationHistoryLayer(stack, "History", code=prebuilt)
    with pytest.raises(ValueError, match=r"InvocationHistoryLayer 'History' is built for arm64 but function 'Api' "
                                         r"runs on x86_64: create a layer with architecture=Architecture\.X86_64"):
        layer.add_function(python_function(stack, architecture=X86))


def test_container_image_function_points_to_the_dockerfile(stack, prebuilt):
    layer = InvocationHistoryLayer(stack, "History", code=prebuilt)
    image = lambda_.DockerImageFunction(stack, "Image", architecture=ARM, code=lambda_.DockerImageCode.from_ecr(
        ecr.Repository.from_repository_name(stack, "Repo", "sample")))
    with pytest.raises(ValueError, match=r"function 'Image': it is a container image.*examples/my-app/Dockerfile"):
        layer.add_function(image)


def test_imported_function_is_refused(stack, prebuilt):
    layer = InvocationHistoryLayer(stack, "History", code=prebuilt)
    imported = lambda_.Function.from_function_arn(stack, "Imported",
                                                  "arn:aws:lambda:eu-west-1:123456789012:function:other")
    with pytest.raises(ValueError, match=r"cannot change function 'Imported'.*lambda_\.Function defined in this app"):
        layer.add_function(imported)


def test_unsupported_architecture(stack, prebuilt):
    with pytest.raises(ValueError, match=r"architecture='s390x' is not supported: pass Architecture\.ARM_64"):
        InvocationHistoryLayer(stack, "History", code=prebuilt,
                               architecture=lambda_.Architecture.custom("s390x", "linux/s390x"))


@pytest.mark.parametrize("kwargs,message", [
    ({"source_dir": "/nonexistent"}, r"source_dir='/nonexistent' has no Cargo.toml or build-layer.sh: pass the "
                                     r"extension's crate \(extension_src/ of this repository\), or a prebuilt zip as "
                                     r"code="),
    ({"docker_image": ""}, r"docker_image='' is not an image reference: pass one like 'rust:1.95.0'"),
    ({"docker_image": "rust 1.95"}, r"docker_image='rust 1.95' is not an image reference"),
])
def test_build_props_are_validated(stack, kwargs, message):
    with pytest.raises(ValueError, match=message):
        InvocationHistoryLayer(stack, "History", **kwargs)


@pytest.mark.parametrize("kwargs,message", [
    ({"port": 0}, r"port=0 is not a TCP port: pass an integer from 1 to 65535"),
    ({"port": "1203"}, r"port='1203' is not a TCP port"),
    ({"max_records": 0}, r"max_records=0 is invalid: pass an integer from 1 to 1000000"),
    ({"max_records": 1_000_001}, r"max_records=1000001 is invalid: pass an integer from 1 to 1000000"),
    ({"max_wait_ms": -1}, r"max_wait_ms=-1 is invalid: pass an integer from 0 to 30000"),
    ({"max_wait_ms": 30_001}, r"max_wait_ms=30001 is invalid: pass an integer from 0 to 30000"),
    ({"log_level": "LOUD"}, r"log_level='LOUD' is not a Lambda log level: pass one of TRACE, DEBUG"),
    ({"telemetry": "off"}, r"telemetry='off' is not a switch: pass True or False, or omit it to keep it on"),
    ({"metrics": 0}, r"metrics=0 is not a switch: pass True or False"),
    ({"metrics_namespace": "AWS/Lambda"}, r"metrics_namespace='AWS/Lambda' is not a CloudWatch namespace: pass 1 to "
                                          r"255 .* not starting with AWS/, or omit it for InvocationHistory"),
    ({"metrics_namespace": ""}, r"metrics_namespace='' is not a CloudWatch namespace"),
    ({"metrics_namespace": "x" * 256}, r"metrics_namespace='x+' is not a CloudWatch namespace"),
    ({"metrics_namespace": "caf\u00e9"}, r"metrics_namespace='caf\u00e9' is not a CloudWatch namespace"),
    ({"metrics": False, "metrics_namespace": "Mine"},
     r"metrics_namespace='Mine' has no effect with metrics=False: omit metrics_namespace, or turn metrics on"),
    ({"runtime_proxy": "on"}, r"runtime_proxy='on' is not a switch: pass True or False"),
    ({"runtime_proxy_port": 9010}, r"runtime_proxy_port=9010 has no effect without the proxy: pass "
                                   r"runtime_proxy=True as well, or omit runtime_proxy_port"),
    ({"runtime_proxy": True, "runtime_proxy_port": 0},
     r"runtime_proxy_port=0 is not a TCP port: pass an integer from 1 to 65535, or omit it for 9009"),
    ({"runtime_proxy": True, "runtime_proxy_port": 65536}, r"runtime_proxy_port=65536 is not a TCP port"),
    ({"runtime_proxy": True, "runtime_proxy_port": True}, r"runtime_proxy_port=True is not a TCP port"),
    ({"runtime_proxy": True, "runtime_proxy_port": "9009"}, r"runtime_proxy_port='9009' is not a TCP port"),
    ({"runtime_proxy": True, "runtime_proxy_port": 1203},
     r"runtime_proxy_port=1203 is also the port of the local API \(port=1203\): the two listeners need different "
     r"ports: pass a runtime_proxy_port other than 1203"),
    ({"runtime_proxy": True, "port": 9009},
     r"runtime_proxy_port=9009 is also the port of the local API \(port=9009\)"),
])
def test_invalid_settings_are_refused_before_anything_changes(stack, prebuilt, kwargs, message):
    layer = InvocationHistoryLayer(stack, "History", code=prebuilt)
    fn = python_function(stack)
    with pytest.raises(ValueError, match=message):
        layer.add_function(fn, **kwargs)
    assert Template.from_stack(stack).find_resources("AWS::Lambda::Function", {
        "Properties": {"Layers": Match.any_value()}}) == {}  # nothing half-applied


PREFIX_FIX = r"pass up to 512 bytes without a leading '/', control characters, '\*' or '\?', or omit it for 'invocation-history/'"


@pytest.mark.parametrize("kwargs,message", [
    ({"export_prefix": "p/"}, r"export_prefix='p/' has no effect without a bucket: pass export_bucket as well, or "
                              r"omit export_prefix"),
    ({"export_max_invocations": 10}, r"export_max_invocations=10 has no effect without a bucket"),
    ({"export_max_bytes": 2048}, r"export_max_bytes=2048 has no effect without a bucket"),
    ({"export_max_age_ms": 5000}, r"export_max_age_ms=5000 has no effect without a bucket"),
    ({"export_logs": "none"}, r"export_logs='none' has no effect without a bucket"),
    ({"export_bucket": True, "export_prefix": ""}, r"export_prefix='' is not a usable key prefix \(the extension reads an "
                                                   r"empty prefix as unset\): " + PREFIX_FIX),
    ({"export_bucket": True, "export_prefix": "  "}, r"export_prefix='  ' is not a usable key prefix \(the extension "
                                                     r"reads an empty prefix as unset\)"),
    ({"export_bucket": True, "export_prefix": " logs/"}, r"export_prefix=' logs/' is not a usable key prefix \(the "
                                                         r"extension trims surrounding spaces, so its keys would not "
                                                         r"match the grant\)"),
    ({"export_bucket": True, "export_prefix": "/logs/"}, r"export_prefix='/logs/' .*\(it starts with '/'\)"),
    ({"export_bucket": True, "export_prefix": "logs\n/"}, r"export_prefix='logs\\n/' .*\(it has a control character\)"),
    ({"export_bucket": True, "export_prefix": "logs\x7f/"}, r"\(it has a control character\)"),
    ({"export_bucket": True, "export_prefix": "\u00e9" * 257}, r"\(it is longer than 512 bytes\)"),  # 514 bytes
    ({"export_bucket": True, "export_prefix": "team-*/"}, r"export_prefix='team-\*/' .*\(IAM reads '\*' and '\?' as "
                                                          r"wildcards, so the grant would cover more than the prefix\)"),
    ({"export_bucket": True, "export_prefix": "team?/"}, r"IAM reads '\*' and '\?' as wildcards"),
    ({"export_bucket": True, "export_prefix": 7}, r"export_prefix=7 is not a key prefix: pass a string like "
                                                  r"'invocation-history/'"),
    ({"export_bucket": True, "export_max_invocations": 0},
     r"export_max_invocations=0 is invalid: pass an integer from 1 to 100000, or omit it for 1000"),
    ({"export_bucket": True, "export_max_invocations": 100_001}, r"export_max_invocations=100001 is invalid"),
    ({"export_bucket": True, "export_max_invocations": "10"}, r"export_max_invocations='10' is invalid"),
    ({"export_bucket": True, "export_max_invocations": True}, r"export_max_invocations=True is invalid"),
    ({"export_bucket": True, "export_max_bytes": 1023},
     r"export_max_bytes=1023 is invalid: pass an integer from 1024 to 67108864, or omit it for 4194304"),
    ({"export_bucket": True, "export_max_bytes": 67_108_865}, r"export_max_bytes=67108865 is invalid"),
    ({"export_bucket": True, "export_max_age_ms": 999},
     r"export_max_age_ms=999 is invalid: pass an integer from 1000 to 3600000, or omit it for 60000"),
    ({"export_bucket": True, "export_max_age_ms": 3_600_001}, r"export_max_age_ms=3600001 is invalid"),
    ({"export_bucket": True, "export_max_age_ms": 1.5e3}, r"export_max_age_ms=1500.0 is invalid"),
    ({"export_bucket": True, "export_logs": "all"},
     r"export_logs='all' names 'all', not a log stream: pass some of platform, function, extension \(a list, or "
     r"comma-separated\), \[\] or 'none' for no logs, or omit it for function,extension"),
    ({"export_bucket": True, "export_logs": "function,"}, r"export_logs='function,' names '', not a log stream"),
    ({"export_bucket": True, "export_logs": ["function", "none"]}, r"names 'none', not a log stream"),
    ({"export_bucket": True, "export_logs": ["Function"]}, r"names 'Function', not a log stream"),
    ({"export_bucket": True, "export_logs": 3}, r"export_logs=3 is not a list of log streams: pass some of"),
    ({"export_bucket": True, "export_logs": ["function"], "telemetry": False},
     r"export_logs=\['function'\] has no effect with telemetry=False: the logs come from the Telemetry API: turn "
     r"telemetry on, or pass export_logs=\[\]"),
])
def test_invalid_export_settings_are_refused_before_anything_changes(stack, prebuilt, kwargs, message):
    # GIVEN a bucket of the stack wherever the case names one (True stands for it)
    if kwargs.get("export_bucket") is True:
        kwargs = {**kwargs, "export_bucket": s3.Bucket(stack, "Exports")}
    layer = InvocationHistoryLayer(stack, "History", code=prebuilt)
    with pytest.raises(ValueError, match=message):
        layer.add_function(python_function(stack), **kwargs)
    # THEN nothing is half-applied: no layer, no variable, no grant
    assert environment_of(stack, "Api") == {}
    assert policy_statements(stack) == []


def test_export_without_telemetry_is_allowed_when_no_logs_are_asked_for(stack, prebuilt):
    env = extension_environment(export_bucket="team-exports", telemetry=False, export_logs="none")
    assert env["INVOCATION_HISTORY_EXTENSION_EXPORT_LOGS"] == "none"
    assert env["INVOCATION_HISTORY_EXTENSION_TELEMETRY"] == "off"


@pytest.mark.parametrize("name", ["ab", "x" * 64, "Team-Exports", "team_exports", "-team", "team.", "team..exports",
                                  " team-exports"])
def test_export_bucket_name_follows_s3_rules(name):
    # a name given as text (functions that carry the extension themselves; CDK checks an IBucket's name itself)
    with pytest.raises(ValueError, match=rf"export_bucket='{re.escape(name)}' is not an S3 bucket name: pass 3 to 63 "
                                         r"lowercase letters, digits, '\.' and '-', a letter or digit first and last"):
        extension_environment(export_bucket=name)


def test_export_bucket_must_be_a_bucket_to_grant_on(stack, prebuilt):
    layer = InvocationHistoryLayer(stack, "History", code=prebuilt)
    with pytest.raises(ValueError, match=r"InvocationHistoryLayer 'History' needs the export bucket of function 'Api' "
                                         r"as an s3.IBucket to grant s3:PutObject on it, not 'team-exports': pass "
                                         r"s3.Bucket.from_bucket_name\(scope, id, name\)"):
        layer.add_function(python_function(stack), export_bucket="team-exports")
    assert environment_of(stack, "Api") == {}


def test_export_bucket_in_another_region_is_refused(stack, prebuilt):
    layer = InvocationHistoryLayer(stack, "History", code=prebuilt)
    bucket = s3.Bucket.from_bucket_attributes(stack, "Exports", bucket_name="team-exports", region="us-east-1")
    with pytest.raises(ValueError, match=r"cannot export function 'Api' \(eu-west-1\) to a bucket in us-east-1: the "
                                         r"extension writes to S3 in the function's region: pass a bucket in eu-west-1"):
        layer.add_function(python_function(stack), export_bucket=bucket)
    assert policy_statements(stack) == []


# ---- building: local Rust, Docker, neither --------------------------------------------------------------------------

BOTH_TARGETS = frozenset(layer_build.RUST_TARGETS.values())


def fake_which(cargo=None, docker=None):
    tools = {"cargo": cargo, "rustc": cargo and str(Path(cargo).with_name("rustc")), "docker": docker}
    return lambda name: tools.get(name)


def fake_rust(version, targets=BOTH_TARGETS):
    """Stands in for ``local_rust``: a toolchain of ``version`` with ``targets``, when cargo is on PATH."""
    return lambda source_dir=None, which=None: (version, targets) if (which or shutil.which)("cargo") else None


def test_the_build_reads_rust_version_and_extension_version_from_cargo_toml():
    assert layer_build.required_rust_version() >= (1, 85)  # edition 2024
    assert re.fullmatch(r"\d+\.\d+\.\d+", layer_build.extension_version())


def test_local_rust_with_the_target_builds_with_build_layer_sh(tmp_path, monkeypatch):
    monkeypatch.setattr(layer_build, "local_rust", fake_rust((1, 95, 0)))
    cmd = layer_build.build_command("x86_64", tmp_path / "out.zip", which=fake_which(cargo="/usr/bin/cargo"))
    assert cmd == ["sh", str(REPO_ROOT / "extension_src" / "build-layer.sh"), "x86_64", str(tmp_path / "out.zip")]


def test_docker_is_chosen_when_cargo_is_absent(tmp_path, monkeypatch):
    # GIVEN no cargo on PATH but a docker client
    monkeypatch.setattr(shutil, "which", fake_which(docker="/usr/bin/docker"))
    ran = []

    def fake_run(cmd, **kwargs):  # records the command instead of running Docker, and "builds" the zip
        ran.append(cmd)
        out_dir = next(v.split(":")[0] for v in cmd if v.endswith(":/out"))
        Path(out_dir, cmd[-2]).write_bytes(b"zip")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(layer_build, "_run", fake_run)
    # WHEN a layer is created without code
    InvocationHistoryLayer(cdk.Stack(cdk.App(), "T"), "History", cache_dir=tmp_path / "cache")
    # THEN the official Rust image adds the target and runs the same build script, with the source read-only
    (cmd,) = ran
    src = REPO_ROOT / "extension_src"
    assert cmd[:3] == ["/usr/bin/docker", "run", "--rm"]
    assert f"{src}:/src:ro" in cmd and "-w" in cmd and cmd[cmd.index("-w") + 1] == "/src"
    image = cmd.index("rust:1.95.0")
    shell, flag, script, arg0, arch, name, owner = cmd[image + 1:]
    assert (shell, flag, arg0, arch) == ("sh", "-c", "build-layer", "arm64")
    assert name.startswith("invocation-history-extension-arm64-") and name.endswith(".zip")
    assert 'sh build-layer.sh --add-targets "$1" && sh build-layer.sh "$1" "/out/$2"' in script
    # AND the zip is handed back to the caller's user (the container runs as root to add the target)
    assert owner == f"{os.getuid()}:{os.getgid()}" and 'chown "$3" "/out/$2"' in script


@pytest.mark.parametrize("version, targets", [
    ((1, 80, 0), BOTH_TARGETS),  # older than the crate's rust-version
    ((1, 95, 0), frozenset({"x86_64-unknown-linux-musl"})),  # no arm64 standard library
])
def test_docker_is_chosen_when_the_local_toolchain_does_not_fit(tmp_path, monkeypatch, version, targets):
    monkeypatch.setattr(layer_build, "local_rust", fake_rust(version, targets))
    cmd = layer_build.build_command("arm64", tmp_path / "out.zip", which=fake_which(cargo="/usr/bin/cargo", docker="/bin/docker"),
                            docker_image="rust:1.99")
    assert cmd[0] == "/bin/docker" and "rust:1.99" in cmd


@pytest.mark.parametrize("rust, found", [
    (None, "(no cargo and rustc on PATH)"),
    (((1, 80), BOTH_TARGETS), "(rustc 1.80 on PATH)"),
    (((1, 95), frozenset()), "(rustc on PATH without the aarch64-unknown-linux-musl target: "
                             "`rustup target add aarch64-unknown-linux-musl` adds it)"),
])
def test_neither_rust_nor_docker_names_both_options(tmp_path, monkeypatch, rust, found):
    monkeypatch.setattr(layer_build, "local_rust", lambda source_dir=None, which=None: rust)
    with pytest.raises(LayerBuildError) as error:
        layer_build.build_command("arm64", tmp_path / "out.zip", which=fake_which())
    message = str(error.value)
    need = ".".join(map(str, layer_build.required_rust_version()))
    assert f"it needs Rust >= {need} with the aarch64-unknown-linux-musl target {found} or Docker" in message
    assert "code=lambda_.Code.from_asset('dist/invocation-history-extension-arm64.zip')" in message


def test_local_rust_reads_the_toolchain_on_path(tmp_path):
    # GIVEN a rustc on PATH whose sysroot has the x86_64 musl standard library only
    sysroot = tmp_path / "sysroot"
    (sysroot / "lib/rustlib/x86_64-unknown-linux-musl/lib").mkdir(parents=True)
    rustc = tmp_path / "rustc"
    rustc.write_text(f'#!/bin/sh\n[ "$1" = --version ] && echo "rustc 1.95.0 (59807616e 2026-04-14)" || echo {sysroot}\n')
    rustc.chmod(0o755)
    which = {"cargo": "/usr/bin/cargo", "rustc": str(rustc)}.get
    # THEN its version and that one target are found
    assert layer_build.local_rust(tmp_path, which) == ((1, 95, 0), frozenset({"x86_64-unknown-linux-musl"}))
    assert layer_build.local_rust(tmp_path, {"rustc": str(rustc)}.get) is None  # no cargo


def test_failed_build_reports_command_and_stderr(tmp_path, monkeypatch):
    monkeypatch.setattr(layer_build, "local_rust", fake_rust((1, 95)))
    monkeypatch.setattr(shutil, "which", fake_which(cargo="/usr/bin/cargo"))
    failing = lambda cmd, **kw: subprocess.CompletedProcess(cmd, 101, "", "error[E0425]: cannot find value")  # noqa: E731
    with pytest.raises(LayerBuildError, match=r"failed \(exit 101\): sh .*build-layer.sh arm64.*\nerror\[E0425\]"):
        monkeypatch.setattr(layer_build, "_run", failing)
        layer_build.build_layer_zip("arm64", cache_dir=tmp_path)


def test_built_zip_is_cached_by_source_hash(tmp_path, monkeypatch):
    monkeypatch.setattr(layer_build, "local_rust", fake_rust((1, 95)))
    monkeypatch.setattr(shutil, "which", fake_which(cargo="/usr/bin/cargo"))
    monkeypatch.delenv("CARGO_TARGET_DIR", raising=False)
    runs = []

    def fake_run(cmd, **kwargs):
        runs.append(kwargs["env"])
        Path(cmd[-1]).write_bytes(b"zip")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(layer_build, "_run", fake_run)
    first = layer_build.build_layer_zip("arm64", cache_dir=tmp_path)
    second = layer_build.build_layer_zip("arm64", cache_dir=tmp_path)
    assert first == second and len(runs) == 1
    assert layer_build.source_hash()[:16] in first[0].name
    # AND cargo's work is kept for the next source change, in the crate's target dir as make keeps it
    assert runs[0]["CARGO_TARGET_DIR"] == str(REPO_ROOT / "extension_src" / "target")


def test_cargo_work_goes_to_the_cache_when_the_source_is_read_only(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert layer_build.cargo_target_dir(tmp_path / "src", tmp_path / "cache") == tmp_path.resolve() / "cache" / "cargo-target"


@pytest.mark.parametrize("edit, rebuilds", [
    ("wrapper/invocation-history-wrapper", True),  # shipped in the zip
    ("src/lib.rs", True),
    ("Cargo.toml", True),
    ("Cargo.lock", True),
    ("build-layer.sh", True),
    ("tools/layerzip/src/main.rs", True),  # writes the zip
    ("rust-toolchain.toml", True),  # would choose another compiler
    ("target/release/stale", False),  # cargo's work
    ("main.go", False),  # the Go extension is not in the layer
    ("README.md", False),
])
def test_source_hash_follows_everything_the_zip_is_built_from(tmp_path, edit, rebuilds):
    source = tmp_path / "extension_src"
    shutil.copytree(REPO_ROOT / "extension_src", source, ignore=shutil.ignore_patterns("target"))
    before = layer_build.source_hash(source)
    (source / edit).parent.mkdir(parents=True, exist_ok=True)
    with open(source / edit, "a") as f:
        f.write("\n# edited\n")
    assert (layer_build.source_hash(source) != before) == rebuilds


def _local_toolchain_fits() -> bool:
    rust = layer_build.local_rust()
    return rust is not None and rust[0] >= layer_build.required_rust_version() and layer_build.RUST_TARGETS["arm64"] in rust[1]


@pytest.mark.skipif(not _local_toolchain_fits(),
                    reason="needs a local Rust at least the crate's rust-version with the aarch64 musl target")
def test_local_build_is_reproducible_and_lays_out_the_extension(tmp_path, monkeypatch):
    # GIVEN two builds of the same source in two caches, both in make's cargo target dir (incremental: tests/local's
    # test_layer_build.py checks that a cold build in a fresh target dir gives the same bytes)
    monkeypatch.delenv("CARGO_TARGET_DIR", raising=False)
    a, _ = layer_build.build_layer_zip("arm64", cache_dir=tmp_path / "a")
    b, _ = layer_build.build_layer_zip("arm64", cache_dir=tmp_path / "b")
    # THEN the bytes are the same, and Lambda finds the executable extension
    assert a.read_bytes() == b.read_bytes()
    with zipfile.ZipFile(a) as zf:
        info = zf.getinfo("extensions/invocation-history-extension")
        assert (info.external_attr >> 16) & 0o777 == 0o755
        assert int.from_bytes(zf.read(info)[18:20], "little") == 183  # ELF e_machine: AArch64


def test_the_package_imports_beside_an_apps_own_stacks_package(tmp_path):
    # GIVEN an app with a "stacks" package of its own, as many CDK apps have
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "__init__.py").write_text("OWN = True\n")
    layer_zip = tmp_path / "layer.zip"
    with zipfile.ZipFile(layer_zip, "w") as zf:
        zf.writestr("extensions/invocation-history-extension", "#!/bin/sh\n")
    # WHEN its app imports both, as a user's would
    script = (
        "import aws_cdk as cdk\nfrom aws_cdk import aws_lambda as lambda_\nimport stacks\n"
        "from invocation_history_cdk import InvocationHistoryLayer\n"
        f"InvocationHistoryLayer(cdk.Stack(cdk.App(), 'T'), 'H', code=lambda_.Code.from_asset({str(layer_zip)!r}))\n"
        "print(stacks.OWN, hasattr(stacks, 'InvocationHistoryLayer'))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    # THEN both load, each under its own name
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]


def test_dashboard_takes_any_labels_and_checks_its_namespace(stack):
    from invocation_history_cdk import InvocationHistoryDashboard

    functions = {"Api": python_function(stack, "A"), "API": python_function(stack, "B"), "Ü-api": python_function(stack, "C")}
    InvocationHistoryDashboard(stack, "Envs", functions=functions)
    Template.from_stack(stack).resource_count_is("AWS::CloudWatch::Dashboard", 1)  # labels alike or not ASCII: fine
    with pytest.raises(ValueError, match=r"namespace='AWS/Lambda' is not a CloudWatch namespace"):
        InvocationHistoryDashboard(stack, "Bad", functions=functions, namespace="AWS/Lambda")
    with pytest.raises(ValueError, match=r"functions is empty"):
        InvocationHistoryDashboard(stack, "Empty", functions={})

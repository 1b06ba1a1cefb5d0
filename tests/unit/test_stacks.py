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
from invocation_history_cdk.dashboard import (
    ENVIRONMENT_LIFETIME,
    ENVIRONMENT_STARTED,
    ENVIRONMENT_STOPPED,
    INVOCATION_DURATION,
    INVOCATIONS_SERVED,
)
from stacks.demo_stack import EXPORT_EXPIRE_DAYS_CONTEXT_KEY, parse_expire_days
from invocation_history_cdk.build import build_layer_zip, extension_version
from invocation_history_cdk.settings import (
    DEFAULT_METRICS_NAMESPACE,
    ENV_EXEC_WRAPPER,
    ENV_EXPORT_S3_BUCKET,
    ENV_EXPORT_S3_PREFIX,
    ENV_HTTP_PORT,
    ENV_RUNTIME_PROXY,
    ENV_RUNTIME_PROXY_PORT,
    WRAPPER_PATH,
)
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
    # THEN the S3 key is derived from the source hash alone: the same template on every machine and Rust release
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
            "Description": Match.string_like_regexp(
                rf"^Invocation History extension {re.escape(extension_version())} for {arch}"),
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


#: The demo's functions by construct id (the prefix of their logical ids), as the dashboard labels them.
DEMO_FUNCTIONS = ("GoSample", "PythonSample", "PythonProxySample")


def _function(t: Template, construct_id: str) -> tuple[str, dict]:
    (found,) = [(logical_id, res) for logical_id, res in t.find_resources("AWS::Lambda::Function").items()
                if re.fullmatch(rf"{construct_id}[0-9A-F]{{8}}", logical_id)]
    return found


@pytest.mark.parametrize("construct_id,runtime,arch,handler", [
    ("GoSample", "provided.al2023", "arm64", "bootstrap"),
    ("PythonSample", "python3.13", "x86_64", "handler.handler"),
    ("PythonProxySample", "python3.13", "x86_64", "handler.handler"),
])
def test_demo_function_has_the_layer_of_its_architecture(templates, construct_id, runtime, arch, handler):
    t = templates[cdk_app.DEMO_STACK]
    layer = _logical_id(t, "AWS::Lambda::LayerVersion", {"CompatibleArchitectures": [arch]})
    _, fn = _function(t, construct_id)
    assert Match.object_like({
        "Runtime": runtime,
        "Handler": handler,
        "Architectures": [arch],
        "Layers": [{"Ref": layer}],
        "Environment": {"Variables": {ENV_HTTP_PORT: "1203"}},
    }).test(fn["Properties"]).is_success


def _export_bucket(t: Template) -> tuple[str, dict]:
    # The stack's other bucket holds the Athena workgroup's results (InvocationHistoryTable, test_history_table.py).
    (found,) = [(i, r) for i, r in t.find_resources("AWS::S3::Bucket").items() if i.startswith("ExportBucket")]
    return found


def _exports_to_the_bucket(t: Template) -> dict:
    """The export variables of a demo function: the stack's bucket under the default prefix."""
    return {ENV_EXPORT_S3_BUCKET: {"Ref": _export_bucket(t)[0]}, ENV_EXPORT_S3_PREFIX: "invocation-history/"}


@pytest.mark.parametrize("construct_id", ["GoSample", "PythonSample"])
def test_demo_samples_run_without_the_proxy(templates, construct_id):
    # the original samples keep the default configuration but for the export: the port, the bucket and the prefix
    t = templates[cdk_app.DEMO_STACK]
    _, fn = _function(t, construct_id)
    assert fn["Properties"]["Environment"]["Variables"] == {ENV_HTTP_PORT: "1203", **_exports_to_the_bucket(t)}


def test_demo_proxy_sample_runs_the_runtime_through_the_wrapper(templates):
    # GIVEN the third sample, the Python one with proxy mode on: on Lambda (unlike on the RIE) the managed runtime
    # applies the exec wrapper, so this function is where the wrapper runs for real
    t = templates[cdk_app.DEMO_STACK]
    _, fn = _function(t, "PythonProxySample")
    assert fn["Properties"]["Environment"]["Variables"] == {
        ENV_HTTP_PORT: "1203", ENV_RUNTIME_PROXY: "on", ENV_RUNTIME_PROXY_PORT: "9009",
        ENV_EXEC_WRAPPER: WRAPPER_PATH, **_exports_to_the_bucket(t),
    }


def test_demo_export_bucket_is_private_encrypted_and_expires(templates):
    t = templates[cdk_app.DEMO_STACK]
    bucket_id, bucket = _export_bucket(t)
    props = bucket["Properties"]
    # encrypted at rest with S3-managed keys (no KMS key, no per-object KMS call)
    assert props["BucketEncryption"] == {"ServerSideEncryptionConfiguration": [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
    # no public access of any kind, no ACLs
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    # every object expires after cdk.json's default number of days
    assert props["LifecycleConfiguration"] == {"Rules": [
        {"Id": "ExpireExports", "Status": "Enabled", "ExpirationInDays": 30}]}
    # kept when the stack is deleted: exported data is never deleted by cdk destroy
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert t.to_json()["Outputs"]["ExportBucketName"]["Value"] == {"Ref": bucket_id}


def test_demo_export_bucket_refuses_requests_without_tls(templates):
    t = templates[cdk_app.DEMO_STACK]
    bucket_id, _ = _export_bucket(t)
    (policy,) = [p for p in t.find_resources("AWS::S3::BucketPolicy").values() if p["Properties"]["Bucket"] == {"Ref": bucket_id}]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    # only denials: the bucket policy grants nobody anything
    assert {s["Effect"] for s in statements} == {"Deny"}
    bucket_and_objects = [{"Fn::GetAtt": [bucket_id, "Arn"]},
                          {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/*"]]}]
    assert {"Action": "s3:*", "Effect": "Deny", "Principal": {"AWS": "*"}, "Resource": bucket_and_objects,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}} in statements
    assert {"Action": "s3:*", "Effect": "Deny", "Principal": {"AWS": "*"}, "Resource": bucket_and_objects,
            "Condition": {"NumericLessThan": {"s3:TlsVersion": 1.2}}} in statements


def test_demo_export_expiry_comes_from_the_context(tmp_path):
    # GIVEN the expiry context key on the command line (`-c invocationHistory:exportExpireDays=7` gives text)
    app = new_app(tmp_path, **{EXPORT_EXPIRE_DAYS_CONTEXT_KEY: "7"})
    stacks = cdk_app.create_stacks(app, ENV)
    # THEN the bucket's objects expire after that many days
    Template.from_stack(stacks[cdk_app.DEMO_STACK]).has_resource_properties("AWS::S3::Bucket", {
        "LifecycleConfiguration": {"Rules": [{"Id": "ExpireExports", "Status": "Enabled", "ExpirationInDays": 7}]}})


@pytest.mark.parametrize("value,days", [(None, 30), ("", 30), (1, 1), ("14", 14), (" 90 ", 90), (36_500, 36_500)])
def test_expiry_context_accepts_whole_days(value, days):
    assert parse_expire_days(value) == days


@pytest.mark.parametrize("value", [0, "0", -1, "-1", 36_501, "seven", 1.5, "1.5", True])
def test_expiry_context_rejects_anything_but_whole_days(value):
    with pytest.raises(ValueError, match=rf"context invocationHistory:exportExpireDays is {re.escape(repr(value))}: "
                                         r"pass a whole number of days from 1 to 36500, or leave it out for 30"):
        parse_expire_days(value)


def test_demo_functions_log_to_their_own_short_lived_log_group(templates):
    t = templates[cdk_app.DEMO_STACK]
    t.resource_count_is("AWS::Logs::LogGroup", 3)
    t.all_resources_properties("AWS::Logs::LogGroup", {"RetentionInDays": 7})
    for fn in t.find_resources("AWS::Lambda::Function").values():
        assert set(fn["Properties"]["LoggingConfig"]["LogGroup"]) == {"Ref"}


def test_demo_is_not_publicly_invocable(templates):
    t = templates[cdk_app.DEMO_STACK]
    t.resource_count_is("AWS::Lambda::Url", 0)
    t.resource_count_is("AWS::Lambda::Permission", 0)
    t.resource_count_is("AWS::Lambda::Function", 3)
    assert set(t.find_outputs("*")) >= {
        "GoSampleFunctionName", "PythonSampleFunctionName", "PythonProxySampleFunctionName", "DashboardName",
        "ExportBucketName"}


def dashboard_body(t: Template) -> dict:
    """The demo dashboard's body as JSON, each ``{"Ref": X}`` in it replaced by ``"<X>"``."""
    (dashboard,) = t.find_resources("AWS::CloudWatch::Dashboard").values()
    separator, parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"]
    assert all(isinstance(p, str) or set(p) == {"Ref"} for p in parts), parts
    return json.loads(separator.join(p if isinstance(p, str) else f"<{p['Ref']}>" for p in parts))


def _metrics(widget: dict) -> list[list]:
    return widget["properties"].get("metrics", [])


def _widget(body: dict, title_start: str) -> dict:
    (widget,) = [w for w in body["widgets"] if w["properties"].get("title", "").startswith(title_start)]
    return widget


def test_demo_dashboard_is_named_after_the_stack_and_opens_on_three_hours(templates):
    t = templates[cdk_app.DEMO_STACK]
    t.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    t.has_resource_properties("AWS::CloudWatch::Dashboard", {"DashboardName": "InvocationHistoryDemo-Environments"})
    assert dashboard_body(t)["start"] == "-PT3H"


@pytest.mark.parametrize("construct_id", DEMO_FUNCTIONS)
def test_demo_dashboard_shows_live_environments_per_function(templates, construct_id):
    # GIVEN the EMF metrics of one sample function (namespace and FunctionName dimension of the extension)
    t = templates[cdk_app.DEMO_STACK]
    fn_ref = f"<{_function(t, construct_id)[0]}>"
    key = DEMO_FUNCTIONS.index(construct_id)  # the dashboard numbers its metric ids in the order it is given
    widget = _widget(dashboard_body(t), "Live execution environments")
    metrics = _metrics(widget)
    # THEN the live count is the running sum of started minus stopped (Sum per minute, no data counting as 0)
    assert [{"label": construct_id, "period": 60,
             "expression": f"RUNNING_SUM(FILL(started{key}, 0) - FILL(stopped{key}, 0))"}] in metrics
    for metric_name, metric_id in ((ENVIRONMENT_STARTED, f"started{key}"), (ENVIRONMENT_STOPPED, f"stopped{key}")):
        (line,) = [m for m in metrics if m[:4] == [DEFAULT_METRICS_NAMESPACE, metric_name, "FunctionName", fn_ref]]
        options = line[4]
        assert (options["id"], options["stat"], options["period"], options["visible"]) == (metric_id, "Sum", 60, False)


@pytest.mark.parametrize("construct_id", DEMO_FUNCTIONS)
def test_demo_dashboard_shows_each_metric_of_each_function(templates, construct_id):
    t = templates[cdk_app.DEMO_STACK]
    fn_ref = f"<{_function(t, construct_id)[0]}>"
    body = dashboard_body(t)

    def stats(title_start: str, namespace: str, metric_name: str) -> set[str]:
        """The statistics graphed for this function's metric in that widget (Average is CloudWatch's default)."""
        lines = [m for m in _metrics(_widget(body, title_start)) if m[:2] == [namespace, metric_name]
                 and m[2:4] == ["FunctionName", fn_ref]]
        return {line[4].get("stat", "Average") for line in lines}

    ns = DEFAULT_METRICS_NAMESPACE
    assert stats("Environments started and stopped", ns, ENVIRONMENT_STARTED) == {"Sum"}
    assert stats("Environments started and stopped", ns, ENVIRONMENT_STOPPED) == {"Sum"}
    assert stats("Invocations served per environment", ns, INVOCATIONS_SERVED) == {"Average", "Maximum"}
    assert stats("Environment lifetime", ns, ENVIRONMENT_LIFETIME) == {"Average", "Maximum"}
    # each enriched record's duration, from the extension's InvocationDuration values
    assert stats("Invocation duration", ns, INVOCATION_DURATION) == {"p50", "p90", "p99"}


def test_demo_dashboard_graphs_only_this_stacks_functions_in_its_region(templates):
    body = dashboard_body(templates[cdk_app.DEMO_STACK])
    functions = {f"<{_function(templates[cdk_app.DEMO_STACK], c)[0]}>" for c in DEMO_FUNCTIONS}
    for widget in body["widgets"]:
        if widget["type"] != "metric":
            continue
        assert widget["properties"]["region"] == "<AWS::Region>"
        for line in _metrics(widget):
            if isinstance(line[0], str):  # a metric, not an expression
                assert line[2] == "FunctionName" and line[3] in functions, line


@pytest.mark.parametrize("stack", [cdk_app.DEMO_STACK, cdk_app.CONTAINER_STACK])
def test_function_roles_may_only_write_their_own_logs_and_exports(templates, stack):
    t = templates[stack]
    # no managed policies (AWSLambdaBasicExecutionRole writes to any log group)
    t.all_resources_properties("AWS::IAM::Role", {"ManagedPolicyArns": Match.absent()})
    policies = t.find_resources("AWS::IAM::Policy")
    assert len(policies) == len(t.find_resources("AWS::Lambda::Function"))
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        if stack == cdk_app.DEMO_STACK:
            # the demo's samples also export: PutObject under the export prefix of the stack's bucket, nothing more
            bucket_id, _ = _export_bucket(t)
            *statements, export = statements
            assert export == {"Action": "s3:PutObject", "Effect": "Allow", "Resource": {"Fn::Join": [
                "", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/invocation-history/*"]]}}
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
    for built_from in ("extension_src/build-layer.sh", "extension_src/Cargo.lock", "extension_src/src/main.rs",
                       "extension_src/tools/layerzip/Cargo.lock", "functions/go/main.go"):
        assert (staged / built_from).is_file(), built_from
    for absent in (".venv", "node_modules", "cdk.out", "tests", "functions/python", "dist", "build", ".git",
                   "extension_src/target", "extension_src/fuzz"):
        assert not (staged / absent).exists(), absent
    assert not list(staged.rglob("*_test.go"))
    assert not list(staged.rglob("target"))  # cargo's work, however large, stays out of the context

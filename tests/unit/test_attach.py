"""The one call for the common case: ``add_invocation_history`` (a function or a list, any architecture) and
``InvocationHistoryAspect`` (every function in a scope), with ``ExtensionSettings``."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Annotations, Match, Template

from invocation_history_cdk import (
    ExtensionSettings,
    InvocationHistoryAspect,
    InvocationHistoryLayer,
    add_invocation_history,
)

from .conftest import ENV

ARM, X86 = lambda_.Architecture.ARM_64, lambda_.Architecture.X86_64
PORT = "INVOCATION_HISTORY_EXTENSION_HTTP_PORT"


@pytest.fixture
def stack(packaged_layers):
    return cdk.Stack(cdk.App(), "Test", env=ENV)


def python_function(scope, id, architecture=X86):
    return lambda_.Function(scope, id, runtime=lambda_.Runtime.PYTHON_3_13, handler="index.handler",
                            code=lambda_.Code.from_inline("def handler(e, c): return {}"), architecture=architecture)


def node_function(scope, id, architecture=ARM):
    return lambda_.Function(scope, id, runtime=lambda_.Runtime.NODEJS_22_X, handler="index.handler",
                            code=lambda_.Code.from_inline("exports.handler = async () => ({})"),
                            architecture=architecture)


def layers_by_architecture(t: Template) -> dict[str, str]:
    return {props["Properties"]["CompatibleArchitectures"][0]: logical_id
            for logical_id, props in t.find_resources("AWS::Lambda::LayerVersion").items()}


def function_props(t: Template, id: str) -> dict:
    (props,) = [r["Properties"] for logical_id, r in t.find_resources("AWS::Lambda::Function").items()
                if logical_id.startswith(id)]
    return props


def test_each_function_gets_its_architectures_layer_one_per_architecture_and_stack(stack):
    # GIVEN functions on both architectures, two on x86_64
    functions = [python_function(stack, "Api"), python_function(stack, "Worker"), node_function(stack, "Edge")]
    # WHEN the extension is added to all of them in one call
    add_invocation_history(functions)
    # THEN the stack has one layer per architecture, each function the one of its own, with the default settings
    t = Template.from_stack(stack)
    layers = layers_by_architecture(t)
    assert set(layers) == {"x86_64", "arm64"}
    for id, arch in (("Api", "x86_64"), ("Worker", "x86_64"), ("Edge", "arm64")):
        props = function_props(t, id)
        assert props["Layers"] == [{"Ref": layers[arch]}], id
        assert props["Environment"]["Variables"] == {PORT: "1203"}, id


def test_one_function_and_its_settings(stack):
    # GIVEN one arm64 function WHEN the extension is added with settings
    add_invocation_history(node_function(stack, "Edge"), ExtensionSettings(max_records=500, log_level="debug"))
    # THEN only the arm64 layer is made, under its documented id, and the settings are written
    t = Template.from_stack(stack)
    assert list(layers_by_architecture(t)) == ["arm64"]
    assert isinstance(stack.node.find_child("InvocationHistoryLayerArm64"), InvocationHistoryLayer)
    assert function_props(t, "Edge")["Environment"]["Variables"] == {
        PORT: "1203", "INVOCATION_HISTORY_EXTENSION_MAX_RECORDS": "500", "INVOCATION_HISTORY_EXTENSION_LOG_LEVEL": "DEBUG",
    }


def test_a_later_call_reuses_the_stacks_layer(stack):
    # GIVEN a function with the extension WHEN another of the same architecture gets it later
    add_invocation_history(python_function(stack, "Api"))
    add_invocation_history(python_function(stack, "Worker"))
    # THEN there is still one layer
    Template.from_stack(stack).resource_count_is("AWS::Lambda::LayerVersion", 1)


def test_the_extension_is_added_once_per_function(stack):
    fn = python_function(stack, "Api")
    add_invocation_history(fn)
    with pytest.raises(ValueError, match=r"cannot be added to function 'Api': it already has the extension from layer "
                                         r"'InvocationHistoryLayerX8664': add the extension once per function"):
        add_invocation_history(fn, ExtensionSettings(max_records=5))


def test_settings_are_checked_when_made_with_the_same_messages():
    # GIVEN settings the extension would ignore at run time WHEN they are made THEN the error names setting, value, fix
    with pytest.raises(ValueError, match=r"max_records=0 is invalid: pass an integer from 1 to 1000000"):
        ExtensionSettings(max_records=0)
    with pytest.raises(ValueError, match=r"runtime_proxy_port=1203 is also the port of the local API"):
        ExtensionSettings(runtime_proxy=True, runtime_proxy_port=1203)
    with pytest.raises(ValueError, match=r"export_prefix='p/' has no effect without a bucket"):
        ExtensionSettings(export_prefix="p/")


def test_settings_must_be_extension_settings_and_given_one_way(stack):
    fn = python_function(stack, "Api")
    with pytest.raises(ValueError, match=r"settings=\{'max_records': 5\} is not an ExtensionSettings"):
        add_invocation_history(fn, {"max_records": 5})
    layer = InvocationHistoryLayer.of(stack, X86)
    with pytest.raises(ValueError, match=r"settings and max_records were both given"):
        layer.add_function(fn, ExtensionSettings(), max_records=5)


def test_a_container_image_is_refused_with_the_way_to_carry_the_extension(stack):
    repo = ecr.Repository.from_repository_name(stack, "Repo", "app")
    image = lambda_.DockerImageFunction(stack, "Image", code=lambda_.DockerImageCode.from_ecr(repo))
    with pytest.raises(ValueError, match=r"container image, and images cannot take layers"):
        add_invocation_history(image)


def test_the_shared_layers_id_must_be_free(stack):
    cdk.CfnOutput(stack, "InvocationHistoryLayerX8664", value="taken")
    with pytest.raises(ValueError, match=r"has a construct 'InvocationHistoryLayerX8664' that is not an "
                                         r"InvocationHistoryLayer"):
        add_invocation_history(python_function(stack, "Api"))


def test_the_aspect_reaches_every_function_in_its_scope_and_keeps_settings_given_before(packaged_layers):
    # GIVEN two stacks of functions, one function with settings of its own and a container image
    app = cdk.App()
    first, second = cdk.Stack(app, "First", env=ENV), cdk.Stack(app, "Second", env=ENV)
    python_function(first, "Api"), node_function(first, "Edge"), node_function(second, "Other")
    add_invocation_history(python_function(first, "Tuned"), ExtensionSettings(max_records=50))
    repo = ecr.Repository.from_repository_name(first, "Repo", "app")
    lambda_.DockerImageFunction(first, "Image", code=lambda_.DockerImageCode.from_ecr(repo))
    # WHEN the aspect is added to the app with settings
    cdk.Aspects.of(app).add(InvocationHistoryAspect(ExtensionSettings(telemetry=False)))
    app.synth()
    # THEN every zip function has its stack's layer of its architecture; the tuned one keeps its own settings
    t1, t2 = Template.from_stack(first), Template.from_stack(second)
    layers1, layers2 = layers_by_architecture(t1), layers_by_architecture(t2)
    assert set(layers1) == {"x86_64", "arm64"} and set(layers2) == {"arm64"}
    telemetry_off = {PORT: "1203", "INVOCATION_HISTORY_EXTENSION_TELEMETRY": "off"}
    for t, id, layer, variables in (
        (t1, "Api", layers1["x86_64"], telemetry_off),
        (t1, "Edge", layers1["arm64"], telemetry_off),
        (t2, "Other", layers2["arm64"], telemetry_off),
        (t1, "Tuned", layers1["x86_64"], {PORT: "1203", "INVOCATION_HISTORY_EXTENSION_MAX_RECORDS": "50"}),
    ):
        props = function_props(t, id)
        assert props["Layers"] == [{"Ref": layer}], id
        assert props["Environment"]["Variables"] == variables, id
    # AND the image is left without, with a warning that says how to carry the extension
    assert "Layers" not in function_props(t1, "Image")
    Annotations.from_stack(first).has_warning("/First/Image", Match.string_like_regexp("container images take no layers"))


def test_the_aspect_grants_the_export(packaged_layers):
    # GIVEN a function and a bucket WHEN the aspect exports every function's history to it
    app = cdk.App()
    stack = cdk.Stack(app, "S", env=ENV)
    bucket = s3.Bucket(stack, "Exports")
    python_function(stack, "Api")
    cdk.Aspects.of(stack).add(InvocationHistoryAspect(ExtensionSettings(export_bucket=bucket)))
    app.synth()
    # THEN the function's role may put objects under the prefix
    t = Template.from_stack(stack)
    assert function_props(t, "Api")["Environment"]["Variables"]["INVOCATION_HISTORY_EXTENSION_EXPORT_S3_PREFIX"] == (
        "invocation-history/")
    t.has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({"Action": "s3:PutObject", "Effect": "Allow"})])}})

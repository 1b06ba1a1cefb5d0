"""tools.local_cloud's reading of a cloud assembly: template resolution (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, ...),
function specs, layers from other stacks, and the outputs file, on small hand-written assemblies."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tools.local_cloud import (
    LOCAL_ACCOUNT,
    NO_VALUE,
    Asset,
    Assembly,
    FunctionSpec,
    LocalCloud,
    LocalFunction,
    Resolver,
    Unresolvable,
    function_error,
    function_name_and_qualifier,
    unpack_asset,
)

TEMPLATE = {
    "Parameters": {
        "Stage": {"Type": "String", "Default": "dev"},
        "Subnets": {"Type": "CommaDelimitedList", "Default": "a,b,c"},
        "NoDefault": {"Type": "String"},
        "BootstrapVersion": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/cdk-bootstrap/x/version"},
    },
    "Resources": {
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {}},
        "Queue": {"Type": "AWS::SQS::Queue"},
    },
}


def resolver() -> Resolver:
    return Resolver(
        "Stack", TEMPLATE, refs={"Fn": "Stack-Fn"}, attributes={("Fn", "Arn"): "arn:fn"}, region="eu-west-1"
    )


@pytest.mark.parametrize(
    "value,expected",
    [
        ({"Ref": "Fn"}, "Stack-Fn"),
        ({"Ref": "AWS::Region"}, "eu-west-1"),
        ({"Ref": "AWS::AccountId"}, LOCAL_ACCOUNT),
        ({"Ref": "AWS::StackName"}, "Stack"),
        ({"Ref": "Stage"}, "dev"),
        ({"Ref": "Subnets"}, ["a", "b", "c"]),
        ({"Fn::GetAtt": ["Fn", "Arn"]}, "arn:fn"),
        ({"Fn::GetAtt": "Fn.Arn"}, "arn:fn"),
        ({"Fn::Join": ["-", [{"Ref": "Stage"}, "x", {"Ref": "Fn"}]]}, "dev-x-Stack-Fn"),
        ({"Fn::Join": ["", []]}, ""),
        ({"Fn::Sub": "${Fn}/${AWS::Region}/${Fn.Arn}"}, "Stack-Fn/eu-west-1/arn:fn"),
        ({"Fn::Sub": ["${Greeting}, ${Stage}", {"Greeting": {"Fn::Join": ["", ["hel", "lo"]]}}]}, "hello, dev"),
        ({"Fn::Sub": "cost: ${!Literal} and $notAVariable"}, "cost: ${Literal} and $notAVariable"),
        ({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}, "y"),
        ({"Fn::Select": ["0", {"Ref": "Subnets"}]}, "a"),
        # nested: a Join inside a Sub's variables inside a Join
        ({"Fn::Join": [":", [{"Fn::Sub": ["${A}", {"A": {"Ref": "Fn"}}]}, "end"]]}, "Stack-Fn:end"),
        ({"Key": [{"Ref": "AWS::NoValue"}, {"Ref": "Stage"}]}, {"Key": ["dev"]}),
        ({"Gone": {"Ref": "AWS::NoValue"}, "Kept": 1}, {"Kept": 1}),
        ([1, "two", {"Ref": "Stage"}], [1, "two", "dev"]),
    ],
)
def test_resolves_what_has_a_local_value(value, expected):
    assert resolver().resolve(value) == expected


def test_no_value_alone_resolves_to_the_marker():
    assert resolver().resolve({"Ref": "AWS::NoValue"}) is NO_VALUE


@pytest.mark.parametrize(
    "value,named",
    [
        ({"Ref": "Queue"}, "Ref Queue (AWS::SQS::Queue)"),
        ({"Ref": "Missing"}, "no such resource or parameter"),
        ({"Ref": "NoDefault"}, "a parameter without a default"),
        ({"Ref": "BootstrapVersion"}, "an SSM parameter (/cdk-bootstrap/x/version)"),
        ({"Ref": "AWS::StackId"}, "Ref AWS::StackId"),
        ({"Fn::GetAtt": ["Queue", "Arn"]}, "Fn::GetAtt Queue.Arn (AWS::SQS::Queue)"),
        ({"Fn::GetAtt": ["Fn", "SnapStartResponse"]}, "Fn::GetAtt Fn.SnapStartResponse"),
        ({"Fn::Join": ["-", ["a", {"Ref": "Queue"}]]}, "Ref Queue"),
        ({"Fn::Sub": "queue ${Queue.QueueName}"}, "Fn::GetAtt Queue.QueueName"),
        ({"Fn::Sub": "${Unknown}"}, "Ref Unknown"),
        ({"Fn::If": ["IsProd", "a", "b"]}, "Fn::If is not resolved locally"),
        ({"Fn::ImportValue": "Shared-Thing"}, "Fn::ImportValue Shared-Thing"),
        ({"Fn::Select": [5, ["a"]]}, "index 5"),
        ({"Fn::Join": ["-", {"Ref": "Stage"}]}, "is not a list"),
    ],
)
def test_names_what_it_cannot_resolve(value, named):
    with pytest.raises(Unresolvable) as error:
        resolver().resolve(value)
    assert named in str(error.value)


def test_a_non_string_where_a_string_is_needed_is_named():
    with pytest.raises(Unresolvable, match="is not a string"):
        resolver().resolve_string({"Ref": "Subnets"})


# -- assemblies ---------------------------------------------------------------------------------------------------
ASSET_BUCKET = {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"}


def write_assembly(directory: Path, stacks: dict[str, dict], assets: dict[str, dict[str, Path]]) -> Path:
    """A cloud assembly as CDK writes one: manifest.json, a template and an asset manifest per stack.
    ``assets`` maps a stack to {S3 key: source path in the assembly}."""
    directory.mkdir(parents=True, exist_ok=True)
    artifacts = {}
    for stack, template in stacks.items():
        (directory / f"{stack}.template.json").write_text(json.dumps(template))
        files = {
            key.removesuffix(".zip"): {
                "source": {"path": path.name, "packaging": "zip" if path.is_dir() else "file"},
                "destinations": {"current": {"bucketName": "b", "objectKey": key}},
            }
            for key, path in assets.get(stack, {}).items()
        }
        (directory / f"{stack}.assets.json").write_text(json.dumps({"version": "55.0.0", "files": files}))
        artifacts[f"{stack}.assets"] = {"type": "cdk:asset-manifest", "properties": {"file": f"{stack}.assets.json"}}
        artifacts[stack] = {"type": "aws:cloudformation:stack", "properties": {"templateFile": f"{stack}.template.json"}}
    (directory / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}))
    return directory


def function(code_key: str | None, **properties) -> dict:
    props = {"Runtime": "python3.13", "Handler": "app.handler", "Role": {"Fn::GetAtt": ["Role", "Arn"]}}
    if code_key is not None:
        props["Code"] = {"S3Bucket": ASSET_BUCKET, "S3Key": code_key}
    props.update(properties)
    return {"Type": "AWS::Lambda::Function", "Properties": props}


def layer(key: str) -> dict:
    return {"Type": "AWS::Lambda::LayerVersion", "Properties": {"Content": {"S3Bucket": ASSET_BUCKET, "S3Key": key}}}


@pytest.fixture
def assembly_dir(tmp_path) -> Path:
    out = tmp_path / "cdk.out"
    out.mkdir()
    (out / "asset.code").mkdir()
    (out / "asset.code" / "app.py").write_text("def handler(event, context):\n    return event\n")
    for name in ("asset.shared.zip", "asset.local.zip"):
        with zipfile.ZipFile(out / name, "w") as archive:
            archive.writestr("python/marker.py", f"NAME = {name!r}\n")
    shared_stack = {
        "Resources": {"SharedLayer": layer("shared.zip")},
        "Outputs": {
            "SharedLayerArn": {
                "Value": {"Ref": "SharedLayer"},
                "Export": {"Name": {"Fn::Join": ["", [{"Ref": "AWS::StackName"}, "-LayerArn"]]}},
            }
        },
    }
    app_stack = {
        "Parameters": {"BootstrapVersion": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/b"}},
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role"},
            "Table": {"Type": "AWS::DynamoDB::Table"},
            "LocalLayer": layer("local.zip"),
            "Api": function(
                "code.zip",
                MemorySize=512,
                Timeout=7,
                Architectures=["x86_64"],
                Layers=[{"Fn::ImportValue": "Shared-LayerArn"}, {"Ref": "LocalLayer"}],
                Environment={
                    "Variables": {
                        "PEER": {"Ref": "Worker"},
                        "PEER_ARN": {"Fn::GetAtt": ["Worker", "Arn"]},
                        "WHERE": {"Fn::Sub": "${AWS::Region}/${Worker}"},
                        "TABLE": {"Ref": "Table"},
                        "PLAIN": "x",
                    }
                },
            ),
            "Worker": function("code.zip", FunctionName="fixed-worker"),
            "Image": {"Type": "AWS::Lambda::Function",
                      "Properties": {"PackageType": "Image", "Code": {"ImageUri": "x"}}},  # fmt: skip
            "Elsewhere": function("code.zip", Layers=["arn:aws:lambda:eu-west-1:123456789012:layer:Other:3"]),
            "Unpublished": function("missing.zip"),
            "Inline": function(None, Code={"ZipFile": {"Fn::Join": ["\n", ["def handler(e, c):", "    return 1"]]}}),
        },
        "Outputs": {
            "ApiName": {"Value": {"Ref": "Api"}},
            "WorkerArn": {"Value": {"Fn::GetAtt": ["Worker", "Arn"]}},
            "ImageName": {"Value": {"Ref": "Image"}},
            "TableName": {"Value": {"Ref": "Table"}},
            "Literal": {"Value": "just text"},
        },
    }
    assets = {
        "Shared": {"shared.zip": out / "asset.shared.zip"},
        "App": {"code.zip": out / "asset.code", "local.zip": out / "asset.local.zip"},
    }
    return write_assembly(out, {"Shared": shared_stack, "App": app_stack}, assets)


def specs(assembly: Assembly) -> dict[str, FunctionSpec]:
    return {s.logical_id: s for s in assembly.functions}


def test_a_function_with_layers_from_its_own_and_another_stack(assembly_dir):
    # GIVEN a function whose layers are an import from another stack and one of its own stack
    # WHEN the assembly is read
    api = specs(Assembly(assembly_dir, region="eu-west-1"))["Api"]
    # THEN the function runs, with its code asset and both layer assets in the template's order
    assert api.skip_reason is None
    assert api.code.path == assembly_dir / "asset.code" and api.code.packaging == "zip"
    assert [asset.path.name for asset in api.layers] == ["asset.shared.zip", "asset.local.zip"]
    assert (api.name, api.runtime, api.handler) == ("App-Api", "python3.13", "app.handler")
    assert (api.memory_mb, api.timeout_s, api.architecture) == (512, 7, "x86_64")
    # AND its environment names the other function by local name and ARN; what has no local value is named
    assert api.environment == {
        "PEER": "fixed-worker",
        "PEER_ARN": f"arn:aws:lambda:eu-west-1:{LOCAL_ACCOUNT}:function:fixed-worker",
        "WHERE": "eu-west-1/fixed-worker",
        "PLAIN": "x",
    }
    assert api.unresolved_environment == {"TABLE": "Ref Table (AWS::DynamoDB::Table): no local value"}


def test_a_function_without_layers_and_defaults(assembly_dir):
    worker = specs(Assembly(assembly_dir))["Worker"]
    assert worker.skip_reason is None and worker.layers == [] and worker.environment == {}
    # Lambda's defaults when the template says nothing
    assert (worker.memory_mb, worker.timeout_s, worker.architecture) == (128, 3, "x86_64")


def test_inline_code_is_kept(assembly_dir):
    inline = specs(Assembly(assembly_dir))["Inline"]
    assert inline.skip_reason is None and inline.code is None
    assert inline.inline_code == "def handler(e, c):\n    return 1"


@pytest.mark.parametrize(
    "logical_id,reason",
    [
        ("Image", "a container image: not run locally"),
        ("Elsewhere", "layer arn:aws:lambda:eu-west-1:123456789012:layer:Other:3 is not in this assembly"),
        ("Unpublished", "its code (S3 key missing.zip) is not an asset of this assembly"),
    ],
)
def test_what_cannot_run_locally_says_why(assembly_dir, logical_id, reason):
    assert reason in specs(Assembly(assembly_dir))[logical_id].skip_reason


def test_outputs_in_cdk_deploy_shape_with_local_names(assembly_dir):
    assembly = Assembly(assembly_dir, region="eu-west-1")
    running = {s.name for s in assembly.functions if s.skip_reason is None}
    outputs, left_out = assembly.outputs(running)
    assert outputs == {
        "Shared": {"SharedLayerArn": f"arn:aws:lambda:eu-west-1:{LOCAL_ACCOUNT}:layer:Shared-SharedLayer:1"},
        "App": {
            "ApiName": "App-Api",
            "WorkerArn": f"arn:aws:lambda:eu-west-1:{LOCAL_ACCOUNT}:function:fixed-worker",
            "Literal": "just text",
        },
    }
    assert set(left_out) == {"App"}
    assert "App-Image is not run locally: a container image" in left_out["App"]["ImageName"]
    assert "Ref Table (AWS::DynamoDB::Table)" in left_out["App"]["TableName"]


def test_an_output_naming_a_function_that_did_not_start_is_left_out(assembly_dir):
    outputs, left_out = Assembly(assembly_dir).outputs(running=set())
    assert "ApiName" not in outputs.get("App", {})
    assert "App-Api is not run locally" in left_out["App"]["ApiName"]


def test_an_import_no_stack_exports_is_named(tmp_path):
    stack = {"Resources": {"Fn": function("code.zip", Layers=[{"Fn::ImportValue": "Nobody-Exports-This"}])}}
    (tmp_path / "asset.code").mkdir()
    assembly = Assembly(write_assembly(tmp_path, {"S": stack}, {"S": {"code.zip": tmp_path / "asset.code"}}))
    assert "Fn::ImportValue Nobody-Exports-This: no stack of the assembly exports it" in assembly.functions[0].skip_reason


def test_a_missing_assembly_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="synthesize the app first"):
        Assembly(tmp_path)


@pytest.mark.parametrize(
    "runtime,architecture,emulator,reason",
    [
        ("java21", "x86_64", None, "runtime java21 is not supported locally"),
        ("provided.al2023", "riscv64", None, "riscv64 code cannot run on this"),
        ("python3.13", "other", Path("/qemu"), "python3.13 on other: only OS-only runtimes run under emulation"),
    ],
)
def test_runtimes_and_architectures_it_cannot_run_are_reported(tmp_path, monkeypatch, runtime, architecture,
                                                                emulator, reason):  # fmt: skip
    monkeypatch.setattr("tools.local_cloud.find_emulator", lambda arch: emulator)
    spec = FunctionSpec("S", "Fn", "S-Fn", runtime=runtime, architecture=architecture)
    LocalFunction(spec, tmp_path, "us-east-1").prepare()
    assert reason in spec.skip_reason


@pytest.mark.parametrize(
    "identifier,expected",
    [
        ("my-fn", ("my-fn", None)),
        ("my-fn:$LATEST", ("my-fn", "$LATEST")),
        ("arn:aws:lambda:us-east-1:000000000000:function:my-fn", ("my-fn", None)),
        ("arn:aws:lambda:us-east-1:000000000000:function:my-fn:live", ("my-fn", "live")),
        ("000000000000:function:my-fn", ("my-fn", None)),
    ],
)
def test_function_identifiers_as_the_invoke_api_takes_them(identifier, expected):
    assert function_name_and_qualifier(identifier) == expected


def test_layers_unpack_in_order_with_modes_and_later_files_win(tmp_path):
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    with zipfile.ZipFile(first, "w") as archive:
        executable = zipfile.ZipInfo("extensions/tool")
        executable.external_attr = 0o100755 << 16
        archive.writestr(executable, "#!/bin/sh\n")
        archive.writestr("shared.txt", "first")
    with zipfile.ZipFile(second, "w") as archive:
        archive.writestr("shared.txt", "second")
    opt = tmp_path / "opt"
    for path in (first, second):
        unpack_asset(Asset(path, "file"), opt)
    assert (opt / "extensions/tool").stat().st_mode & 0o777 == 0o755
    assert (opt / "shared.txt").read_text() == "second"


def test_a_zip_entry_outside_the_directory_is_refused(tmp_path):
    archive_path = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("../escaped.txt", "x")
    with pytest.raises(ValueError, match="outside the directory"):
        unpack_asset(Asset(archive_path, "file"), tmp_path / "opt")
    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize(
    "payload,expected",
    [
        (b'{"ok": 1}', (b'{"ok": 1}', None)),
        (b'"Task timed out after 1.00 seconds"', (b'"Task timed out after 1.00 seconds"', None)),  # a function's text
        (b"null", (b"null", None)),
        (b'{"errorMessage": "boom", "errorType": "ValueError", "requestId": "r", "stackTrace": []}',
         (b'{"errorMessage": "boom", "errorType": "ValueError", "requestId": "r", "stackTrace": []}', "Unhandled")),
        # an answer that merely mentions errors is an answer
        (b'{"errorMessage": "none", "errorType": "none", "result": 3}',
         (b'{"errorMessage": "none", "errorType": "none", "result": 3}', None)),
        (b"Task timed out after 3.00 seconds",
         (b'{"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 3.00 seconds"}', "Unhandled")),
    ],
)
def test_function_errors_are_marked_as_lambda_marks_them(payload, expected):
    assert function_error(payload) == expected


def test_an_outputs_file_it_did_not_write_is_never_taken_over(assembly_dir, tmp_path):
    # GIVEN an outputs file already there (a deployment's, say): the local cloud removes its own at exit
    deployed = tmp_path / "cdk-outputs.json"
    deployed.write_text('{"Stack": {"Fn": "deployed-name"}}')
    # WHEN a local cloud is asked to write there; THEN it refuses, and the file is untouched
    with pytest.raises(FileExistsError, match="remove it or choose another --outputs-file"):
        LocalCloud(assembly_dir, outputs_file=deployed)
    assert deployed.read_text() == '{"Stack": {"Fn": "deployed-name"}}'

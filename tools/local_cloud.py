"""Run the Lambda functions of a synthesized CDK app (the cloud assembly in ``cdk.out``) locally, as they would be
deployed, behind one endpoint that speaks the Lambda Invoke API.

    python -m tools.local_cloud --synth      # synthesize app.py into cdk.out, then start every function
    make up                                  # the same

For every ``AWS::Lambda::Function`` with zip code in the assembly's templates it unpacks the code asset as the task
root and the layers' assets into /opt, in the template's order; sets the environment from the template (resolving
``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub``, ``Fn::Select``, ``Fn::Split`` and ``Fn::ImportValue`` on values that
have a local meaning, and naming what it cannot resolve); and starts the runtime the template names under AWS's
Lambda Runtime Interface Emulator (RIE), through ``tools.local_lambda`` (a private mount namespace with a temporary
directory bound over /opt; the machine's /opt is never written). ``POST /2015-03-31/functions/<name>/invocations``
on the endpoint reaches a function by its local name, so boto3's Lambda client with ``endpoint_url`` calls it as it
calls AWS. The outputs file has the shape of ``cdk deploy --outputs-file``; an output naming a function holds its
local name. What is not run (container images, runtimes without a local runtime interface client, an architecture
this machine cannot execute) is reported with the reason, never skipped silently. Ctrl-C (or SIGTERM) stops every
environment and removes what was unpacked and the files written.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import platform
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tools.local_lambda import ROOT, LocalLambda, free_port

DEFAULT_REGION = "us-east-1"
#: The account of every local ARN (the convention of local AWS emulators: it never exists on AWS).
LOCAL_ACCOUNT = "000000000000"
#: Lambda's limits, kept locally so a function that works here is not too big for Lambda.
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024  # code and layers together
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # request and response of a synchronous invoke
#: Callers the endpoint serves at once; more are answered 429, as Lambda throttles.
MAX_CONCURRENT_REQUESTS = 64
#: Environment variables that name a port on 127.0.0.1 inside the execution environment. On Lambda each environment
#: has its own network; here they share the machine's, so each environment gets free ports of its own for these.
LOOPBACK_PORT_VARIABLES = ("INVOCATION_HISTORY_EXTENSION_HTTP_PORT", "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY_PORT")
#: Runtimes whose start-up applies AWS_LAMBDA_EXEC_WRAPPER (OS-only runtimes, ``provided.*``, do not).
MANAGED_RUNTIME_PREFIXES = ("python", "nodejs", "java", "dotnet", "ruby")
#: Lambda's architecture names by ELF machine number, and this machine's.
ELF_MACHINES = {62: "x86_64", 183: "arm64"}
HOST_ARCHITECTURE = {"aarch64": "arm64", "amd64": "x86_64"}.get(platform.machine(), platform.machine())
#: User-mode emulators (qemu-user-static) that run a binary of another architecture.
QEMU = {"arm64": "qemu-aarch64-static", "x86_64": "qemu-x86_64-static"}
#: AWS's Node.js runtime interface client (npm aws-lambda-ric, a native build): `make node-ric` installs it here.
NODE_RUNTIME_INTERFACE_CLIENT = ROOT / ".local/node-ric/node_modules/.bin/aws-lambda-ric"


# -- template resolution -------------------------------------------------------------------------------------------
class Unresolvable(Exception):
    """A template value with no local meaning; the message says which and why."""


#: What ``Ref: AWS::NoValue`` resolves to: dropped from the list or object that holds it.
NO_VALUE = object()


@dataclass
class Resolver:
    """Resolves the intrinsic functions of one stack's template on the values known locally.

    ``refs`` maps logical ids to what ``Ref`` gives (a function's local name); ``attributes`` maps (logical id,
    attribute) to what ``Fn::GetAtt`` gives; ``exports`` resolves an export name for ``Fn::ImportValue``.
    """

    stack_name: str
    template: dict
    refs: dict[str, Any] = field(default_factory=dict)
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    exports: Callable[[str], Any] | None = None
    region: str = DEFAULT_REGION
    account: str = LOCAL_ACCOUNT

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in map(self.resolve, value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            intrinsic = {
                "Ref": self._ref,
                "Fn::GetAtt": self._get_att,
                "Fn::Join": self._join,
                "Fn::Sub": self._sub,
                "Fn::Select": self._select,
                "Fn::Split": self._split,
                "Fn::ImportValue": self._import_value,
            }.get(key)
            if intrinsic is not None:
                return intrinsic(argument)
            if key.startswith("Fn::") or key == "Condition":
                raise Unresolvable(f"{key} is not resolved locally")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def resolve_string(self, value: Any) -> str:
        resolved = self.resolve(value)
        if isinstance(resolved, bool) or not isinstance(resolved, (str, int, float)):
            raise Unresolvable(f"{json.dumps(value)} is not a string")
        return str(resolved)

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name.startswith("AWS::"):
            raise Unresolvable(f"Ref {name}: no local value")
        if name in self.refs:
            return self.refs[name]
        parameter = self.template.get("Parameters", {}).get(name)
        if parameter is not None:
            kind = parameter.get("Type", "String")
            if kind.startswith("AWS::SSM::Parameter::Value"):
                raise Unresolvable(f"Ref {name}: an SSM parameter ({parameter.get('Default', '?')}), not read locally")
            if "Default" not in parameter:
                raise Unresolvable(f"Ref {name}: a parameter without a default")
            default = parameter["Default"]
            return default.split(",") if kind.startswith("List") or kind == "CommaDelimitedList" else default
        resource = self.template.get("Resources", {}).get(name)
        if resource is None:
            raise Unresolvable(f"Ref {name}: no such resource or parameter in {self.stack_name}")
        raise Unresolvable(f"Ref {name} ({resource.get('Type')}): no local value")

    def _get_att(self, argument: Any) -> Any:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        if not (isinstance(argument, list) and len(argument) == 2):
            raise Unresolvable(f"Fn::GetAtt {json.dumps(argument)}: not [logicalId, attribute]")
        logical_id, attribute = argument[0], self.resolve_string(argument[1])
        if (logical_id, attribute) in self.attributes:
            return self.attributes[(logical_id, attribute)]
        resource = self.template.get("Resources", {}).get(logical_id)
        kind = resource.get("Type") if resource else f"no such resource in {self.stack_name}"
        raise Unresolvable(f"Fn::GetAtt {logical_id}.{attribute} ({kind}): no local value")

    def _join(self, argument: Any) -> str:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise Unresolvable(f"Fn::Join {json.dumps(argument)}: not [delimiter, list]")
        delimiter, items = argument
        items = self.resolve(items)
        if not isinstance(items, list):
            raise Unresolvable(f"Fn::Join: {json.dumps(argument[1])} is not a list")
        return self.resolve_string(delimiter).join(self.resolve_string(item) for item in items)

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list) and len(argument) == 2:
            text, variables = argument
            variables = {name: self.resolve_string(value) for name, value in variables.items()}
        else:
            text, variables = argument, {}
        if not isinstance(text, str):
            raise Unresolvable(f"Fn::Sub {json.dumps(argument)}: not a string")

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} is the text ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return variables[name]
            if "." in name and not name.startswith("AWS::"):
                return self.resolve_string({"Fn::GetAtt": name.split(".", 1)})
            return self.resolve_string({"Ref": name})

        return re.sub(r"\$\{([^}]*)\}", replace, text)

    def _select(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise Unresolvable(f"Fn::Select {json.dumps(argument)}: not [index, list]")
        index, items = int(self.resolve_string(argument[0])), self.resolve(argument[1])
        if not isinstance(items, list) or not 0 <= index < len(items):
            raise Unresolvable(f"Fn::Select: index {index} is not in {json.dumps(items)}")
        return items[index]

    def _split(self, argument: Any) -> list[str]:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise Unresolvable(f"Fn::Split {json.dumps(argument)}: not [delimiter, string]")
        return self.resolve_string(argument[1]).split(self.resolve_string(argument[0]))

    def _import_value(self, argument: Any) -> Any:
        name = self.resolve_string(argument)
        if self.exports is None:
            raise Unresolvable(f"Fn::ImportValue {name}: no other stacks")
        return self.exports(name)


# -- the cloud assembly --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Asset:
    """A file asset of the assembly: a zip file (packaging ``file``) or a directory CDK zips when it publishes."""

    path: Path
    packaging: str


@dataclass
class FunctionSpec:
    """One ``AWS::Lambda::Function`` as the template describes it, resolved for a local run."""

    stack: str
    logical_id: str
    name: str
    runtime: str | None = None
    handler: str | None = None
    architecture: str = "x86_64"
    memory_mb: int = 128
    timeout_s: int = 3
    code: Asset | None = None
    #: Inline code (``Code.ZipFile``): Lambda writes it to index.<extension> in the task root.
    inline_code: str | None = None
    layers: list[Asset] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    #: Variables of the template that have no local value, with the reason; they are left unset.
    unresolved_environment: dict[str, str] = field(default_factory=dict)
    #: Why the function is not run locally (None: it runs).
    skip_reason: str | None = None
    notes: list[str] = field(default_factory=list)


def local_layer_arn(stack: str, logical_id: str, region: str) -> str:
    """What ``Ref`` of a layer version gives locally: an ARN naming the layer by its stack and logical id."""
    return f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT}:layer:{stack}-{logical_id}:1"


class Assembly:
    """The stacks of a cloud assembly (``manifest.json``), their templates, and file assets by S3 object key."""

    def __init__(self, directory: Path, region: str = DEFAULT_REGION) -> None:
        self.directory = Path(directory)
        self.region = region
        manifest_file = self.directory / "manifest.json"
        if not manifest_file.is_file():
            raise FileNotFoundError(f"{manifest_file} not found: synthesize the app first (make synth, or --synth)")
        manifest = json.loads(manifest_file.read_text())
        self.templates: dict[str, dict] = {}
        self.assets_by_key: dict[str, Asset] = {}
        self.notes: list[str] = []
        for artifact_id, artifact in manifest.get("artifacts", {}).items():
            properties = artifact.get("properties", {})
            if artifact.get("type") == "aws:cloudformation:stack":
                stack_name = properties.get("stackName", artifact_id)
                self.templates[stack_name] = json.loads((self.directory / properties["templateFile"]).read_text())
            elif artifact.get("type") == "cdk:asset-manifest":
                assets = json.loads((self.directory / properties["file"]).read_text())
                for entry in assets.get("files", {}).values():
                    asset = Asset(self.directory / entry["source"]["path"], entry["source"].get("packaging", "file"))
                    for destination in entry.get("destinations", {}).values():
                        self.assets_by_key[destination["objectKey"]] = asset
            elif artifact.get("type") == "cdk:cloud-assembly":
                self.notes.append(f"nested assembly {artifact_id} (a CDK Stage) is not read: run local_cloud on it")
        self._resolvers: dict[str, Resolver] = {}
        self._exports: dict[str, tuple[str, Any]] | None = None
        self.functions: list[FunctionSpec] = self._functions()

    # Ref and GetAtt values each resource has locally: a function's local name and ARN, a layer's local ARN.
    def _known_values(self, stack: str) -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
        refs: dict[str, Any] = {}
        attributes: dict[tuple[str, str], Any] = {}
        for logical_id, resource in self.templates[stack].get("Resources", {}).items():
            if resource.get("Type") == "AWS::Lambda::Function":
                name = self._function_name(stack, logical_id, resource)
                refs[logical_id] = name
                attributes[(logical_id, "Arn")] = f"arn:aws:lambda:{self.region}:{LOCAL_ACCOUNT}:function:{name}"
            elif resource.get("Type") == "AWS::Lambda::LayerVersion":
                refs[logical_id] = local_layer_arn(stack, logical_id, self.region)
        return refs, attributes

    def _function_name(self, stack: str, logical_id: str, resource: dict) -> str:
        explicit = resource.get("Properties", {}).get("FunctionName")
        if isinstance(explicit, str):
            return explicit
        return f"{stack}-{logical_id}"  # on AWS: <stack>-<logical id>-<random suffix>

    def resolver(self, stack: str) -> Resolver:
        if stack not in self._resolvers:
            refs, attributes = self._known_values(stack)
            self._resolvers[stack] = Resolver(
                stack, self.templates[stack], refs, attributes, exports=self.export, region=self.region
            )
        return self._resolvers[stack]

    def export(self, name: str) -> Any:
        """The value of the stack output exported as ``name`` (for ``Fn::ImportValue``)."""
        if self._exports is None:
            self._exports = {}
            for stack, template in self.templates.items():
                for output in template.get("Outputs", {}).values():
                    if "Export" in output:
                        try:
                            export_name = self.resolver(stack).resolve_string(output["Export"].get("Name"))
                        except Unresolvable:
                            continue
                        self._exports[export_name] = (stack, output["Value"])
        if name not in self._exports:
            raise Unresolvable(f"Fn::ImportValue {name}: no stack of the assembly exports it")
        stack, value = self._exports[name]
        return self.resolver(stack).resolve(value)

    def layer_assets(self) -> dict[str, Asset]:
        """Every layer version of the assembly with its content asset, by local ARN."""
        layers = {}
        for stack, template in self.templates.items():
            for logical_id, resource in template.get("Resources", {}).items():
                if resource.get("Type") == "AWS::Lambda::LayerVersion":
                    key = resource.get("Properties", {}).get("Content", {}).get("S3Key")
                    if isinstance(key, str) and key in self.assets_by_key:
                        layers[local_layer_arn(stack, logical_id, self.region)] = self.assets_by_key[key]
        return layers

    def _functions(self) -> list[FunctionSpec]:
        layers = self.layer_assets()
        functions = []
        for stack, template in self.templates.items():
            for logical_id, resource in template.get("Resources", {}).items():
                if resource.get("Type") == "AWS::Lambda::Function":
                    functions.append(self._function(stack, logical_id, resource.get("Properties", {}), layers))
        return functions

    def _function(self, stack: str, logical_id: str, properties: dict, layers: dict[str, Asset]) -> FunctionSpec:
        resolver = self.resolver(stack)
        spec = FunctionSpec(stack, logical_id, resolver.refs[logical_id])

        def skip(reason: str) -> FunctionSpec:
            spec.skip_reason = reason
            return spec

        try:
            spec.runtime = resolver.resolve(properties.get("Runtime"))
            spec.handler = resolver.resolve(properties.get("Handler"))
            spec.architecture = (resolver.resolve(properties.get("Architectures")) or ["x86_64"])[0]
            spec.memory_mb = int(resolver.resolve(properties.get("MemorySize", 128)))
            spec.timeout_s = int(resolver.resolve(properties.get("Timeout", 3)))
        except Unresolvable as e:
            return skip(f"its runtime settings: {e}")
        variables = properties.get("Environment", {}).get("Variables", {})
        for variable, value in variables.items():
            try:
                spec.environment[variable] = resolver.resolve_string(value)
            except Unresolvable as e:
                spec.unresolved_environment[variable] = str(e)
        code = properties.get("Code", {})
        if properties.get("PackageType") == "Image" or "ImageUri" in code:
            return skip("a container image: not run locally (build the image and run it under the RIE with Docker)")
        if "ZipFile" in code:
            spec.inline_code = resolver.resolve_string(code["ZipFile"])
        else:
            try:
                key = resolver.resolve_string(code.get("S3Key"))
            except Unresolvable as e:
                return skip(f"its code: {e}")
            if key not in self.assets_by_key:
                return skip(f"its code (S3 key {key}) is not an asset of this assembly")
            spec.code = self.assets_by_key[key]
        for layer in properties.get("Layers", []):
            try:
                arn = resolver.resolve_string(layer)
            except Unresolvable as e:
                return skip(f"a layer: {e}")
            if arn not in layers:
                return skip(f"layer {arn} is not in this assembly (a layer published elsewhere is not fetched)")
            spec.layers.append(layers[arn])
        return spec

    def outputs(self, running: set[str]) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
        """The stack outputs in ``cdk deploy --outputs-file`` shape, and those left out with the reason. An output
        naming a function that is not running is left out."""
        names = {spec.name: spec for spec in self.functions}
        outputs: dict[str, dict[str, str]] = {}
        left_out: dict[str, dict[str, str]] = {}
        for stack, template in self.templates.items():
            for output_id, output in template.get("Outputs", {}).items():
                try:
                    value = self.resolver(stack).resolve_string(output.get("Value"))
                except Unresolvable as e:
                    left_out.setdefault(stack, {})[output_id] = str(e)
                    continue
                if value in names and value not in running:
                    reason = names[value].skip_reason or "it did not start"
                    left_out.setdefault(stack, {})[output_id] = f"function {value} is not run locally: {reason}"
                    continue
                outputs.setdefault(stack, {})[output_id] = value
        return outputs, left_out


# -- unpacking -----------------------------------------------------------------------------------------------------
def unpack_asset(asset: Asset, destination: Path) -> None:
    """Put an asset's files under ``destination`` as Lambda would: a later layer's file replaces an earlier one's."""
    destination.mkdir(parents=True, exist_ok=True)
    if asset.path.is_dir():
        shutil.copytree(asset.path, destination, symlinks=True, dirs_exist_ok=True)
        return
    with zipfile.ZipFile(asset.path) as archive:
        members = archive.infolist()
        if sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
            raise ValueError(f"{asset.path} unzips to more than Lambda's {MAX_UNZIPPED_BYTES >> 20} MB")
        root = destination.resolve()
        for member in members:
            target = (destination / member.filename).resolve()
            if not target.is_relative_to(root):
                raise ValueError(f"{asset.path}: {member.filename!r} would be written outside the directory")
            mode = member.external_attr >> 16
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.exists():
                target.unlink()
            if stat.S_ISLNK(mode):
                target.symlink_to(archive.read(member).decode())
                continue
            with archive.open(member) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
            target.chmod(stat.S_IMODE(mode) or 0o644)


def elf_architecture(path: Path) -> str | None:
    """The Lambda architecture an ELF executable is built for, or None (not ELF, or another machine)."""
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return ELF_MACHINES.get(int.from_bytes(header[18:20], "little" if header[5] == 1 else "big"))


def node_runtime_interface_client() -> Path | None:
    found = NODE_RUNTIME_INTERFACE_CLIENT if NODE_RUNTIME_INTERFACE_CLIENT.exists() else shutil.which("aws-lambda-ric")
    return Path(found) if found else None


def node_major_version() -> str | None:
    try:
        version = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return version.strip().removeprefix("v").split(".")[0] or None


def find_emulator(architecture: str) -> Path | None:
    """qemu-user-static for ``architecture``, from PATH or the project's .local/bin (``make qemu-user``)."""
    name = QEMU.get(architecture)
    if name is None:
        return None
    found = shutil.which(name) or shutil.which(name, path=str(ROOT / ".local/bin"))
    return Path(found) if found else None


# -- one function's execution environment --------------------------------------------------------------------------
class LocalFunction:
    """A function of the assembly in an execution environment of its own (a ``LocalLambda``)."""

    def __init__(self, spec: FunctionSpec, workdir: Path, region: str) -> None:
        self.spec = spec
        self.workdir = workdir
        self.region = region
        self.lambda_: LocalLambda | None = None
        self.emulator: Path | None = None
        #: One invoke at a time: the RIE serves one and crashes on a concurrent one.
        self.lock = threading.Lock()

    def prepare(self) -> None:
        """Decide how this function runs here; set spec.skip_reason when it cannot."""
        spec = self.spec
        if spec.skip_reason:
            return
        if spec.architecture != HOST_ARCHITECTURE:
            self.emulator = find_emulator(spec.architecture)
            if self.emulator is None:
                spec.skip_reason = (
                    f"{spec.architecture} code cannot run on this {HOST_ARCHITECTURE} machine without "
                    f"{QEMU.get(spec.architecture, 'an emulator')} (make qemu-user installs it into .local/bin)"
                )
                return
            spec.notes.append(f"{spec.architecture} on this {HOST_ARCHITECTURE} machine, through {self.emulator.name}")
        runtime = spec.runtime or ""
        if runtime.startswith("nodejs") and node_runtime_interface_client() is None:
            spec.skip_reason = (
                f"{runtime} is not supported locally: the Node.js runtime interface client (npm aws-lambda-ric) "
                "is not installed (`make node-ric` builds it into .local/node-ric, or put aws-lambda-ric on PATH)"
            )
        elif not (runtime.startswith(("provided", "python", "nodejs"))):
            spec.skip_reason = f"runtime {runtime or '(none)'} is not supported locally (provided.*, python*, nodejs*)"
        elif runtime.startswith(("python", "nodejs")) and self.emulator is not None:
            spec.skip_reason = f"{runtime} on {spec.architecture}: only OS-only runtimes run under emulation here"

    def start(self) -> None:
        spec = self.spec
        task = self.workdir / "task"
        task.mkdir(parents=True)
        if spec.code is not None:
            unpack_asset(spec.code, task)
        elif spec.inline_code is not None:
            suffix = "js" if (spec.runtime or "").startswith("nodejs") else "py"
            (task / f"index.{suffix}").write_text(spec.inline_code)
        environment = self._environment(task)
        self.lambda_ = LocalLambda(self._bootstrap(task, environment), env=environment, extensions={}, task_root=task)
        opt = self.lambda_.opt
        for layer in spec.layers:
            unpack_asset(layer, opt)
        if self.emulator is not None:
            self._emulate_extensions(opt)
        self.lambda_.start()

    def _environment(self, task: Path) -> dict[str, str]:
        spec = self.spec
        environment = {
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_s),  # the RIE ends an invoke after this
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "LAMBDA_TASK_ROOT": str(task),
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
        }
        runtime = spec.runtime or ""
        if runtime.startswith(MANAGED_RUNTIME_PREFIXES):
            environment["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{runtime}"
        if spec.handler:
            environment["_HANDLER"] = spec.handler
        if runtime.startswith("python"):
            # Where Lambda's Python runtime finds layer packages (python/ and python/lib/pythonX.Y/site-packages).
            version = runtime.removeprefix("python")
            environment["PYTHONPATH"] = f"{task}:/opt/python/lib/python{version}/site-packages:/opt/python"
            local_version = f"{sys.version_info.major}.{sys.version_info.minor}"
            if version != local_version:
                spec.notes.append(f"{runtime} runs on this machine's Python {local_version} ({sys.executable})")
        elif runtime.startswith("nodejs"):
            # Where Lambda's Node.js runtime finds layer modules.
            major = runtime.removeprefix("nodejs").split(".")[0]
            environment["NODE_PATH"] = f"/opt/nodejs/node{major}/node_modules:/opt/nodejs/node_modules:{task}"
            local_major = node_major_version()
            if local_major != major:
                spec.notes.append(f"{runtime} runs on this machine's Node.js {local_major}")
        environment.update(spec.environment)
        for variable in LOOPBACK_PORT_VARIABLES:
            if variable in environment:
                port = str(free_port())
                spec.notes.append(
                    f"{variable}={environment[variable]} -> {port} (local environments share this machine's network)"
                )
                environment[variable] = port
        for variable, reason in spec.unresolved_environment.items():
            spec.notes.append(f"{variable} left unset: {reason}")
        return environment

    def _bootstrap(self, task: Path, environment: dict[str, str]) -> list[str]:
        """The command the RIE starts: what Lambda's runtime for spec.runtime would run."""
        spec = self.spec
        runtime = spec.runtime or ""
        if runtime.startswith("provided"):
            if "AWS_LAMBDA_EXEC_WRAPPER" in environment:
                spec.notes.append("AWS_LAMBDA_EXEC_WRAPPER is not applied: OS-only runtimes ignore it (as on Lambda)")
            bootstrap = task / "bootstrap"
            if not bootstrap.exists():
                bootstrap = Path("/opt/bootstrap")  # Lambda's fallback: a layer's bootstrap
            if self.emulator is not None and elf_architecture(bootstrap) == spec.architecture:
                return [str(self.emulator), str(bootstrap)]
            return [str(bootstrap)]
        if runtime.startswith("python"):
            command = [sys.executable, "-m", "awslambdaric", spec.handler or ""]
        else:  # nodejs: prepare() checked that the runtime interface client is installed
            command = [str(node_runtime_interface_client()), spec.handler or ""]
        wrapper = environment.get("AWS_LAMBDA_EXEC_WRAPPER")
        if wrapper:
            # As Lambda's managed runtimes do: the wrapper runs with the runtime's command as its arguments.
            spec.notes.append(f"runtime started through AWS_LAMBDA_EXEC_WRAPPER={wrapper}")
            command = [wrapper, *command]
        return command

    def _emulate_extensions(self, opt: Path) -> None:
        """Each extension of another architecture is started through the emulator: its binary is kept outside /opt
        and /opt/extensions/<name> (the name Lambda registers) becomes a launcher that runs it under qemu."""
        extensions = opt / "extensions"
        if not extensions.is_dir():
            return
        binaries = self.workdir / "extension-binaries"
        binaries.mkdir()
        for extension in sorted(extensions.iterdir()):
            if elf_architecture(extension) != self.spec.architecture:
                continue
            binary = binaries / extension.name
            shutil.move(extension, binary)
            extension.write_text(f'#!/bin/sh\nexec "{self.emulator}" "{binary}" "$@"\n')
            extension.chmod(0o755)

    def stop(self) -> None:
        if self.lambda_ is not None:
            self.lambda_.cleanup()


# -- the Invoke API endpoint ---------------------------------------------------------------------------------------
#: The keys of the error answer a runtime interface client posts to /runtime/invocation/<id>/error.
_ERROR_KEYS = {"errorMessage", "errorType", "requestId", "stackTrace", "cause"}


def function_error(payload: bytes) -> tuple[bytes, str | None]:
    """The answer of an invoke as Lambda gives it, and its X-Amz-Function-Error (None: no error).

    The RIE marks no function error: it answers 200 with the runtime's error object, or, after a timeout, with the
    text "Task timed out after N seconds" (not JSON, so no function's answer: runtimes answer JSON). The timeout is
    given Lambda's shape; an error object is recognised by its keys (a function returning exactly such an object
    would be taken for an error: the one guess made here).
    """
    if payload.startswith(b"Task timed out after"):
        return json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": payload.decode()}).encode(), "Unhandled"
    try:
        answer = json.loads(payload)
    except ValueError:
        return payload, None
    if isinstance(answer, dict) and {"errorMessage", "errorType"} <= answer.keys() <= _ERROR_KEYS:
        return payload, "Unhandled"
    return payload, None


_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
_ARN = re.compile(r"^(?:arn:[^:]+:lambda:[^:]*:)?(?:\d{12}:)?(?:function:)?([^:]+)(?::([^:]+))?$")


def function_name_and_qualifier(identifier: str) -> tuple[str, str | None]:
    """A function name, ARN or partial ARN, as the Invoke API takes it: (name, qualifier or None)."""
    match = _ARN.match(identifier)
    if not match:
        return identifier, None
    return match.group(1), match.group(2)


class InvokeEndpoint(http.server.ThreadingHTTPServer):
    """``POST /2015-03-31/functions/<name>/invocations`` to the environment of the function of that local name."""

    daemon_threads = True

    def __init__(self, functions: dict[str, LocalFunction], port: int = 0) -> None:
        self.functions = functions
        self.slots = threading.BoundedSemaphore(MAX_CONCURRENT_REQUESTS)
        super().__init__(("127.0.0.1", port), _InvokeHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _InvokeHandler(http.server.BaseHTTPRequestHandler):
    server: InvokeEndpoint
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # one line per invoke would drown the environments' own logs

    def do_POST(self) -> None:
        if not self.server.slots.acquire(blocking=False):
            return self._error(429, "TooManyRequestsException", "Rate exceeded: too many callers at once")
        try:
            self._invoke()
        finally:
            self.server.slots.release()

    def do_GET(self) -> None:
        self._error(404, "ResourceNotFoundException", "the local endpoint serves only Invoke (POST)")

    def _invoke(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        match = _INVOKE_PATH.match(url.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD_BYTES:
            self.close_connection = True
            return self._error(413, "RequestTooLargeException", f"request payload exceeds {MAX_PAYLOAD_BYTES} bytes")
        body = self.rfile.read(length)
        if not match:
            return self._error(404, "ResourceNotFoundException", f"no such API: POST {url.path}")
        name, qualifier = function_name_and_qualifier(urllib.parse.unquote(match.group(1)))
        qualifier = urllib.parse.parse_qs(url.query).get("Qualifier", [qualifier])[0]
        function = self.server.functions.get(name)
        if function is None or function.lambda_ is None:
            return self._error(404, "ResourceNotFoundException", f"Function not found: {name} (local functions: "
                               f"{', '.join(sorted(self.server.functions)) or 'none'})")  # fmt: skip
        if qualifier not in (None, "$LATEST"):
            return self._error(404, "ResourceNotFoundException", f"{name}:{qualifier}: local functions have only $LATEST")
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            return self._reply(204, b"", {})
        if invocation_type == "Event":
            # Queued behind the function's other invokes; each waiting event holds one of the endpoint's slots.
            if not self.server.slots.acquire(blocking=False):
                return self._error(429, "TooManyRequestsException", "Rate exceeded: too many events waiting")

            def deliver() -> None:
                try:
                    self._forward(function, body)
                finally:
                    self.server.slots.release()

            threading.Thread(target=deliver, daemon=True).start()
            return self._reply(202, b"", {})
        status, payload, headers = self._forward(function, body)
        self._reply(status, payload, headers)

    def _forward(self, function: LocalFunction, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        timeout = function.spec.timeout_s + 10
        if not function.lock.acquire(timeout=timeout):
            return self._error_parts(429, "TooManyRequestsException", f"{function.spec.name} stayed busy {timeout} s")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", function.lambda_.port, timeout=timeout)
            try:
                headers = {"Content-Type": "application/json"}
                if "X-Amz-Client-Context" in self.headers:
                    headers["X-Amz-Client-Context"] = self.headers["X-Amz-Client-Context"]
                connection.request("POST", "/2015-03-31/functions/function/invocations", body, headers)
                response = connection.getresponse()
                payload = response.read(MAX_PAYLOAD_BYTES + 1)
                kept = {k: v for k, v in response.getheaders() if k.lower().startswith("x-amz-")}
                kept["X-Amz-Executed-Version"] = "$LATEST"
                if response.status == 200:
                    payload, error = function_error(payload)
                    if error:
                        kept["X-Amz-Function-Error"] = error
                return response.status, payload, kept
            finally:
                connection.close()
        except OSError as e:
            return self._error_parts(502, "ServiceException", f"{function.spec.name}'s environment did not answer: {e}"
                                     f" (its log: {function.lambda_.log_path})")  # fmt: skip
        finally:
            function.lock.release()

    @staticmethod
    def _error_parts(status: int, error_type: str, message: str) -> tuple[int, bytes, dict[str, str]]:
        body = json.dumps({"Type": "User", "message": message}).encode()
        return status, body, {"x-amzn-ErrorType": error_type}

    def _error(self, status: int, error_type: str, message: str) -> None:
        self._reply(*self._error_parts(status, error_type, message))

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


# -- the whole local cloud -----------------------------------------------------------------------------------------
class LocalCloud:
    """Every function of an assembly, started; the endpoint; the outputs file. ``with LocalCloud(...) as cloud:``"""

    def __init__(self, assembly: Path, outputs_file: Path | None = None, port: int = 0,
                 region: str = DEFAULT_REGION) -> None:  # fmt: skip
        if outputs_file is not None and outputs_file.exists():
            # Removed at exit: never take over a file this run did not write (a deployment's outputs, say).
            raise FileExistsError(
                f"{outputs_file} exists: another local cloud uses it, one that was killed left it, or it holds "
                "a deployment's outputs; remove it or choose another --outputs-file"
            )
        self.assembly = Assembly(assembly, region)
        self.outputs_file = outputs_file
        self.port = port
        self.region = region
        self.workdir = Path(tempfile.mkdtemp(prefix="local-cloud-"))
        self.functions: dict[str, LocalFunction] = {}
        self.endpoint: InvokeEndpoint | None = None
        self.outputs: dict = {}
        self.left_out: dict = {}

    def start(self) -> "LocalCloud":
        try:
            for index, spec in enumerate(self.assembly.functions):
                function = LocalFunction(spec, self.workdir / f"{index}-{spec.logical_id}", self.region)
                function.prepare()
                if spec.skip_reason is None:
                    self.functions[spec.name] = function  # before start(): stop() cleans up a half-started one
                    function.start()
            self.endpoint = InvokeEndpoint(self.functions, self.port)
            threading.Thread(target=self.endpoint.serve_forever, name="invoke-endpoint", daemon=True).start()
            self.outputs, self.left_out = self.assembly.outputs(set(self.functions))
            if self.outputs_file is not None:
                partial = self.outputs_file.with_name(self.outputs_file.name + ".partial")
                partial.write_text(json.dumps(self.outputs, indent=2) + "\n")
                partial.replace(self.outputs_file)  # readers never see half a file
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the endpoint and every environment (SHUTDOWN to their extensions, in parallel); remove every file."""
        if self.endpoint is not None:
            self.endpoint.shutdown()
            self.endpoint.server_close()
        with ThreadPoolExecutor(max_workers=max(1, len(self.functions))) as pool:
            list(pool.map(LocalFunction.stop, self.functions.values()))
        if self.outputs_file is not None:
            self.outputs_file.unlink(missing_ok=True)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "LocalCloud":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def status(self) -> dict:
        """What runs, how, and what does not, with reasons (also what ``--status-file`` holds)."""
        running = {
            name: {"stack": f.spec.stack, "logicalId": f.spec.logical_id, "runtime": f.spec.runtime,
                   "architecture": f.spec.architecture, "memoryMB": f.spec.memory_mb, "timeoutS": f.spec.timeout_s,
                   "notes": f.spec.notes, "log": str(f.lambda_.log_path)}
            for name, f in self.functions.items()
        }  # fmt: skip
        skipped = {s.name: s.skip_reason for s in self.assembly.functions if s.skip_reason}
        return {
            "endpoint": self.endpoint.url if self.endpoint else None,
            "region": self.region,
            "outputsFile": str(self.outputs_file) if self.outputs_file else None,
            "functions": running,
            "skipped": skipped,
            "outputsLeftOut": self.left_out,
            "notes": self.assembly.notes,
        }

    def describe(self) -> str:
        status = self.status()
        lines = [f"Lambda Invoke API on {status['endpoint']} (boto3: endpoint_url=..., any credentials, "
                 f"region {self.region})"]  # fmt: skip
        for name, info in status["functions"].items():
            lines.append(f"  running  {name}  {info['runtime']} {info['architecture']} "
                         f"{info['memoryMB']} MB {info['timeoutS']} s  log {info['log']}")  # fmt: skip
            lines += [f"           {note}" for note in info["notes"]]
        for name, reason in status["skipped"].items():
            lines.append(f"  skipped  {name}: {reason}")
        for stack, outputs in status["outputsLeftOut"].items():
            for output, reason in outputs.items():
                lines.append(f"  output {stack}.{output} left out: {reason}")
        lines += [f"  note: {note}" for note in status["notes"]]
        if self.outputs_file is not None:
            lines.append(f"outputs: {self.outputs_file}")
        return "\n".join(lines)


def synthesize(outdir: Path, app_dir: Path = ROOT) -> None:
    """Run the CDK app as the CDK CLI does (cdk.json's ``app`` command, with ``CDK_OUTDIR`` and the context of
    cdk.json and cdk.context.json in ``CDK_CONTEXT_JSON``), without the CLI."""
    config = json.loads((app_dir / "cdk.json").read_text())
    context = dict(config.get("context", {}))
    if (app_dir / "cdk.context.json").is_file():
        context.update(json.loads((app_dir / "cdk.context.json").read_text()))
    environment = {**os.environ, "CDK_OUTDIR": str(outdir), "CDK_CONTEXT_JSON": json.dumps(context)}
    subprocess.run(config["app"], shell=True, cwd=app_dir, env=environment, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.local_cloud",
        description="Run every Lambda function of a synthesized CDK app locally, as deployed, behind one local "
        "endpoint of the Lambda Invoke API; Ctrl-C stops them all.",
    )
    parser.add_argument("--assembly", type=Path, default=ROOT / "cdk.out", help="the cloud assembly (default: cdk.out)")
    parser.add_argument("--synth", action="store_true", help="synthesize the app (cdk.json's app) into it first")
    parser.add_argument("--port", type=int, default=0, help="port of the endpoint on 127.0.0.1 (default: any free one)")
    parser.add_argument("--outputs-file", type=Path, default=ROOT / "cdk-local-outputs.json",
                        help="stack outputs in `cdk deploy --outputs-file` shape, functions by local name; removed "
                        "on exit (default: cdk-local-outputs.json)")  # fmt: skip
    parser.add_argument("--status-file", type=Path, help="write what runs and what does not (JSON) here once started")
    parser.add_argument("--region", default=DEFAULT_REGION, help=f"AWS_REGION of the functions (default: {DEFAULT_REGION})")
    args = parser.parse_args(argv)

    stopping = threading.Event()
    # SIGTERM stops as Ctrl-C does (SIGINT is already KeyboardInterrupt while starting).
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        started = time.monotonic()
        if args.synth:
            synthesize(args.assembly)
            print(f"synthesized into {args.assembly} in {time.monotonic() - started:.1f} s", flush=True)
            started = time.monotonic()
        with LocalCloud(args.assembly, args.outputs_file, args.port, args.region) as cloud:
            signal.signal(signal.SIGINT, lambda *_: stopping.set())
            print(cloud.describe(), flush=True)
            print(f"started in {time.monotonic() - started:.1f} s; Ctrl-C stops everything", flush=True)
            if args.status_file is not None:
                partial = args.status_file.with_name(args.status_file.name + ".partial")
                partial.write_text(json.dumps(cloud.status(), indent=2) + "\n")
                partial.replace(args.status_file)
            try:
                while not stopping.wait(1.0):  # a timed wait lets the signal handlers run
                    pass
            finally:
                if args.status_file is not None:
                    args.status_file.unlink(missing_ok=True)
            print("stopping...", flush=True)
    except KeyboardInterrupt:
        return 130  # interrupted before it was up
    except (OSError, RuntimeError, ValueError, subprocess.CalledProcessError) as error:
        print(f"local_cloud: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

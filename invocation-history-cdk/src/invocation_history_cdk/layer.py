"""The ``InvocationHistoryLayer`` construct: the Invocation History extension as a Lambda layer for one architecture."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import jsii
from aws_cdk import Annotations, AssetHashType, RemovalPolicy, Stack, Token
from aws_cdk import aws_lambda as lambda_
from constructs import Construct, IValidation

from .build import (
    _ARCH_NAMES,
    DEFAULT_DOCKER_IMAGE,
    DEFAULT_SOURCE_DIR,
    PACKAGE_VERSION,
    build_layer_zip,
    extension_version,
    packaged_layer_zip,
)
from .export import grant_export
from .settings import ENV_EXEC_WRAPPER, ENV_EXPORT_S3_PREFIX, WRAPPER_PATH, ExtensionSettings


def is_os_only_runtime(runtime: lambda_.Runtime) -> bool:
    """True for ``provided``, ``provided.al2`` and ``provided.al2023``: runtimes that do not apply exec wrappers."""
    return runtime.name == "provided" or runtime.name.startswith("provided.")


#: The attribute a function gets when the extension is attached to it: the layer (so it is attached once).
_ATTACHED = "_invocation_history_layer"
#: The ids of the layers ``InvocationHistoryLayer.of`` makes, one per architecture in a stack (part of the contract:
#: a new id would replace the layer).
SHARED_LAYER_IDS = {"arm64": "InvocationHistoryLayerArm64", "x86_64": "InvocationHistoryLayerX8664"}


class InvocationHistoryLayer(lambda_.LayerVersion):
    """The Invocation History extension as a layer for one architecture, usable with any runtime.

    Example::

        layer = InvocationHistoryLayer(self, "History", architecture=lambda_.Architecture.ARM_64)
        layer.add_function(my_function, max_records=1000)
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        architecture: Optional[lambda_.Architecture] = None,
        code: Optional[lambda_.Code] = None,
        source_dir: Optional[os.PathLike | str] = None,
        cache_dir: Optional[os.PathLike | str] = None,
        docker_image: str = DEFAULT_DOCKER_IMAGE,
        layer_version_name: Optional[str] = None,
        removal_policy: Optional[RemovalPolicy] = None,
    ) -> None:
        """
        :param architecture: the one architecture the layer's binary runs on. Default: ``Architecture.ARM_64``.
        :param code: a prebuilt layer zip (e.g. ``Code.from_asset("dist/invocation-history-extension-arm64.zip")``
            from ``make layer``). Default: the zip packaged in this package's wheel (``make dist``), else the
            construct builds ``source_dir`` itself (local Rust, else Docker).
        :param source_dir: the extension's crate with ``build-layer.sh``, built by the construct (local Rust, else
            Docker) even when the wheel carries a zip. Default: the packaged zip; without one (an editable install of
            this repository, or one built from source without ``make dist``), ``extension_src/`` of the repository.
        :param cache_dir: where built zips are kept, named by source hash and architecture (a local build keeps
            cargo's work in ``source_dir/target``, as ``make`` does, or in ``cache_dir/cargo-target`` when the source
            is read-only, unless ``CARGO_TARGET_DIR`` is set). Default: ``build/layer-cache`` beside ``source_dir``.
        :param docker_image: the Rust image used when no suitable local toolchain is found. Default: ``rust:1.95.0``.
        :param layer_version_name: Default: a name CloudFormation generates.
        :param removal_policy: what happens to old layer versions on update or delete. Default: ``RETAIN``, as
            ``LayerVersion`` does, so functions still using an old version keep working.
        """
        architecture = architecture or lambda_.Architecture.ARM_64
        if architecture.name not in _ARCH_NAMES:
            raise ValueError(
                f"InvocationHistoryLayer '{id}': architecture={architecture.name!r} is not supported: "
                "pass Architecture.ARM_64 or Architecture.X86_64"
            )
        packaged = packaged_layer_zip(architecture.name) if code is None and source_dir is None else None
        if packaged is not None:
            # Published under the hash of its bytes (CDK's default): the zip is reproducible, so the same release of
            # the package gives the same template on every machine.
            code = lambda_.Code.from_asset(str(packaged))
        source_dir = Path(source_dir) if source_dir is not None else DEFAULT_SOURCE_DIR
        if code is None:
            missing = [name for name in ("Cargo.toml", "build-layer.sh") if not (source_dir / name).is_file()]
            if missing and source_dir == DEFAULT_SOURCE_DIR:
                raise ValueError(
                    f"InvocationHistoryLayer '{id}': this installation of invocation-history-cdk carries no prebuilt "
                    f"layer zip for {architecture.name} (it was built from source, e.g. by pip install git+...): "
                    "install the wheel that `make dist` builds, pass source_dir= the extension's crate (extension_src/ "
                    "of a checkout; needs Rust or Docker), or a prebuilt zip as code="
                )
            if missing:
                raise ValueError(
                    f"InvocationHistoryLayer '{id}': source_dir={str(source_dir)!r} has no {' or '.join(missing)}: "
                    "pass the extension's crate (extension_src/ of this repository), or a prebuilt zip as code="
                )
            if not isinstance(docker_image, str) or not docker_image or any(c.isspace() for c in docker_image):
                raise ValueError(
                    f"InvocationHistoryLayer '{id}': docker_image={docker_image!r} is not an image reference: "
                    f"pass one like {DEFAULT_DOCKER_IMAGE!r}, or omit it for that default"
                )
            zip_path, asset_hash = build_layer_zip(
                architecture.name,
                source_dir=source_dir,
                cache_dir=Path(cache_dir) if cache_dir is not None else None,
                docker_image=docker_image,
            )
            # The hash names the source and recipe, not the bytes: the template is the same on every machine, and
            # the bytes are the same for the same Rust release (reproducible build).
            code = lambda_.Code.from_asset(
                str(zip_path), asset_hash=asset_hash, asset_hash_type=AssetHashType.CUSTOM
            )
        # The crate's version when its source is at hand, else the package's (the wheel's zips are built from the
        # crate of the same version: tests/package checks the two agree).
        version = extension_version(source_dir)
        self.extension_version = PACKAGE_VERSION if version == "unknown" else version
        super().__init__(
            scope,
            id,
            code=code,
            # compatible_runtimes is omitted on purpose: the extension is a static binary that works with every
            # runtime, including OS-only ones; listing runtimes would only block newer ones.
            compatible_architectures=[architecture],
            description=f"Invocation History extension {self.extension_version} for {architecture.name}, any runtime",
            license="MIT",
            layer_version_name=layer_version_name,
            removal_policy=removal_policy,
        )
        self.architecture = architecture

    @classmethod
    def of(cls, scope: Construct, architecture: lambda_.Architecture) -> "InvocationHistoryLayer":
        """The layer for ``architecture`` in ``scope``'s stack, made with the defaults on first need (id
        ``InvocationHistoryLayerArm64`` or ``InvocationHistoryLayerX8664``): one layer per architecture and stack,
        whatever number of functions use it."""
        stack = Stack.of(scope)
        if architecture.name not in SHARED_LAYER_IDS:
            raise ValueError(
                f"InvocationHistoryLayer: architecture={architecture.name!r} is not supported: "
                "pass Architecture.ARM_64 or Architecture.X86_64"
            )
        id = SHARED_LAYER_IDS[architecture.name]
        existing = stack.node.try_find_child(id)
        if existing is None:
            return cls(stack, id, architecture=architecture)
        if not isinstance(existing, InvocationHistoryLayer):
            raise ValueError(
                f"stack '{stack.node.id}' has a construct '{id}' that is not an InvocationHistoryLayer: "
                "rename it, the id is the shared layer's"
            )
        return existing

    def add_function(
        self, fn: lambda_.IFunction, settings: Optional[ExtensionSettings] = None, **setting_values: Any
    ) -> None:
        """Attach this layer to ``fn`` and set the extension's environment variables on it.

        ``settings`` is an ``ExtensionSettings``; its fields may be given as keywords instead
        (``add_function(fn, max_records=1000)``). Settings left out keep the extension's defaults; the port is always
        written.

        With ``export_bucket`` the extension exports the history (and logs, ``export_logs``) to that bucket under
        ``export_prefix`` (default ``invocation-history/``, always written), and ``fn``'s role is granted
        ``s3:PutObject`` on ``<bucket>/<prefix>*`` only, plus ``kms:GenerateDataKey`` on the bucket's KMS key when
        it has one (``grant_export``). The bucket must be in the function's region (the extension writes to S3 in
        ``AWS_REGION``).

        With ``runtime_proxy=True`` the extension runs the Runtime API proxy (port ``runtime_proxy_port``, default
        9009), and the runtime must reach Lambda through it:

        - managed runtimes (Python, Node.js, Java, .NET, Ruby): ``AWS_LAMBDA_EXEC_WRAPPER`` is set to
          ``/opt/invocation-history-wrapper``, which Lambda's start-up script runs with the runtime as arguments;
        - OS-only runtimes (``provided.al2023``, ``provided.al2``) do not apply exec wrappers, so the wrapper is not
          set: the function's own ``bootstrap`` must run ``exec /opt/invocation-history-wrapper <real program>``
          (see ``functions/go/proxy-bootstrap``) or point ``AWS_LAMBDA_RUNTIME_API`` at the proxy itself. Without
          that the proxy is idle and the history works as without it.

        :raises ValueError: when ``fn`` runs on another architecture, is a container image, or is not a ``Function``
            defined in this app; when a setting is out of range; when the proxy port is the local API's port; when
            ``fn`` already has another ``AWS_LAMBDA_EXEC_WRAPPER`` (Lambda runs only one); or when the export bucket
            is not an ``s3.IBucket`` or is in another region.
        """
        settings = _settings_of(settings, setting_values)
        name = fn.node.id
        if not isinstance(fn, lambda_.Function):
            raise ValueError(
                f"InvocationHistoryLayer '{self.node.id}' cannot change function '{name}' "
                f"({type(fn).__name__}): pass a lambda_.Function defined in this app, or add the layer ARN and "
                "extension_environment() to it yourself"
            )
        if fn.runtime.name == lambda_.Runtime.FROM_IMAGE.name:
            raise ValueError(
                f"InvocationHistoryLayer '{self.node.id}' cannot be added to function '{name}': it is a container "
                "image, and images cannot take layers: build the extension into the image instead, as "
                "examples/my-app/Dockerfile does, and set extension_environment() on the function"
            )
        if fn.architecture.name != self.architecture.name:
            fix = "ARM_64" if fn.architecture.name == "arm64" else "X86_64"
            raise ValueError(
                f"InvocationHistoryLayer '{self.node.id}' is built for {self.architecture.name} but function "
                f"'{name}' runs on {fn.architecture.name}: create a layer with architecture=Architecture.{fix}"
            )
        attached = getattr(fn, _ATTACHED, None)
        if attached is not None:
            raise ValueError(
                f"InvocationHistoryLayer '{self.node.id}' cannot be added to function '{name}': it already has the "
                f"extension from layer '{attached.node.id}': add the extension once per function"
            )
        env = settings.environment()
        export_bucket, runtime_proxy = settings.export_bucket, settings.runtime_proxy
        if export_bucket is not None:
            self._check_export_bucket(fn, export_bucket)
        if runtime_proxy and is_os_only_runtime(fn.runtime):
            Annotations.of(fn).add_info(
                f"InvocationHistoryLayer: the Runtime API proxy is on but {fn.runtime.name} does not apply exec "
                f"wrappers: the function's bootstrap must run `exec {WRAPPER_PATH} <program>`"
            )
        elif runtime_proxy:
            current = _environment_of(fn).get(ENV_EXEC_WRAPPER)
            if current is not None and current != WRAPPER_PATH:
                raise ValueError(
                    f"InvocationHistoryLayer '{self.node.id}' cannot turn the runtime proxy on for function "
                    f"'{name}': it already has {ENV_EXEC_WRAPPER}={current!r} and Lambda runs only one wrapper: "
                    f"remove it, or chain the two (end your wrapper with `exec {WRAPPER_PATH} \"$@\"`, then set "
                    "extension_environment(runtime_proxy=True) on the function and call add_function without "
                    "runtime_proxy)"
                )
            env[ENV_EXEC_WRAPPER] = WRAPPER_PATH
            fn.node.add_validation(_ExecWrapperKept(fn))
        fn.add_layers(self)
        setattr(fn, _ATTACHED, self)
        for key, value in env.items():
            fn.add_environment(key, value)
        if export_bucket is not None:
            grant_export(fn, export_bucket, env[ENV_EXPORT_S3_PREFIX])

    def _check_export_bucket(self, fn: lambda_.Function, bucket: object) -> None:
        """Raise unless ``bucket`` is one the construct can grant on, in ``fn``'s region when both are known."""
        if isinstance(bucket, str) or not hasattr(bucket, "arn_for_objects"):
            raise ValueError(
                f"InvocationHistoryLayer '{self.node.id}' needs the export bucket of function '{fn.node.id}' as an "
                f"s3.IBucket to grant s3:PutObject on it, not {bucket!r}: pass "
                "s3.Bucket.from_bucket_name(scope, id, name) for a bucket made elsewhere"
            )
        bucket_region, fn_region = bucket.env.region, Stack.of(fn).region
        if not Token.is_unresolved(bucket_region) and not Token.is_unresolved(fn_region) and bucket_region != fn_region:
            raise ValueError(
                f"InvocationHistoryLayer '{self.node.id}' cannot export function '{fn.node.id}' ({fn_region}) to a "
                f"bucket in {bucket_region}: the extension writes to S3 in the function's region: pass a bucket "
                f"in {fn_region}"
            )


def _settings_of(settings: object, setting_values: dict) -> ExtensionSettings:
    """``settings``, or an ``ExtensionSettings`` of the keyword values; not both."""
    if settings is None:
        return ExtensionSettings(**setting_values)
    if not isinstance(settings, ExtensionSettings):
        raise ValueError(
            f"settings={settings!r} is not an ExtensionSettings: pass ExtensionSettings(...), or the settings as keywords"
        )
    if setting_values:
        raise ValueError(
            f"settings and {', '.join(setting_values)} were both given: pass the settings one way, in ExtensionSettings"
        )
    return settings


@jsii.implements(IValidation)
class _ExecWrapperKept:
    """At synth: the proxy's wrapper was not replaced by a later ``add_environment`` (the proxy would sit idle)."""

    def __init__(self, fn: lambda_.Function) -> None:
        self._fn = fn

    def validate(self) -> list[str]:
        current = _environment_of(self._fn).get(ENV_EXEC_WRAPPER)
        if current == WRAPPER_PATH:
            return []
        return [
            f"function '{self._fn.node.id}' has the Invocation History runtime proxy on, but {ENV_EXEC_WRAPPER} was "
            f"changed to {current!r} after add_function: keep {WRAPPER_PATH}, or chain your wrapper to it"
        ]


def _environment_of(fn: lambda_.Function) -> dict:
    """The environment variables ``fn`` has so far (from its props and ``add_environment``).

    ``Function`` keeps them private; its L1 resource renders them on demand (not cached), so resolving its
    properties reads the current set without freezing it.
    """
    cfn = fn.node.default_child
    rendered = Stack.of(fn).resolve(cfn._cfn_properties) if isinstance(cfn, lambda_.CfnFunction) else {}
    return ((rendered or {}).get("environment") or {}).get("variables") or {}

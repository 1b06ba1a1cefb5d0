"""The ``InvocationHistoryLayer`` construct: the Invocation History extension as a Lambda layer.

The layer is built from ``extension_src/`` by ``extension_src/build-layer.sh`` (the same script, flags and bytes as
``make layer``): with the local Rust toolchain when its ``rustc`` is at least the crate's ``rust-version`` and has the
architecture's musl target installed, otherwise inside the official Rust image through Docker. Built zips are cached by
a hash of the extension's source, so an app with several layers (or several synths) builds each architecture once.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
import unicodedata
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

import jsii
from aws_cdk import Annotations, AssetHashType, RemovalPolicy, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct, IValidation

ENV_PREFIX = "INVOCATION_HISTORY_EXTENSION_"
ENV_HTTP_PORT = ENV_PREFIX + "HTTP_PORT"
ENV_MAX_RECORDS = ENV_PREFIX + "MAX_RECORDS"
ENV_MAX_WAIT_MS = ENV_PREFIX + "MAX_WAIT_MS"
ENV_LOG_LEVEL = ENV_PREFIX + "LOG_LEVEL"
ENV_TELEMETRY = ENV_PREFIX + "TELEMETRY"
ENV_METRICS = ENV_PREFIX + "METRICS"
ENV_METRICS_NAMESPACE = ENV_PREFIX + "METRICS_NAMESPACE"
ENV_RUNTIME_PROXY = ENV_PREFIX + "RUNTIME_PROXY"
ENV_RUNTIME_PROXY_PORT = ENV_PREFIX + "RUNTIME_PROXY_PORT"
#: Set by Lambda's managed runtimes' start-up scripts: the program that starts the runtime (not applied by OS-only
#: runtimes, ``provided.*``, nor by the RIE).
ENV_EXEC_WRAPPER = "AWS_LAMBDA_EXEC_WRAPPER"
#: The exec wrapper shipped at the root of the layer zip: points the runtime's AWS_LAMBDA_RUNTIME_API at the proxy.
WRAPPER_PATH = "/opt/invocation-history-wrapper"
DEFAULT_HTTP_PORT = 1203
DEFAULT_RUNTIME_PROXY_PORT = 9009
#: The CloudWatch namespace of the extension's environment start/stop metrics (EMF), unless configured otherwise.
DEFAULT_METRICS_NAMESPACE = "InvocationHistory"
_NAMESPACE_CHARACTERS = re.compile(r"^[A-Za-z0-9.\-_/#: ]{1,255}$")
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")

# The S3 export (docs/configuration.md, "S3 export"): off unless a bucket is named.
ENV_EXPORT_S3_BUCKET = ENV_PREFIX + "EXPORT_S3_BUCKET"
ENV_EXPORT_S3_PREFIX = ENV_PREFIX + "EXPORT_S3_PREFIX"
ENV_EXPORT_MAX_INVOCATIONS = ENV_PREFIX + "EXPORT_MAX_INVOCATIONS"
ENV_EXPORT_MAX_BYTES = ENV_PREFIX + "EXPORT_MAX_BYTES"
ENV_EXPORT_MAX_AGE_MS = ENV_PREFIX + "EXPORT_MAX_AGE_MS"
ENV_EXPORT_LOGS = ENV_PREFIX + "EXPORT_LOGS"
#: The extension's own default key prefix; the construct always writes the prefix so its grant and the extension agree.
DEFAULT_EXPORT_PREFIX = "invocation-history/"
MAX_EXPORT_PREFIX_BYTES = 512
#: The log streams the export can carry, in the order they are written to the variable.
EXPORT_LOG_STREAMS = ("platform", "function", "extension")
#: Each export limit's variable, and its least, most and default value as the extension has them
#: (extension_src/src/config.rs): a batch is due at the first limit reached.
EXPORT_LIMITS = {
    "export_max_invocations": (ENV_EXPORT_MAX_INVOCATIONS, 1, 100_000, 1000),
    "export_max_bytes": (ENV_EXPORT_MAX_BYTES, 1024, 64 << 20, 4 << 20),
    "export_max_age_ms": (ENV_EXPORT_MAX_AGE_MS, 1000, 3_600_000, 60_000),
}
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

#: The official Rust image used when no suitable local toolchain is found (its release decides the bytes, as locally).
DEFAULT_DOCKER_IMAGE = "rust:1.95.0"  # the release the published zips are built with: same release, same bytes

_REPO_ROOT = Path(__file__).resolve().parent.parent
#: Default source of the extension: ``extension_src/`` beside the ``stacks/`` package.
DEFAULT_SOURCE_DIR = _REPO_ROOT / "extension_src"

#: The Rust target each layer architecture is built for (as in build-layer.sh): static musl binaries.
RUST_TARGETS = {"x86_64": "x86_64-unknown-linux-musl", "arm64": "aarch64-unknown-linux-musl"}
_ARCH_NAMES = tuple(RUST_TARGETS)
# Bumped when the recipe (not the source) changes, so cached zips and asset hashes follow it.
_RECIPE = "build-layer.sh/3"
# The one place a build command is executed (tests replace it to check the command without running Docker).
_run = subprocess.run


def check_namespace(prop: str, namespace: object) -> None:
    """Raise unless ``namespace`` is a CloudWatch namespace the extension accepts (its own rule, ``src/config.rs``)."""
    if not isinstance(namespace, str) or not _NAMESPACE_CHARACTERS.match(namespace) or namespace.startswith("AWS/"):
        raise ValueError(
            f"{prop}={namespace!r} is not a CloudWatch namespace: pass 1 to 255 letters, digits or . - _ / # : and "
            f"spaces, not starting with AWS/, or omit it for {DEFAULT_METRICS_NAMESPACE}"
        )


class LayerBuildError(RuntimeError):
    """The extension could not be built for the layer (no suitable Rust toolchain, no Docker, or the build failed)."""


def extension_environment(
    *,
    port: Optional[int] = None,
    max_records: Optional[int] = None,
    max_wait_ms: Optional[int] = None,
    log_level: Optional[str] = None,
    telemetry: Optional[bool] = None,
    metrics: Optional[bool] = None,
    metrics_namespace: Optional[str] = None,
    runtime_proxy: bool = False,
    runtime_proxy_port: Optional[int] = None,
    export_bucket: Union[str, s3.IBucket, None] = None,
    export_prefix: Optional[str] = None,
    export_max_invocations: Optional[int] = None,
    export_max_bytes: Optional[int] = None,
    export_max_age_ms: Optional[int] = None,
    export_logs: Union[str, Iterable[str], None] = None,
) -> dict[str, str]:
    """The extension's environment variables for these settings, validated.

    Also for functions that carry the extension themselves (container images, see
    ``functions/container/Dockerfile``), which cannot take a layer.

    :param port: HTTP port of the extension's local API on 127.0.0.1. Default: 1203, the extension's default; the
        variable is always written so the function code and the extension read the same value.
    :param max_records: invocations kept in memory, oldest dropped first. Default: not set, the extension keeps 10000.
    :param max_wait_ms: longest time a request naming its own request id may wait for its record. Default: not set,
        the extension waits at most 2000 ms.
    :param log_level: the extension's log level (TRACE, DEBUG, INFO, WARN, ERROR, FATAL). Default: not set, the
        extension follows ``AWS_LAMBDA_LOG_LEVEL`` and then INFO.
    :param telemetry: subscribe to the Telemetry API to fill in each record's status, durations and memory.
        Default: not set, the extension subscribes (on).
    :param metrics: write the environment start/stop metrics (CloudWatch Embedded Metric Format on stdout).
        Default: not set, the extension writes them (on).
    :param metrics_namespace: CloudWatch namespace of those metrics (1-255 of letters, digits and ``.-_/#:`` or space,
        not ``AWS/...``). Default: not set, ``InvocationHistory``.
    :param runtime_proxy: run the Runtime API proxy, which records each invocation's outcome from the wire. This only
        sets the extension's variables; the runtime must also be started through ``/opt/invocation-history-wrapper``
        (``InvocationHistoryLayer.add_function`` does that for managed runtimes). Default: off, nothing is written.
    :param runtime_proxy_port: port of the proxy on 127.0.0.1, only with ``runtime_proxy=True``. Default: 9009,
        written whenever the proxy is on so the template says where it listens.
    :param export_bucket: the S3 bucket (or its name) the history is exported to. This only sets the variables: the
        function's role also needs ``s3:PutObject`` on ``<bucket>/<prefix>*`` (``grant_export`` gives exactly that;
        ``InvocationHistoryLayer.add_function`` calls it). Default: not set, no export.
    :param export_prefix: the object keys' prefix, only with ``export_bucket``: up to 512 bytes, not starting with
        ``/``, no control characters, no ``*`` or ``?``. Default: ``invocation-history/``, written whenever the export
        is on so the grant and the extension name the same prefix.
    :param export_max_invocations: a batch is due at this many invocations (1-100000). Default: not set, 1000.
    :param export_max_bytes: ... or at this many bytes of NDJSON before compression (1024-67108864). Default: not
        set, 4194304 (4 MiB).
    :param export_max_age_ms: ... or when its oldest line is this old (1000-3600000 ms). Default: not set, 60000.
    :param export_logs: the log streams exported with the invocations: some of ``platform``, ``function`` and
        ``extension`` (a list, or the variable's own comma-separated text), or ``[]``/``"none"`` for none; the logs
        come from the Telemetry API, so not with ``telemetry=False``. Default: not set, ``function,extension``.
    """
    port = DEFAULT_HTTP_PORT if port is None else port
    if not _is_port(port):
        raise ValueError(f"port={port!r} is not a TCP port: pass an integer from 1 to 65535, or omit it for 1203")
    env = {ENV_HTTP_PORT: str(port)}
    # The ranges the extension accepts (extension_src/src/config.rs): outside them it would fall back to its default.
    for name, value, variable, least, most in (
        ("max_records", max_records, ENV_MAX_RECORDS, 1, 1_000_000),
        ("max_wait_ms", max_wait_ms, ENV_MAX_WAIT_MS, 0, 30_000),
    ):
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
            raise ValueError(
                f"{name}={value!r} is invalid: pass an integer from {least} to {most}, or omit it for the default"
            )
        env[variable] = str(value)
    if log_level is not None:
        if not isinstance(log_level, str) or log_level.upper() not in LOG_LEVELS:
            raise ValueError(
                f"log_level={log_level!r} is not a Lambda log level: pass one of {', '.join(LOG_LEVELS)}, "
                "or omit it to follow AWS_LAMBDA_LOG_LEVEL"
            )
        env[ENV_LOG_LEVEL] = log_level.upper()
    for name, value, variable in (("telemetry", telemetry, ENV_TELEMETRY), ("metrics", metrics, ENV_METRICS)):
        if value is None:
            continue
        if not isinstance(value, bool):
            raise ValueError(f"{name}={value!r} is not a switch: pass True or False, or omit it to keep it on")
        env[variable] = "on" if value else "off"
    if metrics_namespace is not None:
        check_namespace("metrics_namespace", metrics_namespace)
        if metrics is False:
            raise ValueError(
                f"metrics_namespace={metrics_namespace!r} has no effect with metrics=False: "
                "omit metrics_namespace, or turn metrics on"
            )
        env[ENV_METRICS_NAMESPACE] = metrics_namespace
    env.update(export_environment(
        export_bucket, prefix=export_prefix, max_invocations=export_max_invocations, max_bytes=export_max_bytes,
        max_age_ms=export_max_age_ms, logs=export_logs, telemetry=telemetry,
    ))
    if not isinstance(runtime_proxy, bool):
        raise ValueError(f"runtime_proxy={runtime_proxy!r} is not a switch: pass True or False (the default)")
    if not runtime_proxy:
        if runtime_proxy_port is not None:
            raise ValueError(
                f"runtime_proxy_port={runtime_proxy_port!r} has no effect without the proxy: "
                "pass runtime_proxy=True as well, or omit runtime_proxy_port"
            )
        return env
    proxy_port = DEFAULT_RUNTIME_PROXY_PORT if runtime_proxy_port is None else runtime_proxy_port
    if not _is_port(proxy_port):
        raise ValueError(
            f"runtime_proxy_port={proxy_port!r} is not a TCP port: pass an integer from 1 to 65535, "
            f"or omit it for {DEFAULT_RUNTIME_PROXY_PORT}"
        )
    if proxy_port == port:
        raise ValueError(
            f"runtime_proxy_port={proxy_port!r} is also the port of the local API (port={port}): the two listeners "
            f"need different ports: pass a runtime_proxy_port other than {port}"
        )
    env[ENV_RUNTIME_PROXY] = "on"
    env[ENV_RUNTIME_PROXY_PORT] = str(proxy_port)
    return env


def export_environment(
    bucket: Union[str, s3.IBucket, None],
    *,
    prefix: Optional[str] = None,
    max_invocations: Optional[int] = None,
    max_bytes: Optional[int] = None,
    max_age_ms: Optional[int] = None,
    logs: Union[str, Iterable[str], None] = None,
    telemetry: Optional[bool] = None,
) -> dict[str, str]:
    """The S3 export's variables, validated with the extension's own rules (``extension_src/src/config.rs``), which
    would otherwise fall back to a default at run time; errors name the ``export_*`` argument. Empty without a bucket.
    The arguments and their defaults are ``extension_environment``'s ``export_*``."""
    settings = {"export_prefix": prefix, "export_max_invocations": max_invocations, "export_max_bytes": max_bytes,
                "export_max_age_ms": max_age_ms, "export_logs": logs}
    if bucket is None:
        for name, value in settings.items():
            if value is not None:
                raise ValueError(
                    f"{name}={value!r} has no effect without a bucket: pass export_bucket as well, or omit {name}"
                )
        return {}
    bucket_name = bucket if isinstance(bucket, str) else getattr(bucket, "bucket_name", None)
    if not isinstance(bucket_name, str):
        raise ValueError(
            f"export_bucket={bucket!r} is not a bucket: pass an s3.IBucket (s3.Bucket.from_bucket_name(...) for one "
            "made elsewhere) or a bucket name"
        )
    if not Token.is_unresolved(bucket_name) and (not _BUCKET_NAME.match(bucket_name) or ".." in bucket_name):
        raise ValueError(
            f"export_bucket={bucket_name!r} is not an S3 bucket name: pass 3 to 63 lowercase letters, digits, '.' "
            "and '-', a letter or digit first and last"
        )
    prefix = DEFAULT_EXPORT_PREFIX if prefix is None else prefix
    check_export_prefix(prefix)
    env = {ENV_EXPORT_S3_BUCKET: bucket_name, ENV_EXPORT_S3_PREFIX: prefix}
    for name, (variable, least, most, default) in EXPORT_LIMITS.items():
        value = settings[name]
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
            raise ValueError(
                f"{name}={value!r} is invalid: pass an integer from {least} to {most}, or omit it for {default}"
            )
        env[variable] = str(value)
    if logs is not None:
        streams = _export_log_streams(logs)
        if streams and telemetry is False:
            raise ValueError(
                f"export_logs={logs!r} has no effect with telemetry=False: the logs come from the Telemetry API: "
                "turn telemetry on, or pass export_logs=[]"
            )
        env[ENV_EXPORT_LOGS] = ",".join(streams) or "none"
    return env


def check_export_prefix(prefix: object) -> None:
    """Raise unless ``prefix`` is a key prefix the extension takes as it is and that IAM reads literally."""
    if not isinstance(prefix, str):
        raise ValueError(f"export_prefix={prefix!r} is not a key prefix: pass a string like {DEFAULT_EXPORT_PREFIX!r}")
    if Token.is_unresolved(prefix):
        return
    problem = None
    if not prefix.strip():
        problem = "the extension reads an empty prefix as unset"  # and would write under its default
    elif prefix != prefix.strip():
        problem = "the extension trims surrounding spaces, so its keys would not match the grant"
    elif len(prefix.encode()) > MAX_EXPORT_PREFIX_BYTES:
        problem = f"it is longer than {MAX_EXPORT_PREFIX_BYTES} bytes"
    elif prefix.startswith("/"):
        problem = "it starts with '/'"
    elif any(unicodedata.category(c) == "Cc" for c in prefix):
        problem = "it has a control character"
    elif "*" in prefix or "?" in prefix:
        problem = "IAM reads '*' and '?' as wildcards, so the grant would cover more than the prefix"
    if problem:
        raise ValueError(
            f"export_prefix={prefix!r} is not a usable key prefix ({problem}): pass up to {MAX_EXPORT_PREFIX_BYTES} "
            f"bytes without a leading '/', control characters, '*' or '?', or omit it for {DEFAULT_EXPORT_PREFIX!r}"
        )


def _export_log_streams(logs: object) -> list[str]:
    """``logs`` as the variable's list of streams (in ``EXPORT_LOG_STREAMS`` order); [] for none."""
    fix = (f"pass some of {', '.join(EXPORT_LOG_STREAMS)} (a list, or comma-separated), [] or 'none' for no logs, "
           "or omit it for function,extension")
    if isinstance(logs, str):
        names = [] if logs == "none" else [name.strip() for name in logs.split(",")]
    elif isinstance(logs, (list, tuple, set, frozenset)):
        names = list(logs)
    else:
        raise ValueError(f"export_logs={logs!r} is not a list of log streams: {fix}")
    unknown = [name for name in names if name not in EXPORT_LOG_STREAMS]
    if unknown:
        raise ValueError(f"export_logs={logs!r} names {', '.join(map(repr, unknown))}, not a log stream: {fix}")
    return [name for name in EXPORT_LOG_STREAMS if name in names]


def grant_export(grantee: iam.IGrantable, bucket: s3.IBucket, prefix: str = DEFAULT_EXPORT_PREFIX) -> iam.Grant:
    """Allow ``grantee`` what the export needs: ``s3:PutObject`` on ``<bucket>/<prefix>*`` and nothing else in S3 (the
    extension writes new objects only: no multipart upload, no ACL, no read); with a bucket encrypted by a customer
    managed KMS key, also ``kms:GenerateDataKey`` on that key, only through S3 in the bucket's region.

    Only the grantee's policy changes: a bucket or key of another account must allow the role in its own policy.
    """
    check_export_prefix(prefix)
    grant = iam.Grant.add_to_principal(
        grantee=grantee, actions=["s3:PutObject"], resource_arns=[bucket.arn_for_objects(prefix + "*")]
    )
    key = bucket.encryption_key
    if key is not None:
        # S3 asks KMS for a data key for each object it encrypts; nothing else calls the key for the export.
        grant = grant.combine(iam.Grant.add_to_principal(
            grantee=grantee, actions=["kms:GenerateDataKey"], resource_arns=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{bucket.env.region}.amazonaws.com"}},
        ))
    return grant


def _is_port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def is_os_only_runtime(runtime: lambda_.Runtime) -> bool:
    """True for ``provided``, ``provided.al2`` and ``provided.al2023``: runtimes that do not apply exec wrappers."""
    return runtime.name == "provided" or runtime.name.startswith("provided.")


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
            from ``make layer``). Default: the construct builds ``source_dir`` itself (local Rust, else Docker).
        :param source_dir: the extension's crate with ``build-layer.sh``. Default: ``extension_src/`` of this
            repository.
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
        source_dir = Path(source_dir) if source_dir is not None else DEFAULT_SOURCE_DIR
        if code is None:
            missing = [name for name in ("Cargo.toml", "build-layer.sh") if not (source_dir / name).is_file()]
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
        self.extension_version = extension_version(source_dir)
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

    def add_function(
        self,
        fn: lambda_.IFunction,
        *,
        port: Optional[int] = None,
        max_records: Optional[int] = None,
        max_wait_ms: Optional[int] = None,
        log_level: Optional[str] = None,
        telemetry: Optional[bool] = None,
        metrics: Optional[bool] = None,
        metrics_namespace: Optional[str] = None,
        runtime_proxy: bool = False,
        runtime_proxy_port: Optional[int] = None,
        export_bucket: Optional[s3.IBucket] = None,
        export_prefix: Optional[str] = None,
        export_max_invocations: Optional[int] = None,
        export_max_bytes: Optional[int] = None,
        export_max_age_ms: Optional[int] = None,
        export_logs: Union[str, Iterable[str], None] = None,
    ) -> None:
        """Attach this layer to ``fn`` and set the extension's environment variables on it.

        Settings left out keep the extension's defaults (see ``extension_environment``); the port is always written.

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
                "functions/container/Dockerfile does, and set extension_environment() on the function"
            )
        if fn.architecture.name != self.architecture.name:
            fix = "ARM_64" if fn.architecture.name == "arm64" else "X86_64"
            raise ValueError(
                f"InvocationHistoryLayer '{self.node.id}' is built for {self.architecture.name} but function "
                f"'{name}' runs on {fn.architecture.name}: create a layer with architecture=Architecture.{fix}"
            )
        env = extension_environment(
            port=port, max_records=max_records, max_wait_ms=max_wait_ms, log_level=log_level,
            telemetry=telemetry, metrics=metrics, metrics_namespace=metrics_namespace,
            runtime_proxy=runtime_proxy, runtime_proxy_port=runtime_proxy_port,
            export_bucket=export_bucket, export_prefix=export_prefix, export_max_invocations=export_max_invocations,
            export_max_bytes=export_max_bytes, export_max_age_ms=export_max_age_ms, export_logs=export_logs,
        )
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


def _package(source_dir: Path) -> dict:
    """The ``[package]`` table of the crate's ``Cargo.toml`` (empty when it cannot be read)."""
    try:
        return tomllib.loads((Path(source_dir) / "Cargo.toml").read_text()).get("package") or {}
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def extension_version(source_dir: Path = DEFAULT_SOURCE_DIR) -> str:
    """The crate's ``version`` in ``Cargo.toml`` ("unknown" when it cannot be read)."""
    version = _package(source_dir).get("version")
    return version if isinstance(version, str) else "unknown"


#: What the build reads besides ``src/`` and ``wrapper/`` (paths relative to the source dir).
_BUILD_INPUTS = (
    "Cargo.toml", "Cargo.lock", "build.rs", "build-layer.sh", "rust-toolchain", "rust-toolchain.toml",
    ".cargo/config.toml", "tools/layerzip/Cargo.toml", "tools/layerzip/Cargo.lock",
)
_BUILD_INPUT_DIRS = ("src", "wrapper", "tools/layerzip/src")


def source_hash(source_dir: Path = DEFAULT_SOURCE_DIR) -> str:
    """SHA-256 of what the build reads, by path: the crate's manifest, lock file, toolchain and cargo settings, every
    file under ``src/``, the build script, the zip tool's source, and the exec wrapper it puts in the zip
    (``wrapper/``). Go files, tests outside ``src/`` and cargo's ``target/`` are not part of the layer."""
    source_dir = Path(source_dir)
    files = [source_dir / rel for rel in _BUILD_INPUTS]
    for top in _BUILD_INPUT_DIRS:
        files += (source_dir / top).rglob("*")
    digest = hashlib.sha256(_RECIPE.encode())
    for path in sorted(set(files)):
        relative = path.relative_to(source_dir)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts[1:]):
            continue  # editors' swap files and the like; .cargo/config.toml itself is listed by name
        digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def required_rust_version(source_dir: Path = DEFAULT_SOURCE_DIR) -> tuple[int, ...]:
    """The crate's ``rust-version`` in ``Cargo.toml`` as a version tuple, e.g. (1, 92)."""
    declared = _package(source_dir).get("rust-version")
    if not isinstance(declared, str) or not re.fullmatch(r"\d+(?:\.\d+)*", declared):
        raise LayerBuildError(f"{source_dir}/Cargo.toml has no rust-version in [package]")
    return tuple(int(p) for p in declared.split("."))


def _ask(command: list[str], cwd: Path) -> Optional[str]:
    """What ``command`` prints, or None when it cannot run or fails (a toolchain that does not answer is absent)."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def local_rust(
    source_dir: Path = DEFAULT_SOURCE_DIR, which: Optional[Callable[[str], Optional[str]]] = None
) -> Optional[tuple[tuple[int, ...], frozenset[str]]]:
    """The local toolchain as used in ``source_dir`` (where a rust-toolchain file would apply): the version of its
    ``rustc`` and the targets whose standard library it has; None without cargo and rustc on PATH."""
    which = which or shutil.which
    cargo, rustc = which("cargo"), which("rustc")
    if not cargo or not rustc:
        return None
    version = _ask([rustc, "--version"], source_dir)
    sysroot = _ask([rustc, "--print", "sysroot"], source_dir)
    match = re.match(r"rustc (\d+(?:\.\d+)*)", version or "")
    if not match or not sysroot:
        return None
    installed = frozenset(t for t in RUST_TARGETS.values() if (Path(sysroot) / "lib/rustlib" / t / "lib").is_dir())
    return tuple(int(p) for p in match.group(1).split(".")), installed


def build_command(
    architecture: str,
    out_zip: Path,
    *,
    source_dir: Path = DEFAULT_SOURCE_DIR,
    docker_image: str = DEFAULT_DOCKER_IMAGE,
    which: Optional[Callable[[str], Optional[str]]] = None,
) -> list[str]:
    """The command that builds the layer zip: the local toolchain when suitable, else Docker; raises when neither is
    there."""
    which = which or shutil.which
    source_dir = Path(source_dir).resolve()
    target = RUST_TARGETS[architecture]
    need = required_rust_version(source_dir)
    have = local_rust(source_dir, which)
    if have is not None and have[0] >= need and target in have[1]:
        return ["sh", str(source_dir / "build-layer.sh"), architecture, str(out_zip)]
    docker = which("docker")
    if docker:
        out_dir = Path(out_zip).resolve().parent
        name = Path(out_zip).name
        # Root inside the container: rustup adds the target to the image's toolchain, which root owns. The zip is
        # then handed to the caller's user, so nothing root-owned is left in the cache.
        owner = f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else ""
        script = (
            'sh build-layer.sh --add-targets "$1" && sh build-layer.sh "$1" "/out/$2"'
            ' && { [ -z "$3" ] || chown "$3" "/out/$2"; }'
        )
        return [
            docker, "run", "--rm", "-v", f"{source_dir}:/src:ro", "-v", f"{out_dir}:/out", "-w", "/src",
            docker_image, "sh", "-c", script, "build-layer", architecture, name, owner,
        ]
    if have is None:
        found = "no cargo and rustc on PATH"
    elif have[0] < need:
        found = "rustc " + ".".join(map(str, have[0])) + " on PATH"
    else:
        found = f"rustc on PATH without the {target} target: `rustup target add {target}` adds it"
    raise LayerBuildError(
        f"InvocationHistoryLayer cannot build the extension: it needs Rust >= {'.'.join(map(str, need))} with the "
        f"{target} target ({found}) or Docker (docker not found) to run {source_dir}/build-layer.sh: install either, "
        f"or pass code=lambda_.Code.from_asset('dist/invocation-history-extension-{architecture}.zip') built with "
        "`make layer`"
    )


def cargo_target_dir(source_dir: Path, cache_dir: Path) -> Path:
    """Where a local build keeps cargo's work for the next source change, unless ``CARGO_TARGET_DIR`` says otherwise:
    the crate's own ``target/``, as cargo and ``make`` use it, or ``cache_dir/cargo-target`` when the source is
    read-only. Its path does not reach the bytes (build-layer.sh remaps it)."""
    if os.access(source_dir, os.W_OK):
        return source_dir / "target"
    return cache_dir.resolve() / "cargo-target"


def build_layer_zip(
    architecture: str,
    *,
    source_dir: Path = DEFAULT_SOURCE_DIR,
    cache_dir: Optional[Path] = None,
    docker_image: str = DEFAULT_DOCKER_IMAGE,
) -> tuple[Path, str]:
    """Build (or reuse) the layer zip for ``architecture``; returns its path and the asset hash to publish it under."""
    source_dir = Path(source_dir).resolve()
    digest = source_hash(source_dir)
    asset_hash = hashlib.sha256(f"{digest}/{architecture}".encode()).hexdigest()
    cache_dir = Path(cache_dir) if cache_dir is not None else source_dir.parent / "build" / "layer-cache"
    target = cache_dir / f"invocation-history-extension-{architecture}-{digest[:16]}.zip"
    if target.is_file():  # its name carries the source hash: a zip of this source for this architecture
        return target, asset_hash
    cache_dir.mkdir(parents=True, exist_ok=True)
    env = {"CARGO_TARGET_DIR": str(cargo_target_dir(source_dir, cache_dir)), **os.environ}
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as tmp:
        out = Path(tmp) / target.name
        cmd = build_command(architecture, out, source_dir=source_dir, docker_image=docker_image)
        result = _run(cmd, capture_output=True, text=True, env=env)
        if result.returncode != 0 or not out.is_file():
            raise LayerBuildError(
                f"building the extension layer for {architecture} failed (exit {result.returncode}): "
                f"{' '.join(cmd)}\n{result.stderr.strip()}"
            )
        os.replace(out, target)
    return target, asset_hash

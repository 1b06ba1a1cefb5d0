"""The extension's settings as the construct writes them: variable names, defaults, ranges and the validation that
turns a setting the extension would ignore at run time into an error at synth (property, value, fix)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence, Union

from aws_cdk import Token
from aws_cdk import aws_s3 as s3

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
#: The extension's namespace rule (``valid_namespace`` in config.rs): 1 to 255 of letters, digits and these, not
#: starting with the prefix AWS keeps for its own services.
MAX_NAMESPACE_LENGTH = 255
NAMESPACE_PUNCTUATION = ".-_/#: "
RESERVED_NAMESPACE_PREFIX = "AWS/"
_NAMESPACE_CHARACTERS = re.compile(rf"^[A-Za-z0-9{re.escape(NAMESPACE_PUNCTUATION)}]{{1,{MAX_NAMESPACE_LENGTH}}}$")
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
#: Every integer setting's variable, and its least, most and default value as the extension has them (its
#: ``int_in`` calls in extension_src/src/config.rs): outside the range the extension would fall back to the default.
#: tests/unit/test_settings_contract.py fails when these, config.rs and docs/configuration.md disagree.
INTEGER_SETTINGS = {
    "port": (ENV_HTTP_PORT, 1, 65535, DEFAULT_HTTP_PORT),
    "max_records": (ENV_MAX_RECORDS, 1, 1_000_000, 10_000),
    "max_wait_ms": (ENV_MAX_WAIT_MS, 0, 30_000, 2000),
    "runtime_proxy_port": (ENV_RUNTIME_PROXY_PORT, 1, 65535, DEFAULT_RUNTIME_PROXY_PORT),
    **EXPORT_LIMITS,
}
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def check_namespace(prop: str, namespace: object) -> None:
    """Raise unless ``namespace`` is a CloudWatch namespace the extension accepts (its own rule, ``src/config.rs``)."""
    if (not isinstance(namespace, str) or not _NAMESPACE_CHARACTERS.match(namespace)
            or namespace.startswith(RESERVED_NAMESPACE_PREFIX)):
        raise ValueError(
            f"{prop}={namespace!r} is not a CloudWatch namespace: pass 1 to {MAX_NAMESPACE_LENGTH} letters, digits or "
            f"{' '.join(NAMESPACE_PUNCTUATION.strip())} and spaces, not starting with {RESERVED_NAMESPACE_PREFIX}, "
            f"or omit it for {DEFAULT_METRICS_NAMESPACE}"
        )



@dataclass(frozen=True)
class ExtensionSettings:
    """The extension's settings for one function, validated when made: a setting the extension would ignore at run time
    (and fall back to its default with a warning) raises ``ValueError`` here, naming the setting, the value and the fix.

    Every setting left out keeps the extension's own default (``docs/configuration.md``); only the port is always
    written, so the function's code and the extension read the same value. Example::

        ExtensionSettings(max_records=1000, export_bucket=bucket, export_logs=["platform", "function"])
    """

    #: HTTP port of the extension's local API on 127.0.0.1 (1-65535). Default: 1203, always written.
    port: int = DEFAULT_HTTP_PORT
    #: Invocations kept in memory, oldest dropped first (1-1000000). Default: not set, the extension keeps 10000.
    max_records: Optional[int] = None
    #: Longest wait, in ms, of a request naming its own request id for its record (0-30000). Default: not set, 2000.
    max_wait_ms: Optional[int] = None
    #: The extension's log level (TRACE, DEBUG, INFO, WARN, ERROR, FATAL; any case). Default: not set, the extension
    #: follows ``AWS_LAMBDA_LOG_LEVEL`` and then INFO.
    log_level: Optional[str] = None
    #: Subscribe to the Telemetry API to fill in each record's status, durations and memory. Default: not set, on.
    telemetry: Optional[bool] = None
    #: Write the environment start/stop metrics (CloudWatch Embedded Metric Format on stdout). Default: not set, on.
    metrics: Optional[bool] = None
    #: CloudWatch namespace of those metrics (1-255 of letters, digits and ``.-_/#:`` or space, not ``AWS/...``).
    #: Default: not set, ``InvocationHistory``.
    metrics_namespace: Optional[str] = None
    #: Run the Runtime API proxy, which records each invocation's outcome from the wire; the runtime must be started
    #: through ``/opt/invocation-history-wrapper`` (``InvocationHistoryLayer.add_function`` sets
    #: ``AWS_LAMBDA_EXEC_WRAPPER`` for managed runtimes; ``extension_environment`` does not). Default: off.
    runtime_proxy: bool = False
    #: Port of the proxy on 127.0.0.1, only with ``runtime_proxy=True``. Default: 9009, written whenever the proxy is on.
    runtime_proxy_port: Optional[int] = None
    #: The S3 bucket (an ``s3.IBucket``; its name only with ``extension_environment``) the history is exported to;
    #: ``add_function`` grants the function's role ``s3:PutObject`` on ``<bucket>/<prefix>*`` (``grant_export``).
    #: Default: not set, no export.
    export_bucket: Union[str, s3.IBucket, None] = None
    #: The object keys' prefix, only with ``export_bucket``: up to 512 bytes, not starting with ``/``, no control
    #: characters, no ``*`` or ``?``. Default: ``invocation-history/``, written whenever the export is on.
    export_prefix: Optional[str] = None
    #: A batch is due at this many invocations (1-100000). Default: not set, 1000.
    export_max_invocations: Optional[int] = None
    #: ... or at this many bytes of NDJSON before compression (1024-67108864). Default: not set, 4194304 (4 MiB).
    export_max_bytes: Optional[int] = None
    #: ... or when its oldest line is this old, in ms (1000-3600000). Default: not set, 60000.
    export_max_age_ms: Optional[int] = None
    #: The log streams exported with the invocations: some of ``platform``, ``function``, ``extension`` (a list, or
    #: the variable's own comma-separated text), or ``[]``/``"none"`` for none; not with ``telemetry=False`` (the
    #: logs come from the Telemetry API). Default: not set, ``function,extension``.
    export_logs: Union[str, Sequence[str], None] = None

    def __post_init__(self) -> None:
        self.environment()  # every check, now: an error points at the line that made the settings

    def environment(self) -> dict[str, str]:
        """The extension's environment variables for these settings (not ``AWS_LAMBDA_EXEC_WRAPPER``)."""
        port = self.port
        max_records = self.max_records
        max_wait_ms = self.max_wait_ms
        log_level = self.log_level
        telemetry = self.telemetry
        metrics = self.metrics
        metrics_namespace = self.metrics_namespace
        runtime_proxy = self.runtime_proxy
        runtime_proxy_port = self.runtime_proxy_port
        export_bucket = self.export_bucket
        export_prefix = self.export_prefix
        export_max_invocations = self.export_max_invocations
        export_max_bytes = self.export_max_bytes
        export_max_age_ms = self.export_max_age_ms
        export_logs = self.export_logs
        port = DEFAULT_HTTP_PORT if port is None else port
        if not _is_port(port):
            raise ValueError(f"port={port!r} is not a TCP port: pass an integer from 1 to 65535, or omit it for 1203")
        env = {ENV_HTTP_PORT: str(port)}
        # The ranges the extension accepts (extension_src/src/config.rs): outside them it would fall back to its default.
        for name, value in (("max_records", max_records), ("max_wait_ms", max_wait_ms)):
            variable, least, most, _ = INTEGER_SETTINGS[name]
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


def extension_environment(**settings: Any) -> dict[str, str]:
    """The extension's environment variables for ``ExtensionSettings(**settings)``, validated: for functions that
    carry the extension themselves (container images, see ``examples/my-app/Dockerfile``), which cannot take a
    layer. It does not set ``AWS_LAMBDA_EXEC_WRAPPER``, which is the function's business."""
    return ExtensionSettings(**settings).environment()


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


def _is_port(value: object) -> bool:
    _, least, most, _ = INTEGER_SETTINGS["port"]
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= most



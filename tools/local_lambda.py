"""Run a function and its extensions under AWS's Lambda Runtime Interface Emulator (RIE), locally.

The RIE runs every executable in /opt/extensions (a path it hard-codes). To give it ours without
touching the machine's real /opt, each run happens in a private mount namespace (``unshare
--mount``) where a temporary directory is bound over /opt. The invoke endpoint listens on
127.0.0.1 only, and callers use boto3's Lambda client, so the same test code can target a deployed
function.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import boto3
import botocore.config
import botocore.exceptions

ROOT = Path(__file__).resolve().parent.parent
RIE = ROOT / ".local/bin/aws-lambda-rie"
EXTENSION = ROOT / "build/extension/invocation-history-extension"
GO_BOOTSTRAP = ROOT / "build/functions/go/bootstrap"
PYTHON_FUNCTION_DIR = ROOT / "functions/python"
EXTENSION_NAME = "invocation-history-extension"

# Binds the directory in $1 over /opt and the one in $2 over the extension's state directory in /tmp
# (where the Runtime API proxy publishes its address), inside the new mount namespace, then runs the
# RIE in place of the shell (exec), so the RIE's PID is the one we signal.
_MOUNT_AND_EXEC = 'mount --bind "$1" /opt && mount --bind "$2" "$3" && shift 3 && exec "$@"'
# In Lambda /tmp belongs to one execution environment; here environments share the machine's /tmp,
# so each gets its own view of this directory.
STATE_DIR = Path("/tmp/invocation-history-extension")
WRAPPER = ROOT / "extension_src/wrapper/invocation-history-wrapper"
# Starts the RIE in its managed-instances mode (a tmpfs over /var for /var/task; see the script).
MANAGED_INSTANCES_SCRIPT = ROOT / "tests/local/fixtures/rie-managed-instances.sh"
# Under /opt, where extension_output_direct keeps the binaries its launchers run.
EXTENSION_BINARIES = ".extension-binaries"


def build_example(name: str, out: Path, target: str | None = None) -> Path:
    """Builds extension_src/examples/<name>.rs (release, locked, in the extension's target dir) for this
    machine or for the Rust `target` (e.g. aarch64-unknown-linux-musl, linked by rust-lld as the layer
    is) and copies it to `out`, executable."""
    target_dir = ROOT / "extension_src/target"
    env = {**os.environ, "CARGO_TARGET_DIR": str(target_dir)}
    command = ["cargo", "build", "--quiet", "--release", "--locked", "--example", name]
    if target:
        command += ["--target", target]
        env[f"CARGO_TARGET_{target.upper().replace('-', '_')}_LINKER"] = "rust-lld"
    subprocess.run(command, cwd=ROOT / "extension_src", check=True, env=env)
    shutil.copyfile(target_dir / (target or "") / "release/examples" / name, out)
    out.chmod(0o755)
    return out


def wait_until(predicate, timeout: float, interval: float = 0.005):
    """Call predicate until it returns something truthy or timeout passes; return its last value."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(interval)
    return value


def local_api_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes, dict[str, str]]:
    """GET path from the extension's local API on 127.0.0.1:port, on a connection of its own: status,
    body and headers, whatever the status. http.client rather than urllib, which would route
    through a proxy named in the environment and raise on error statuses callers want to check."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def local_api_json(port: int, path: str, timeout: float = 5.0) -> dict:
    """The decoded answer of a GET that must succeed (local_api_get)."""
    status, body, _ = local_api_get(port, path, timeout)
    if status != 200:
        raise AssertionError(f"GET {path} on port {port}: {status} {body[:300]!r}")
    return json.loads(body)


T = TypeVar("T")


class NoIdleRuntime(Exception):
    """An invoke the RIE refused with "no idle runtimes" (see LocalLambda.refused)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be listened on now (nothing else listens there)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listener does: TIME_WAIT is fine
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def listening(port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts connections on 127.0.0.1:port now."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
        return True
    except OSError:
        return False


def go_function() -> list[str]:
    """Bootstrap command of the Go sample (provided.al2023 runs the binary directly)."""
    return [str(GO_BOOTSTRAP)]


def python_function(venv_python: str | None = None) -> list[str]:
    """Bootstrap command of the Python sample: the real runtime interface client, awslambdaric."""
    return [venv_python or str(ROOT / ".venv/bin/python"), "-m", "awslambdaric", "handler.handler"]


@dataclass
class LocalLambda:
    """One execution environment: start(), invoke() as often as needed, stop()."""

    bootstrap: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # Files to place in /opt/extensions, by name. Default: the extension built by `make build`.
    extensions: dict[str, Path] | None = None
    task_root: Path = PYTHON_FUNCTION_DIR
    # Extra files under /opt, relative path -> source (e.g. a test-only helper binary).
    opt_files: dict[str, Path] = field(default_factory=dict)
    # Run the RIE in its managed-instances mode with this many concurrent invocations (0: standard
    # mode). That mode ignores the bootstrap on the command line and runs /opt/bootstrap, so the
    # bootstrap must be one executable; it has a real Telemetry API and no INVOKE events.
    managed_instances: int = 0
    # How often start() probes the invoke endpoint: the benchmark polls finer to time cold starts.
    poll_interval: float = 0.02
    # Managed-instances mode only: the RIE copies an extension's stdout to its own through a
    # goroutine that can lose the last lines when the RIE exits right after the extension (its
    # process wait returns once the line is read, not written), which is where the shutdown
    # summary and the stopped metric are. True starts each extension through a one-line launcher
    # that appends its output to the log itself; the benchmark turns it off to time the bare exec.
    extension_output_direct: bool = True

    def __post_init__(self) -> None:
        self.port = free_port()
        self.runtime_api_port = free_port()
        self.process: subprocess.Popen | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="local-lambda-"))
        self.log_path = self._tmp / "rie.log"
        self.opt = self._tmp / "opt"
        self.client = boto3.client(
            "lambda",
            endpoint_url=f"http://127.0.0.1:{self.port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=botocore.config.Config(
                retries={"total_max_attempts": 1}, read_timeout=30, connect_timeout=2
            ),
        )

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "LocalLambda":
        for tool in ("unshare", "mount"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is needed to run the RIE in a private mount namespace")
        if not RIE.exists():
            raise RuntimeError(f"{RIE} is missing: run `make rie`")
        bootstrap, opt_files, env = self.bootstrap, dict(self.opt_files), dict(self.env)
        rie = [str(RIE)]
        if self.managed_instances:
            if len(bootstrap) != 1:
                raise ValueError(f"managed_instances runs /opt/bootstrap: give one executable, not {bootstrap}")
            opt_files["bootstrap"] = Path(bootstrap[0])
            bootstrap = ["/opt/bootstrap"]
            env.update({"AWS_LAMBDA_MAX_CONCURRENCY": str(self.managed_instances), "INVOCATION_HISTORY_TEST_RIE": str(RIE)})
            rie = [str(MANAGED_INSTANCES_SCRIPT)]
        (self.opt / "extensions").mkdir(parents=True, exist_ok=True)  # layers may already be unpacked there
        self.state = self._tmp / "state"
        self.state.mkdir()
        STATE_DIR.mkdir(exist_ok=True)  # the mount point; stays empty on the machine itself
        extensions = {EXTENSION_NAME: EXTENSION} if self.extensions is None else self.extensions
        direct = bool(self.managed_instances) and self.extension_output_direct
        for name, source in extensions.items():
            target = self.opt / "extensions" / name
            if direct:
                binary = self.opt / EXTENSION_BINARIES / name
                binary.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, binary)
                binary.chmod(0o755)
                launcher = f'#!/bin/sh\nexec /opt/{EXTENSION_BINARIES}/{name} "$@" >>{shlex.quote(str(self.log_path))} 2>&1\n'
                target.write_text(launcher)
            else:
                shutil.copy(source, target)
            target.chmod(0o755)
        for rel, source in opt_files.items():
            target = self.opt / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
            target.chmod(0o755)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LAMBDA_TASK_ROOT": str(self.task_root),
            "AWS_LAMBDA_FUNCTION_NAME": "function",
            "AWS_REGION": "us-east-1",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        # As root a mount namespace is enough; otherwise a user namespace maps us to root inside it.
        userns = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
        command = [
            "unshare", *userns, "--mount", "--propagation", "private",
            "sh", "-c", _MOUNT_AND_EXEC, "sh", str(self.opt), str(self.state), str(STATE_DIR),
            *rie, "--runtime-interface-emulator-address", f"127.0.0.1:{self.port}",
            # The Runtime API defaults to 127.0.0.1:9001: a port of its own lets environments run side by side.
            "--runtime-api-address", f"127.0.0.1:{self.runtime_api_port}",
            *bootstrap,
        ]  # fmt: skip
        # Append mode: a launched extension appends to the same file, so neither overwrites the other.
        self._log = open(self.log_path, "ab")
        if direct:
            # In this mode the RIE runs extensions as another user, who must reach and write the log.
            self._tmp.chmod(0o711)
            self.log_path.chmod(0o666)
        self.process = subprocess.Popen(
            command, env=env, cwd=self.task_root, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            self._wait_for_port()
        except BaseException:
            self.cleanup()  # a failed start leaves no RIE running and no temp dir behind
            raise
        return self

    def _wait_for_port(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"RIE exited with {self.process.returncode}:\n{self.logs()}")
            if listening(self.port):
                return
            time.sleep(self.poll_interval)
        raise RuntimeError(f"RIE did not listen on 127.0.0.1:{self.port} within {timeout}s:\n{self.logs()}")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the RIE (it sends SHUTDOWN to extensions) and return its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "LocalLambda":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()

    # -- use ------------------------------------------------------------------------------------
    def invoke(self, payload: dict | None = None) -> dict:
        """Invoke once; return the decoded answer. A function error raises with the RIE's log."""
        def attempt() -> dict:
            try:
                return self.client.invoke(FunctionName="function", Payload=json.dumps(payload or {}))
            except botocore.exceptions.ClientError as e:
                if self.refused(e.response["ResponseMetadata"]["HTTPStatusCode"]):
                    raise NoIdleRuntime from e
                raise

        response = self.until_accepted(attempt)
        body = response["Payload"].read()
        if response.get("FunctionError"):
            raise AssertionError(f"function error {body!r}\n{self.logs()}")
        return json.loads(body)

    def refused(self, status: int) -> bool:
        """Whether an invoke answered with this status was refused for want of an idle runtime: in
        managed-instances mode the RIE answers 400 "no idle runtimes" while every runtime is busy or
        not yet back at /next (Lambda would route the invoke elsewhere)."""
        return bool(self.managed_instances) and status == 400

    def until_accepted(self, attempt: Callable[[], T], attempts: int = 200, pause: float = 0.005) -> T:
        """Call attempt (one invoke, raising NoIdleRuntime when refused) until the RIE takes it."""
        for _ in range(attempts):
            try:
                return attempt()
            except NoIdleRuntime:
                time.sleep(pause)
        raise AssertionError(f"the RIE kept refusing invokes\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 5.0) -> str:
        if not wait_until(lambda: text in self.logs(), timeout, interval=0.02):
            raise AssertionError(f"{text!r} not in the logs within {timeout}s:\n{self.logs()}")
        return self.logs()

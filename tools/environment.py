"""One local Lambda execution environment that stays up, for poking at by hand (the workshop).

    python -m tools.environment start [--function go|python] [--python-handler FILE.py] [--bootstrap PATH]
                                      [--managed-instances N] [--runtime-proxy] [--env NAME=VALUE ...]
    python -m tools.environment stop
    python -m tools.environment show < answer.json

`start` starts, in the background, AWS's Lambda emulator (RIE) with the extension in /opt/extensions and a function, as
tools/local_lambda.py does for the tests, but on fixed ports a person can type: invoke it with

    curl -s -d '{}' http://127.0.0.1:9000/2015-03-31/functions/function/invocations

and, once the first invoke has started the extension (the RIE starts extensions lazily), ask the
extension on http://127.0.0.1:1203. `stop` stops it (SIGTERM: the RIE sends SHUTDOWN to the
extension) and prints the extension's log lines: its start and shutdown lines and its metrics. One
environment at a time; `run` is the same in the foreground, until Ctrl-C. `show` prints the records of a JSON document on stdin (an /invocations answer, a
sample function's answer, or the lambda-simulator driver's report) as a table of the fields they
carry.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tools.local_lambda import (
    GO_BOOTSTRAP, ROOT, WRAPPER, LocalLambda, go_function, port_free, python_function, wait_until,
)  # fmt: skip

INVOKE_PORT = 9000  # the port AWS's RIE documentation maps its endpoint to
HISTORY_PORT = 1203  # the extension's default
WRAPPER_IN_OPT = "/opt/invocation-history-wrapper"
EXTENSION_MARK = "extension=invocation-history-extension"
# Where `start` keeps the background environment's pid and output (per clone: build/ is the clone's own).
STATE_DIR = ROOT / "build/environment"
UP_MARK = "environment up"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0

# Columns of `show`, in order: (heading, record field); a column appears when any record has the field.
COLUMNS = [
    ("seq", "sequence"), ("request id", "awsRequestId"), ("cold", "coldStart"), ("status", "status"),
    ("durationMs", "durationMs"), ("billedMs", "billedDurationMs"), ("memMB", "maxMemoryUsedMB"),
    ("initMs", "initDurationMs"), ("outcome", "outcome"), ("errorType", "errorType"), ("bytes", "responseBytes"),
]  # fmt: skip


def bootstrap_of(args: argparse.Namespace) -> tuple[list[str], Path | None]:
    """The bootstrap command and, for a Python handler file, the task root it runs in."""
    if args.python_handler:
        handler = Path(args.python_handler).resolve()
        if handler.suffix != ".py" or not handler.is_file():
            raise SystemExit(
                f"--python-handler wants an existing .py file with a `handler` function, not {args.python_handler}"
            )
        return python_function()[:-1] + [f"{handler.stem}.handler"], handler.parent
    if args.bootstrap:
        return [str(Path(args.bootstrap).resolve())], Path(args.bootstrap).resolve().parent
    return (go_function() if args.function == "go" else python_function()), None


def parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--env wants NAME=VALUE, not {pair!r}")
        env[name] = value
    return env


def extension_lines(logs: str) -> list[str]:
    """The extension's own log lines and its metric (EMF) lines, in order."""
    return [
        line for line in logs.splitlines() if EXTENSION_MARK in line or (line.startswith('{"') and '"_aws"' in line)
    ]


def run(args: argparse.Namespace) -> int:
    # Something else listening there would get the environment's `curl`s.
    busy = [port for port in (INVOKE_PORT, HISTORY_PORT) if not port_free(port)]
    if busy:
        print(f"127.0.0.1:{', '.join(map(str, busy))} already in use: stop what listens there first", file=sys.stderr)
        return 1
    bootstrap, task_root = bootstrap_of(args)
    env = {"INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(HISTORY_PORT), **parse_env(args.env)}
    opt_files = {}
    if args.runtime_proxy:
        # What a managed runtime does with AWS_LAMBDA_EXEC_WRAPPER (the RIE applies no wrapper itself).
        env.setdefault("INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY", "on")
        opt_files["invocation-history-wrapper"] = WRAPPER
        bootstrap = [WRAPPER_IN_OPT, *bootstrap]
    if args.managed_instances and len(bootstrap) != 1:
        raise SystemExit("--managed-instances runs one executable as /opt/bootstrap: use the Go sample or --bootstrap")
    local = LocalLambda(bootstrap, env=env, opt_files=opt_files, managed_instances=args.managed_instances)
    if task_root is not None:
        local.task_root = task_root
    local.port = INVOKE_PORT
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        local.start()
    except RuntimeError as error:
        print(f"the environment did not start: {error}", file=sys.stderr)
        local.cleanup()
        return 1
    mode = f"managed-instances mode, {args.managed_instances} at once" if args.managed_instances else "standard mode"
    print(f"environment up ({mode}): invoke http://127.0.0.1:{INVOKE_PORT}/2015-03-31/functions/function/invocations,"
          f" extension on http://127.0.0.1:{HISTORY_PORT} after the first invoke", flush=True)  # fmt: skip
    try:
        stop.wait()
        code = local.stop()
        print(f"environment stopped (emulator exit code {code}); the extension's log:")
        for line in extension_lines(local.logs()):
            print(f"  {line}")
        return 0
    finally:
        local.cleanup()


def running_pid() -> int | None:
    """The pid of the environment `start` left running, if it still runs."""
    try:
        pid = int((STATE_DIR / "pid").read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def start(run_args: list[str]) -> int:
    if (pid := running_pid()) is not None:
        print(f"an environment is already running (pid {pid}): python -m tools.environment stop", file=sys.stderr)
        return 1
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    log = STATE_DIR / "log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.environment", "run", *run_args],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    (STATE_DIR / "pid").write_text(str(process.pid))
    wait_until(lambda: process.poll() is not None or UP_MARK in log.read_text(), START_TIMEOUT_S, interval=0.05)
    text = log.read_text()
    if UP_MARK not in text:
        if process.poll() is None:
            process.terminate()
        (STATE_DIR / "pid").unlink(missing_ok=True)
        print(
            f"the environment did not come up (waited at most {START_TIMEOUT_S:.0f}s):\n{text.rstrip()}",
            file=sys.stderr,
        )
        return 1
    print(f"{text.strip()} (pid {process.pid}; stop it with: python -m tools.environment stop)")
    return 0


def stop() -> int:
    pid = running_pid()
    if pid is None:
        print("no environment is running", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: running_pid() is None or _reaped(pid), STOP_TIMEOUT_S, interval=0.05):
        os.killpg(pid, signal.SIGKILL)  # `start` made it a session leader: its group holds the emulator too
    (STATE_DIR / "pid").unlink(missing_ok=True)
    text = (STATE_DIR / "log").read_text()
    print(text[text.index(UP_MARK) :].split("\n", 1)[1].rstrip() if UP_MARK in text else text.rstrip())
    return 0


def _reaped(pid: int) -> bool:
    """Whether pid has exited: gone, or a zombie its parent has not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def records_of(document: dict) -> list[dict]:
    if isinstance(document.get("records"), dict):  # the lambda-simulator driver's report
        document = document["records"]
    return document.get("invocations", [])


def show(stream) -> int:
    document = json.load(stream)
    records = records_of(document)
    columns = [(head, key) for head, key in COLUMNS if any(key in r for r in records)]
    if not records:
        print("no records")
        return 0
    own = document.get("requestId")  # a sample function's answer names its own invocation

    def cell(record: dict, key: str) -> str:
        value = record.get(key, "")
        return ("yes" if value else "no") if isinstance(value, bool) else str(value)

    rows = [[head for head, _ in columns] + [""]] + [
        [cell(r, key) for _, key in columns] + ["<- this invocation" if own and r.get("awsRequestId") == own else ""]
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns) + 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.environment", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser(
        "start",
        help=f"start one environment in the background (invoke on :{INVOKE_PORT}, extension on :{HISTORY_PORT})",
    )
    run_parser = commands.add_parser("run", help="the same in the foreground, until Ctrl-C")
    for environment_parser in (start_parser, run_parser):
        add_environment_options(environment_parser)
    commands.add_parser("stop", help="stop the environment `start` started and print the extension's log lines")
    commands.add_parser("show", help="print the records of a JSON answer on stdin as a table")
    args = parser.parse_args(argv)
    if args.command == "show":
        return show(sys.stdin)
    if args.command == "stop":
        return stop()
    if not GO_BOOTSTRAP.exists():
        raise SystemExit("build the extension and the samples first: make build rie")
    if args.command == "start":
        return start(list(argv if argv is not None else sys.argv[1:])[1:])
    return run(args)


def add_environment_options(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--function", choices=["go", "python"], default="go", help="a sample function (default: go)")
    which.add_argument(
        "--python-handler", metavar="FILE.py", help="your own Python file with a handler(event, context) function"
    )
    which.add_argument("--bootstrap", metavar="PATH", help="your own executable bootstrap (a custom runtime)")
    parser.add_argument("--managed-instances", type=int, default=0, metavar="N",
                       help="the RIE's managed-instances mode, N invocations at once: a real Telemetry API, no INVOKE events")  # fmt: skip
    parser.add_argument(
        "--runtime-proxy",
        action="store_true",
        help="turn the Runtime API proxy on and run the function through the exec wrapper",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable of the function (repeatable)",
    )


if __name__ == "__main__":
    sys.exit(main())

"""`make demo`: run both sample functions under AWS's Lambda emulator and show what they saw.

For each sample (Go on provided.al2023 style bootstrap, Python under awslambdaric) this starts a
fresh execution environment with the extension in /opt/extensions, invokes it several times
through boto3's Lambda client, prints the history the last invocation saw, then stops the
environment with SIGTERM and shows the extension's shutdown line. Then the Go sample once more on
the emulator's managed-instances mode, which has a Telemetry API: the records it shows carry how
each invocation ended (status, duration), as they do on Lambda.
"""

from __future__ import annotations

import json
import sys

from tools.local_lambda import (
    GO_BOOTSTRAP, LocalLambda, free_port, go_function, local_api_get, port_free, python_function, wait_until,
)  # fmt: skip

INVOCATIONS = 4
DEFAULT_PORT = 1203


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    rule = ["-" * w if h else "" for h, w in zip(header, widths)]  # no rule over the unnamed marker column
    return "\n".join([line(header), line(rule), *(line(r) for r in rows)])


def extension_lines(logs: str, message: str) -> list[str]:
    return [line for line in logs.splitlines() if "extension=invocation-history-extension" in line and f"msg={message}" in line]


def run(name: str, bootstrap: list[str]) -> bool:
    port = DEFAULT_PORT if port_free(DEFAULT_PORT) else free_port()
    print(f"\n=== {name} sample function: {INVOCATIONS} invocations, extension on 127.0.0.1:{port} ===")
    local = LocalLambda(bootstrap, env={"INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(port)})
    try:
        local.start()
        answers = [local.invoke({"demo": i}) for i in range(1, INVOCATIONS + 1)]
        last = answers[-1]
        if "extensionError" in last:
            print(f"the function answered without a history: {last['extensionError']}")
            return False
        print(f"What the function saw on its last invocation ({last['requestId']}):\n")
        rows = [
            [r["sequence"], r["awsRequestId"], r["invocatedAt"], "yes" if r["coldStart"] else "no",
             "<- this invocation" if r["awsRequestId"] == last["requestId"] else ""]
            for r in last["invocations"]
        ]  # fmt: skip
        print(table(rows, ["seq", "request id", "invocated at (UTC)", "cold start", ""]))
        env = last["environment"]
        print(
            f"\nenvironment {env['environmentId']}: function {env.get('functionName')} "
            f"{env.get('functionVersion')}, {env.get('memoryMB')} MB; counts {env['counts']}"
        )
        for line in extension_lines(local.logs(), "ready"):
            print(f"extension start-up: {line}")
        code = local.stop()
        print(f"\nSIGTERM sent; the emulator exited with {code}. The extension's last word:")
        for line in extension_lines(local.logs(), "shutdown"):
            print(f"  {line}")
        return code == 0 and len(last["invocations"]) == INVOCATIONS
    finally:
        local.cleanup()


def run_with_telemetry() -> bool:
    """The Go sample on the managed-instances mode: records enriched from the Telemetry API."""
    port = DEFAULT_PORT if port_free(DEFAULT_PORT) else free_port()
    print(f"\n=== Go sample function with the Telemetry API (the emulator's managed-instances mode): "
          f"{INVOCATIONS} invocations, extension on 127.0.0.1:{port} ===")  # fmt: skip
    env = {"INVOCATION_HISTORY_EXTENSION_HTTP_PORT": str(port)}
    with LocalLambda([str(GO_BOOTSTRAP)], env=env, managed_instances=2) as local:
        for i in range(1, INVOCATIONS + 1):
            local.invoke({"demo": i})

        def reported() -> list[dict] | None:
            records = json.loads(local_api_get(port, "/invocations")[1])["invocations"]
            return records if len(records) == INVOCATIONS and all("status" in r for r in records) else None

        # Telemetry arrives within its buffering time (25 ms) of each invocation's end.
        records = wait_until(reported, timeout=5.0, interval=0.05)
        if not records:
            print("telemetry did not report every invocation within 5 s")
            return False
        print("What the extension knows once telemetry has reported each invocation:\n")
        rows = [[r["sequence"], r["awsRequestId"], "yes" if r["coldStart"] else "no", r["status"], f"{r['durationMs']:.2f}"]
                for r in records]  # fmt: skip
        print(table(rows, ["seq", "request id", "cold start", "status", "duration ms"]))
        code = local.stop()
    print(f"\nSIGTERM sent; the emulator exited with {code}.")
    return code == 0


def main() -> int:
    ok = run("Go", go_function())
    ok = run("Python", python_function()) and ok
    ok = run_with_telemetry() and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Runs the workshop's markdown: every `sh` block, in order, in one shell, its output checked.

Why our own runner (about 150 lines) rather than a package, judged in November 2026 on what PyPI
offers here:
- pytest-codeblocks 0.18.0 runs each shell block in a subprocess of its own, so an environment
  started in one block cannot be asked in the next, and it compares output exactly (or ignoring
  whitespace), with no way to abbreviate request ids, times and durations that change every run;
- tesh 0.3.2 (last release 2023-10) and byexample 11.0.0 drive an interactive shell through
  pexpect, prompts included, which makes the blocks `$ `-prefixed (not copy-pasteable) and
  their output depend on terminal emulation; neither prints a reason for a skipped block.
What this needs is small: blocks in order in one bash, a failed command fails its block, output
compared with `...` for what varies, and skips with a reason.

The format (docs/workshop/README.md has it for authors):
- a ```sh block is run; every command in it must succeed (an ERR trap records any that fails);
- a ```text block that comes next, before any other code block, is the output to expect: the
  block's stdout and stderr together, trailing spaces ignored. A line that is only `...` stands
  for any number of lines (none too); `...` inside a line stands for any text within that line;
- `<!-- workshop: skip REASON -->` just before a block: not run, and REASON is the skip's reason;
- `<!-- workshop: file PATH -->` just before any code block: the block is shown, not run, and must
  appear verbatim in PATH (a file of the repository), so code shown in the text is the code that
  runs. Code blocks other than sh, text and mermaid need one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```(\S*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*workshop:\s*(skip|file)\s+(.+?)\s*-->\s*$")
ANY_LINES = "..."


@dataclass
class Block:
    source: Path
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    expected: str | None = None
    skip: str | None = None
    file: str | None = None

    @property
    def where(self) -> str:
        return f"{self.source.name}:{self.line}"


def parse(source: Path) -> list[Block]:
    """The code blocks of one markdown file, each `text` block attached to the `sh` block before it."""
    blocks: list[Block] = []
    directives: dict[str, str] = {}
    lines = source.read_text().splitlines()
    i = 0
    while i < len(lines):
        if m := DIRECTIVE.match(lines[i]):
            directives[m.group(1)] = m.group(2)
        elif m := FENCE.match(lines[i]):
            start, language = i + 1, m.group(1)
            i += 1
            body = []
            while i < len(lines) and lines[i] != "```":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise ValueError(f"{source.name}:{start}: unclosed code block")
            text = "\n".join(body) + "\n"
            if language == "text":
                if not blocks or blocks[-1].language != "sh" or blocks[-1].expected is not None:
                    raise ValueError(f"{source.name}:{start}: an output block must follow the sh block it belongs to")
                blocks[-1].expected = text
            else:
                blocks.append(
                    Block(source, start, language, text, skip=directives.get("skip"), file=directives.get("file"))
                )
            directives = {}
        i += 1
    return blocks


def output_pattern(expected: str) -> re.Pattern:
    """A regex for output shown with `...` abbreviations (see the module's docstring)."""
    parts = []
    for line in expected.rstrip("\n").split("\n"):
        line = line.rstrip()
        if line == ANY_LINES:
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append("[^\n]*".join(re.escape(piece) for piece in line.split(ANY_LINES)) + r"\n")
    return re.compile("".join(parts))


def normalized(output: str) -> str:
    return "".join(line.rstrip() + "\n" for line in output.splitlines())


def matches(expected: str, output: str) -> bool:
    return output_pattern(expected).fullmatch(normalized(output)) is not None


class Shell:
    """One bash for the whole workshop, as a reader's terminal is: variables, the working directory
    and background processes carry from block to block."""

    def __init__(self, cwd: Path, work: Path, prefix: list[str] | None = None) -> None:
        self.work = work
        self.errors = work / "errors"
        # A reader types `make demo` at the top level: run from `make test`, the make variables it
        # exports would make the workshop's own `make` a sub-make that prints its directory.
        env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}
        self.process = subprocess.Popen(
            [*(prefix or []), "bash", "--noprofile", "--norc"], cwd=cwd, stdin=subprocess.PIPE, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        )  # fmt: skip
        # Every failing command of a block is written down; pipefail makes `curl ... | tool` count curl's failure.
        self._send(f"set -o pipefail; trap 'echo \"exit $? from: $BASH_COMMAND\" >> {self.errors}' ERR")

    def _send(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def run(self, block: Block, number: int, timeout: float) -> tuple[str, str]:
        """Run one block; its output and the commands in it that failed (empty when none did)."""
        script, output, done = (self.work / f"{number:03}.{suffix}" for suffix in ("sh", "out", "done"))
        script.write_text(block.text)
        self.errors.write_text("")
        self._send(f"source {script} > {output} 2>&1 < /dev/null; touch {done}")
        deadline = time.monotonic() + timeout
        while not done.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"{block.where}: the shell exited ({self.process.returncode})")
            if time.monotonic() > deadline:
                self.kill()  # the shell is stuck in the block: nothing after it can run
                raise AssertionError(f"{block.where}: still running after {timeout:.0f}s:\n{output.read_text()}")
            time.sleep(0.05)
        return output.read_text(), self.errors.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def close(self, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stop_background(timeout)

    def _stop_background(self, timeout: float) -> None:
        """What a block left running in the background (`make up &` whose block failed before its `kill`) shares the
        shell's process group: SIGTERM lets it stop as it would on Ctrl-C; what is still there after ``timeout`` is
        killed."""
        group = self.process.pid  # start_new_session: the shell leads its own group
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            return  # nothing left
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass

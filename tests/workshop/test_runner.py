"""The workshop runner's own rules: what an output block matches, how blocks are read, how the shell reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.workshop.runner import Block, Shell, matches, parse


@pytest.mark.parametrize(
    ("expected", "output"),
    [
        ("a\nb\n", "a\nb\n"),
        ("a\nb\n", "a  \nb\n"),  # trailing spaces are not compared
        ("id ...  yes\n", "id 7c5f73c8-6eba  yes\n"),  # ... within a line
        ("id ...!\n", "id !\n"),  # ... may stand for nothing
        ("first\n...\nlast\n", "first\nlast\n"),  # a ... line may stand for no line
        ("first\n...\nlast\n", "first\n1\n2\n3\nlast\n"),
        ("...\nlast\n", "make: building\nlast\n"),
    ],
)
def test_output_that_matches(expected, output):
    assert matches(expected, output)


@pytest.mark.parametrize(
    ("expected", "output"),
    [
        ("a\nb\n", "a\nc\n"),
        ("a\n", "a\nb\n"),  # every line printed must be shown or abbreviated
        ("a\nb\n", "b\n"),  # and every line shown must be printed
        ("id ...  yes\n", "id x\n  yes\n"),  # ... within a line never spans lines
        ('"served": 3,\n', '"served": 4,\n'),
        ("x.y\n", "xzy\n"),  # shown text is literal, not a pattern
    ],
)
def test_output_that_does_not_match(expected, output):
    assert not matches(expected, output)


def test_parse_attaches_output_and_directives(tmp_path):
    doc = tmp_path / "01-x.md"
    doc.write_text(
        "intro\n```sh\necho hi\n```\nprose\n```text\nhi\n```\n"
        "<!-- workshop: skip needs an AWS account -->\n```sh\naws lambda list-functions\n```\n"
        "<!-- workshop: file tools/environment.py -->\n```python\nimport json\n```\n"
    )
    first, skipped, shown = parse(doc)
    assert (first.language, first.text, first.expected, first.line) == ("sh", "echo hi\n", "hi\n", 2)
    assert skipped.skip == "needs an AWS account" and skipped.expected is None
    assert shown.file == "tools/environment.py" and shown.skip is None


@pytest.mark.parametrize(
    "text",
    [
        "```text\nalone\n```\n",  # output with no command
        "```sh\ntrue\n```\n```python\nx\n```\n```text\nlate\n```\n",  # another block in between
        "```sh\ntrue\n```\n```text\na\n```\n```text\nb\n```\n",  # two outputs for one block
        "```sh\nnever closed\n",
    ],
)
def test_parse_refuses_what_it_cannot_place(tmp_path, text):
    doc = tmp_path / "01-x.md"
    doc.write_text(text)
    with pytest.raises(ValueError):
        parse(doc)


@pytest.fixture
def shell(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    shell = Shell(tmp_path, work)
    yield shell
    shell.close()


def block(text: str) -> Block:
    return Block(source=Path("01-test.md"), line=1, language="sh", text=text)


def test_shell_keeps_state_between_blocks(shell):
    assert shell.run(block("GREETING=hello\ncd /\n"), 0, 10) == ("", "")
    assert shell.run(block('echo "$GREETING from $PWD"\n'), 1, 10) == ("hello from /\n", "")


def test_shell_reports_a_failing_command_even_when_the_block_ends_well(shell):
    output, failures = shell.run(block("false\necho after\n"), 0, 10)
    assert output == "after\n"
    assert "exit 1 from: false" in failures


def test_shell_counts_a_failure_inside_a_pipeline(shell):
    _, failures = shell.run(block("cat /no/such/file | sort\n"), 0, 10)
    assert "exit 1 from:" in failures  # pipefail: the pipeline fails with cat, though sort succeeded


def test_shell_gives_up_on_a_block_that_does_not_end(shell):
    with pytest.raises(AssertionError, match="still running"):
        shell.run(block("sleep 30\n"), 0, 0.5)


def test_closing_the_shell_stops_what_a_block_left_in_the_background(tmp_path):
    # GIVEN a block that started a process in the background, one that stops on SIGTERM by writing a file
    work = tmp_path / "work"
    work.mkdir()
    shell = Shell(tmp_path, work)
    stopped = tmp_path / "stopped"
    script = f"trap 'touch {stopped}; exit 0' TERM; while true; do sleep 0.1; done"
    output, failures = shell.run(block(f"bash -c \"{script}\" &\necho $! > {tmp_path / 'pid'}\n"), 0, 10)
    assert (output, failures) == ("", "")
    pid = int((tmp_path / "pid").read_text())
    # WHEN the shell is closed THEN the process got SIGTERM (it ran its trap) and is gone
    shell.close(timeout=10)
    assert stopped.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

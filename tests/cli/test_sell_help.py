"""``--help`` of every ``obol sell`` command shows examples, and every example actually works.

Design notes:
- The examples are parsed out of the real ``--help`` text (backslash continuations joined) and
  run against a fake kubectl, so a renamed flag can never leave a stale example behind.
- The capacity commands must say, in their help, that nothing is autoscaled.
"""

from __future__ import annotations

import shlex

import pytest

from tests.cli.sell_helpers import FakeKubectl, Runner

COMMANDS = [
    ["sell"],
    ["sell", "inference"],
    ["sell", "http"],
    ["sell", "presets"],
    ["sell", "status"],
    ["sell", "list"],
]
each_command = pytest.mark.parametrize("command", COMMANDS, ids=" ".join)


def examples(help_text: str) -> list[list[str]]:
    """The ``obol ...`` command lines under ``Examples:``, continuations joined."""
    joined = help_text.replace("\\\n", " ")
    return [
        shlex.split(line.strip())[1:]
        for line in joined.splitlines()
        if line.strip().startswith("obol ")
    ]


@each_command
def test_help_shows_examples(run: Runner, command: list[str]) -> None:
    result = run([*command, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    assert examples(result.stdout), "at least one runnable example"


@pytest.mark.parametrize(
    "command",
    [["sell"], ["sell", "inference"], ["sell", "presets"], ["sell", "status"]],
    ids=" ".join,
)
def test_capacity_help_says_nothing_is_autoscaled(run: Runner, command: list[str]) -> None:
    assert "autoscaled" in run([*command, "--help"]).stdout


@each_command
def test_every_example_runs(run: Runner, fake_kubectl: FakeKubectl, command: list[str]) -> None:
    fake_kubectl.answer_json({"apiVersion": "v1", "kind": "List", "items": []})
    for example in examples(run([*command, "--help"]).stdout):
        result = run(example, env={"OBOL_KUBECTL": str(fake_kubectl.path)})
        assert result.exit_code == 0, f"{shlex.join(example)}\n{result.output}"

"""The README stays true: its Quickstart has exactly two commands, its settings table lists every
variable the code reads, and the test command it names is what CI runs.
"""

from __future__ import annotations

import re
from pathlib import Path

from hooks.config import ENVIRONMENT, OBSERVE_ENVIRONMENT, SHELL_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_quickstart_is_two_commands_install_and_serve_then_test() -> None:
    block = re.search(r"```sh\n(.*?)```", section("Quickstart"), re.S)
    assert block
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["pip install . && obol hook serve", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_every_setting_is_documented() -> None:
    table = section("Settings")
    variables = [s.variable for s in ENVIRONMENT]
    variables += [s.variable for s in SHELL_ENVIRONMENT]
    variables += [s.variable for s in OBSERVE_ENVIRONMENT]
    missing = [v for v in variables if f"`{v}`" not in table]
    assert not missing


def test_readme_starts_with_what_this_is() -> None:
    first = README.splitlines()[0]
    assert first.startswith("# ") and "ServiceOffer" in first


def test_bad_input_section_names_what_each_kind_of_bad_input_gets() -> None:
    table = section("Bad input")
    for promise in (
        "aliases",
        "quote it",
        "EIP-55",
        "obol_hook_busy_missing_payer_total",
        "Server: obol-hook",
        "gunicorn answers these itself",
        "exit 5",
        "obol crd apply",
    ):
        assert promise in table, promise

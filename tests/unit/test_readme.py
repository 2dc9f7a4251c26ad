"""The README stays true: its Quickstart has exactly two commands, its settings table lists every
variable the code reads, and the test command it names is what CI runs.
"""

from __future__ import annotations

import re
from pathlib import Path

from hooks.config import (
    ENVIRONMENT,
    FILE_VARIABLES,
    OBSERVE_ENVIRONMENT,
    SHELL_ENVIRONMENT,
    load_config,
)

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


def documented_defaults() -> dict[str, str]:
    """The Settings table's rows: variable -> default column (backticks removed)."""
    rows = re.findall(r"^\| `(OBOL_\w+)` \| ([^|]+) \|", section("Settings"), re.M)
    return {variable: default.strip() for variable, default in rows}


def test_every_setting_is_documented_with_the_default_it_has() -> None:
    documented = documented_defaults()
    tables = (ENVIRONMENT, SHELL_ENVIRONMENT, OBSERVE_ENVIRONMENT)
    parsed = [s.variable for table in tables for s in table]
    assert sorted(documented) == sorted([*parsed, *FILE_VARIABLES])
    defaults = load_config({})
    for variable in parsed:
        default = documented[variable]
        if default.startswith("`"):
            # Setting the documented default explicitly changes nothing.
            assert load_config({variable: default.strip("`")}) == defaults, variable
        else:
            assert default in ("(none)", "(unset)"), variable


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
        "before the app sees anything",
        "exit 5",
        "obol crd apply",
    ):
        assert promise in table, promise

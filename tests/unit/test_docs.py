"""The README and docs/ stay true: the Quickstart is two commands, CI runs the test command the
README names, every link resolves, and the tables that describe the code (the settings, the
children of an offer, the admission chain) are read back and compared with the code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from hooks.cli.main import obol
from hooks.config import (
    ENVIRONMENT,
    FILE_VARIABLES,
    OBSERVE_ENVIRONMENT,
    SHELL_ENVIRONMENT,
    load_config,
)

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))


def section(text: str, title: str) -> str:
    """The body of the section titled ``title``, up to the next heading of its level."""
    match = re.search(rf"^(#+) {re.escape(title)}\n(.*?)(?=^\1 |\Z)", text, re.S | re.M)
    assert match, f"no section '{title}'"
    return match.group(2)


def test_readme_starts_with_what_this_is_and_fits_on_a_screen() -> None:
    first = README.splitlines()[0]
    assert first.startswith("# ") and "ServiceOffer" in first
    assert len(README.splitlines()) <= 250


def test_quickstart_is_two_commands_install_and_serve_then_test() -> None:
    block = re.search(r"```sh\n(.*?)```", section(README, "Quickstart"), re.S)
    assert block
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/obol hook serve",
        "make test",
    ]


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci/run").read_text()


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    text = page.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        assert linked.exists(), f"{page.name}: {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
            assert anchor in {_anchor(h) for h in headings}, f"{page.name}: {target}"


def test_readme_links_every_document() -> None:
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", README))
    assert linked == {page.name for page in DOCS}


# --- tables that describe the code ----------------------------------------------------------------


def documented_settings() -> dict[str, str]:
    """The settings table's rows: variable -> default column (backticks kept)."""
    text = section((ROOT / "docs/settings.md").read_text(), "Settings")
    rows = re.findall(r"^\| `(OBOL_\w+)` \| ([^|]+) \|", text, re.M)
    return {variable: default.strip() for variable, default in rows}


def test_every_setting_is_documented_with_the_default_it_has() -> None:
    documented = documented_settings()
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


def _offer_with_every_step() -> dict[str, Any]:
    """The documented example offer, asking for every optional child and chain step."""
    offer: dict[str, Any] = yaml.safe_load(
        (ROOT / "examples/inference-qwen36-fast.yaml").read_text()
    )
    offer["spec"]["capabilities"]["streaming"] = False  # a body limit is enforced only then
    offer["spec"]["limits"] = {"rps": 20}
    return offer


def _rendered(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "offer.yaml"
    path.write_text(yaml.safe_dump(_offer_with_every_step()))
    result = CliRunner().invoke(obol, ["hook", "render", "-f", str(path), "-o", "json"])
    assert result.exit_code == 0, result.output
    items: list[dict[str, Any]] = orjson.loads(result.stdout)["items"]
    return items


def test_the_child_table_lists_what_an_offer_renders(tmp_path: Path) -> None:
    text = section((ROOT / "docs/how-it-works.md").read_text(), "How it works")
    documented = set(re.findall(r"^\| (\w+) `(so-[\w-]+)` \|", text, re.M))
    rendered = {(c["kind"], c["metadata"]["name"]) for c in _rendered(tmp_path)}
    assert documented == rendered


def test_the_chain_lists_the_route_filters_in_order(tmp_path: Path) -> None:
    text = section(
        (ROOT / "docs/how-it-works.md").read_text(), "The admission chain, and why in this order"
    )
    documented = re.findall(r"^\d+\. \*\*(\w+)\*\*", text, re.M)
    children = _rendered(tmp_path)
    middlewares = {c["metadata"]["name"]: c["spec"] for c in children if c["kind"] == "Middleware"}
    (route,) = (c for c in children if c["kind"] == "HTTPRoute")
    steps = []
    for step in route["spec"]["rules"][0]["filters"]:
        if step["type"] == "ExtensionRef":
            (kind,) = middlewares[step["extensionRef"]["name"]]
            steps.append(kind)
        else:
            steps.append(step["type"])
    assert documented == steps


def documented_modules() -> set[str]:
    """The ``hooks/`` modules named in docs/development.md's Layout tree."""
    text = section((ROOT / "docs/development.md").read_text(), "Layout")
    block = re.search(r"```\n(.*?)```", text, re.S)
    assert block
    parents: list[str] = []
    modules = set()
    for line in block.group(1).splitlines():
        indent = (len(line) - len(line.lstrip(" "))) // 2
        names = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        parents = parents[:indent]
        for name in (n.strip() for n in names.split(",")):
            if name.endswith("/"):
                parents.append(name)
            elif name.endswith(".py"):
                modules.add("".join(parents) + name)
    return {m for m in modules if m.startswith("hooks/")}


def test_the_layout_names_every_module_of_the_package() -> None:
    actual = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "hooks").rglob("*.py")
        if path.name != "__init__.py"
    }
    assert documented_modules() == actual

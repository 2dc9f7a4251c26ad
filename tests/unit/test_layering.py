"""The layering the tree shows, beyond what ``lint-imports`` checks (contracts in pyproject.toml).

Test design notes:
- Only ``hooks/config.py`` touches the process environment: no other module names
  ``os.environ``, ``os.getenv`` or ``os.putenv``, found by walking each module's syntax tree.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p for p in (ROOT / "hooks").rglob("*.py") if p.name != "config.py")
ENVIRONMENT_NAMES = {"environ", "getenv", "putenv", "environb", "unsetenv"}


@pytest.mark.parametrize("module", MODULES, ids=[str(p.relative_to(ROOT)) for p in MODULES])
def test_only_the_config_module_reads_the_environment(module: Path) -> None:
    tree = ast.parse(module.read_text(), str(module))
    touched = [
        f"line {node.lineno}: os.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in ENVIRONMENT_NAMES
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    ]
    imported = [
        f"line {node.lineno}: from os import {alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "os"
        for alias in node.names
        if alias.name in ENVIRONMENT_NAMES
    ]
    assert touched + imported == []


def test_the_scan_sees_every_shell_module() -> None:
    names = {p.relative_to(ROOT / "hooks").as_posix() for p in MODULES}
    assert {"server/app.py", "server/sync_server.py", "cli/hook.py", "core/sync.py"} <= names

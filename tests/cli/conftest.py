"""Fixtures for the ``obol sell`` tests: a CLI runner and a FAKE kubectl.

Design notes:
- The fake kubectl is a small Python script written into ``tmp_path`` and made executable. It
  stands in for the cluster: it appends its argv and stdin to a JSON-lines log and answers with
  canned stdout, stderr and exit code. Tests point ``--kubectl`` (or ``OBOL_KUBECTL``) at it, so
  the real subprocess path in :mod:`hooks.cli.kubectl` runs end to end.
- ``run`` invokes the root ``obol`` group with the variables the CLI reads cleared, so a
  developer's ``OBOL_KUBECTL`` or registry file cannot leak into a test.
"""

from __future__ import annotations

import stat
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hooks.cli.main import obol
from tests.cli.sell_helpers import FAKE_KUBECTL_SCRIPT, FakeKubectl, Runner


@pytest.fixture
def fake_kubectl(tmp_path: Path) -> FakeKubectl:
    """An executable fake kubectl that answers with empty output and exit 0 until told."""
    folder = tmp_path / "fake-kubectl"
    folder.mkdir()
    script = folder / "kubectl"
    script.write_text(FAKE_KUBECTL_SCRIPT.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return FakeKubectl(script).answer()


@pytest.fixture
def run() -> Runner:
    """Run ``obol <args>`` in-process; ``env`` adds variables, the CLI's own are cleared;
    ``stdin`` is what the command reads from standard input."""

    def invoke(
        args: Sequence[str], env: dict[str, str] | None = None, stdin: str | None = None
    ) -> Result:
        clean: dict[str, str | None] = {
            "OBOL_KUBECTL": None,
            "OBOL_ASSET_REGISTRY_FILE": None,
            "X402_WALLET": None,
            "OBOL_PAYMENT_GATE": None,
            "OBOL_VERIFIER": None,
            "OBOL_VERIFIER_SETTLEMENT": None,
        }
        return CliRunner().invoke(obol, list(args), env={**clean, **(env or {})}, input=stdin)

    return invoke

"""Fixtures for the robustness tests, and the rule that keeps their default run short.

Design notes:

* Long variants carry ``@pytest.mark.slow``. A plain ``pytest tests/robustness`` skips them (so
  the default run stays well under a minute); any ``-m`` expression that names ``slow`` (``-m
  slow``, ``-m "slow or not slow"``) runs them. The rule applies only to items in this folder.
* Real servers come from the HTTP tests' harness (``tests/http/http_harness.py``): ``obol hook
  serve`` as a subprocess on free loopback ports, embedded defaults, SIGTERM by PID at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.http.http_harness import HookServer, LaunchHook, run_hook_server

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="long variant: run with -m slow")
    for item in items:
        if item.get_closest_marker("slow") and HERE in Path(str(item.path)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> LaunchHook:
    """``with launch({"OBOL_X": "y"}) as server:`` starts a dedicated real server."""

    def start(
        overrides: Mapping[str, str] | None = None, **kwargs: Any
    ) -> contextlib.AbstractContextManager[HookServer]:
        return run_hook_server(tmp_path_factory.mktemp("robust"), overrides, **kwargs)

    return start

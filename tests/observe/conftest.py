"""Fixtures for the observation layer: fake engines on loopback and observers, all cleaned up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hooks.core.observation import ObserveSettings
from hooks.observe.observer import Observer
from tests.observe.engines import FakeEngine


@pytest.fixture
def engine() -> Iterator[Callable[[str], FakeEngine]]:
    """Start a :class:`FakeEngine` serving the given /metrics text; closed after the test."""
    started: list[FakeEngine] = []

    def start(metrics: str = "") -> FakeEngine:
        server = FakeEngine(metrics).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def observer() -> Iterator[Callable[..., Observer]]:
    """Build an :class:`Observer` (``ObserveSettings`` keywords + ``fetch``/``clock``); stopped
    after the test."""
    built: list[Observer] = []

    def build(*, fetch: Any = None, clock: Any = None, **settings: Any) -> Observer:
        settings.setdefault("enabled", True)
        extra = {"clock": clock} if clock is not None else {}
        made = Observer(ObserveSettings(**settings), fetch=fetch, **extra)
        built.append(made)
        return made

    yield build
    for made in built:
        made.stop()
        made.wait_idle(5)

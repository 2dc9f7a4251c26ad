"""Shared pytest helpers for the e2e tests: start a :class:`~.stack.Stack` for a test module.

Never starts a build: when the binaries are missing the tests are skipped with the command to
run (``bash tests/e2e/build.sh``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from .stack import Binaries, BinariesMissing, Netns, Stack


@contextlib.contextmanager
def e2e_stack(request: pytest.FixtureRequest, **kwargs: Any) -> Iterator[Stack]:
    """A running Stack for the life of a (module- or session-scoped) fixture.

    Skips when ``tests/e2e/build.sh`` has not been run, or when network namespaces cannot be
    made here (not root, or no iproute2). If any test failed while the stack was
    up, the stack is marked failed, so that teardown prints the log tails and keeps the logs.
    ``kwargs`` go to :class:`Stack` (e.g. ``extra_crds=[...]``).
    """
    try:
        binaries = Binaries.find()
    except BinariesMissing as exc:
        pytest.skip(str(exc))
    if kwargs.get("use_netns", True) and (reason := Netns.unavailable_reason()):
        pytest.skip(f"e2e stack needs a network namespace for upstreams: {reason}")
    failed_before = request.session.testsfailed
    with Stack(binaries=binaries, **kwargs) as stack:
        try:
            yield stack
        finally:
            if request.session.testsfailed != failed_before:
                stack.mark_failed()

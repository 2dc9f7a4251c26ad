"""Fixtures for the HTTP tests: the session's shared server and a launcher for dedicated ones.

Test-design notes:

* ``client`` is the sync server's app in-process (Flask's test client), built from the
  configuration as ``obol hook serve`` builds it, with a 1 MiB body cap so the 413 test need
  not send 8 MiB: the HTTP contract of the sync port is tested there.
* ``hook_server`` is both real servers, shared by the whole session (embedded defaults, the same
  cap): what only real servers show (ports, probes, keep-alive, the busy responder). Modules
  that need other settings start their own pair with ``launch_hook``, scoped to the module.
* The harness itself (start, readiness wait, SIGTERM by PID) lives in ``http_harness.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.http.http_harness import (
    AppClient,
    HookServer,
    LaunchHook,
    app_client,
    example_offer,
    run_hook_server,
    sync_body,
)

SHARED_MAX_REQUEST_BYTES = 1024 * 1024


@pytest.fixture(scope="session")
def launch_hook(tmp_path_factory: pytest.TempPathFactory) -> LaunchHook:
    """``with launch_hook({"OBOL_X": "y"}) as server:`` starts a dedicated server."""

    def launch(
        overrides: Mapping[str, str] | None = None, **kwargs: Any
    ) -> contextlib.AbstractContextManager[HookServer]:
        return run_hook_server(tmp_path_factory.mktemp("hook"), overrides, **kwargs)

    return launch


@pytest.fixture(scope="session")
def hook_server(launch_hook: LaunchHook) -> Iterator[HookServer]:
    """Both real servers for the session: embedded defaults, 1 MiB body cap."""
    with launch_hook({"OBOL_MAX_REQUEST_BYTES": str(SHARED_MAX_REQUEST_BYTES)}) as server:
        yield server


@pytest.fixture(scope="session")
def valid_body() -> bytes:
    """A sync request for the full-envelope example offer."""
    return sync_body(example_offer("inference-qwen36-fast.yaml"))


@pytest.fixture(scope="session")
def client() -> AppClient:
    """The sync server's app in-process: embedded defaults, 1 MiB body cap."""
    return app_client({"OBOL_MAX_REQUEST_BYTES": str(SHARED_MAX_REQUEST_BYTES)})

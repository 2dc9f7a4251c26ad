"""Harness for the HTTP tests: the Pod's two containers as two processes, ``obol hook serve``
(real gunicorn) and ``obol hook busy`` (real uvicorn).

Test-design notes:

* Every pair gets two free loopback ports (sync and busy), its own HOME and an environment
  stripped of ``OBOL_*`` variables, so the embedded defaults are what is tested unless a test
  module asks for overrides. Both processes get the same environment, as the two containers do.
* Start-up waits for both ``/readyz`` with a bounded deadline; a server that exits or never
  becomes ready fails the test with the tail of its log. Shutdown sends SIGTERM to each PID and
  waits, escalating to SIGKILL only after a timeout.
* No ``__init__.py`` here, like the other test folders: ``tests.http`` is a namespace package
  (a top-level ``http`` package would shadow the standard library).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
import pytest
import requests
import yaml
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from hooks.cli.hook import render_request
from hooks.config import load_config
from hooks.server.app import create_app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 5.0


@dataclass
class HookServer:
    """A running ``obol hook serve`` and ``obol hook busy``, and how to reach them."""

    process: subprocess.Popen[bytes]  # the sync server (the gunicorn master)
    busy_process: subprocess.Popen[bytes]
    sync_url: str
    busy_url: str
    log_path: Path  # both servers' combined stdout/stderr
    env: dict[str, str] = field(default_factory=dict)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the servers' combined stdout/stderr."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def post_sync(self, body: bytes, path: str = "/sync", **kwargs: Any) -> requests.Response:
        """POST a raw body to the sync listener."""
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        return requests.post(
            self.sync_url + path, data=body, headers=headers, timeout=REQUEST_TIMEOUT, **kwargs
        )

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        """GET with the test timeout."""
        return requests.get(url, timeout=REQUEST_TIMEOUT, **kwargs)

    def gunicorn_worker(self) -> int:
        """PID of the sync server's one gunicorn worker."""
        for pid in children(self.process.pid):
            return pid
        raise AssertionError(f"no gunicorn worker under {self.process.pid}:\n{self.log_tail()}")


@dataclass
class AppClient:
    """The sync server's Flask app in-process (Flask's test client), for the HTTP contract."""

    client: FlaskClient
    env: dict[str, str]

    def post_sync(
        self, body: bytes, path: str = "/sync", headers: Mapping[str, str] | None = None
    ) -> TestResponse:
        """POST a raw body, as Metacontroller does."""
        sent = {"Content-Type": "application/json", **(headers or {})}
        return self.client.post(path, data=body, headers=sent)


def app_client(overrides: Mapping[str, str]) -> AppClient:
    """The app built as ``obol hook serve`` builds it, from the configuration ``overrides``."""
    env = dict(overrides)
    return AppClient(create_app(load_config(env)).test_client(), env)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from ``/proc/<pid>/task/*/children``)."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found.update(int(child) for child in text.split())
    return sorted(found)


# What the ``launch_hook`` fixture returns: ``launch(overrides)``.
LaunchHook = Callable[..., contextlib.AbstractContextManager[HookServer]]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_environment(home: Path, overrides: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment without OBOL_* settings, plus ``overrides``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OBOL_")}
    env["HOME"] = str(home)
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(overrides)
    return env


OBOL: Final = [sys.executable, "-c", "from hooks.cli.main import main; main()", "hook"]


@contextlib.contextmanager
def run_hook_server(
    workdir: Path, overrides: Mapping[str, str] | None = None
) -> Iterator[HookServer]:
    """Start both servers in ``workdir``; stop them (SIGTERM by PID) on exit."""
    sync_port, busy_port = free_port(), free_port()
    log_path = workdir / "server.log"
    env = server_environment(workdir, overrides or {})
    env.update(OBOL_BIND=f"127.0.0.1:{sync_port}", OBOL_BUSY_BIND=f"127.0.0.1:{busy_port}")
    with log_path.open("wb") as log:
        sync, busy = (
            subprocess.Popen(
                [*OBOL, command], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir
            )
            for command in ("serve", "busy")
        )
    server = HookServer(
        sync, busy, f"http://127.0.0.1:{sync_port}", f"http://127.0.0.1:{busy_port}", log_path, env
    )
    try:
        wait_until_ready(server)
        yield server
    finally:
        stop(sync)
        stop(busy)


def wait_until_ready(server: HookServer, timeout: float = START_TIMEOUT) -> None:
    """Poll both /readyz until 200; fail with the log tail if a server dies or times out."""
    deadline = time.monotonic() + timeout
    pending = {server.sync_url: server.process, server.busy_url: server.busy_process}
    while pending and time.monotonic() < deadline:
        for url, process in list(pending.items()):
            if process.poll() is not None:
                pytest.fail(f"{url} exited with {process.returncode}:\n{server.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/readyz", timeout=1).status_code == 200:
                    del pending[url]
        time.sleep(0.05)
    if pending:
        pytest.fail(f"{list(pending)} not ready after {timeout} s:\n{server.log_tail()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a server by PID, then SIGKILL if it does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def example_offer(name: str) -> dict[str, Any]:
    """A ServiceOffer from ``examples/`` (``invalid/x.yaml`` for the invalid ones)."""
    loaded = yaml.safe_load((EXAMPLES / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def sync_body(offer: dict[str, Any], **changes: Any) -> bytes:
    """A compact v2 sync request for ``offer`` with no observed children (a new offer)."""
    request = render_request(offer)
    request.update(changes)
    return orjson.dumps(request)

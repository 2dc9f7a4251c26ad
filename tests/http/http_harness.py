"""Harness for the HTTP tests: run ``obol hook serve`` (real gunicorn) as a subprocess.

Test-design notes:

* Every server gets two free loopback ports (sync and busy), a private Prometheus multiprocess
  directory, its own HOME and an environment stripped of ``OBOL_*`` variables, so the embedded
  defaults are what is tested unless a test module asks for overrides.
* Start-up waits for ``/readyz`` with a bounded deadline; a server that exits or never becomes
  ready fails the test with the tail of its log. Shutdown sends SIGTERM to the PID (the gunicorn
  master, since ``serve`` execs it) and waits, escalating to SIGKILL only after a timeout.
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
from typing import Any

import orjson
import pytest
import requests
import yaml

from hooks.cli.hook import render_request

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 5.0


@dataclass
class HookServer:
    """A running ``obol hook serve`` and how to reach it."""

    process: subprocess.Popen[bytes]
    sync_url: str
    busy_url: str
    metrics_dir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's combined stdout/stderr."""
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

    def gunicorn_master(self) -> int:
        """PID of the gunicorn master among ``obol hook serve``'s two servers."""
        for pid in children(self.process.pid):
            with contextlib.suppress(OSError):
                if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
        raise AssertionError(f"no gunicorn master under {self.process.pid}:\n{self.log_tail()}")


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from ``/proc/<pid>/task/*/children``)."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found.update(int(child) for child in text.split())
    return sorted(found)


# What the ``launch_hook`` fixture returns: ``launch(overrides, workers=...)``.
LaunchHook = Callable[..., contextlib.AbstractContextManager[HookServer]]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_environment(
    home: Path, metrics_dir: Path, overrides: Mapping[str, str]
) -> dict[str, str]:
    """The test process's environment without OBOL_* settings, plus ``overrides``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OBOL_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(HOME=str(home), PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(overrides)
    return env


@contextlib.contextmanager
def run_hook_server(
    workdir: Path,
    overrides: Mapping[str, str] | None = None,
    *,
    workers: int = 2,
) -> Iterator[HookServer]:
    """Start ``obol hook serve`` in ``workdir``; stop it (SIGTERM by PID) on exit."""
    sync_port = free_port()
    busy_port = free_port()
    metrics_dir = workdir / "prometheus"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    env = server_environment(workdir, metrics_dir, overrides or {})
    command = [
        sys.executable, "-c", "from hooks.cli.main import main; main()",
        "hook", "serve",
        "--bind", f"127.0.0.1:{sync_port}",
        "--busy-bind", f"127.0.0.1:{busy_port}",
        "--workers", str(workers),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir
        )
    server = HookServer(
        process,
        f"http://127.0.0.1:{sync_port}",
        f"http://127.0.0.1:{busy_port}",
        metrics_dir,
        log_path,
        env,
    )
    try:
        wait_until_ready(server)
        yield server
    finally:
        stop(process)


def wait_until_ready(server: HookServer, timeout: float = START_TIMEOUT) -> None:
    """Poll /readyz until 200; fail with the log tail if the server dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            code = server.process.returncode
            pytest.fail(f"hook server exited with {code}:\n{server.log_tail()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(server.sync_url + "/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    pytest.fail(f"hook server not ready after {timeout} s:\n{server.log_tail()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM ``obol hook serve`` by PID, then SIGKILL if it does not exit in time."""
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

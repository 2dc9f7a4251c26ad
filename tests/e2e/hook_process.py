"""Run the real sync hook (``obol hook serve``, i.e. gunicorn) as a process owned by the Stack.

The hook listens on two loopback ports: the sync listener (``/sync``, asked by the
:mod:`~.driver`) and the busy listener (``/busy/<ns>/<name>``, asked by Traefik's ``errors``
Middleware through each offer's ExternalName Service ``localhost``). Its settings are the ones a
platform team would give it, pointed at this stack: the Gateway ``traefik/traefik-gateway``
listener ``web``, ``OBOL_BUSY_HOST=localhost`` and the busy port, and the verifier URL of the
:mod:`~.verifier_stub`. It is stopped by PID with the stack, and its log tail is part of the
stack's diagnostics (``<log_dir>/hook.log``).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from .stack import (
    GATEWAY_NAME,
    GATEWAY_NAMESPACE,
    LISTENER_NAME,
    ManagedProcess,
    Stack,
    free_port,
    wait_until,
)

START_TIMEOUT = 30.0


@dataclass
class HookServer:
    """A running hook: its process, URLs and the environment it was given."""

    proc: ManagedProcess
    sync_url: str  # base URL of the sync listener
    busy_url: str  # base URL of the busy listener
    busy_port: int
    env: dict[str, str]

    @property
    def sync_endpoint(self) -> str:
        return f"{self.sync_url}/sync"

    def log_tail(self, lines: int = 40) -> str:
        text = self.proc.log_path.read_text(errors="replace") if self.proc.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def obol_command() -> list[str]:
    """How to run the ``obol`` console script of this Python environment."""
    script = Path(sys.executable).with_name("obol")
    if script.exists():
        return [str(script)]
    found = shutil.which("obol")
    if found:
        return [found]
    return [sys.executable, "-c", "from hooks.cli.main import main; main()"]


def hook_environment(verifier_url: str, busy_port: int) -> dict[str, str]:
    """The ``OBOL_*`` settings that point the hook at this stack."""
    return {
        "OBOL_GATEWAY_NAME": GATEWAY_NAME,
        "OBOL_GATEWAY_NAMESPACE": GATEWAY_NAMESPACE,
        "OBOL_GATEWAY_LISTENER": LISTENER_NAME,
        "OBOL_BUSY_HOST": "localhost",
        "OBOL_BUSY_PORT": str(busy_port),
        "OBOL_VERIFIER_URL": verifier_url,
        "OBOL_LOG_LEVEL": "debug",  # a line for every sync, for diagnostics
    }


def start_hook(
    stack: Stack,
    *,
    verifier_url: str,
    extra_env: Mapping[str, str] | None = None,
    workers: int = 2,
) -> HookServer:
    """Start ``obol hook serve`` on two free loopback ports and wait for ``/readyz``."""
    sync_port, busy_port = free_port(), free_port()
    env = {**hook_environment(verifier_url, busy_port), **(extra_env or {})}
    argv = [
        *obol_command(),
        "hook",
        "serve",
        "--bind",
        f"127.0.0.1:{sync_port}",
        "--busy-bind",
        f"127.0.0.1:{busy_port}",
        "--workers",
        str(workers),
    ]
    proc = stack.start_process("hook", argv, env=env)
    server = HookServer(
        proc, f"http://127.0.0.1:{sync_port}", f"http://127.0.0.1:{busy_port}", busy_port, env
    )

    def ready() -> bool:
        proc.check_alive()
        return requests.get(f"{server.sync_url}/readyz", timeout=2).status_code == 200

    wait_until(ready, timeout=START_TIMEOUT, what="obol hook serve /readyz", interval=0.2)
    return server

"""Run the real hook as the Pod does, two processes owned by the Stack: ``obol hook serve``
(gunicorn, the ``sync`` container) and ``obol hook busy`` (uvicorn, the ``busy`` container).

They listen on two loopback ports: the sync listener (``/sync``, asked by the :mod:`~.driver`)
and the busy listener (``/busy/<ns>/<name>``, asked by Traefik's ``errors`` Middleware through
each offer's ExternalName Service ``localhost``). Their settings are the ones a platform team
would give them, pointed at this stack: the Gateway ``traefik/traefik-gateway`` listener
``web``, ``OBOL_BUSY_HOST=localhost`` and the busy port, and the verifier URL of the
:mod:`~.verifier_stub`. Both are stopped by PID with the stack, and their log tails are part of
the stack's diagnostics (``<log_dir>/hook.log`` and ``<log_dir>/hook-busy.log``).
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
    """A running hook: its two processes, URLs and the environment they were given."""

    proc: ManagedProcess  # obol hook serve
    busy_proc: ManagedProcess  # obol hook busy
    sync_url: str  # base URL of the sync listener
    busy_url: str  # base URL of the busy listener
    busy_port: int
    env: dict[str, str]

    @property
    def sync_endpoint(self) -> str:
        return f"{self.sync_url}/sync"

    def log_tail(self, lines: int = 40) -> str:
        text = "".join(
            proc.log_path.read_text(errors="replace")
            for proc in (self.proc, self.busy_proc)
            if proc.log_path.exists()
        )
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        self.proc.stop()
        self.busy_proc.stop()


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
    stack: Stack, *, verifier_url: str, extra_env: Mapping[str, str] | None = None
) -> HookServer:
    """Start both servers on two free loopback ports and wait for both ``/readyz``."""
    sync_port, busy_port = free_port(), free_port()
    env = {
        **hook_environment(verifier_url, busy_port),
        "OBOL_BIND": f"127.0.0.1:{sync_port}",
        "OBOL_BUSY_BIND": f"127.0.0.1:{busy_port}",
        **(extra_env or {}),
    }
    sync = stack.start_process("hook", [*obol_command(), "hook", "serve"], env=env)
    busy = stack.start_process("hook-busy", [*obol_command(), "hook", "busy"], env=env)
    server = HookServer(
        sync, busy, f"http://127.0.0.1:{sync_port}", f"http://127.0.0.1:{busy_port}", busy_port, env
    )

    def ready() -> bool:
        sync.check_alive()
        busy.check_alive()
        return all(
            requests.get(f"{url}/readyz", timeout=2).status_code == 200
            for url in (server.sync_url, server.busy_url)
        )

    wait_until(ready, timeout=START_TIMEOUT, what="obol hook serve and busy /readyz", interval=0.2)
    return server

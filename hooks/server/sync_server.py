"""``obol hook serve``: gunicorn serving the Flask app on the sync port, with stock settings.

gunicorn runs in this process as its master, through gunicorn's documented custom-application
API (``BaseApplication`` with ``load_config`` and ``load``), so the configuration read once by
the CLI reaches the worker as the same object (the worker is a fork of this process) and no
server setting comes from anywhere else. Every value is a documented gunicorn setting:

* One worker process of the stock ``gthread`` class with :attr:`ShellConfig.threads` request
  threads (``OBOL_THREADS``). One process keeps the metrics in memory (a scrape sees them all)
  and runs one observer; the hook does no I/O while it syncs, so more processes would add memory
  and no useful throughput (Metacontroller's resyncs are the load; replicas add more).
* Each connection closes after its answer (``keepalive`` 0): a new connection that sends
  nothing holds a thread for at most gunicorn's own 5 s data wait and is then closed.
* ``timeout`` 30 s, far above Metacontroller's 5 s hook timeout: the worker is killed only when
  truly stuck. ``graceful_timeout`` 20 s, which with the Deployment's 5 s preStop sleep fits its
  30 s termination grace period.
* The listener is the socket the CLI opened (``fd://``), so a taken port fails before gunicorn.
* No access log (the app logs one structured line per sync, :mod:`hooks.server.logs`); the error
  log as JSON lines on stderr through ``logconfig_dict``. No control socket (it would be created
  under ``$HOME``, read-only in the container).
* The app is built in this process before the fork (``preload_app``), so the worker shares its
  memory pages with the master instead of loading a second copy; what is loaded by then is
  frozen (``gc.freeze()``), so the cyclic collector neither re-scans nor copies those pages. The
  observer's threads start in the worker (``post_worker_init``): threads do not survive a fork.

What a few clients that trickle or sit silent on this port do, and why the NetworkPolicy is the
protection beyond that: the threat model in docs/install.md, shown by
tests/http/test_slow_clients.py.

Never: patch or subclass gunicorn's internals; read the environment.
"""

from __future__ import annotations

import gc
import socket
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from hooks.config import ShellConfig
from hooks.observe.observer import Observer
from hooks.server.logs import JsonFormatter

TIMEOUT = 30
GRACEFUL_TIMEOUT = 20


def gunicorn_settings(config: ShellConfig, listener: socket.socket) -> dict[str, Any]:
    """The gunicorn settings of the sync server (names as in gunicorn's settings reference)."""
    return {
        "bind": [f"fd://{listener.fileno()}"],
        "workers": 1,
        "worker_class": "gthread",
        "threads": config.threads,
        "keepalive": 0,
        "timeout": TIMEOUT,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "preload_app": True,
        "proc_name": "obol-hook",
        "accesslog": None,
        "errorlog": "-",
        "loglevel": config.log_level,
        "logconfig_dict": _log_config(config.log_level),
        "capture_output": False,
        "control_socket_disable": True,
    }


def _log_config(level: str) -> dict[str, Any]:
    # gunicorn's own lines as JSON on stderr; its access log nowhere (see above).
    return {
        "root": {"level": "WARNING", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["json"], "propagate": False},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "formatters": {"json": {"()": JsonFormatter}},
    }


class SyncServer(BaseApplication):  # type: ignore[misc]
    """gunicorn's documented custom application: these settings, this app."""

    def __init__(self, config: ShellConfig, listener: socket.socket) -> None:
        self.config = config
        self.listener = listener  # kept open: gunicorn serves the descriptor
        self.observer: Observer | None = None
        super().__init__()

    def load_config(self) -> None:
        settings = gunicorn_settings(self.config, self.listener)
        settings["post_worker_init"] = self.start_observer
        for name, value in settings.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        from hooks.server.app import create_app

        observe = self.config.observe
        self.observer = Observer(observe) if observe.enabled else None
        app = create_app(self.config, observer=self.observer)
        gc.collect()
        gc.freeze()
        return app

    def start_observer(self, worker: Any) -> None:
        """In the worker, after the fork: start probing (the observer's threads)."""
        if self.observer is not None:
            self.observer.start()


def serve(config: ShellConfig, listener: socket.socket) -> None:
    """Run the sync server until SIGTERM or SIGINT (gunicorn exits the process)."""
    SyncServer(config, listener).run()

"""The checked-in gunicorn configuration of the sync listener: ``gunicorn -c
python:hooks.server.gunicorn_conf``.

``obol hook serve`` runs exactly that (next to the busy responder, :mod:`hooks.server.supervise`).
Every value comes from :mod:`hooks.config` (``OBOL_BIND``, ``OBOL_WORKERS``, ``OBOL_LOG_LEVEL``)
or is fixed here:

* 2 worker processes by default, each ``gthread`` with ONE request thread that closes every
  connection after its answer (:mod:`hooks.server.gunicorn_worker`, which also keeps silent or
  stalled clients off that thread).
* One bind, the sync listener (``OBOL_BIND``).
* ``timeout`` 30 s, far above Metacontroller's 5 s hook timeout: a worker is killed only when it
  is truly stuck, never for a slow but live answer. ``graceful_timeout`` 20 s, which with the
  Deployment's 5 s preStop sleep fits its 30 s termination grace period.
* No access log (a line per busy 429 would flood the log under saturation; the app logs a
  structured line per sync itself, at a level that follows its outcome, see
  :mod:`hooks.server.logs`);
  the error log goes to stderr as JSON lines.
* No control socket (gunicorn >= 25.1 otherwise creates one under ``$HOME/.gunicorn``, which is
  read-only in the container).
* Each worker freezes what it has loaded (``gc.freeze()`` once the app is built), so the cyclic
  garbage collector stops re-scanning the hundreds of thousands of long-lived objects of Flask,
  pydantic and the app on its full collections; request garbage is collected as before.
* Prometheus multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` is set to a private temporary
  directory when unset (``obol hook serve`` sets and empties it before it starts both servers),
  and each dead worker is marked so its live gauges disappear.

Only the gunicorn master imports this module; it must not import the app (workers do) nor
prometheus_client before the multiprocess directory is set.
"""

from __future__ import annotations

import gc
import shutil
from typing import Any

from hooks.config import load_config, provide_metrics_directory

# Before anything imports prometheus_client (it chooses its value store on import), hence
# before the imports below.
_metrics_dir, _private_metrics_dir = provide_metrics_directory()

from gunicorn.glogging import Logger as _GunicornLogger  # noqa: E402

from hooks.server.gunicorn_worker import IO_TIMEOUT  # noqa: E402
from hooks.server.logs import JsonFormatter, StalledClients  # noqa: E402

_config = load_config()

wsgi_app = "hooks.server.app:create_app()"
bind = [_config.bind]
workers = _config.workers
worker_class = "hooks.server.gunicorn_worker.OneThreadWorker"
threads = 1
keepalive = 5  # seconds a connection that has sent nothing yet may wait in the poller
timeout = 30
graceful_timeout = 20
preload_app = False
proc_name = "obol-hook"
accesslog = None
errorlog = "-"
loglevel = _config.log_level
capture_output = False
control_socket_disable = True  # gunicorn >= 25.1; older versions ignore unknown names


class JsonErrorLogger(_GunicornLogger):  # type: ignore[misc]
    """gunicorn's logger with its error log written as JSON lines, like the app's."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
        self.error_log.addFilter(StalledClients(IO_TIMEOUT))


logger_class = JsonErrorLogger


def post_worker_init(worker: Any) -> None:
    """Move everything the worker loaded out of the collector's reach (see above)."""
    gc.collect()
    gc.freeze()


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the merged metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    """Remove the metrics directory if this configuration created it."""
    if _private_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)

"""The bare ceiling: a Flask app that does only what every request must cost, nothing else.

Served by the SAME gunicorn settings as the hook (:mod:`hooks.server.sync_server`: worker class,
threads, bind, logger), with this module's app: ``python tests/bench/bare_app.py`` with
``OBOL_BIND`` set, as ``obol hook serve`` would run.

* ``POST /sync``: reads the body and parses it with orjson (like the real app), then returns a
  fixed small answer. The difference to the real ``/sync`` is the hook's own work: the sync core,
  serialising the 7 KB answer, metrics and the log line.

Nothing here is imported by the hook; it exists only for ``tests/bench/run.py``.
"""

from __future__ import annotations

from typing import Final

import orjson
from flask import Flask, Response, request

from hooks.config import load_config
from hooks.server.listener import open_listener
from hooks.server.sync_server import SyncServer

JSON: Final = "application/json"
FIXED_SYNC_ANSWER: Final = b'{"status":{"ok":true},"children":[],"resyncAfterSeconds":60}'


def create_bare_app() -> Flask:
    """The bare Flask app."""
    bare = Flask(__name__)

    @bare.post("/sync")
    def sync() -> Response:
        orjson.loads(request.get_data(cache=False))
        return Response(FIXED_SYNC_ANSWER, 200, content_type=JSON)

    @bare.get("/readyz")
    def readyz() -> Response:
        return Response(b'{"status":"ready"}', 200, content_type=JSON)

    return bare


class BareServer(SyncServer):
    """The hook's gunicorn application with the bare app in place of the hook's."""

    def load(self) -> Flask:
        return create_bare_app()


if __name__ == "__main__":
    config = load_config()
    BareServer(config, open_listener(config.bind)).run()

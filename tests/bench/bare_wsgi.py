"""A second, lower ceiling: ``POST /sync`` as a plain WSGI function, no Flask at all.

The hook answers plain syncs in a WSGI front before Flask (``hooks.server.app.HotPathFront``), so it
can beat the issue's bare-Flask ceiling (:mod:`bare_app`). This app is the like-for-like floor
of that front: read the body, parse it with orjson, return a fixed answer, on the same gunicorn
configuration. ``run.py`` reports the hook against it as information; the target stays the
bare Flask ceiling.

Nothing here is imported by the hook; it exists only for ``tests/bench/run.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

JSON = "application/json"
FIXED_SYNC_ANSWER = b'{"status":{"ok":true},"children":[],"resyncAfterSeconds":60}'  # bare_app's

_READY = b'{"status":"ready"}'
_READY_HEADERS = [("Content-Type", JSON), ("Content-Length", str(len(_READY)))]
_HEADERS = [("Content-Type", JSON), ("Content-Length", str(len(FIXED_SYNC_ANSWER)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Parse the body of any POST and answer the fixed 200; GET answers ``/readyz``."""
    if environ["REQUEST_METHOD"] != "POST":
        start_response("200 OK", _READY_HEADERS)
        return [_READY]
    orjson.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
    start_response("200 OK", _HEADERS)
    return [FIXED_SYNC_ANSWER]

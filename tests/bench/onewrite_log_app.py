"""Experiment, not product code: the hook app with its per-sync log line written in one call.

Until 0867547, ``hooks.logs.log_sync`` went through :mod:`logging` (a LogRecord, ``findCaller``
walking the stack, the JSON formatter, the handler lock, a flush): about 75-85 µs of server CPU
per request under load; this prototype measured that, and the hook now writes its line directly.
This module swaps it, in this process only, for a function that writes the *same* JSON line with
one ``orjson.dumps`` and one ``os.write(2, ...)`` (a single write of a line under PIPE_BUF is
atomic on a pipe, so lines of two workers never interleave), with the timestamp's seconds part
formatted once per second. ``variants.py`` serves it with the hook's gunicorn config
(``onewrite_log_app:app``) next to the hook as shipped.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import orjson

from hooks import logs

_SECOND: list[Any] = [-1, ""]


def _timestamp(now: float) -> str:
    second = int(now)
    if _SECOND[0] != second:
        _SECOND[0], _SECOND[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_SECOND[1]}.{int(now * 1000) % 1000:03d}Z"


def one_write_log_sync(
    logger: logging.Logger,
    *,
    offer: str,
    outcome: str,
    status: int,
    children: int,
    duration_ms: float,
    detail: str | None = None,
) -> None:
    """The line ``hooks.logs.log_sync`` writes, in one write."""
    if not logger.isEnabledFor(logging.INFO):
        return
    entry: dict[str, Any] = {
        "time": _timestamp(time.time()),
        "level": "info",
        "logger": logger.name,
        "message": "sync",
        "offer": offer,
        "outcome": outcome,
        "status": status,
        "children": children,
        "durationMs": round(duration_ms, 3),
    }
    if detail is not None:
        entry["detail"] = detail
    os.write(2, orjson.dumps(entry) + b"\n")


logs.log_sync = one_write_log_sync  # hooks.app calls logs.log_sync through the module

from hooks.app import create_app  # noqa: E402

app = create_app()

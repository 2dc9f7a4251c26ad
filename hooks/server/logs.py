"""Structured logs: one JSON object per line on stderr, for both servers and gunicorn itself.

The server logs one line per sync request (offer ``namespace/name``, outcome, HTTP status,
children count, duration in ms) at a level that follows the outcome: a routine successful sync
at ``debug`` (a resync of thousands of healthy offers would otherwise write thousands of lines
that say nothing; the metrics count them), an invalid spec at ``info``, a refused or malformed
request at ``warning``, a failure at ``error``, plus a traceback for every internal error.
Every line goes through the standard :mod:`logging` module and :class:`JsonFormatter`.

Never log request or response bodies (they carry whole objects, and a parent may one day carry
secrets), tokens or ``Authorization`` headers.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Final

import orjson

LOGGER_NAME: Final = "obol.hook"
_HANDLER_TAG: Final = "_obol_json_handler"


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time, level, logger, message, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def _utc_timestamp(created: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{stamp}.{int(created * 1000) % 1000:03d}Z"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted (like logging.lastResort)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:
        return sys.stderr


def configure(level: str = "info", name: str = LOGGER_NAME) -> logging.Logger:
    """The logger ``name`` at ``level`` (one of :data:`hooks.config.LOG_LEVELS`), writing JSON
    lines to stderr; safe to call more than once."""
    logger = logging.getLogger(name)
    logger.setLevel(level.upper())
    logger.propagate = False
    if not any(getattr(h, _HANDLER_TAG, False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        setattr(handler, _HANDLER_TAG, True)
        logger.addHandler(handler)
    return logger


# The level of a sync's line by its outcome (see the module notes); unknown outcomes: info.
SYNC_LOG_LEVELS: Final = {
    "ok": logging.DEBUG,
    "invalid_spec": logging.INFO,
    "bad_request": logging.WARNING,
    "unauthorized": logging.WARNING,
    "error": logging.ERROR,
}


def log_sync(
    logger: logging.Logger,
    *,
    offer: str,
    outcome: str,
    status: int,
    children: int,
    duration_ms: float,
    detail: str | None = None,
) -> None:
    """One line for one sync request; ``detail`` is the short reason of a 4xx."""
    fields: dict[str, Any] = {
        "offer": offer,
        "outcome": outcome,
        "status": status,
        "children": children,
        "durationMs": round(duration_ms, 3),
    }
    if detail is not None:
        fields["detail"] = detail
    logger.log(SYNC_LOG_LEVELS.get(outcome, logging.INFO), "sync", extra={"fields": fields})


def log_failure(logger: logging.Logger, message: str, error: BaseException, **fields: Any) -> None:
    """An internal error with its traceback (the response body never carries it)."""
    logger.error(message, exc_info=error, extra={"fields": fields})

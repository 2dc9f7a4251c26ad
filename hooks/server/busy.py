"""The busy responder: what a buyer of a saturated offer gets instead of a payment quote.

Each offer with a capacity envelope has a Traefik ``errors`` Middleware that catches the 429 of
its in-flight limits and asks this responder for the answer
(``GET /busy/<namespace>/<name>?retryAfter=N``, :func:`hooks.core.admission.busy_query`).
Traefik keeps the 429 and copies the responder's headers and body, so the buyer gets
``Retry-After``, ``Cache-Control: no-store``, the reason in ``X-Obol-Reject-Reason`` and a small
JSON body; never any x402 payment terms. The reason is ``buyer_limit`` when the rejected request
carried the admitted marker (:data:`hooks.core.admission.ADMITTED_HEADER`: it had passed the
offer's global limit, so a per-buyer limit refused it), else ``offer_saturated``.

Why a server of its own, not a Flask route: it answers once per 429 of every saturated offer,
exactly when buyers retry, and the gateway keeps its connections alive. An ASGI app under stock
uvicorn (asyncio, one process) answers one for a small fraction of the CPU a Flask request
under gunicorn costs (``tests/bench/dataplane.py`` prints the CPU per 429), and it runs in a
container of its own (``obol hook busy``), whose CPU request and limit keep a 429 flood from
taking the CPU the sync container needs. ``/healthz`` and ``/readyz`` (its probes) and
``/metrics`` (its own counters) answer here too; every other path is a JSON 404.

Stock uvicorn settings bound what a client can make it hold: h11's maximum incomplete event size
refuses a request head that is still incomplete past :data:`MAX_HEAD_BYTES` (a 400, connection
closed: at most one socket read is ever buffered), ``limit_concurrency`` caps connections and
tasks (a 503 beyond), idle connections close after :data:`KEEPALIVE` s. A longer head that
arrived whole in one read is refused here, 431 before anything else. Who may connect at all is
the NetworkPolicy's job (only the gateway, which reads whole request heads before it forwards):
see the threat model in docs/install.md.

Never: read the environment; quote payment terms; echo request data other than a well-formed
offer name; patch or subclass uvicorn's internals.
"""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson
import uvicorn

from hooks.config import ShellConfig
from hooks.core.admission import ADMITTED_HEADER
from hooks.core.api import is_dns_label, is_dns_subdomain
from hooks.core.settings import Settings
from hooks.server import logs
from hooks.server.metrics import BusyMetrics, package_version

DEFAULT_RETRY_AFTER: Final = 2
MAX_RETRY_AFTER: Final = 3600
BUSY_PREFIX: Final = "/busy/"
KEEPALIVE: Final = 5  # seconds an idle connection stays open (Go clients keep theirs 90 s)
GRACEFUL_TIMEOUT: Final = 20  # seconds in-flight answers get on SIGTERM
MAX_HEAD_BYTES: Final = 8 * 1024  # a longer request head is refused, never buffered whole
# Connections plus in-flight answers; above it uvicorn answers 503. The gateway opens one
# connection per 429 in flight (keeping up to 200 idle): a flood of 600 buyers stays far below.
MAX_CONCURRENCY: Final = 4096

# Why a request got 429 (the body's "error" and the X-Obol-Reject-Reason header).
REASON_SATURATED: Final = "offer_saturated"  # the offer's global in-flight limit
REASON_BUYER_LIMIT: Final = "buyer_limit"  # this buyer's own in-flight limit
REJECT_REASON_HEADER: Final = "X-Obol-Reject-Reason"
_BUSY_MESSAGES: Final = {
    REASON_SATURATED: "This offer is at capacity (all its in-flight slots are busy). "
    "Retry after {seconds} seconds. No payment was quoted or charged.",
    REASON_BUYER_LIMIT: "You already have the most requests in flight this offer allows one "
    "buyer. Retry after {seconds} seconds. This request was not charged.",
}

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


def retry_after_seconds(raw: str | None, jitter: int = 0) -> int:
    """The Retry-After value: ``raw`` clamped to 1..3600 (2 when missing or invalid) + jitter.

    Any run of digits is a number and is clamped, however long (99999999999 -> 3600): only
    what is not a whole number falls back to the default.
    """
    base = DEFAULT_RETRY_AFTER
    if raw is not None and raw.isascii() and raw.isdigit():
        # More digits than the maximum has is above it; no need to parse a huge number.
        too_long = len(raw.lstrip("0")) > len(str(MAX_RETRY_AFTER))
        base = MAX_RETRY_AFTER if too_long else min(max(int(raw), 1), MAX_RETRY_AFTER)
    # Jitter spreads retries of a saturated offer's buyers; the shell's only randomness.
    return base + random.randint(0, jitter) if jitter > 0 else base


def busy_body(namespace: str, name: str, seconds: int, reason: str = REASON_SATURATED) -> bytes:
    """The 429 body: which limit, when to retry; never x402 payment terms."""
    body: dict[str, Any] = {"error": reason, "retryAfterSeconds": seconds}
    if is_dns_label(namespace) and is_dns_subdomain(name):
        body["offer"] = f"{namespace}/{name}"
    body["message"] = _BUSY_MESSAGES[reason].format(seconds=seconds)
    return orjson.dumps(body)


def busy_reason(admitted: str | None) -> str:
    """``buyer_limit`` when the rejected request had passed the global limit (the marker the
    route sets after it, see ADMITTED_HEADER), else ``offer_saturated``."""
    return REASON_BUYER_LIMIT if admitted == "true" else REASON_SATURATED


def error_body(error: str, detail: str) -> bytes:
    """The JSON body of every non-429 answer of this server."""
    return orjson.dumps({"error": error, "detail": detail})


_NOT_FOUND: Final = error_body("not_found", "no such endpoint on this port")
_NOT_ALLOWED: Final = error_body("method_not_allowed", "the busy responder answers GET only")
_HEAD_TOO_LARGE: Final = error_body(
    "request_header_fields_too_large", f"the request head exceeds {MAX_HEAD_BYTES} bytes"
)
_ALIVE: Final = orjson.dumps({"status": "alive"})
_READY: Final = orjson.dumps({"status": "ready"})


class BusyResponder:
    """The ASGI app of the busy listener."""

    def __init__(self, settings: Settings, metrics: BusyMetrics, logger: logging.Logger) -> None:
        self.jitter = settings.busy_jitter_seconds
        self.payer_name = settings.payer_header
        self.payer_header = settings.payer_header.lower().encode("latin-1")
        self.admitted_header = ADMITTED_HEADER.lower().encode("latin-1")
        self.metrics = metrics
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan or websocket support: uvicorn runs with lifespan off
        if _head_size(scope) > MAX_HEAD_BYTES:
            await _answer(send, 431, _HEAD_TOO_LARGE, [(b"connection", b"close")])
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith(BUSY_PREFIX):
            namespace, slash, name = path[len(BUSY_PREFIX) :].partition("/")
            if not namespace or not slash or not name or "/" in name:
                await _answer(send, 404, _NOT_FOUND)
            elif method not in ("GET", "HEAD"):
                await _answer(send, 405, _NOT_ALLOWED, [(b"allow", b"GET, HEAD")])
            else:
                await self.busy(scope, send, namespace, name, head=method == "HEAD")
        elif path in ("/healthz", "/readyz") and method in ("GET", "HEAD"):
            await _answer(send, 200, _ALIVE if path == "/healthz" else _READY)
        elif path == "/metrics" and method == "GET":
            body, content_type = self.metrics.exposition()
            await _answer(send, 200, body, content_type=content_type.encode())
        else:
            await _answer(send, 404, _NOT_FOUND)

    async def busy(self, scope: Scope, send: Send, namespace: str, name: str, head: bool) -> None:
        """The 429 for one rejected request of offer ``namespace/name``."""
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        seconds = retry_after_seconds(query.get("retryAfter"), self.jitter)
        headers = dict(scope["headers"])
        reason = busy_reason(_text(headers.get(self.admitted_header)))
        self.metrics.observe_busy(namespace)
        if reason == REASON_BUYER_LIMIT and not headers.get(self.payer_header):
            self.missing_payer(namespace, name)
        body = busy_body(namespace, name, seconds, reason)
        extra = [
            (b"retry-after", str(seconds).encode()),
            (b"cache-control", b"no-store"),
            (REJECT_REASON_HEADER.lower().encode(), reason.encode()),
        ]
        await _answer(send, 429, body, extra, head=head)

    def missing_payer(self, namespace: str, name: str) -> None:
        """The per-buyer limit keys on the payer header the verifier returns. Without it every
        buyer shares one bucket (key ""), so one buyer's requests reject everyone's: say so."""
        self.metrics.observe_missing_payer(namespace)
        self.logger.warning(
            "per-buyer 429 without a payer header",
            extra={
                "fields": {
                    "offer": f"{namespace}/{name}",
                    "header": self.payer_name,
                    "detail": "the verifier did not return the payer header; every buyer"
                    " of this offer shares one per-buyer bucket",
                }
            },
        )


def _head_size(scope: Scope) -> int:
    """The bytes of the request line and header lines (near enough: separators counted too)."""
    line = len(scope["method"]) + len(scope["raw_path"]) + len(scope["query_string"]) + 12
    return line + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    *,
    head: bool = False,
    content_type: bytes = b"application/json",
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *(extra or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


def serve(config: ShellConfig, listener: socket.socket) -> None:
    """Run the busy responder on ``listener`` until SIGTERM or SIGINT (``obol hook busy``)."""
    logger = logs.configure(config.log_level)
    logs.configure(config.log_level, "uvicorn.error")  # uvicorn's own lines, as JSON too
    app = BusyResponder(config.settings, BusyMetrics(package_version()), logger)
    server_config = uvicorn.Config(
        app,
        http="h11",
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        limit_concurrency=MAX_CONCURRENCY,
        loop="asyncio",
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_keep_alive=KEEPALIVE,
        timeout_graceful_shutdown=GRACEFUL_TIMEOUT,
    )
    uvicorn.Server(server_config).run(sockets=[listener])

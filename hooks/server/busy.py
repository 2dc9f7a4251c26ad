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
exactly when buyers retry, and the gateway keeps its connections alive. An ASGI app under
uvicorn (httptools parser, asyncio loop) answers one for a small fraction of the CPU a Flask
request under gunicorn costs (``tests/bench/dataplane.py`` prints the CPU per 429), and a 429
flood runs in its own process at a lower scheduling priority (:data:`NICENESS`), so it never
queues a sync behind it and yields the CPU to one. ``obol hook serve`` runs it next to the
gunicorn sync workers (:mod:`hooks.server.supervise`); ``/healthz`` and ``/readyz`` answer here
too, every other path is a JSON 404.

Never: read the environment except through :mod:`hooks.config`; quote payment terms; echo
request data other than a well-formed offer name.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hooks.config import bind_address, load_config
from hooks.core.admission import ADMITTED_HEADER
from hooks.core.api import is_dns_label, is_dns_subdomain
from hooks.core.settings import Settings
from hooks.server import SERVER_NAME, logs
from hooks.server.metrics import HookMetrics, package_version

DEFAULT_RETRY_AFTER: Final = 2
MAX_RETRY_AFTER: Final = 3600
BUSY_PREFIX: Final = "/busy/"
KEEPALIVE: Final = 5  # seconds an idle connection stays open (Go clients keep theirs 90 s)
HEAD_TIMEOUT: Final = 2  # seconds a connection may take to send a whole request head
GRACEFUL_TIMEOUT: Final = 20  # seconds in-flight answers get on SIGTERM
# Scheduling priority below the sync workers': when both want the CPU, a sync goes first.
NICENESS: Final = 10

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
_ALIVE: Final = orjson.dumps({"status": "alive"})
_READY: Final = orjson.dumps({"status": "ready"})


class BusyResponder:
    """The ASGI app of the busy listener."""

    def __init__(self, settings: Settings, metrics: HookMetrics, logger: logging.Logger) -> None:
        self.jitter = settings.busy_jitter_seconds
        self.payer_name = settings.payer_header
        self.payer_header = settings.payer_header.lower().encode("latin-1")
        self.admitted_header = ADMITTED_HEADER.lower().encode("latin-1")
        self.metrics = metrics
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan or websocket support: uvicorn runs with lifespan off
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


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    *,
    head: bool = False,
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


class BusyProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, bounded for a port any pod of the cluster may reach.

    uvicorn closes a connection only when it idles after an answer (``timeout_keep_alive``). A
    connection that sends nothing, or part of a request head, and then stalls would otherwise
    stay open for good: here it must complete its request head within :data:`HEAD_TIMEOUT`, and
    is closed with one warning line otherwise. A request with a body (the gateway never sends
    one) closes its connection after the answer, so an unread body is never waited for. A
    request the parser refuses gets a JSON 400 like every other answer.
    """

    head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.head_deadline is None:
            self._await_head()

    def on_headers_complete(self) -> None:
        self._drop_deadline()
        super().on_headers_complete()
        expects_body = any(
            name in (b"content-length", b"transfer-encoding") and value not in (b"0", b"")
            for name, value in self.headers
        )
        if expects_body and self.cycle is not None:
            self.cycle.keep_alive = False

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._drop_deadline()  # idle until the next request: uvicorn's keep-alive timer

    def connection_lost(self, exc: Exception | None) -> None:
        self._drop_deadline()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        body = error_body("bad_request", msg)
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        head.extend(
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        )
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _await_head(self) -> None:
        self.head_deadline = self.loop.call_later(HEAD_TIMEOUT, self._stalled)

    def _drop_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _stalled(self) -> None:
        self.head_deadline = None
        if not self.transport.is_closing():
            logging.getLogger(logs.LOGGER_NAME).warning(
                "client stalled: no whole request head within %s s; connection closed",
                HEAD_TIMEOUT,
            )
            self.transport.close()


def serve() -> None:
    """Run the busy responder on ``OBOL_BUSY_BIND`` until SIGTERM or SIGINT (what ``obol hook
    serve`` starts next to gunicorn)."""
    config = load_config()
    os.nice(NICENESS)
    logger = logs.configure(config.log_level)
    logs.configure(config.log_level, "uvicorn.error")  # uvicorn's own lines, as JSON too
    app = BusyResponder(config.settings, HookMetrics.from_environment(package_version()), logger)
    address = bind_address(config.busy_bind)
    where: dict[str, Any] = (
        {"uds": address} if isinstance(address, str) else {"host": address[0], "port": address[1]}
    )
    server_config = uvicorn.Config(
        app,
        **where,
        http=BusyProtocol,
        loop="asyncio",
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        headers=[("server", SERVER_NAME)],
        timeout_keep_alive=KEEPALIVE,
        timeout_graceful_shutdown=GRACEFUL_TIMEOUT,
        backlog=2048,
    )
    uvicorn.Server(server_config).run()


if __name__ == "__main__":
    serve()

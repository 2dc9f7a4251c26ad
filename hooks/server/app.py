"""The HTTP shell: a Flask app factory around the pure sync core, served by gunicorn.

``obol hook serve`` reads the configuration once and gunicorn's worker builds the app from it
(:mod:`hooks.server.sync_server`); :func:`create_app` never reads the environment.

Endpoints:

* ``POST /customize``: Metacontroller's customize hook (v2): every ServiceOffer as related
  objects, for path ownership (:mod:`hooks.core.paths`); 400 JSON when the body names no offer.
* ``POST /sync`` and ``POST /finalize``: Metacontroller's CompositeController hook (v2; v1 child
  keys work too). 200 with exactly the keys the core returns; 400 JSON for a malformed request;
  500 JSON with a generic message for anything else (traceback in the log only); 401 JSON when a
  bearer token is configured and missing or wrong; 413 JSON above the size cap.
* ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (this server's metrics).

Every request takes one path: Flask's. The request body is parsed once
(:func:`hooks.core.request.parse_request`) into the value the observer and the core share.
This app serves the sync listener only; the busy responder the gateway asks for each 429 is a
server of its own in a container of its own (:mod:`hooks.server.busy`), so a NetworkPolicy can
admit only Metacontroller to one port and only the gateway to the other.

Rules: no domain logic here; never answer 200 with a partial or empty child list because of an
exception; never put exception text, tokens or request bodies into a response.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from typing import Any, Final, NamedTuple

import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import (
    ClientDisconnected,
    HTTPException,
    InternalServerError,
    RequestEntityTooLarge,
)

from hooks.config import ShellConfig
from hooks.core.errors import HookFailure, SpecError
from hooks.core.request import SyncRequest, parse_request
from hooks.core.settings import Settings
from hooks.core.sync import Observe, Outcome, SyncResult, customize, sync
from hooks.observe.observer import Observer
from hooks.server import logs
from hooks.server.metrics import SyncMetrics, package_version

JSON: Final = "application/json"
RESPONSE_KEYS: Final = frozenset({"status", "children", "resyncAfterSeconds", "finalized"})
_MAX_DETAIL: Final = 1000


class SyncAnswer(NamedTuple):
    """What one sync request body gets: HTTP status, JSON body, and what to log and count."""

    status: int
    body: bytes
    outcome: str  # ok | invalid_spec | bad_request | error
    offer: str = "-"  # namespace/name when the request names one
    child_count: int = 0
    detail: str | None = None  # one-line reason of a 4xx or 5xx; safe to log and print
    error: BaseException | None = None  # the exception behind a 500, for the shell to log
    result: SyncResult | None = None  # the core's answer behind a 200


def handle_sync_body(body: bytes, settings: Settings, observe: Observe | None = None) -> SyncAnswer:
    """Answer one sync request body: the single code path of POST /sync and ``obol hook sync``.

    ``observe`` supplies live upstream observations (the server's observer); without it the
    status reports upstream health and in-flight as Unknown, as the CLI does.
    """
    request = _parsed(body)
    if isinstance(request, SyncAnswer):
        return request
    offer = request.offer
    try:
        result = sync(request, settings, observe)
        children = _checked_children(request, result.response)
        payload = orjson.dumps(result.response, option=orjson.OPT_SORT_KEYS)
    except Exception as exc:
        # Never 200: Metacontroller keeps the current children and retries a 500.
        return SyncAnswer(500, _INTERNAL_ERROR_BODY, "error", offer, 0, "internal error", exc)
    outcome = "invalid_spec" if result.outcome is Outcome.INVALID else "ok"
    return SyncAnswer(200, payload, outcome, offer, children, result=result)


def handle_customize_body(body: bytes) -> SyncAnswer:
    """Answer one customize request body ``{controller, parent}``: 400 when it names no valid
    ServiceOffer, else the related-resource rules every parent gets."""
    request = _parsed(body)
    if isinstance(request, SyncAnswer):
        return request
    return SyncAnswer(
        200, orjson.dumps(customize(), option=orjson.OPT_SORT_KEYS), "ok", request.offer
    )


def _parsed(body: bytes) -> SyncRequest | SyncAnswer:
    """The request Metacontroller sent (both hooks share its envelope), or the 400 it gets."""
    try:
        return parse_request(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        return _bad_request("invalid_json", f"request body is not valid JSON: {exc}")
    except SpecError as problem:
        return _bad_request("malformed_request", str(problem))


def _checked_children(request: SyncRequest, response: Any) -> int:
    # A last guard on the core's answer: v2 hooks are parsed strictly, and an empty child list
    # deletes every child, so it is allowed only when finalizing or when nothing exists yet.
    # The core answers one for an invalid offer with nothing trusted to re-render its children
    # from (hooks.core.kept): the 500 makes Metacontroller leave the live children alone.
    if not isinstance(response, dict) or not set(response) <= RESPONSE_KEYS:
        raise HookFailure("the core returned keys outside the hook response contract")
    children = response.get("children")
    if not isinstance(children, list):
        raise HookFailure("the core returned no children list")
    if not children and request.children and not request.finalizing:
        raise HookFailure(
            "refusing to answer with no children while children exist (an invalid or"
            " not-rendered offer without a status.renderedSpec to re-render them from: the"
            " live children are left as they are until the spec is fixed)"
        )
    return len(children)


def _bad_request(error: str, detail: str) -> SyncAnswer:
    detail = _one_line(detail)
    return SyncAnswer(400, _error_body(error, detail), "bad_request", "-", 0, detail)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def _error_body(error: str, detail: str) -> bytes:
    return orjson.dumps({"error": error, "detail": detail})


_INTERNAL_ERROR_BODY: Final = _error_body(
    "internal_error", "the hook failed to answer; the hook's log has the details"
)
_NOT_FOUND_BODY: Final = _error_body("not_found", "no such endpoint on this port")


class _HookShell:
    """The views, bound to one configuration."""

    def __init__(
        self,
        settings: Settings,
        token: str | None,
        metrics: SyncMetrics,
        logger: logging.Logger,
        max_request_bytes: int,
        observer: Observer | None,
    ) -> None:
        self.settings = settings
        self.observe = observer.observe if observer is not None else None
        self.token = token.encode("latin-1") if token is not None else None
        self.metrics = metrics
        self.logger = logger
        self.max_request_bytes = max_request_bytes

    def register(self, app: Flask) -> None:
        app.add_url_rule("/sync", "sync", self.sync, methods=["POST"])
        app.add_url_rule("/finalize", "finalize", self.sync, methods=["POST"])
        app.add_url_rule("/customize", "customize", self.customize, methods=["POST"])
        app.add_url_rule("/healthz", "healthz", self.healthz, methods=["GET"])
        app.add_url_rule("/readyz", "readyz", self.readyz, methods=["GET"])
        app.add_url_rule("/metrics", "metrics", self.metrics_view, methods=["GET"])
        app.register_error_handler(InternalServerError, self.internal_error)
        app.register_error_handler(HTTPException, http_error)

    def sync(self) -> Response:
        """POST /sync and /finalize."""
        started = time.perf_counter()
        if self.token is not None and not bearer_matches(
            request.headers.get("Authorization"), self.token
        ):
            return self._refuse(
                401, "unauthorized", "missing or wrong bearer token", "unauthorized", started
            )
        try:
            body = request.get_data(cache=False)
            if request.content_length is None and len(body) >= self.max_request_bytes:
                # A chunked body is read only up to the cap; one more byte means it is over.
                if request.environ["wsgi.input"].read(1):
                    raise RequestEntityTooLarge()
        except RequestEntityTooLarge:
            detail = f"request body exceeds {self.max_request_bytes} bytes"
            return self._refuse(413, "payload_too_large", detail, "bad_request", started)
        except ClientDisconnected:
            # The body stopped arriving: the client stalled past the worker's socket timeout or
            # closed the connection. One warning line (the sync log), no traceback.
            detail = "the request body stopped arriving (stalled or cut off) before it was complete"
            return self._refuse(400, "bad_request", detail, "bad_request", started)
        answer = self.answer(body, started)
        return Response(answer.body, answer.status, content_type=JSON)

    def customize(self) -> Response:
        """POST /customize: Metacontroller asks which related objects a parent's syncs need.
        Not counted as a sync; a refusal is logged like one."""
        started = time.perf_counter()
        if self.token is not None and not bearer_matches(
            request.headers.get("Authorization"), self.token
        ):
            return self._refuse(
                401, "unauthorized", "missing or wrong bearer token", "unauthorized", started
            )
        answer = handle_customize_body(request.get_data(cache=False))
        if answer.status != 200:
            logs.log_sync(
                self.logger,
                offer=answer.offer,
                outcome=answer.outcome,
                status=answer.status,
                children=0,
                duration_ms=(time.perf_counter() - started) * 1000,
                detail=f"customize: {answer.detail}",
            )
        return Response(answer.body, answer.status, content_type=JSON)

    def answer(self, body: bytes, started: float) -> SyncAnswer:
        """Answer one sync body, then count and log it."""
        answer = handle_sync_body(body, self.settings, self.observe)
        elapsed = time.perf_counter() - started
        if answer.error is not None:
            logs.log_failure(self.logger, "sync failed", answer.error, offer=answer.offer)
        self.metrics.observe_sync(answer.outcome, elapsed, answer.child_count)
        logs.log_sync(
            self.logger,
            offer=answer.offer,
            outcome=answer.outcome,
            status=answer.status,
            children=answer.child_count,
            duration_ms=elapsed * 1000,
            detail=answer.detail,
        )
        return answer

    def _refuse(
        self, status: int, error: str, detail: str, outcome: str, started: float
    ) -> Response:
        """A sync request refused before the core saw it, counted and logged."""
        self.metrics.observe_sync(outcome, None)
        logs.log_sync(
            self.logger,
            offer="-",
            outcome=outcome,
            status=status,
            children=0,
            duration_ms=(time.perf_counter() - started) * 1000,
            detail=detail,
        )
        response = Response(_error_body(error, detail), status, content_type=JSON)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="serviceoffer-hook"'
        return response

    def healthz(self) -> Response:
        return Response(orjson.dumps({"status": "alive"}), 200, content_type=JSON)

    def readyz(self) -> Response:
        return Response(orjson.dumps({"status": "ready"}), 200, content_type=JSON)

    def metrics_view(self) -> Response:
        body, content_type = self.metrics.exposition()
        return Response(body, 200, content_type=content_type)

    def internal_error(self, exc: InternalServerError) -> Response:
        # Flask has already logged the original exception with its traceback.
        return Response(_INTERNAL_ERROR_BODY, 500, content_type=JSON)


def bearer_matches(header: str | None, token: bytes) -> bool:
    """True when ``header`` is ``Bearer <token>``; constant-time in the token."""
    if header is None:
        return False
    scheme, _, presented = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode("latin-1", "replace"), token)


def http_error(exc: HTTPException) -> Response:
    """Every HTTP error as JSON, keeping its status and headers (e.g. ``Allow`` on 405)."""
    if exc.code == 404:
        return Response(_NOT_FOUND_BODY, 404, content_type=JSON)
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    name = re.sub(r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")
    body = _error_body(name, _one_line(exc.description or exc.name or ""))
    return Response(body, exc.code or 500, headers=headers, content_type=JSON)


def create_app(
    config: ShellConfig,
    *,
    metrics: SyncMetrics | None = None,
    observer: Observer | None = None,
) -> Flask:
    """The Flask app for ``config``; its statuses carry the live observations of ``observer``
    (the caller starts it), else report upstream health as Unknown."""
    app = Flask(__name__)
    logger = logs.configure(config.log_level)
    logs.configure(config.log_level, app.name)  # Flask's own exception log, as JSON too
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    shell = _HookShell(
        config.settings,
        config.hook_token,
        metrics or SyncMetrics(package_version()),
        logger,
        config.max_request_bytes,
        observer,
    )
    shell.register(app)
    return app

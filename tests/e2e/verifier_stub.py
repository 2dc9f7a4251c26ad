"""A test-only stand-in for the x402 verifier (a product outside this repository).

Traefik's forwardAuth Middleware (built by :mod:`hooks.core.admission`) asks ``GET /verify`` for
every
request that reaches step 5 of the admission chain, with ``X-Forwarded-Uri``,
``X-Forwarded-Host``, ``X-Forwarded-Method`` and the client's own headers. This stub answers
the way the real verifier's verify-only ``/verify`` endpoint does
(shared/reference/obol-stack.md section 3.4, x402-and-peers.md sections 1.2-1.4):

* It reads the routes from the pricing ConfigMaps the hook writes (label
  ``obol.org/x402-pricing=true``, key ``routes.json``), live from the API server on every call,
  and matches the forwarded path against each route's ``pattern`` (``/services/<name>/*``, which
  also matches the bare prefix). No route: 403 (fail closed).
* No ``PAYMENT-SIGNATURE`` (v2) or ``X-PAYMENT`` (v1 name) header: **402** with an x402 v2
  ``PaymentRequired`` object, as the JSON body and base64-encoded in the ``PAYMENT-REQUIRED``
  header: ``x402Version`` 2, ``error``, ``resource.url`` and one ``accepts`` entry (scheme
  ``exact``, CAIP-2 ``network``, atomic ``amount`` computed from the route's decimal ``price``
  and ``assetDecimals``, ``asset``, ``payTo``, ``maxTimeoutSeconds``, ``extra`` with the token's
  EIP-712 ``name``/``version`` and ``assetTransferMethod``).
* A well-formed payment (base64 JSON, ``x402Version`` 2, ``payload.authorization.from`` a 0x
  address, and, when it names the requirements it ``accepted``, the same scheme, network,
  amount, asset and payTo): **200** with ``X-Payment-Payer: <from>``. Signatures are not
  checked and nothing is settled: this is verify-only, like the real ``/verify``.
* Anything else: 402 with the terms and the reason in ``error``.

Every call is recorded (:class:`VerifyCall`), so a test can prove the verifier was *not* asked
for a request that the gateway rejected earlier (429, 413). The server runs in a thread of the
test process, on 127.0.0.1 only; :meth:`VerifierStub.stop` shuts it down.

:func:`payment_header` is the buyer's side: it builds the header a buyer would send for one of
the ``accepts`` entries of a 402.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

PRICING_LABEL = "obol.org/x402-pricing"
PRICING_KEY = "routes.json"
PAYER_HEADER = "X-Payment-Payer"
PAYMENT_HEADERS = ("PAYMENT-SIGNATURE", "X-PAYMENT")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
MATCHED_FIELDS = ("scheme", "network", "amount", "asset", "payTo")

ConfigMapLoader = Callable[[], list[dict[str, Any]]]


@dataclass(frozen=True)
class VerifyCall:
    """One ``/verify`` call as the stub saw it and answered it."""

    time: float
    method: str  # X-Forwarded-Method
    host: str  # X-Forwarded-Host
    uri: str  # X-Forwarded-Uri (path and query as the client sent them)
    status: int
    payer: str | None
    route: str | None  # the matched pattern
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return urlsplit(self.uri).path


class PaymentError(ValueError):
    """A payment header that is not a well-formed x402 v2 payment for the route."""


def atomic_amount(price: str, decimals: int) -> str:
    """A decimal whole-token price as an atomic-unit integer string ("0.002", 6 -> "2000")."""
    try:
        value = Decimal(price) * (Decimal(10) ** decimals)
    except InvalidOperation as exc:
        raise ValueError(f"price {price!r} is not a decimal") from exc
    if value != value.to_integral_value() or value <= 0:
        raise ValueError(f"price {price!r} is not a positive whole number of atomic units")
    return str(int(value))


def requirements(route: Mapping[str, Any]) -> dict[str, Any]:
    """The v2 ``accepts`` entry for one pricing route."""
    return {
        "scheme": "exact",
        "network": route["network"],
        "amount": atomic_amount(str(route["price"]), int(route["assetDecimals"])),
        "asset": route["assetAddress"],
        "payTo": route["payTo"],
        "maxTimeoutSeconds": int(route["maxTimeoutSeconds"]),
        "extra": {
            "name": route["eip712Name"],
            "version": route["eip712Version"],
            "assetTransferMethod": route["assetTransferMethod"],
        },
    }


def pattern_matches(pattern: str, path: str) -> bool:
    """``/x/*`` matches ``/x`` and everything under ``/x/``; other patterns match exactly."""
    if pattern.endswith("/*"):
        prefix = pattern[:-2]
        return path == prefix or path.startswith(prefix + "/")
    return path == pattern


def encode(obj: Any) -> str:
    """base64 of compact JSON, as x402 headers carry objects."""
    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


def payment_header(
    accepted: Mapping[str, Any], payer: str, resource_url: str = "", *, version: int = 2
) -> str:
    """The ``PAYMENT-SIGNATURE`` value a buyer sends for ``accepted`` (an ``accepts`` entry):
    an EIP-3009 authorization from ``payer`` with a fresh nonce and a dummy signature."""
    now = int(time.time())
    payload = {
        "x402Version": version,
        "resource": {"url": resource_url},
        "accepted": dict(accepted),
        "payload": {
            "signature": "0x" + "11" * 65,
            "authorization": {
                "from": payer,
                "to": accepted["payTo"],
                "value": accepted["amount"],
                "validAfter": str(now - 600),
                "validBefore": str(now + int(accepted["maxTimeoutSeconds"])),
                "nonce": "0x" + os.urandom(32).hex(),
            },
        },
    }
    return encode(payload)


def decode_payment(header: str, accepts: list[dict[str, Any]]) -> str:
    """The payer of a well-formed payment for one of ``accepts``; raise :class:`PaymentError`."""
    try:
        payment = json.loads(base64.b64decode(header, validate=True))
    except (ValueError, TypeError) as exc:
        raise PaymentError("payment header is not base64-encoded JSON") from exc
    if not isinstance(payment, dict) or payment.get("x402Version") != 2:
        raise PaymentError("payment is not an x402Version 2 PaymentPayload")
    payload = payment.get("payload")
    authorization = payload.get("authorization") if isinstance(payload, dict) else None
    payer = authorization.get("from") if isinstance(authorization, dict) else None
    if not isinstance(payer, str) or not ADDRESS.match(payer):
        raise PaymentError("payload.authorization.from is not a 0x address")
    accepted = payment.get("accepted")
    if accepted is not None:
        wanted = [{k: a.get(k) for k in MATCHED_FIELDS} for a in accepts]
        if (
            not isinstance(accepted, dict)
            or {k: accepted.get(k) for k in MATCHED_FIELDS} not in wanted
        ):
            raise PaymentError("the accepted requirements do not match this resource's terms")
    return payer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # socketserver's 5 overflows at c=32 (SYN retransmits in p99)


class VerifierStub:
    """The stub server. ``load_configmaps`` returns the pricing ConfigMaps (live)."""

    def __init__(self, load_configmaps: ConfigMapLoader, host: str = "127.0.0.1") -> None:
        self.load_configmaps = load_configmaps
        self._lock = threading.Lock()
        self._calls: list[VerifyCall] = []
        self.errors: list[str] = []
        self._server = _Server((host, 0), self._handler_class())
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    @property
    def verify_url(self) -> str:
        return f"http://{self.host}:{self.port}/verify"

    def start(self) -> VerifierStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # -- records -----------------------------------------------------------------------------------

    def calls(self) -> list[VerifyCall]:
        with self._lock:
            return list(self._calls)

    def mark(self) -> int:
        """A position in the call log; see :meth:`calls_since`."""
        with self._lock:
            return len(self._calls)

    def calls_since(self, mark: int) -> list[VerifyCall]:
        with self._lock:
            return list(self._calls[mark:])

    def _record(self, call: VerifyCall) -> None:
        with self._lock:
            self._calls.append(call)
            del self._calls[:-5000]

    # -- routes ------------------------------------------------------------------------------------

    def routes(self) -> list[dict[str, Any]]:
        """Every route of every pricing ConfigMap, first-match order (namespace, name, pattern)."""
        routes: list[dict[str, Any]] = []
        for cm in self.load_configmaps():
            document = json.loads((cm.get("data") or {}).get(PRICING_KEY) or "{}")
            for route in document.get("routes") or []:
                if isinstance(route, dict) and isinstance(route.get("pattern"), str):
                    routes.append(route)
        routes.sort(
            key=lambda r: (
                str(r.get("offerNamespace", "")),
                str(r.get("offerName", "")),
                r["pattern"],
            )
        )
        return routes

    def match(self, path: str) -> dict[str, Any] | None:
        return next((r for r in self.routes() if pattern_matches(r["pattern"], path)), None)

    # -- HTTP --------------------------------------------------------------------------------------

    def answer(self, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes, VerifyCall]:
        """The response to one ``/verify`` call with these request headers."""
        lower = {k.lower(): v for k, v in headers.items()}
        uri = lower.get("x-forwarded-uri", "")
        host = lower.get("x-forwarded-host", "")
        method = lower.get("x-forwarded-method", "")
        proto = lower.get("x-forwarded-proto", "http")

        def done(
            status: int, extra: dict[str, str], body: Any, payer: str | None, route: str | None
        ) -> tuple[int, dict[str, str], bytes, VerifyCall]:
            call = VerifyCall(time.time(), method, host, uri, status, payer, route, dict(headers))
            data = json.dumps(body, separators=(",", ":")).encode()
            return status, {"Content-Type": "application/json", **extra}, data, call

        if not uri:
            return done(403, {}, {"error": "X-Forwarded-Uri is missing"}, None, None)
        route = self.match(urlsplit(uri).path)
        if route is None:
            return done(403, {}, {"error": f"no paid route for {uri}"}, None, None)
        accepts = [requirements(route)]
        payment = next((lower[h.lower()] for h in PAYMENT_HEADERS if h.lower() in lower), None)
        error = "PAYMENT-SIGNATURE header is required"
        if payment is not None:
            try:
                payer = decode_payment(payment, accepts)
            except PaymentError as exc:
                error = f"invalid payment: {exc}"
            else:
                return done(200, {PAYER_HEADER: payer}, {"payer": payer}, payer, route["pattern"])
        required = {
            "x402Version": 2,
            "error": error,
            "resource": {
                "url": f"{proto}://{host}{uri}",
                "description": route.get("description", ""),
                "mimeType": "application/json",
            },
            "accepts": accepts,
        }
        return done(402, {"PAYMENT-REQUIRED": encode(required)}, required, None, route["pattern"])

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "obol-e2e-verifier"
            disable_nagle_algorithm = True  # head and body are two sends: no Nagle wait

            def log_message(self, format: str, *args: Any) -> None:
                pass  # calls are recorded instead

            def _reply(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if urlsplit(self.path).path != "/verify":
                    self._reply(404, {"Content-Type": "text/plain"}, b"not found")
                    return
                try:
                    status, headers, body, call = stub.answer(dict(self.headers.items()))
                except Exception as exc:  # a broken route or API error: fail closed, visibly
                    stub.errors.append(repr(exc))
                    self._reply(500, {"Content-Type": "text/plain"}, repr(exc).encode())
                    return
                stub._record(call)
                self._reply(status, headers, body)

        return Handler

"""Operator settings: one immutable object, built once at start-up from environment variables.

:meth:`Settings.from_env` takes the environment as a plain mapping, so it is pure and
testable; only the shells (``app``, ``cli``) pass ``os.environ`` in, and only they read the
optional asset-registry file. The pure core receives a ``Settings`` and never reads anything.

The table in the README ("Settings") is the user-facing copy of :data:`ENVIRONMENT`; a test
keeps them in step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hooks.core.assets import BUILTIN_REGISTRY, AssetRegistry
from hooks.core.errors import FieldProblem, SpecError

HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"

# The two payment gates (README "Verifier contract"). forward-auth: a forwardAuth Middleware asks
# the verifier's /verify, then the route's backend is the upstream. seller-proxy: the route's
# backend is the verifier's proxy, which verifies, proxies to the upstream and settles after it.
GATE_FORWARD_AUTH = "forward-auth"
GATE_SELLER_PROXY = "seller-proxy"
PAYMENT_GATES = (GATE_FORWARD_AUTH, GATE_SELLER_PROXY)
# When a forward-auth verifier settles: "deferred" (/verify only verifies; settlement, if any,
# happens outside the gate) or "on-verify" (/verify settles as it accepts, before the upstream).
SETTLEMENT_DEFERRED = "deferred"
SETTLEMENT_ON_VERIFY = "on-verify"
SETTLEMENTS = (SETTLEMENT_DEFERRED, SETTLEMENT_ON_VERIFY)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the sync core needs to know about the platform it renders for."""

    gateway_name: str = "traefik-gateway"
    gateway_namespace: str = "traefik"
    gateway_listener: str = "web"
    gateway_replicas: int = 1
    public_base_url: str = ""
    admission_key_header: str = "X-Obol-Offer-Key"
    payer_header: str = "X-Payment-Payer"
    verifier_url: str = "http://x402-verifier.x402.svc.cluster.local:8080/verify"
    verifier_max_response_bytes: int = 1_048_576
    busy_host: str = "serviceoffer-hook.obol-system.svc.cluster.local"
    busy_port: int = 8081
    busy_jitter_seconds: int = 0
    resync_seconds: int = 0
    payment_gate: str = GATE_FORWARD_AUTH
    verifier_settlement: str = SETTLEMENT_DEFERRED
    verifier_proxy_url: str = "http://x402-verifier.x402.svc.cluster.local:8080"
    asset_registry: AssetRegistry = field(default=BUILTIN_REGISTRY, compare=False)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], *, asset_registry: AssetRegistry | None = None
    ) -> Settings:
        """Build settings from ``OBOL_*`` variables; raise :class:`SpecError` on bad values."""
        values: dict[str, Any] = {}
        problems: list[FieldProblem] = []
        for spec in ENVIRONMENT:
            raw = env.get(spec.variable)
            if raw is None or raw == "":
                continue
            try:
                values[spec.attribute] = spec.parse(raw)
            except ValueError as exc:
                problems.append(FieldProblem(spec.variable, str(exc), raw))
        if (
            values.get("payment_gate") == GATE_SELLER_PROXY
            and values.get("verifier_settlement") == SETTLEMENT_ON_VERIFY
        ):
            # The seller proxy settles after the upstream answered by contract; a verifier that
            # settles on verify would charge buyers the gateway or the upstream then rejects.
            problems.append(
                FieldProblem(
                    "OBOL_VERIFIER_SETTLEMENT",
                    f"must be {SETTLEMENT_DEFERRED} with OBOL_PAYMENT_GATE={GATE_SELLER_PROXY}"
                    " (the seller proxy settles only after the upstream answered)",
                    SETTLEMENT_ON_VERIFY,
                )
            )
        if problems:
            raise SpecError(problems)
        if asset_registry is not None:
            values["asset_registry"] = asset_registry
        return cls(**values)

    @property
    def public_endpoint_base(self) -> str:
        """The public base URL without a trailing slash ('' when unset)."""
        return self.public_base_url.rstrip("/")

    @property
    def seller_proxy(self) -> bool:
        """The route's backend is the verifier's proxy (``OBOL_PAYMENT_GATE=seller-proxy``)."""
        return self.payment_gate == GATE_SELLER_PROXY

    @property
    def settles_on_verify(self) -> bool:
        """A forward-auth verifier that settles during /verify (before the upstream answers)."""
        return self.payment_gate == GATE_FORWARD_AUTH and (
            self.verifier_settlement == SETTLEMENT_ON_VERIFY
        )

    @property
    def verifier_proxy(self) -> tuple[str, str, int]:
        """``(scheme, host, port)`` of :attr:`verifier_proxy_url` (checked when parsed)."""
        return split_base_url(self.verifier_proxy_url)


def split_base_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``http[s]://host[:port][/]``; ValueError for anything else.

    An ExternalName Service carries only a host and a port, so a path cannot be reached.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    hostport = rest[:-1] if rest.endswith("/") else rest
    if not hostport or any(c in hostport for c in "/?#@ "):
        raise ValueError("must be scheme://host[:port] with no path, query or credentials")
    host, colon, port_text = hostport.rpartition(":")
    if not colon:
        host, port_text = hostport, ""
    if port_text and not (port_text.isascii() and port_text.isdigit()):
        raise ValueError("port must be a number")
    port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    if not host or not 1 <= port <= 65535 or ":" in host or "[" in host:
        raise ValueError("must name a DNS host and a port between 1 and 65535")
    return scheme, host, port


@dataclass(frozen=True, slots=True)
class EnvSetting:
    """One documented environment variable."""

    variable: str
    attribute: str
    kind: str  # "str", "int", "header", "url", "host", "choice", "base-url"
    description: str
    minimum: int = 0
    maximum: int = 2**31 - 1
    choices: tuple[str, ...] = ()

    def parse(self, raw: str) -> str | int:
        """Parse and check one raw value."""
        text = raw.strip()
        if self.kind == "int":
            try:
                number = int(text, 10)
            except ValueError:
                raise ValueError("must be a whole number") from None
            if not self.minimum <= number <= self.maximum:
                raise ValueError(f"must be between {self.minimum} and {self.maximum}")
            return number
        if not text:
            raise ValueError("must not be empty")
        if self.kind == "choice" and text not in self.choices:
            raise ValueError("must be one of " + ", ".join(self.choices))
        if self.kind == "base-url":
            split_base_url(text)
        if self.kind == "header" and not re.match(HEADER_NAME, text):
            raise ValueError("must be an HTTP header name")
        if self.kind == "url" and not text.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        if self.kind == "host" and ("/" in text or ":" in text or " " in text):
            raise ValueError("must be a bare host name (no scheme, port or path)")
        return text


ENVIRONMENT: tuple[EnvSetting, ...] = (
    EnvSetting(
        "OBOL_GATEWAY_NAME", "gateway_name", "str", "Gateway that offer HTTPRoutes attach to."
    ),
    EnvSetting("OBOL_GATEWAY_NAMESPACE", "gateway_namespace", "str", "Namespace of that Gateway."),
    EnvSetting(
        "OBOL_GATEWAY_LISTENER",
        "gateway_listener",
        "str",
        "Listener (sectionName) of that Gateway; exactly one, so one in-flight counter.",
    ),
    EnvSetting(
        "OBOL_GATEWAY_REPLICAS",
        "gateway_replicas",
        "int",
        "Traefik replicas serving the listener; maxInFlight is divided by it.",
        1,
        1000,
    ),
    EnvSetting(
        "OBOL_PUBLIC_BASE_URL",
        "public_base_url",
        "url",
        "Public base URL written into status.endpoint (path only when unset).",
    ),
    EnvSetting(
        "OBOL_ADMISSION_KEY_HEADER",
        "admission_key_header",
        "header",
        "Header the route overwrites with <namespace>/<name> to key the global limit.",
    ),
    EnvSetting(
        "OBOL_PAYER_HEADER",
        "payer_header",
        "header",
        "Verified payer header the verifier returns; keys the per-buyer limit.",
    ),
    EnvSetting(
        "OBOL_VERIFIER_URL",
        "verifier_url",
        "url",
        "x402 verifier endpoint used by the forwardAuth Middleware.",
    ),
    EnvSetting(
        "OBOL_VERIFIER_MAX_RESPONSE_BYTES",
        "verifier_max_response_bytes",
        "int",
        "forwardAuth maxResponseBodySize; must exceed the largest 402 body.",
        4096,
    ),
    EnvSetting(
        "OBOL_BUSY_HOST",
        "busy_host",
        "host",
        "Host of this hook's busy responder, used by each offer's ExternalName Service.",
    ),
    EnvSetting("OBOL_BUSY_PORT", "busy_port", "int", "Port of the busy responder.", 1, 65535),
    EnvSetting(
        "OBOL_BUSY_JITTER_SECONDS",
        "busy_jitter_seconds",
        "int",
        "Random 0..N seconds the busy responder adds to Retry-After (0 = none).",
        0,
        60,
    ),
    EnvSetting(
        "OBOL_RESYNC_SECONDS",
        "resync_seconds",
        "int",
        "resyncAfterSeconds returned on every sync (0 = only on change).",
        0,
        86400,
    ),
    EnvSetting(
        "OBOL_PAYMENT_GATE",
        "payment_gate",
        "choice",
        "forward-auth: a forwardAuth Middleware asks the verifier, the backend is the upstream;"
        " seller-proxy: the backend is the verifier's proxy, which settles after the upstream"
        " answered (README, Verifier contract).",
        choices=PAYMENT_GATES,
    ),
    EnvSetting(
        "OBOL_VERIFIER_SETTLEMENT",
        "verifier_settlement",
        "choice",
        "forward-auth only: deferred (/verify only verifies) or on-verify (/verify settles as it"
        " accepts; the per-buyer limit is then not rendered, it would charge rejected buyers).",
        choices=SETTLEMENTS,
    ),
    EnvSetting(
        "OBOL_VERIFIER_PROXY_URL",
        "verifier_proxy_url",
        "base-url",
        "seller-proxy only: scheme://host:port of the verifier's proxy, reached through each"
        " offer's ExternalName Service.",
    ),
)

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
        if problems:
            raise SpecError(problems)
        if asset_registry is not None:
            values["asset_registry"] = asset_registry
        return cls(**values)

    @property
    def public_endpoint_base(self) -> str:
        """The public base URL without a trailing slash ('' when unset)."""
        return self.public_base_url.rstrip("/")


@dataclass(frozen=True, slots=True)
class EnvSetting:
    """One documented environment variable."""

    variable: str
    attribute: str
    kind: str  # "str", "int", "header", "url", "host"
    description: str
    minimum: int = 0
    maximum: int = 2**31 - 1

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
)

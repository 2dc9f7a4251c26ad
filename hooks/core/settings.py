"""Operator settings: one immutable value the core renders with.

Built once at start-up by :mod:`hooks.config` (the only module that reads the environment);
the pure core receives a ``Settings`` and never reads anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hooks.core.assets import BUILTIN_REGISTRY, AssetRegistry

# The two payment gates (docs/verifier-contract.md). forward-auth: a forwardAuth Middleware asks
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
# Which verifier the platform runs (docs/verifier-contract.md). "obol-stack": obol-stack's
# x402-verifier as it is: it decodes every ServiceOffer into its Go types (payment.asset must be
# an object) and its seller proxy has no per-buyer limit. "obol-stack-per-buyer": the same
# contract, plus a seller proxy that enforces spec.capacity.perBuyerMaxInFlight.
VERIFIER_OBOL_STACK = "obol-stack"
VERIFIER_OBOL_STACK_PER_BUYER = "obol-stack-per-buyer"
VERIFIERS = (VERIFIER_OBOL_STACK, VERIFIER_OBOL_STACK_PER_BUYER)


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
    verifier: str = VERIFIER_OBOL_STACK
    asset_registry: AssetRegistry = field(default=BUILTIN_REGISTRY, compare=False)

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
    def verifier_limits_buyers(self) -> bool:
        """The verifier's seller proxy enforces perBuyerMaxInFlight (obol-stack's does not)."""
        return self.verifier == VERIFIER_OBOL_STACK_PER_BUYER

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

"""The admission chain: in what order Traefik checks a request to an offer, and the Middlewares
that do each check. Read this file to know why a saturated offer answers 429 and never 402.

The HTTPRoute rule's filters run in list order (Traefik >= 3.2); the first one is the outermost
handler. For an offer with a capacity envelope the chain is::

    1. RequestHeaderModifier  set <admission-key header> = <namespace>/<name>
    1b. rateLimit    [opt]    obol-stack's limits.rps, per offer (Traefik's own 429 + Retry-After)
    2. buffering     [opt]    reads the whole body first; 413 over maxBodyBytes (not streaming)
    3. errors        (429)    turns every 429 below into Retry-After + a JSON body, no 402 terms
    4. inFlightReq   global   maxInFlight / gateway replicas, keyed on the header from step 1
       headers       [opt]    marks the request admitted (ADMITTED_HEADER), only when a
                              per-buyer limit sits below, so the busy responder can name it
    5. forwardAuth   x402     402 with payment terms for unpaid requests; verify-only
    6. inFlightReq   buyer    [opt] perBuyerMaxInFlight, keyed on the verified payer header
    7. URLRewrite             /services/<name>/x -> /x, last, so the verifier sees the public path

Everything that can reject a request for capacity (steps 1b to 4) runs before the payment
gate, so a saturated or rate-limited offer answers 429 before the verifier is asked: no quote,
no verification, no charge. Why each step sits where it does, and the chain's known limits
(per-replica counters reset by Traefik reloads, token limits advertised only), are in
docs/how-it-works.md (the admission chain), docs/verifier-contract.md and docs/known-limits.md.

Without a capacity envelope, steps 1, 3, 4 and 6 and the busy Service are left out (steps 1
and 1b stay if ``limits.rps`` is set, step 2 if a body limit is). With
``OBOL_VERIFIER_SETTLEMENT=on-verify`` step 6 is left out: a per-buyer 429 after a settling
verifier would charge a rejected buyer.

The seller-proxy gate (``OBOL_PAYMENT_GATE=seller-proxy``) keeps steps 1 to 4 and makes the
backend the verifier's proxy, which sees the public path (so no URLRewrite), verifies, proxies
and settles only when the upstream answered below 400. The gateway cannot know the payer before
the verifier, so the per-buyer limit is published in the pricing route and enforced there::

    backend: TraefikService so-<name>-verifier -> ExternalName Service so-<name>-verifier
             -> OBOL_VERIFIER_PROXY_URL

Pure: builders return plain dicts and never perform I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hooks.core import api
from hooks.core.models import ServiceOfferSpec
from hooks.core.names import ChildNames, child
from hooks.core.settings import Settings

Manifest = dict[str, Any]

# Set (to "true") by the offer's admitted-marker Middleware right after the global limit, and
# removed from client requests by step 1. Traefik's errors Middleware sends the original request
# headers to the busy responder, so a 429 whose request carries it came from *below* the global
# limit: the per-buyer limit (gateway or verifier), not a saturated offer.
ADMITTED_HEADER = "X-Obol-Admitted"
# obol-stack's verifier sets it (internal/x402/authgate.go) for wallets signed in with SIWX.
VERIFIED_WALLET_HEADER = "X-Verified-Wallet"

# Who enforces perBuyerMaxInFlight (``status.paymentGate.perBuyerLimit``).
BUYER_LIMIT_GATEWAY = "gateway"
BUYER_LIMIT_VERIFIER = "verifier"
BUYER_LIMIT_NONE = "none"


@dataclass(frozen=True, slots=True)
class EnforcedLimits:
    """What the gateway will actually enforce for one offer, per gateway replica."""

    per_replica_max_in_flight: int | None
    per_replica_buyer_max_in_flight: int | None
    body_limit_bytes: int | None
    warnings: tuple[str, ...]
    # gateway | verifier | none (BUYER_LIMIT_*): who enforces perBuyerMaxInFlight.
    buyer_limit_enforcer: str
    # obol-stack's limits.rps: Traefik rateLimit's average (its burst is twice that).
    rate_limit_average: int | None

    @property
    def marks_admission(self) -> bool:
        """A per-buyer limit sits below the global one, so the busy responder must tell the two
        429s apart: the admitted marker is rendered."""
        return (
            self.per_replica_max_in_flight is not None
            and self.buyer_limit_enforcer != BUYER_LIMIT_NONE
        )


def enforced_limits(spec: ServiceOfferSpec, settings: Settings) -> EnforcedLimits:
    """Derive the enforced limits (per gateway replica) and the warnings they imply."""
    warnings: list[str] = []
    global_amount = buyer_amount = average = None
    enforcer = BUYER_LIMIT_NONE
    replicas = settings.gateway_replicas

    def per_replica(field: str, total: int, each: str) -> int:
        # Never 0: inFlightReq with amount 0 rejects every request.
        amount = max(1, total // replicas)
        if amount * replicas != total:
            warnings.append(
                f"{field} {total} cannot be split evenly across {replicas} gateway replicas:"
                f" each {each.format(amount, amount * replicas)}"
            )
        return amount

    capacity = spec.capacity
    if capacity is not None and capacity.per_buyer_max_in_flight is not None:
        if settings.seller_proxy and settings.verifier_limits_buyers:
            enforcer = BUYER_LIMIT_VERIFIER
        elif settings.seller_proxy:
            warnings.append(
                f"perBuyerMaxInFlight {capacity.per_buyer_max_in_flight} is not enforced: with"
                " OBOL_PAYMENT_GATE=seller-proxy only the verifier knows the payer, and"
                " obol-stack's verifier (OBOL_VERIFIER=obol-stack) has no per-buyer limit;"
                " maxInFlight still holds for the offer as a whole"
            )
        elif settings.settles_on_verify:
            warnings.append(
                f"perBuyerMaxInFlight {capacity.per_buyer_max_in_flight} is not enforced: the"
                " verifier settles on /verify (OBOL_VERIFIER_SETTLEMENT=on-verify), so a"
                " per-buyer 429 after it would charge a rejected buyer"
            )
        else:
            enforcer = BUYER_LIMIT_GATEWAY
    if capacity is not None:
        global_amount = per_replica(
            "maxInFlight",
            capacity.max_in_flight,
            "enforces {0}, so up to {1} requests may be in flight",
        )
        if capacity.per_buyer_max_in_flight is not None and enforcer == BUYER_LIMIT_GATEWAY:
            buyer_amount = per_replica(
                "perBuyerMaxInFlight", capacity.per_buyer_max_in_flight, "enforces {0}"
            )
    body_limit = spec.request_limits.max_body_bytes if spec.request_limits else None
    if body_limit is not None and spec.streams:
        warnings.append(
            "maxBodyBytes is advertised only: request buffering would break streaming responses"
        )
        body_limit = None
    rps = spec.limits.rps if spec.limits else None
    if rps:
        average = per_replica("limits.rps", rps, "allows {0} per second")
    return EnforcedLimits(
        global_amount, buyer_amount, body_limit, tuple(warnings), enforcer, average
    )


def chain_middlewares(
    namespace: str,
    offer: str,
    spec: ServiceOfferSpec,
    names: ChildNames,
    limits: EnforcedLimits,
    settings: Settings,
) -> list[Manifest]:
    """The chain's Middlewares in chain order; the route names each one in that order."""
    found: list[tuple[str, str, Manifest]] = []  # (name, component, spec)
    if limits.rate_limit_average is not None:
        # Step 1b: one token bucket per offer, keyed on the header step 1 sets.
        rate_limit = {
            "average": limits.rate_limit_average,
            "burst": 2 * limits.rate_limit_average,  # as obol-stack renders it
            "period": "1s",
            "sourceCriterion": {"requestHeaderName": settings.admission_key_header},
        }
        found.append((names.rate_limit, "rate-limit", {"rateLimit": rate_limit}))
    if limits.body_limit_bytes is not None:
        buffering = {"maxRequestBodyBytes": limits.body_limit_bytes}
        found.append((names.body_limit, "body-limit", {"buffering": buffering}))
    capacity = spec.capacity
    if capacity is not None and limits.per_replica_max_in_flight is not None:
        errors = {
            "status": ["429"],
            "service": {"name": names.busy_service, "port": settings.busy_port},
            "query": busy_query(namespace, offer, capacity.retry_after_seconds),
        }
        found.append((names.busy_errors, "busy-errors", {"errors": errors}))
        found.append(
            (
                names.global_in_flight,
                "global-in-flight",
                _in_flight(limits.per_replica_max_in_flight, settings.admission_key_header),
            )
        )
        if limits.marks_admission:
            # Must see the same request copy as the errors Middleware: buffering copies the
            # request's headers into a new map, so both come after it.
            marker = {"customRequestHeaders": {ADMITTED_HEADER: "true"}}
            found.append((names.admitted, "admitted-marker", {"headers": marker}))
    if not settings.seller_proxy:
        forward_auth = {
            "address": settings.verifier_url,
            "trustForwardHeader": False,
            # What obol-stack's /verify answers on an allowed request: the upstream's key for
            # a LiteLLM upstream, the verified payer, the SIWX wallet (set empty when absent, so
            # a client-forged value never reaches the upstream). Traefik copies only these.
            "authResponseHeaders": ["Authorization", settings.payer_header, VERIFIED_WALLET_HEADER],
            "maxResponseBodySize": settings.verifier_max_response_bytes,
        }
        found.append((names.forward_auth, "x402-forward-auth", {"forwardAuth": forward_auth}))
        if limits.per_replica_buyer_max_in_flight is not None:
            # Step 6 keys on the payer header forwardAuth copies from the verifier.
            found.append(
                (
                    names.buyer_in_flight,
                    "buyer-in-flight",
                    _in_flight(limits.per_replica_buyer_max_in_flight, settings.payer_header),
                )
            )
    return [
        {**child(api.MIDDLEWARE_KIND, name, namespace, names, component), "spec": middleware_spec}
        for name, component, middleware_spec in found
    ]


def _in_flight(amount: int, key_header: str) -> Manifest:
    return {"inFlightReq": {"amount": amount, "sourceCriterion": {"requestHeaderName": key_header}}}


def route_filters(
    middlewares: list[Manifest], names: ChildNames, limits: EnforcedLimits, settings: Settings
) -> list[Manifest]:
    """The HTTPRoute rule's filters, in the order documented above: step 1, one ExtensionRef per
    Middleware of :func:`chain_middlewares`, and step 7."""
    filters: list[Manifest] = []
    if limits.per_replica_max_in_flight is not None or limits.rate_limit_average is not None:
        modifier: Manifest = {
            "set": [{"name": settings.admission_key_header, "value": names.admission_key}]
        }
        if limits.marks_admission:
            modifier["remove"] = [ADMITTED_HEADER]  # a client cannot claim to be admitted
        filters.append({"type": "RequestHeaderModifier", "requestHeaderModifier": modifier})
    for middleware in middlewares:
        name = middleware["metadata"]["name"]
        ref = {"group": "traefik.io", "kind": api.MIDDLEWARE_KIND, "name": name}
        filters.append({"type": "ExtensionRef", "extensionRef": ref})
    if not settings.seller_proxy:
        # The seller-proxy backend must see the public path: it strips the prefix itself.
        rewrite = {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}
        filters.append({"type": "URLRewrite", "urlRewrite": rewrite})
    return filters


def busy_query(namespace: str, offer: str, retry_after_seconds: int) -> str:
    """Path and query the errors Middleware asks the busy responder for."""
    # Kubernetes names (checked when the request is parsed) need no percent-encoding.
    return f"/busy/{namespace}/{offer}?retryAfter={retry_after_seconds}&status={{status}}"


def chain_services(
    namespace: str, names: ChildNames, settings: Settings, capacity: bool
) -> list[Manifest]:
    """The Services the chain needs, after its Middlewares.

    * the busy Service (with a capacity envelope): the errors Middleware's way to this hook's
      busy responder;
    * with the seller-proxy gate, the route's backend: a TraefikService whose one weighted
      service is an ExternalName Service pointing at the verifier's proxy (Traefik's Gateway
      provider refuses an ExternalName Service as a backendRef). A port named ``https`` makes
      Traefik speak TLS to it.

    Traefik resolves an ExternalName Service only with
    ``providers.kubernetesCRD.allowExternalNameServices=true``; without it the TraefikService
    fails to load and the route is not served.
    """
    services: list[Manifest] = []
    if capacity:
        services.append(
            _external_name_service(
                namespace,
                names,
                names.busy_service,
                "busy-responder",
                settings.busy_host,
                settings.busy_port,
                "http",
            )
        )
    if settings.seller_proxy:
        scheme, host, port = settings.verifier_proxy
        weighted = {"kind": "Service", "name": names.verifier_service, "port": port, "weight": 1}
        backend = child(
            api.TRAEFIKSERVICE_KIND, names.verifier_backend, namespace, names, "verifier-backend"
        )
        services.append({**backend, "spec": {"weighted": {"services": [weighted]}}})
        services.append(
            _external_name_service(
                namespace, names, names.verifier_service, "verifier-proxy", host, port, scheme
            )
        )
    return services


def _external_name_service(
    namespace: str,
    names: ChildNames,
    name: str,
    component: str,
    host: str,
    port: int,
    port_name: str,
) -> Manifest:
    """An ExternalName Service ``name`` -> ``host:port``, in the offer's namespace.

    Server defaults (protocol, targetPort, sessionAffinity) are written out so Metacontroller's
    three-way merge finds nothing to change on the next sync.
    """
    return {
        **child(api.SERVICE_KIND, name, namespace, names, component),
        "spec": {
            "type": "ExternalName",
            "externalName": host,
            "ports": [{"name": port_name, "port": port, "protocol": "TCP", "targetPort": port}],
            "sessionAffinity": "None",
        },
    }

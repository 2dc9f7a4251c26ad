"""ServiceOffer status: conditions computed from the *observed* children, never from intent.

Metacontroller sends the children it observed; a condition is True only when the observed
objects prove it (for example RoutePublished needs the Gateway's Accepted and ResolvedRefs
conditions on the observed HTTPRoute). Capacity use is ``Unknown`` unless an observation says
otherwise: the status never pretends.

Determinism: ``lastTransitionTime`` is carried forward from the previous status whenever a
condition's status does not change; when it does change, the time is the newest timestamp found
in the request itself (see :func:`request_time`), so the same request always gives the same bytes.

Pure: no I/O and no clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Final

from hooks.core import api, paths
from hooks.core.admission import BUYER_LIMIT_GATEWAY, BUYER_LIMIT_VERIFIER, EnforcedLimits
from hooks.core.compat import (
    REASON_CONTROLLER_CONFLICT,
    conflict_message,
    foreign_controllers,
    leftover_finalizer_warning,
)
from hooks.core.errors import SpecError
from hooks.core.models import ServiceOfferSpec, not_acted_upon
from hooks.core.names import ChildNames
from hooks.core.observation import GateObservation, Observation, Observed
from hooks.core.payment import ResolvedPayment, verifier_warnings
from hooks.core.plan import OfferPlan
from hooks.core.request import ObservedChildren, SyncRequest
from hooks.core.settings import Settings

# --- condition types -------------------------------------------------------------------------
# The x402 forwardAuth Middleware and the pricing ConfigMap exist (observed).
PAYMENT_GATE_READY: Final = "PaymentGateReady"
# The admission chain (errors, in-flight limits, busy Service) exists and the route uses it.
CAPACITY_ENFORCED: Final = "CapacityEnforced"
# The Gateway accepted the observed HTTPRoute and resolved its references.
ROUTE_PUBLISHED: Final = "RoutePublished"
# The upstream answered its health path (only known when observation is on).
UPSTREAM_HEALTHY: Final = "UpstreamHealthy"
# Everything above holds: buyers can pay and be served.
READY: Final = "Ready"

# --- reasons ---------------------------------------------------------------------------------
REASON_PUBLISHED: Final = "Published"  # PaymentGateReady: both objects observed
REASON_PENDING: Final = "Pending"  # an expected child has not been observed yet
REASON_ENFORCED: Final = "Enforced"  # CapacityEnforced: chain observed on the route
REASON_NOT_CONFIGURED: Final = "NotConfigured"  # CapacityEnforced: the offer has no capacity
REASON_ACCEPTED: Final = "Accepted"  # RoutePublished: Accepted and ResolvedRefs are True
REASON_WAITING_FOR_GATEWAY: Final = "WaitingForGateway"  # no current status from our Gateway
REASON_NOT_ACCEPTED: Final = "NotAccepted"  # the Gateway refused the route
REASON_REFS_NOT_RESOLVED: Final = "RefsNotResolved"  # e.g. upstream Service missing
REASON_NOT_OBSERVED: Final = "NotObserved"  # UpstreamHealthy: observation off or stale
REASON_HEALTHY: Final = "Healthy"
REASON_UNHEALTHY: Final = "Unhealthy"
REASON_READY: Final = "Ready"
REASON_INVALID_SPEC: Final = "InvalidSpec"  # Ready: the spec failed validation
REASON_NOT_RENDERED: Final = "NotRendered"  # Ready: a kept offer this controller does not render
REASON_NOT_READY: Final = "NotReady"  # Ready: a condition above is not satisfied
# The no-free-ride probe (an unpaid GET of the offer's path through the gateway, when observed):
REASON_FREE_RIDE: Final = "FreeRide"  # PaymentGateReady: answered 2xx without payment
REASON_GATE_UNAVAILABLE: Final = "GateUnavailable"  # PaymentGateReady: answered 5xx
REASON_GATE_UNEXPECTED: Final = "UnexpectedGateAnswer"  # PaymentGateReady: neither 402 nor 429
REASON_NOT_SERVED: Final = "NotServedByGateway"  # RoutePublished: the gateway answered 404
# Another offer owns the offer's public path: no route, no pricing (hooks.core.paths).
REASON_PATH_CONFLICT: Final = paths.REASON_PATH_CONFLICT

SCALING_STATEMENT: Final = (
    "capacity is declared by the seller (external-static); nothing is autoscaled"
)
EPOCH: Final = "1970-01-01T00:00:00Z"
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def request_time(parent: Mapping[str, Any], observed: ObservedChildren) -> str:
    """The newest RFC 3339 timestamp among the parent's and children's metadata.

    Used as ``lastTransitionTime`` for a condition that changes in this sync, so the core needs
    no clock: a transition is caused by a write to the parent or a child, and that write is the
    newest ``creationTimestamp`` or ``managedFields[].time`` in the request.
    """
    newest = EPOCH
    for obj in (parent, *observed.values()):
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            continue
        fields = meta.get("managedFields")
        entries = fields if isinstance(fields, list) else ()
        times = (entry.get("time") for entry in entries if isinstance(entry, dict))
        for stamp in (meta.get("creationTimestamp"), *times):
            # The regex only checks a stamp newer than the newest so far, which is rare.
            if isinstance(stamp, str) and stamp > newest and _TIMESTAMP.fullmatch(stamp):
                newest = stamp
    return newest


def condition(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
    """A condition without its time or generation (added by :func:`finish_conditions`)."""
    return {"type": type_, "status": status, "reason": reason, "message": message}


def finish_conditions(
    conditions: list[dict[str, Any]],
    previous: Any,
    generation: int | None,
    transition_time: Callable[[], str],
) -> list[dict[str, Any]]:
    """Add ``observedGeneration`` and a carried-forward or new ``lastTransitionTime``.

    ``transition_time`` is called only when a condition changes (at most once): on a resync of
    an unchanged offer every time is carried forward and the request's timestamps are never
    scanned. The conditions are completed in place (they are the caller's fresh dicts) and
    returned.
    """
    before = _conditions_by_type(previous)
    new_stamp: str | None = None
    for cond in conditions:
        old = before.get(cond["type"])
        stamp: str | None = None
        if old is not None and old.get("status") == cond["status"]:
            old_stamp = old.get("lastTransitionTime")
            if isinstance(old_stamp, str) and _TIMESTAMP.fullmatch(old_stamp):
                stamp = old_stamp
        if stamp is None:
            if new_stamp is None:
                new_stamp = transition_time()
            stamp = new_stamp
        cond["lastTransitionTime"] = stamp
        if generation is not None:
            cond["observedGeneration"] = generation
    return conditions


def _conditions_by_type(conditions: Any) -> dict[str, Mapping[str, Any]]:
    return {
        item["type"]: item
        for item in (conditions if isinstance(conditions, list) else [])
        if isinstance(item, dict) and isinstance(item.get("type"), str)
    }


def route_condition(observed_route: Mapping[str, Any] | None, settings: Settings) -> dict[str, str]:
    """RoutePublished from the observed HTTPRoute's status for *our* parentRef."""
    if observed_route is None:
        return condition(ROUTE_PUBLISHED, "False", REASON_PENDING, "HTTPRoute not observed yet")
    meta = observed_route.get("metadata")
    generation = meta.get("generation") if isinstance(meta, dict) else None
    status = observed_route.get("status")
    parents = status.get("parents", []) if isinstance(status, dict) else []
    ours = None
    for entry in parents if isinstance(parents, list) else []:
        ref = entry.get("parentRef") if isinstance(entry, dict) else None
        if not isinstance(ref, dict):
            continue
        if (
            ref.get("name") == settings.gateway_name
            and ref.get("namespace", settings.gateway_namespace) == settings.gateway_namespace
            and ref.get("sectionName", settings.gateway_listener) == settings.gateway_listener
        ):
            ours = entry
            break
    gateway = f"{settings.gateway_namespace}/{settings.gateway_name}"

    def waiting(what: str) -> dict[str, str]:
        return condition(
            ROUTE_PUBLISHED,
            "Unknown",
            REASON_WAITING_FOR_GATEWAY,
            f"Gateway {gateway} has not {what}",
        )

    if ours is None:
        return waiting("reported on the HTTPRoute yet")
    by_type = _conditions_by_type(ours.get("conditions"))
    for needed, reason in (
        ("Accepted", REASON_NOT_ACCEPTED),
        ("ResolvedRefs", REASON_REFS_NOT_RESOLVED),
    ):
        found = by_type.get(needed)
        if found is None:
            return waiting(f"reported {needed} yet")
        seen = found.get("observedGeneration")
        if isinstance(generation, int) and isinstance(seen, int) and seen < generation:
            return waiting("processed the latest HTTPRoute yet")
        if found.get("status") != "True":
            detail = found.get("message") or found.get("reason") or "no reason given"
            return condition(
                ROUTE_PUBLISHED, "False", reason, f"{needed} is {found.get('status')}: {detail}"
            )
    return condition(
        ROUTE_PUBLISHED,
        "True",
        REASON_ACCEPTED,
        f"HTTPRoute accepted by Gateway {gateway} with all references resolved",
    )


def _route_extension_refs(observed_route: Mapping[str, Any] | None) -> set[str]:
    spec = observed_route.get("spec") if observed_route else None
    rules = spec.get("rules", []) if isinstance(spec, dict) else []
    names: set[str] = set()
    for rule in rules if isinstance(rules, list) else []:
        filters = rule.get("filters") if isinstance(rule, dict) else None
        for item in filters if isinstance(filters, list) else []:
            ref = item.get("extensionRef") if isinstance(item, dict) else None
            name = ref.get("name") if isinstance(ref, dict) else None
            if isinstance(name, str):
                names.add(name)
    return names


def payment_condition(
    names: ChildNames, observed: ObservedChildren, settings: Settings
) -> dict[str, str]:
    """PaymentGateReady: the gate's objects and the pricing ConfigMap are observed.

    forward-auth: the forwardAuth Middleware; seller-proxy: the TraefikService and the
    ExternalName Service that make the verifier's proxy the route's backend.
    """
    needed: tuple[tuple[str, str], ...]
    if settings.seller_proxy:
        needed = (
            (api.TRAEFIKSERVICE_KIND, names.verifier_backend),
            (api.SERVICE_KIND, names.verifier_service),
            (api.CONFIGMAP_KIND, names.pricing),
        )
    else:
        needed = ((api.MIDDLEWARE_KIND, names.forward_auth), (api.CONFIGMAP_KIND, names.pricing))
    missing = [f"{kind} {name}" for kind, name in needed if (kind, name) not in observed]
    if missing:
        return condition(
            PAYMENT_GATE_READY, "False", REASON_PENDING, "not observed yet: " + ", ".join(missing)
        )
    if settings.seller_proxy:
        scheme, host, port = settings.verifier_proxy
        return condition(
            PAYMENT_GATE_READY,
            "True",
            REASON_PUBLISHED,
            f"the route's backend is the verifier's proxy {scheme}://{host}:{port} (TraefikService"
            f" {names.verifier_backend}, ExternalName Service {names.verifier_service}) and"
            f" pricing ConfigMap {names.pricing} is in place",
        )
    return condition(
        PAYMENT_GATE_READY,
        "True",
        REASON_PUBLISHED,
        f"x402 forwardAuth Middleware {names.forward_auth} and pricing ConfigMap"
        f" {names.pricing} are in place",
    )


def capacity_condition(
    spec: ServiceOfferSpec,
    names: ChildNames,
    limits: EnforcedLimits,
    observed: ObservedChildren,
    settings: Settings,
) -> dict[str, str]:
    """CapacityEnforced: the chain's objects exist and the observed route references them."""
    capacity = spec.capacity
    if capacity is None:
        return condition(
            CAPACITY_ENFORCED,
            "False",
            REASON_NOT_CONFIGURED,
            "no capacity envelope: requests are not admission-limited",
        )
    needed = [
        (api.MIDDLEWARE_KIND, names.busy_errors),
        (api.MIDDLEWARE_KIND, names.global_in_flight),
        (api.SERVICE_KIND, names.busy_service),
    ]
    if limits.per_replica_buyer_max_in_flight is not None:
        needed.append((api.MIDDLEWARE_KIND, names.buyer_in_flight))
    if limits.marks_admission:
        needed.append((api.MIDDLEWARE_KIND, names.admitted))
    refs = _route_extension_refs(observed.get((api.HTTPROUTE_KIND, names.route)))
    missing = [f"{kind} {name}" for kind, name in needed if (kind, name) not in observed]
    unreferenced = [n for kind, n in needed if kind == api.MIDDLEWARE_KIND and n not in refs]
    parts = [
        f"{what}: {', '.join(items)}"
        for what, items in (
            ("not observed yet", missing),
            ("not on the observed HTTPRoute yet", unreferenced),
        )
        if items
    ]
    if parts:
        return condition(CAPACITY_ENFORCED, "False", REASON_PENDING, "; ".join(parts))
    replicas = settings.gateway_replicas
    message = (
        f"maxInFlight {capacity.max_in_flight} enforced as {limits.per_replica_max_in_flight}"
        f" per gateway replica x {replicas}"
    )
    if limits.per_replica_buyer_max_in_flight is not None:
        message += f", perBuyerMaxInFlight {capacity.per_buyer_max_in_flight}"
    elif limits.buyer_limit_enforcer == BUYER_LIMIT_VERIFIER:
        message += f", perBuyerMaxInFlight {capacity.per_buyer_max_in_flight} by the verifier"
    return condition(CAPACITY_ENFORCED, "True", REASON_ENFORCED, f"{message}; {SCALING_STATEMENT}")


def upstream_condition(observation: Observation | None) -> dict[str, str]:
    """UpstreamHealthy from the latest observation, Unknown without one."""
    if observation is None or observation.healthy is None:
        message = observation.message if observation else "upstream health is not observed"
        return condition(UPSTREAM_HEALTHY, "Unknown", REASON_NOT_OBSERVED, message)
    if observation.healthy:
        return condition(UPSTREAM_HEALTHY, "True", REASON_HEALTHY, observation.message)
    return condition(UPSTREAM_HEALTHY, "False", REASON_UNHEALTHY, observation.message)


def ready_condition(conditions: list[dict[str, str]]) -> dict[str, str]:
    """Ready when every other condition allows serving paid traffic."""
    blocking = []
    for cond in conditions:
        if cond["type"] == CAPACITY_ENFORCED and cond["reason"] == REASON_NOT_CONFIGURED:
            continue
        if cond["type"] == UPSTREAM_HEALTHY and cond["status"] != "False":
            continue
        if cond["status"] != "True":
            blocking.append(f"{cond['type']} is {cond['status']} ({cond['reason']})")
    if blocking:
        return condition(READY, "False", REASON_NOT_READY, "; ".join(blocking))
    return condition(READY, "True", REASON_READY, "offer is published behind the x402 gate")


def capacity_status(
    spec: ServiceOfferSpec,
    limits: EnforcedLimits,
    observation: Observation | None,
    settings: Settings,
    previous: Any,
) -> dict[str, Any]:
    """``status.capacity``: the declared envelope, and use only when observed.

    To keep status writes rare, an observed ``inFlight`` that moved by less than a tenth of
    ``maxInFlight`` (at least 1) without changing the state keeps the previous value.
    """
    capacity = spec.capacity
    if capacity is None:
        return {
            "scalingControlled": False,
            "state": "Unknown",
            "message": "no capacity envelope declared: no admission limit, no 429",
        }
    block: dict[str, Any] = {
        "mode": capacity.mode,
        "scalingControlled": False,
        "maxInFlight": capacity.max_in_flight,
        "gatewayReplicas": settings.gateway_replicas,
        "perReplicaMaxInFlight": limits.per_replica_max_in_flight,
        "retryAfterSeconds": capacity.retry_after_seconds,
        "state": "Unknown",
        "message": f"{SCALING_STATEMENT}; in-flight use is not observed",
    }
    if capacity.gpu_count is not None:
        block["gpuCount"] = capacity.gpu_count
    if capacity.per_buyer_max_in_flight is not None:
        block["perBuyerMaxInFlight"] = capacity.per_buyer_max_in_flight
    if observation is not None and observation.in_flight is not None:
        in_flight = _steady_in_flight(observation.in_flight, capacity.max_in_flight, previous)
        block["inFlight"] = in_flight
        block["state"] = "Saturated" if in_flight >= capacity.max_in_flight else "Available"
        block["message"] = (
            f"{SCALING_STATEMENT}; {in_flight} of {capacity.max_in_flight}"
            " in flight as reported by the upstream"
        )
        if observation.source:
            block["source"] = observation.source
    return block


def _steady_in_flight(observed: int, ceiling: int, previous: Any) -> int:
    old = previous.get("inFlight") if isinstance(previous, dict) else None
    if not isinstance(old, int) or isinstance(old, bool):
        return observed
    same_state = (old >= ceiling) == (observed >= ceiling)
    step = max(1, -(-ceiling // 10))
    return old if same_state and abs(observed - old) < step else observed


def payment_status(payment: ResolvedPayment) -> dict[str, Any]:
    """``status.payment``: resolved network, token and exact amounts."""
    asset = payment.asset
    block: dict[str, Any] = {
        "network": payment.network.name,
        "caip2": payment.network.caip2,
        "chainId": payment.network.chain_id,
        "scheme": payment.scheme,
        "payTo": payment.pay_to,
        "maxTimeoutSeconds": payment.max_timeout_seconds,
        "asset": {
            **asset.offer_object(),
            # Said only when true of the asset, so the usual case stays short.
            **({"canonical": False} if asset.test_asset else {}),
            **({"registered": False} if not payment.asset_registered else {}),
        },
        "quote": {
            "amount": payment.quote_amount,
            "atomic": str(payment.quote_atomic),
            "basis": payment.quote_basis,
        },
        "summary": payment.summary,
    }
    for key, amount, atomic in (
        ("perRequest", payment.per_request_amount, payment.per_request_atomic),
        ("perMTok", payment.per_mtok_amount, payment.per_mtok_atomic),
    ):
        if atomic is not None:
            block[key] = {"amount": amount, "atomic": str(atomic)}
    return block


def request_limits_status(spec: ServiceOfferSpec, limits: EnforcedLimits) -> dict[str, Any] | None:
    """``status.requestLimits``: the declared limits and which the gateway enforces."""
    declared = spec.request_limits
    if declared is None:
        return None
    block: dict[str, Any] = {}
    enforced: list[str] = []
    advertised: list[str] = []
    for field, value in (
        ("maxInputTokens", declared.max_input_tokens),
        ("maxOutputTokens", declared.max_output_tokens),
        ("maxBodyBytes", declared.max_body_bytes),
    ):
        if value is None:
            continue
        block[field] = value
        is_enforced = field == "maxBodyBytes" and limits.body_limit_bytes is not None
        (enforced if is_enforced else advertised).append(field)
    if enforced:
        block["enforced"] = enforced
    if advertised:
        block["advertised"] = advertised
    return block or None


def payment_gate_status(
    spec: ServiceOfferSpec, limits: EnforcedLimits, settings: Settings
) -> dict[str, Any] | None:
    """``status.paymentGate``: the gate's mode, who settles when, who enforces the per-buyer limit.

    None for the default gate (forward-auth with a verifier that does not settle on /verify),
    whose status is unchanged from before the modes existed; ``obol sell status`` reads a
    missing block as that default.
    """
    declared = spec.capacity is not None and spec.capacity.per_buyer_max_in_flight is not None
    if settings.seller_proxy:
        settlement = "after-upstream"
        message = (
            "the route's backend is the verifier's proxy: it verifies, proxies to the upstream"
            " and settles only when the upstream answered below 400; requests the gateway"
            " rejects (429, 413) never reach it"
        )
    elif settings.settles_on_verify:
        settlement = "on-verify"
        message = (
            "the verifier settles during /verify, before the upstream answers: a buyer is"
            " charged even when the upstream then fails; requests the gateway rejects before the"
            " gate (429, 413) are never verified"
        )
    else:
        return None
    block: dict[str, Any] = {
        "mode": settings.payment_gate,
        "settledBy": "verifier",
        "settlement": settlement,
        "message": message,
        "perBuyerLimit": limits.buyer_limit_enforcer,
    }
    if declared and limits.buyer_limit_enforcer == BUYER_LIMIT_VERIFIER:
        block["perBuyerMessage"] = (
            "the verifier (OBOL_VERIFIER=obol-stack-per-buyer) reads perBuyerMaxInFlight from the"
            " offer and answers 429 with Retry-After before settling"
        )
    elif declared and settings.seller_proxy:
        block["perBuyerMessage"] = (
            "perBuyerMaxInFlight is not enforced: obol-stack's seller proxy has no per-buyer"
            " limit, and the gateway cannot know the payer before the verifier"
        )
    elif declared and limits.buyer_limit_enforcer != BUYER_LIMIT_GATEWAY:
        block["perBuyerMessage"] = (
            "perBuyerMaxInFlight is not enforced: after a verifier that settles on /verify, a"
            " per-buyer 429 would charge the rejected buyer"
        )
    return block


# --- assembly ---------------------------------------------------------------------------------
_MAX_MESSAGE: Final = 32768


def gate_probe_conditions(
    payment: dict[str, str], route: dict[str, str], probe: GateObservation | None, path: str
) -> tuple[dict[str, str], dict[str, str]]:
    """PaymentGateReady and RoutePublished corrected by what an unpaid request through the
    gateway got: 402 (quoted) or 429 (saturated) confirm them; 2xx means the paid route is
    served for free; 404 that the gateway does not serve it; 5xx that the gate is down.
    Without a fresh answer (observation off, stale, or the probe failed) nothing changes."""
    code = probe.http_status if probe is not None else None
    if code is None or code in (402, 429):
        return payment, route
    seen = f"an unpaid GET {path} through the gateway answered {code}"
    if 200 <= code < 300:
        return condition(
            PAYMENT_GATE_READY,
            "False",
            REASON_FREE_RIDE,
            f"{seen}: the offer is served without payment (does the verifier know this route?)",
        ), route
    if code == 404:
        return payment, condition(
            ROUTE_PUBLISHED,
            "False",
            REASON_NOT_SERVED,
            f"{seen}: the gateway does not serve the route (a Middleware or Service it could not"
            " load, e.g. ExternalName Services not allowed)",
        )
    if code >= 500:
        return condition(
            PAYMENT_GATE_READY, "False", REASON_GATE_UNAVAILABLE, f"{seen}: the gate is unavailable"
        ), route
    return condition(
        PAYMENT_GATE_READY, "False", REASON_GATE_UNEXPECTED, f"{seen}, not 402 or 429"
    ), route


def offer_status(
    request: SyncRequest,
    plan: OfferPlan,
    settings: Settings,
    seen: Observed,
    path_conflict: str | None = None,
) -> dict[str, Any]:
    """The status of a valid offer, from its observed children and what the observer saw.

    ``path_conflict`` says why another offer owns this offer's path (:mod:`hooks.core.paths`):
    then the gate, the route and the capacity chain are ``False/PathConflict``, and so is Ready.
    """
    names, observed, previous = plan.names, request.children, request.status
    observation = seen.upstream
    if path_conflict is None:
        payment, route = gate_probe_conditions(
            payment_condition(names, observed, settings),
            route_condition(observed.get((api.HTTPROUTE_KIND, names.route)), settings),
            seen.gate,
            names.path,
        )
        capacity = capacity_condition(plan.spec, names, plan.limits, observed, settings)
    else:
        payment, route = (
            condition(kind, "False", REASON_PATH_CONFLICT, path_conflict)
            for kind in (PAYMENT_GATE_READY, ROUTE_PUBLISHED)
        )
        capacity = (
            capacity_condition(plan.spec, names, plan.limits, observed, settings)
            if plan.spec.capacity is None  # NotConfigured, conflict or not
            else condition(CAPACITY_ENFORCED, "False", REASON_PATH_CONFLICT, path_conflict)
        )
    conditions = [payment, capacity, route, upstream_condition(observation)]
    ready = (
        ready_condition(conditions)
        if path_conflict is None
        else condition(READY, "False", REASON_PATH_CONFLICT, path_conflict)
    )
    uid = request.parent.get("metadata", {}).get("uid")
    conflicts = foreign_controllers(observed.values(), uid if isinstance(uid, str) else None)
    if conflicts:
        ready = condition(READY, "False", REASON_CONTROLLER_CONFLICT, conflict_message(conflicts))
    conditions.append(ready)
    status: dict[str, Any] = {
        "endpoint": settings.public_base_url.rstrip("/") + names.path,
        "capacity": capacity_status(
            plan.spec, plan.limits, observation, settings, previous.get("capacity")
        ),
        "payment": payment_status(plan.payment),
        "upstream": {"url": plan.upstream.url},
        "conditions": finish_conditions(
            conditions, previous.get("conditions"), request.generation, _transition_time(request)
        ),
    }
    if observation is not None and observation.http_status is not None:
        status["upstream"]["httpStatus"] = observation.http_status
    gate_block = payment_gate_status(plan.spec, plan.limits, settings)
    if gate_block is not None:
        status["paymentGate"] = gate_block
    limits_block = request_limits_status(plan.spec, plan.limits)
    if limits_block is not None:
        status["requestLimits"] = limits_block
    if plan.spec.model is not None:
        status["model"] = plan.spec.model.model_dump(exclude_none=True)
    ignored = [*not_acted_upon(plan.spec), *plan.payment.unused_prices]
    if ignored:
        status["notActedUpon"] = ignored
    warnings = [
        *plan.limits.warnings,
        *plan.payment.warnings,
        *verifier_warnings(plan.spec.payment, settings),
    ]
    finalizer = leftover_finalizer_warning(request.parent, request.namespace, request.name)
    if finalizer is not None:
        warnings.append(finalizer)
    if warnings:
        status["warnings"] = warnings
    # obol-stack's on-chain registration results: this hook never writes them, and replacing
    # the status must not lose them.
    status.update(carried_status(previous, OBOL_STATUS_KEYS))
    return status


def problem_message(problem: SpecError) -> str:
    """The field-path message of a spec problem, as the Ready condition carries it."""
    message = str(problem)
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return message


def invalid_spec_status(
    request: SyncRequest, message: str, reason: str, keeps_children: bool
) -> dict[str, Any]:
    """``Ready=False`` (InvalidSpec or NotRendered) with the field-path ``message``. While the
    children of the last valid spec are kept, so is the rest of the previous status that
    describes them; otherwise only what obol-stack's controller wrote is kept."""
    previous = request.status
    kept = [c for c in carried_conditions(previous) if c["type"] != READY]
    ready = condition(READY, "False", reason, message)
    status = carried_status(previous, _CARRIED_BLOCKS if keeps_children else OBOL_STATUS_KEYS)
    status["conditions"] = [
        *kept,
        *finish_conditions(
            [ready], previous.get("conditions"), request.generation, _transition_time(request)
        ),
    ]
    return status


def finalized_status(request: SyncRequest) -> dict[str, Any]:
    """The status while the offer is being finalized: the previous one, as it was."""
    status = carried_status(request.status)
    status["conditions"] = carried_conditions(request.status)
    return status


def _transition_time(request: SyncRequest) -> Callable[[], str]:
    # The newest timestamp in the request, computed only if a condition changes (see
    # finish_conditions): an unchanged offer's resync never scans its children's metadata.
    return partial(request_time, request.parent, request.children)


# The status blocks the hook owns besides conditions (observedGeneration is Metacontroller's).
# What obol-stack's controller wrote into status that only it can produce (kept as they were).
OBOL_STATUS_KEYS: Final = ("agentId", "registrationTxHash", "agentResolution")
_CARRIED_BLOCKS: Final = (
    "endpoint",
    "capacity",
    "payment",
    "paymentGate",
    "requestLimits",
    "upstream",
    "model",
    "notActedUpon",
    "warnings",
    *OBOL_STATUS_KEYS,
)
_MAX_CARRIED_DEPTH: Final = 8


def carried_status(
    previous: Mapping[str, Any], keys: tuple[str, ...] = _CARRIED_BLOCKS
) -> dict[str, Any]:
    """The previous status's own blocks, kept while the spec is invalid or being finalized.

    Only the blocks this hook writes, and only when they are shallow JSON as it writes them:
    anything else the API server would prune anyway, and could not be serialised safely.
    """
    return {
        key: previous[key]
        for key in keys
        if key in previous and _shallow(previous[key], _MAX_CARRIED_DEPTH)
    }


def carried_conditions(previous: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The previous conditions that are well-formed (an object with a string type)."""
    conditions = previous.get("conditions")
    return [
        c
        for c in (conditions if isinstance(conditions, list) else [])
        if isinstance(c, dict) and isinstance(c.get("type"), str) and _shallow(c, 1)
    ]


def _shallow(value: Any, depth: int) -> bool:
    if isinstance(value, dict):
        return depth > 0 and all(_shallow(v, depth - 1) for v in value.values())
    if isinstance(value, list):
        return depth > 0 and all(_shallow(v, depth - 1) for v in value)
    return True

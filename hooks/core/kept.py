"""What an offer keeps while its spec is invalid or not rendered: children from trusted state.

A bad edit must never take a live paid route down, so an offer whose spec fails validation (or
that this controller keeps but does not render) goes on answering with the children of its last
valid spec. Those children are **re-rendered** by :func:`hooks.core.plan.plan_offer`, the same
pure function as always, from state only this controller writes:

* ``status.renderedSpec``: the spec fields the children were last rendered from
  (:func:`rendered_spec`), recorded in every status of a rendered offer. Status is a subresource
  that only Metacontroller (on the hook's behalf) writes; and whatever it holds is validated
  again like a spec, so it can never render more than an offer's own spec could.
* for offers last synced by a version that did not record it, the spec is rebuilt from the
  status blocks that version wrote (:func:`spec_from_status`), and only kept when its re-rendered
  payment terms are exactly the ones that status reports.

It never reads the children themselves: their fields and Metacontroller's last-applied
annotation can be edited by anyone who can edit the child, and would let them put any object in
any namespace into the hook's answer. Every child re-rendered here is in the offer's namespace,
named after the offer, like the children of a valid spec.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hooks.core.errors import SpecError
from hooks.core.plan import OfferPlan, plan_offer
from hooks.core.request import SyncRequest
from hooks.core.settings import Settings

RENDERED_SPEC: Final = "renderedSpec"
# The spec fields the children are rendered from. The others (obol-stack's registration,
# listing, branding, ...) never change a child and are not recorded, which keeps the record to
# a few kilobytes: every field below is bounded by the schema.
_RENDERED_FIELDS: Final = (
    "type",
    "model",
    "upstream",
    "capabilities",
    "requestLimits",
    "capacity",
    "payment",
    "path",
    "limits",
)


def rendered_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a valid, rendered ``spec`` that its children are rendered from.

    ``payment.card`` is left out: a card offer is never rendered.
    """
    recorded = {key: spec[key] for key in _RENDERED_FIELDS if key in spec}
    payment = recorded.get("payment")
    if isinstance(payment, Mapping) and "card" in payment:
        recorded["payment"] = {k: v for k, v in payment.items() if k != "card"}
    return recorded


@dataclass(frozen=True, slots=True)
class KeptOffer:
    """The last rendered spec (as recorded in status) and its plan."""

    spec: dict[str, Any]
    plan: OfferPlan


def kept_offer(request: SyncRequest, settings: Settings) -> KeptOffer | None:
    """The offer's last rendered spec and its plan, or None when no trusted state gives one."""
    recorded = request.status.get(RENDERED_SPEC)
    rebuilt = recorded is None
    if rebuilt:
        recorded = spec_from_status(request.status, settings)
    if not isinstance(recorded, dict):
        return None
    try:
        plan = plan_offer(request.namespace, request.name, recorded, settings)
    except SpecError:
        # Also the case for a record the current rules refuse (a network since removed from
        # the registry): no trusted valid spec is left, so nothing is kept.
        return None
    if rebuilt and not _same_terms(plan, request.status):
        return None
    return KeptOffer(rendered_spec(recorded), plan)


# --- offers last synced before status.renderedSpec existed --------------------------------
_UPSTREAM_URL = re.compile(
    r"http://(?P<service>[a-z0-9-]+)\.(?P<namespace>[a-z0-9-]+)\.svc\.cluster\.local:(?P<port>[0-9]+)"
)


def spec_from_status(status: Mapping[str, Any], settings: Settings) -> dict[str, Any] | None:
    """The spec a status written by an earlier version of this hook describes, or None.

    That status holds the route (``endpoint``), the upstream's URL, the resolved payment terms,
    the capacity envelope, the request limits and the model. Not in it, so not rebuilt:
    ``limits.rps`` (the rateLimit Middleware is left out while the spec stays invalid) and
    ``capabilities`` (a body limit that was not enforced stays unenforced).
    """
    endpoint, upstream, payment = (status.get(k) for k in ("endpoint", "upstream", "payment"))
    if not (isinstance(endpoint, str) and isinstance(upstream, dict) and isinstance(payment, dict)):
        return None
    base = settings.public_base_url.rstrip("/")
    url = _UPSTREAM_URL.fullmatch(str(upstream.get("url")))
    if not endpoint.startswith(base + "/") or url is None:
        return None
    spec: dict[str, Any] = {
        "type": "http",
        "path": endpoint[len(base) :],
        "upstream": {
            "service": url["service"],
            "namespace": url["namespace"],
            "port": int(url["port"]),
        },
        "payment": _payment_from_status(payment),
    }
    capacity = status.get("capacity")
    if isinstance(capacity, dict) and "maxInFlight" in capacity:
        spec["capacity"] = _picked(
            capacity,
            "mode maxInFlight perBuyerMaxInFlight retryAfterSeconds gpuCount",
        )
    limits = status.get("requestLimits")
    if isinstance(limits, dict):
        picked = _picked(limits, "maxInputTokens maxOutputTokens")
        enforced = limits.get("enforced")
        if isinstance(enforced, list) and "maxBodyBytes" in enforced:
            picked["maxBodyBytes"] = limits.get("maxBodyBytes")
        if picked:
            spec["requestLimits"] = picked
    model = status.get("model")
    if isinstance(model, dict):
        spec["type"] = "inference"
        spec["model"] = _picked(model, "name runtime")
    return spec


def _payment_from_status(payment: Mapping[str, Any]) -> dict[str, Any]:
    asset = payment.get("asset")
    asset = asset if isinstance(asset, dict) else {}
    price = {
        field: block.get("amount")
        for field in ("perRequest", "perMTok")
        if isinstance(block := payment.get(field), dict)
    }
    quote = payment.get("quote")
    if not price and isinstance(quote, dict):
        # A flat price (obol-stack's perHour or perMB): quoted per request as it was.
        price["perRequest"] = quote.get("amount")
    rebuilt = _picked(payment, "network payTo scheme maxTimeoutSeconds")
    rebuilt["price"] = price
    # obol-stack's object form, which is also what the status reports.
    rebuilt["asset"] = _picked(
        asset, "address symbol decimals transferMethod eip712Name eip712Version"
    )
    return rebuilt


def _picked(block: Mapping[str, Any], keys: str) -> dict[str, Any]:
    return {key: block[key] for key in keys.split() if key in block}


def _same_terms(plan: OfferPlan, status: Mapping[str, Any]) -> bool:
    """True when the rebuilt offer quotes exactly what the previous status says it quoted."""
    payment = status.get("payment")
    if not isinstance(payment, dict):
        return False
    quote, asset = payment.get("quote"), payment.get("asset")
    rebuilt = plan.payment
    return (
        isinstance(quote, dict)
        and isinstance(asset, dict)
        and payment.get("payTo") == rebuilt.pay_to
        and payment.get("caip2") == rebuilt.network.caip2
        and asset.get("address") == rebuilt.asset.address
        and quote.get("atomic") == str(rebuilt.quote_atomic)
    )

"""The sync hook as one pure function: Metacontroller's request in, the desired state out.

``sync(request, settings, observe)`` answers Metacontroller's question "if the world looked
like this, what children and status do you want?" for one ServiceOffer, following the
CompositeController v2 contract (v1 child keys work too: children are found by kind and name),
and says what it made of the offer (:class:`Outcome`), so no caller reads the answer back:

* A valid spec gives the full child set (:mod:`hooks.core.plan`) and a status computed from the
  observed children (:mod:`hooks.core.status`).
* A valid spec's status records the spec fields its children were rendered from
  (``status.renderedSpec``, :mod:`hooks.core.kept`).
* An invalid spec gives ``Ready=False/InvalidSpec`` with the field-path message and **keeps the
  children of the last valid spec**, re-rendered from ``status.renderedSpec`` (never from the
  children themselves, which a tenant can edit). A bad edit never takes a live paid route down;
  a new offer with an invalid spec simply gets no children.
* An offer whose public path another offer owns (:mod:`hooks.core.paths`) gets
  ``Ready=False/PathConflict`` naming the owner, and no HTTPRoute or pricing ConfigMap: buyers
  and verifiers see one offer per path.
* An offer this controller keeps but does not render (obol-stack's ``agent``, ``fine-tuning``,
  ``dataset`` and ``skill`` types, card payments) gets ``Ready=False/NotRendered`` and keeps its
  children the same way.
* Every child answered is in the offer's namespace (checked: a failure is a bug, answered 500).
* A malformed envelope was already refused by :func:`hooks.core.request.parse_request`; a bug
  raises here (the server answers 500). Either way Metacontroller changes nothing.
* The response holds only ``status``, ``children``, ``resyncAfterSeconds`` and, when
  finalizing, ``finalized``: v2 hooks are parsed strictly.

Pure: no I/O, no environment, no clock, no randomness. The only window on the world is the
caller's ``observe``, asked once about a valid offer's plan (the server passes its observer's):
the same request and the same observations give the same response.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hooks.core import api
from hooks.core.admission import Manifest
from hooks.core.errors import HookFailure, SpecError
from hooks.core.kept import RENDERED_SPEC, kept_offer, rendered_spec
from hooks.core.names import offer_names
from hooks.core.observation import NOTHING_OBSERVED, Observed
from hooks.core.paths import RELATED_RULES, PathClaim, conflict_message, normalize_path, path_owner
from hooks.core.plan import NotRendered, OfferPlan, plan_offer
from hooks.core.request import SyncRequest
from hooks.core.settings import Settings
from hooks.core.status import (
    REASON_INVALID_SPEC,
    REASON_NOT_RENDERED,
    finalized_status,
    invalid_spec_status,
    offer_status,
    problem_message,
)

Response = dict[str, Any]
# What the observer saw of a valid offer's plan (the server's Observer.observe).
Observe = Callable[[OfferPlan], Observed]


class Outcome(enum.StrEnum):
    """What a sync made of the offer."""

    RENDERED = "rendered"  # a valid offer: its children and status
    INVALID = "invalid"  # Ready=False/InvalidSpec, the last valid spec's children kept
    NOT_RENDERED = "not_rendered"  # Ready=False/NotRendered, the same
    FINALIZED = "finalized"  # finalizing: no children


@dataclass(frozen=True, slots=True)
class SyncResult:
    """The hook's answer and what it means, so no caller reads the conditions back."""

    outcome: Outcome
    response: Response
    # The field-path message of an invalid or not rendered offer (its Ready message).
    problem: str | None = None


def sync(request: SyncRequest, settings: Settings, observe: Observe | None = None) -> SyncResult:
    """Answer one CompositeController sync (or finalize) request.

    ``observe`` is asked, once, what was observed of a valid offer's plan; without it upstream
    health and in-flight use are reported as Unknown.
    """
    if request.finalizing:
        # Only reached if a finalize hook is configured (the shipped manifests rely on
        # ownerReferences instead): no children, so Metacontroller deletes them all.
        response = {
            "status": finalized_status(request),
            "children": [],
            "resyncAfterSeconds": 0,
            "finalized": True,
        }
        return SyncResult(Outcome.FINALIZED, response)
    try:
        plan = plan_offer(request.namespace, request.name, request.spec, settings)
    except SpecError as problem:
        not_rendered = isinstance(problem, NotRendered)
        reason = REASON_NOT_RENDERED if not_rendered else REASON_INVALID_SPEC
        message = problem_message(problem)
        kept = kept_offer(request, settings)
        status = invalid_spec_status(request, message, reason, kept is not None)
        children: list[Manifest] = []
        if kept is not None:
            status[RENDERED_SPEC] = kept.spec
            # The kept route publishes the last valid spec's path: owned by this offer or not
            # published, like any route.
            claim = replace(request.claim, path=normalize_path(kept.plan.names.path))
            children = kept.plan.children
            if _conflict(claim, request, settings) is not None:
                children = unrouted_children(kept.plan)
        response = {
            "status": status,
            "children": _in_offer_namespace(request, children),
            "resyncAfterSeconds": settings.resync_seconds,
        }
        outcome = Outcome.NOT_RENDERED if not_rendered else Outcome.INVALID
        return SyncResult(outcome, response, message)
    conflict = _conflict(request.claim, request, settings)
    seen = NOTHING_OBSERVED if observe is None else observe(plan)
    status = offer_status(request, plan, settings, seen, conflict)
    status[RENDERED_SPEC] = rendered_spec(request.spec)
    response = {
        "status": status,
        "children": _in_offer_namespace(
            request, plan.children if conflict is None else unrouted_children(plan)
        ),
        "resyncAfterSeconds": settings.resync_seconds,
    }
    return SyncResult(Outcome.RENDERED, response)


def _conflict(claim: PathClaim, request: SyncRequest, settings: Settings) -> str | None:
    """Why ``claim``'s path is not this offer's to publish, or None when it owns it."""
    base_url = settings.public_base_url
    owner = path_owner(claim, request.related, base_url)
    return None if owner is claim else conflict_message(claim, owner, base_url)


def _in_offer_namespace(request: SyncRequest, children: list[Manifest]) -> list[Manifest]:
    # Metacontroller applies whatever the hook answers, with cluster-wide rights: a child in
    # another namespace, or one this offer would not render, would be a write the offer's owner
    # could never make. Every builder makes only the offer's own children; this makes a bug
    # there a 500, not such a write.
    names = offer_names(request.namespace, request.name, None).children
    for child in children:
        meta = child["metadata"]
        if meta.get("namespace") != request.namespace:
            raise HookFailure(
                f"{child['kind']} {meta.get('name')} is not in the offer's namespace"
                f" {request.namespace}"
            )
        if child["kind"] not in api.CHILD_KINDS or meta.get("name") not in names:
            raise HookFailure(f"{child['kind']} {meta.get('name')} is not a child of this offer")
    return children


def customize() -> Response:
    """The customize hook's answer (hook version v2, strict): every ServiceOffer of every
    namespace as related objects, so each sync request carries the claims path ownership needs.
    The same for every parent, as Metacontroller's per-(uid, generation) cache requires."""
    return {"relatedResources": [dict(rule) for rule in RELATED_RULES]}


def unrouted_children(plan: OfferPlan) -> list[Manifest]:
    """A plan's children without what publishes its path: the HTTPRoute and the pricing
    ConfigMap (a route entry for verifiers that read pricing config). What is left is inert
    without a route, and there is always something left: the gate's own object."""
    published = {(api.HTTPROUTE_KIND, plan.names.route), (api.CONFIGMAP_KIND, plan.names.pricing)}
    return [c for c in plan.children if (c["kind"], c["metadata"]["name"]) not in published]

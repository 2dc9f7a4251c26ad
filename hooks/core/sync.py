"""The sync hook as one pure function: Metacontroller's request in, the desired state out.

``sync(request, settings, observe)`` answers Metacontroller's question "if the world looked
like this, what children and status do you want?" for one ServiceOffer, following the
CompositeController v2 contract (v1 child keys work too: children are found by kind and name),
and says what it made of the offer (:class:`Outcome`), so no caller reads the answer back:

* A valid spec gives the full child set (:mod:`hooks.core.plan`) and a status computed from the
  observed children (:mod:`hooks.core.status`).
* An invalid spec gives ``Ready=False/InvalidSpec`` with the field-path message and **keeps the
  children that already exist**, rebuilt from Metacontroller's last-applied annotation (or, when
  there is none, from the observed object without its server-set fields). A bad edit never takes
  a live paid route down; a new offer with an invalid spec simply gets no children.
* An offer whose public path another offer owns (:mod:`hooks.core.paths`) gets
  ``Ready=False/PathConflict`` naming the owner, and no HTTPRoute or pricing ConfigMap: buyers
  and verifiers see one offer per path.
* An offer this controller keeps but does not render (obol-stack's ``agent``, ``fine-tuning``,
  ``dataset`` and ``skill`` types, card payments) gets ``Ready=False/NotRendered`` and keeps its
  children the same way.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from hooks.core import api
from hooks.core.admission import Manifest
from hooks.core.errors import SpecError
from hooks.core.observation import NOTHING_OBSERVED, Observed
from hooks.core.paths import RELATED_RULES, conflict_message, path_owner
from hooks.core.plan import NotRendered, OfferPlan, plan_offer
from hooks.core.request import ObservedChildren, SyncRequest
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
_KIND_ORDER: Final = {kind: index for index, (_, kind, _) in enumerate(api.CHILD_TYPES)}


class Outcome(enum.StrEnum):
    """What a sync made of the offer."""

    RENDERED = "rendered"  # a valid offer: its children and status
    INVALID = "invalid"  # Ready=False/InvalidSpec, existing children kept
    NOT_RENDERED = "not_rendered"  # Ready=False/NotRendered, existing children kept
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
        kept = isinstance(problem, NotRendered)
        reason = REASON_NOT_RENDERED if kept else REASON_INVALID_SPEC
        message = problem_message(problem)
        response = {
            "status": invalid_spec_status(request, message, reason),
            "children": kept_children(request.children),
            "resyncAfterSeconds": settings.resync_seconds,
        }
        outcome = Outcome.NOT_RENDERED if kept else Outcome.INVALID
        return SyncResult(outcome, response, message)
    base_url = settings.public_base_url
    owner = path_owner(request.claim, request.related, base_url)
    conflict = None if owner is request.claim else conflict_message(request.claim, owner, base_url)
    seen = NOTHING_OBSERVED if observe is None else observe(plan)
    response = {
        "status": offer_status(request, plan, settings, seen, conflict),
        "children": plan.children if conflict is None else unrouted_children(plan),
        "resyncAfterSeconds": settings.resync_seconds,
    }
    return SyncResult(Outcome.RENDERED, response)


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


_SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "ownerReferences",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "finalizers",
)
_FOREIGN_ANNOTATIONS = (
    api.LAST_APPLIED_ANNOTATION,
    "kubectl.kubernetes.io/last-applied-configuration",
)


def kept_children(observed: ObservedChildren) -> list[dict[str, Any]]:
    """Rebuild every observed child as we last desired it, in a stable order."""
    rebuilt = [_as_last_applied(obj) for obj in observed.values()]
    rebuilt.sort(key=lambda o: (_KIND_ORDER[o["kind"]], o["metadata"]["name"]))
    return rebuilt


def _as_last_applied(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
    last = annotations.get(api.LAST_APPLIED_ANNOTATION)
    if isinstance(last, str):
        try:
            applied = orjson.loads(last)
        except orjson.JSONDecodeError:
            applied = None
        if (
            isinstance(applied, dict)
            and applied.get("kind") == obj["kind"]
            and isinstance(applied.get("metadata"), dict)
            and applied["metadata"].get("name") == meta["name"]
        ):
            return _strip_controller_fields(applied)
    stripped = {k: v for k, v in obj.items() if k != "status"}
    stripped["metadata"] = {k: v for k, v in meta.items() if k not in _SERVER_METADATA}
    if annotations:
        kept = {k: v for k, v in annotations.items() if k not in _FOREIGN_ANNOTATIONS}
        if kept:
            stripped["metadata"]["annotations"] = kept
        else:
            stripped["metadata"].pop("annotations", None)
    return _strip_controller_fields(stripped)


def _strip_controller_fields(obj: dict[str, Any]) -> dict[str, Any]:
    # Metacontroller stamps controller-uid itself; it is not one of our fields.
    meta = dict(obj["metadata"])
    labels = meta.get("labels")
    if isinstance(labels, dict) and "controller-uid" in labels:
        labels = {k: v for k, v in labels.items() if k != "controller-uid"}
        if labels:
            meta["labels"] = labels
        else:
            meta.pop("labels")
    return {**obj, "metadata": meta}

"""The sync hook as one pure function: Metacontroller's request in, the desired state out.

``sync(request, settings, observations)`` answers Metacontroller's question "if the world looked
like this, what children and status do you want?" for one ServiceOffer. It follows the
CompositeController v2 contract (v1 child keying is accepted too: children are found by name):

* A valid spec gives the full child set (:mod:`hooks.core.children`, :mod:`hooks.core.admission`)
and a
  status computed from the observed children (:mod:`hooks.core.status`).
* An invalid spec gives ``Ready=False/InvalidSpec`` with the field-path message and **keeps the
  children that already exist**, rebuilt from Metacontroller's last-applied annotation (or, when
  there is none, from the observed object without its server-set fields). A bad edit never takes
  a live paid route down; a new offer with an invalid spec simply gets no children.
* A malformed request raises :class:`~hooks.core.errors.SpecError` (the server answers 400); a bug
  raises anything else (the server answers 500). Either way Metacontroller changes nothing.
* The response holds only ``status``, ``children``, ``resyncAfterSeconds`` and, when
  finalizing, ``finalized``: v2 hooks are parsed strictly.

``sync_for_wire`` is the same answer as the server sends it (``POST /sync``): for a request as
orjson parsed it, ``orjson.dumps(answer, option=OPT_SORT_KEYS)`` gives exactly the bytes of
``sync``'s answer. What a valid spec decides on its own (the parsed spec, the enforced limits,
the payment terms and the children, pre-serialised) is remembered per offer and spec in a
bounded memo, because Metacontroller re-sends an unchanged spec on every write to the offer or
its children; the status is computed afresh from what was observed, every time.

Pure: no I/O, no environment, no clock, no randomness. The same request gives the same response;
the memo only remembers results of pure functions of its key, so it never changes an answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import count
from typing import Any, Final

import orjson

from hooks.core import api
from hooks.core.admission import Envelope, Manifest, envelope
from hooks.core.assets import AssetRegistry
from hooks.core.children import desired_children
from hooks.core.errors import HookFailure, SpecError
from hooks.core.models import ServiceOfferSpec, parse_spec
from hooks.core.names import child_names, upstream_url
from hooks.core.payment import ResolvedPayment, resolve_payment
from hooks.core.settings import Settings
from hooks.core.status import (
    READY,
    REASON_INVALID_SPEC,
    Observation,
    ObservedChildren,
    capacity_condition,
    capacity_status,
    condition,
    finish_conditions,
    payment_condition,
    payment_gate_status,
    payment_status,
    ready_condition,
    request_limits_status,
    request_time,
    route_condition,
    upstream_condition,
)

Response = dict[str, Any]
_MANAGED_KINDS = frozenset(kind for _, kind, _ in api.CHILD_TYPES)
_KIND_ORDER = {kind: index for index, (_, kind, _) in enumerate(api.CHILD_TYPES)}
_NO_OBSERVATIONS: Mapping[str, Observation] = {}
_MAX_MESSAGE = 32768


def sync(
    request: Any,
    settings: Settings,
    observations: Mapping[str, Observation] = _NO_OBSERVATIONS,
) -> Response:
    """Answer one CompositeController sync (or finalize) request."""
    return _answer(request, settings, observations, wire=False)[0]


def sync_for_wire(
    request: Any,
    settings: Settings,
    observations: Mapping[str, Observation] = _NO_OBSERVATIONS,
) -> tuple[Response, int]:
    """:func:`sync` for a request as :func:`orjson.loads` parsed it, answered for the wire.

    The answer is meant for ``orjson.dumps(answer, option=orjson.OPT_SORT_KEYS)``, which gives
    exactly the bytes of :func:`sync`'s answer. The difference: a valid offer's children come as
    one ``orjson.Fragment`` (the already serialised list), and what the spec decides is
    remembered per offer and spec (:func:`memoised_plan`), so a request whose spec was seen
    before skips validation, payment resolution and building the children. Also returns how
    many children the answer holds.
    """
    return _answer(request, settings, observations, wire=True)


def _answer(
    request: Any, settings: Settings, observations: Mapping[str, Observation], *, wire: bool
) -> tuple[Response, int]:
    # Requests are parsed JSON, so objects are plain dicts (checked with a fast isinstance).
    if not isinstance(request, dict):
        raise SpecError.at("<request>", "must be a JSON object")
    parent = request.get("parent")
    if not isinstance(parent, dict):
        raise SpecError.at("parent", "must be the ServiceOffer object")
    meta = parent.get("metadata")
    if not isinstance(meta, dict):
        raise SpecError.at("parent.metadata", "must be an object")
    offer, namespace = meta.get("name"), meta.get("namespace") or "default"
    if not isinstance(offer, str) or not offer or not isinstance(namespace, str):
        raise SpecError.at("parent.metadata.name", "must be a non-empty string", offer)
    generation = meta.get("generation") if isinstance(meta.get("generation"), int) else None
    observed = index_children(request.get("children"))
    raw_status = parent.get("status")
    previous: Mapping[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    names = child_names(namespace, offer)
    endpoint = settings.public_endpoint_base + names.path
    # The newest timestamp in the request, computed only if a condition changes (see
    # finish_conditions): an unchanged offer's resync never scans its children's metadata.
    when = partial(request_time, parent, observed)

    if request.get("finalizing") is True:
        # Only reached if a finalize hook is configured (the shipped manifests rely on
        # ownerReferences instead): no children, so Metacontroller deletes them all.
        kept = carried_status(previous)
        kept["conditions"] = carried_conditions(previous)
        return {"status": kept, "children": [], "resyncAfterSeconds": 0, "finalized": True}, 0

    raw_spec = parent.get("spec")
    children: list[Manifest] | orjson.Fragment
    try:
        if wire:
            plan = memoised_plan(namespace, offer, raw_spec, settings)
            spec, limits, payment = plan.spec, plan.limits, plan.payment
            children, child_count = plan.children, plan.child_count
        else:
            spec, limits, payment, listed = decide(namespace, offer, raw_spec, settings)
            children, child_count = listed, len(listed)
    except SpecError as problem:
        invalid = _invalid_spec_response(problem, previous, observed, generation, when, settings)
        return invalid, len(invalid["children"])

    upstream = spec.upstream
    upstream_base = upstream_url(namespace, upstream.service, upstream.namespace, upstream.port)
    observation = observations.get(upstream_base)

    # The status, from what was observed.
    conditions = [
        payment_condition(names, observed, settings),
        capacity_condition(spec, names, limits, observed, settings),
        route_condition(observed.get((api.HTTPROUTE_KIND, names.route)), settings),
        upstream_condition(observation),
    ]
    conditions.append(ready_condition(conditions))
    status: dict[str, Any] = {
        "endpoint": endpoint,
        "capacity": capacity_status(spec, limits, observation, settings, previous.get("capacity")),
        "payment": payment_status(payment),
        "upstream": {"url": upstream_base},
        "conditions": finish_conditions(conditions, previous.get("conditions"), generation, when),
    }
    if observation is not None and observation.http_status is not None:
        status["upstream"]["httpStatus"] = observation.http_status
    gate_block = payment_gate_status(spec, limits, settings)
    if gate_block is not None:
        status["paymentGate"] = gate_block
    limits_block = request_limits_status(spec, limits)
    if limits_block is not None:
        status["requestLimits"] = limits_block
    warnings = [*limits.warnings, *payment.warnings]
    if warnings:
        status["warnings"] = warnings

    response = {
        "status": status,
        "children": children,
        "resyncAfterSeconds": settings.resync_seconds,
    }
    return response, child_count


def decide(
    namespace: str, offer: str, raw_spec: Any, settings: Settings
) -> tuple[ServiceOfferSpec, Envelope, ResolvedPayment, list[Manifest]]:
    """What the offer's name and ``raw_spec`` decide, whatever was observed: the validated spec,
    the limits the gateway will enforce, the payment terms and the desired children.

    Raises :class:`SpecError` with every problem's field path.
    """
    spec = parse_spec(raw_spec)
    limits = envelope(spec, settings)
    payment = resolve_payment(spec.payment, spec.request_limits, settings.asset_registry)
    names = child_names(namespace, offer)
    children = desired_children(namespace, offer, spec, names, limits, payment, settings)
    return spec, limits, payment, children


@dataclass(frozen=True, slots=True)
class OfferPlan:
    """What an offer's name and valid spec decide whatever was observed (see :func:`decide`),
    with its desired children already serialised (sorted keys) for the wire."""

    spec: ServiceOfferSpec
    limits: Envelope
    payment: ResolvedPayment
    children: orjson.Fragment
    child_count: int


PLAN_MEMO_ENTRIES: Final = 1024


def memoised_plan(namespace: str, offer: str, raw_spec: Any, settings: Settings) -> OfferPlan:
    """The offer's plan, remembered from the second time its spec is seen.

    Metacontroller re-sends an offer whose spec has not changed on every write to it or its
    children (its own status update, a child's new resourceVersion), so most requests that
    differ from the last one still carry a spec seen moments before; a remembered plan skips
    validation, payment resolution, and building and serialising the children.

    The key is the spec's JSON text, exact for what :func:`orjson.loads` returns (JSON types
    only, no NaN): equal text, equal spec. A plan is remembered only when its key was among
    the last ``2 x`` :data:`PLAN_MEMO_ENTRIES` keys seen: replacing remembered plans costs more
    than it saves when specs do not recur (a storm of more offers than the memo holds, a
    restart), so such specs are planned afresh and never stored. Only valid specs are
    remembered (an invalid one raises every time). A plan of a full-envelope offer takes about
    12 KB, so the memo at most about 12 MB per process.
    """
    spec_json = orjson.dumps(raw_spec)
    if not seen_before(hash((namespace, offer, spec_json))):
        return build_plan(namespace, offer, raw_spec, settings, kept=False)
    key = compact(spec_json)
    return _memoised_plan(namespace, offer, key, settings, settings.asset_registry)


def build_plan(
    namespace: str, offer: str, raw_spec: Any, settings: Settings, *, kept: bool
) -> OfferPlan:
    """The offer's plan; raises :class:`SpecError` for an invalid spec.

    ``kept``: the plan will be remembered, so its serialised children are compacted.
    """
    spec, limits, payment, children = decide(namespace, offer, raw_spec, settings)
    serialised = orjson.dumps(children, option=orjson.OPT_SORT_KEYS)
    if kept:
        serialised = compact(serialised)
    return OfferPlan(spec, limits, payment, orjson.Fragment(serialised), len(children))


def compact(serialised: bytes) -> bytes:
    """A copy of orjson's output that takes only its own length in memory.

    ``orjson.dumps`` returns bytes that keep their whole write buffer (at least 4 KiB); what is
    kept for long is copied first.
    """
    return bytes(memoryview(serialised))


@lru_cache(maxsize=PLAN_MEMO_ENTRIES)
def _memoised_plan(
    namespace: str, offer: str, spec_json: bytes, settings: Settings, registry: AssetRegistry
) -> OfferPlan:
    # registry is part of the key because Settings leaves it out of its equality and hash.
    return build_plan(namespace, offer, orjson.loads(spec_json), settings, kept=True)


def seen_before(key_hash: int) -> bool:
    """True when ``key_hash`` is among the last ``2 x`` :data:`PLAN_MEMO_ENTRIES` seen.

    Notes the sight either way. A clash of hashes only lets a key in one sight early.
    """
    return next(_sightings(key_hash)) > 0


@lru_cache(maxsize=2 * PLAN_MEMO_ENTRIES)
def _sightings(key_hash: int) -> Iterator[int]:
    # A counter per recently seen key hash (0 at its first sight, then 1, 2, ...): lru_cache
    # bounds and orders them, thread-safe and without a lock.
    return count()


def index_children(children: Any) -> ObservedChildren:
    """Index the request's ``children`` map by (kind, name), for the kinds we manage."""
    if children is None:
        return {}
    if not isinstance(children, dict):
        raise SpecError.at("children", "must be an object keyed by Kind.apiVersion")
    index: ObservedChildren = {}
    for type_key, objects in children.items():
        if not isinstance(objects, dict):
            raise SpecError.at(f"children[{type_key!r}]", "must be an object keyed by name")
        for obj in objects.values():
            if not isinstance(obj, dict):
                raise SpecError.at(f"children[{type_key!r}]", "every child must be an object")
            kind = obj.get("kind")
            meta = obj.get("metadata")
            name = meta.get("name") if isinstance(meta, dict) else None
            # Objects without a string kind and name cannot be ours: they are skipped.
            if isinstance(kind, str) and kind in _MANAGED_KINDS and isinstance(name, str):
                index[(kind, name)] = obj
    return index


def _invalid_spec_response(
    problem: SpecError,
    previous: Mapping[str, Any],
    observed: ObservedChildren,
    generation: int | None,
    when: Callable[[], str],
    settings: Settings,
) -> Response:
    message = str(problem)
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    kept = [c for c in carried_conditions(previous) if c["type"] != READY]
    ready = condition(READY, "False", REASON_INVALID_SPEC, message)
    status = carried_status(previous)
    status["conditions"] = [
        *kept,
        *finish_conditions([ready], previous.get("conditions"), generation, when),
    ]
    children = kept_children(observed)
    if len(observed) and not children:
        raise HookFailure("refusing to answer with no children while children exist")
    return {"status": status, "children": children, "resyncAfterSeconds": settings.resync_seconds}


# The status blocks the hook owns besides conditions (observedGeneration is Metacontroller's).
_CARRIED_BLOCKS = (
    "endpoint",
    "capacity",
    "payment",
    "paymentGate",
    "requestLimits",
    "upstream",
    "warnings",
)
_MAX_CARRIED_DEPTH = 8


def carried_status(previous: Mapping[str, Any]) -> dict[str, Any]:
    """The previous status's own blocks, kept while the spec is invalid or being finalized.

    Only the blocks this hook writes, and only when they are shallow JSON as it writes them:
    anything else the API server would prune anyway, and could not be serialised safely.
    """
    return {
        key: previous[key]
        for key in _CARRIED_BLOCKS
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

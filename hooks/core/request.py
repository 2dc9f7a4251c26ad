"""Metacontroller's sync request, parsed once into the one typed value every layer shares.

:func:`parse_request` walks the CompositeController envelope (``parent``, its ``metadata``,
``status`` and ``spec``, the ``children`` map, the path claims of the ``related`` offers,
``finalizing``) exactly once. The server answers
a malformed envelope with 400, the observation layer reads the upstream from
:attr:`SyncRequest.spec`, and :func:`hooks.core.sync.sync` answers the rest. The spec itself
is left raw here: validating it is :mod:`hooks.core.models`' job, and an invalid spec is an
answer (``Ready=False``), not a malformed request.

Pure: no I/O. Raises :class:`~hooks.core.errors.SpecError` for a malformed envelope, with the
field path (``parent.metadata.name``, ``children[...]``) of the first problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from hooks.core import api
from hooks.core.errors import SpecError
from hooks.core.paths import PathClaim, claim_of, parse_claims

# (kind, name) -> the observed object, for the child kinds this hook manages.
ObservedChildren: TypeAlias = dict[tuple[str, str], Mapping[str, Any]]

# Children's names and the busy responder's path are built from the offer's name and namespace
# unescaped, so both must follow the API server's rules (api.is_dns_subdomain, api.is_dns_label).


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """One sync (or finalize) request for one ServiceOffer."""

    namespace: str
    name: str
    # metadata.generation, when the parent carries one (conditions' observedGeneration).
    generation: int | None
    # parent.spec as sent: validated later, an invalid spec still gets an answer.
    spec: Any
    # The previous status the hook wrote ({} when there is none or it is not an object).
    status: Mapping[str, Any]
    children: ObservedChildren
    finalizing: bool
    # The parent object itself, for the timestamps in its metadata (see status.request_time).
    parent: Mapping[str, Any]
    # The path this offer claims and publishes, and the claims of the related offers (every
    # ServiceOffer Metacontroller lists under ``related``; empty without the customize hook).
    claim: PathClaim
    related: tuple[PathClaim, ...] = ()

    @property
    def offer(self) -> str:
        """``namespace/name``: how logs, metrics and messages name the offer."""
        return f"{self.namespace}/{self.name}"


def parse_request(body: Any) -> SyncRequest:
    """The typed request; raise :class:`SpecError` when the envelope is malformed."""
    if not isinstance(body, dict):
        raise SpecError.at("<request>", "must be a JSON object")
    parent = body.get("parent")
    if not isinstance(parent, dict):
        raise SpecError.at("parent", "must be the ServiceOffer object")
    meta = parent.get("metadata")
    if not isinstance(meta, dict):
        raise SpecError.at("parent.metadata", "must be an object")
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str) or not api.is_dns_subdomain(name):
        raise SpecError.at("parent.metadata.name", "must be a DNS-1123 subdomain", name)
    # ServiceOffers are namespaced and Metacontroller always sends the namespace: a request
    # without one is malformed, never an offer in "default".
    if namespace is None:
        raise SpecError.at("parent.metadata.namespace", "required field is missing")
    if not isinstance(namespace, str) or not api.is_dns_label(namespace):
        raise SpecError.at("parent.metadata.namespace", "must be a DNS-1123 label", namespace)
    generation = meta.get("generation")
    status = parent.get("status")
    return SyncRequest(
        namespace=namespace,
        name=name,
        generation=generation if type(generation) is int else None,
        spec=parent.get("spec"),
        status=status if isinstance(status, dict) else {},
        children=index_children(body.get("children")),
        finalizing=body.get("finalizing") is True,
        parent=parent,
        claim=claim_of(parent, "parent"),
        related=parse_claims(body.get("related")),
    )


def index_children(children: Any) -> ObservedChildren:
    """Index the request's ``children`` map by (kind, name), for the kinds this hook manages.

    Both v2 (``Kind.group/version``) and v1 keys work: children are found by their own kind.
    """
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
            child_name = meta.get("name") if isinstance(meta, dict) else None
            # Objects without a string kind and name cannot be ours: they are skipped.
            if isinstance(kind, str) and kind in api.CHILD_KINDS and isinstance(child_name, str):
                index[(kind, child_name)] = obj
    return index

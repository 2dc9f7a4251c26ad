"""One owner per public path: which of the offers that claim a path may publish a route for it.

Every sync request carries, under ``related``, the ServiceOffers of all namespaces (the customize
hook asks Metacontroller for them, :data:`RELATED_RULES`). :func:`parse_claims` reads from each
only what ownership needs, once; :func:`path_owner` picks the owner of the path the synced offer
claims.

The rule is obol-stack's (``internal/serviceoffercontroller/pathconflict.go``): an offer claims
``spec.path``, else ``/services/<name>``, with one trailing ``/`` ignored, whether or not its
spec is valid; an offer being deleted claims nothing; the oldest claimant (creationTimestamp,
then namespace/name) owns the path. One refinement keeps a live paid route up and one route per
path: while an offer publishes the path (its status says so, see :attr:`PathClaim.held`), only
publishing offers are considered, so an older offer edited onto a path that a younger one
serves does not take the route away, and an offer being deleted that still has its route (a
finalizer holds it) keeps the path until it is gone; the others wait, reported as
``PathConflict``, until the path is free.

Pure: no I/O. :func:`parse_claims` raises :class:`~hooks.core.errors.SpecError` with the field
path when ``related`` is not what Metacontroller sends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from hooks.core import api
from hooks.core.errors import SpecError

# What the customize hook answers: every ServiceOffer of every namespace (hook version v2).
RELATED_RULES: Final = ({"apiVersion": api.API_VERSION, "resource": api.PLURAL},)
# Where those offers arrive in a v2 sync request's ``related`` map.
RELATED_KEY: Final = api.children_key(api.KIND, api.API_VERSION)
# Far above the supported scale (docs/performance.md): a request with more offers is refused as
# malformed rather than read; the request-size cap refuses one long before.
MAX_RELATED_OFFERS: Final = 20_000
REASON_PATH_CONFLICT: Final = "PathConflict"
_ROUTE_PUBLISHED: Final = "RoutePublished"
_TIMESTAMP: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


@dataclass(frozen=True, slots=True)
class PathClaim:
    """What one offer says about a public path: the one it claims and the one it publishes."""

    namespace: str
    name: str
    # metadata.creationTimestamp (RFC 3339, UTC, whole seconds: ordered as text); None sorts last.
    created: str | None
    # The claimed path, normalised (see normalize_path).
    path: str
    # status.endpoint as the hook (or obol-stack's controller) last wrote it, when the status
    # says a route is rendered for it (a RoutePublished condition whose reason is not
    # PathConflict); None otherwise.
    endpoint: str | None
    deleting: bool

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    def held(self, base_url: str) -> str | None:
        """The normalised path this offer publishes, judged from its status (``endpoint`` is
        ``base_url + path`` as this hook writes it, or the bare path as obol-stack's does)."""
        endpoint = self.endpoint
        if endpoint is None:
            return None
        base = base_url.rstrip("/")
        if base and endpoint.startswith(base + "/"):
            endpoint = endpoint[len(base) :]
        return normalize_path(endpoint) if endpoint.startswith("/") else None


def normalize_path(path: str) -> str:
    """The path as ownership compares it: one trailing ``/`` ignored, as obol-stack does."""
    return path.removesuffix("/")


def claimed_path(name: str, path: Any) -> str:
    """The path an offer named ``name`` with ``spec.path`` = ``path`` claims (normalised)."""
    if isinstance(path, str) and path:
        return normalize_path(path)
    return f"/services/{name}"


def claim_of(obj: Mapping[str, Any], where: str) -> PathClaim:
    """The claim of one ServiceOffer object; ``where`` names it in error messages."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise SpecError.at(f"{where}.metadata", "must be an object")
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str) or not name:
        raise SpecError.at(f"{where}.metadata.name", "must be a non-empty string", name)
    if not isinstance(namespace, str) or not namespace:
        raise SpecError.at(f"{where}.metadata.namespace", "must be a non-empty string", namespace)
    created = meta.get("creationTimestamp")
    spec, status = obj.get("spec"), obj.get("status")
    return PathClaim(
        namespace=namespace,
        name=name,
        created=created if isinstance(created, str) and _TIMESTAMP.fullmatch(created) else None,
        path=claimed_path(name, spec.get("path") if isinstance(spec, dict) else None),
        endpoint=_published_endpoint(status) if isinstance(status, dict) else None,
        deleting=meta.get("deletionTimestamp") is not None,
    )


def _published_endpoint(status: Mapping[str, Any]) -> str | None:
    endpoint = status.get("endpoint")
    conditions = status.get("conditions")
    if not isinstance(endpoint, str):
        return None
    for cond in conditions if isinstance(conditions, list) else ():
        if isinstance(cond, dict) and cond.get("type") == _ROUTE_PUBLISHED:
            return endpoint if cond.get("reason") != REASON_PATH_CONFLICT else None
    return None


def parse_claims(related: Any) -> tuple[PathClaim, ...]:
    """The claims of the ServiceOffers in a sync request's ``related`` map (none without one)."""
    if related is None:
        return ()
    if not isinstance(related, dict):
        raise SpecError.at("related", "must be an object keyed by Kind.apiVersion")
    offers = related.get(RELATED_KEY)
    if offers is None:
        return ()
    where = f"related[{RELATED_KEY!r}]"
    if not isinstance(offers, dict):
        raise SpecError.at(where, "must be an object keyed by namespace/name")
    if len(offers) > MAX_RELATED_OFFERS:
        raise SpecError.at(
            where, f"holds more than {MAX_RELATED_OFFERS} ServiceOffers", len(offers)
        )
    claims = []
    for key, obj in offers.items():
        if not isinstance(obj, dict):
            raise SpecError.at(f"{where}[{key!r}]", "must be a ServiceOffer object")
        claims.append(claim_of(obj, f"{where}[{key!r}]"))
    return tuple(claims)


def path_owner(me: PathClaim, others: Sequence[PathClaim], base_url: str) -> PathClaim:
    """The claim that owns ``me.path``: ``me`` itself, or the offer that keeps it from ``me``.

    ``others`` may include ``me`` (Metacontroller lists the parent among the related offers);
    ``me``'s own entry there is ignored in favour of ``me``.
    """
    path = me.path
    contenders = [me]
    for other in others:
        if other.namespace == me.namespace and other.name == me.name:
            continue
        # An offer being deleted claims nothing, but while it still publishes the path its
        # route exists (its children go only once it is gone): it keeps the path until then.
        claims = other.path == path and not other.deleting
        if claims or other.held(base_url) == path:
            contenders.append(other)
    if len(contenders) == 1:
        return me
    holders = [c for c in contenders if c.held(base_url) == path]
    return min(holders or contenders, key=_age)


def _age(claim: PathClaim) -> tuple[bool, str, str, str]:
    return (claim.created is None, claim.created or "", claim.namespace, claim.name)


def conflict_message(me: PathClaim, owner: PathClaim, base_url: str) -> str:
    """Why ``me`` may not publish its path, naming the owner."""
    if owner.held(base_url) != me.path:
        why = f"is the oldest claimant (created {owner.created or 'at an unknown time'})"
    elif owner.deleting:
        why = "publishes it until its deletion completes"
    else:
        why = "publishes it now"
    return (
        f"path {me.path or '/'} is owned by ServiceOffer {owner.key}, which {why}; this offer gets"
        " no route until that offer is deleted or moves to another path (or choose another"
        " spec.path)"
    )

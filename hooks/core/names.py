"""Deterministic names, labels and metadata for an offer's children.

Every child name is a pure function of the offer's namespace and name, stays a valid
Kubernetes name for any valid offer name (ServiceOffer names may be 253 characters long and
contain dots; Service names must be DNS-1123 labels of at most 63), and never collides for two
different offers: whenever a name has to be shortened or cleaned, a hash of the untouched name
is appended.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields
from typing import Any

from hooks.core import api

SUBDOMAIN_MAX = 253
LABEL_MAX = 63
_NOT_LABEL_CHARS = re.compile(r"[^a-z0-9-]")


def bounded(base: str, suffix: str = "", *, limit: int = SUBDOMAIN_MAX, label: bool = False) -> str:
    """``base + suffix`` if it fits and is valid, else a shortened form with a hash of the whole.

    ``label=True`` asks for a DNS-1123 label (no dots), as Service names need.
    """
    wanted = base + suffix
    clean = _NOT_LABEL_CHARS.sub("-", wanted) if label else wanted
    if clean == wanted and len(wanted) <= limit:
        return wanted
    tail = f"-{hashlib.sha256(wanted.encode()).hexdigest()[:8]}{suffix}"
    head = (_NOT_LABEL_CHARS.sub("-", base) if label else base)[: limit - len(tail)]
    return head.rstrip("-.") + tail


@dataclass(frozen=True, slots=True)
class ChildNames:
    """The names of every child one offer can have, plus its route path, admission key and the
    label value that identifies the offer."""

    route: str
    pricing: str
    forward_auth: str
    global_in_flight: str
    buyer_in_flight: str
    busy_errors: str
    body_limit: str
    rate_limit: str
    admitted: str
    busy_service: str
    verifier_backend: str
    verifier_service: str
    path: str
    admission_key: str
    offer_label: str

    @property
    def children(self) -> frozenset[str]:
        """Every child name above (not the path, the admission key or the label value)."""
        return frozenset(
            getattr(self, f.name) for f in fields(self) if f.name not in _NOT_CHILD_NAMES
        )


_NOT_CHILD_NAMES = frozenset({"path", "admission_key", "offer_label"})


def offer_names(namespace: str, name: str, path: str | None) -> ChildNames:
    """All child names of the offer ``namespace/name``, with the route path it chose
    (obol-stack's ``spec.path``; without one ``/services/<name>``, obol-stack's default)."""
    base = f"so-{name}"
    return ChildNames(
        route=bounded(base),
        pricing=bounded(base, "-pricing"),
        forward_auth=bounded(base, "-x402"),
        global_in_flight=bounded(base, "-inflight"),
        buyer_in_flight=bounded(base, "-buyer-inflight"),
        busy_errors=bounded(base, "-busy"),
        body_limit=bounded(base, "-body-limit"),
        rate_limit=bounded(base, "-ratelimit"),
        admitted=bounded(base, "-admitted"),
        busy_service=bounded(base, "-busy", limit=LABEL_MAX, label=True),
        verifier_backend=bounded(base, "-verifier"),
        verifier_service=bounded(base, "-verifier", limit=LABEL_MAX, label=True),
        path=f"/services/{name}" if path is None else path,
        admission_key=f"{namespace}/{name}",
        # A valid label value (at most 63 characters) that identifies the offer.
        offer_label=bounded(name, limit=LABEL_MAX),
    )


def upstream_url(offer_namespace: str, service: str, namespace: str | None, port: int) -> str:
    """In-cluster base URL of an offer's upstream Service: probed by the observer, shown in status,
    proxied to by the seller proxy."""
    return f"http://{service}.{namespace or offer_namespace}.svc.cluster.local:{port}"


_API_VERSION_OF_KIND = {kind: version for version, kind, _ in api.CHILD_TYPES}


def child(
    kind: str, name: str, namespace: str, names: ChildNames, component: str
) -> dict[str, Any]:
    """A child's ``apiVersion``, ``kind`` and metadata: its name, the offer's namespace and the
    labels stamped on every child (Metacontroller adds ``controller-uid`` itself)."""
    labels = {
        api.LABEL_COMPONENT: component,
        api.LABEL_MANAGED_BY: api.MANAGED_BY,
        api.LABEL_OFFER_NAME: names.offer_label,
        api.LABEL_OFFER_NAMESPACE: namespace,
    }
    metadata = {"name": name, "namespace": namespace, "labels": labels}
    return {"apiVersion": _API_VERSION_OF_KIND[kind], "kind": kind, "metadata": metadata}

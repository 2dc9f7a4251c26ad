"""Hypothesis strategies and oracles shared by the robustness tests (not a test module).

Design notes:

* ``json_values`` produces what ``orjson.loads`` can produce: None, booleans, integers in the
  64-bit range, finite floats (huge ones included: orjson turns a big integer literal into a
  float), unicode strings without lone surrogates, and lists/objects of those, plus a few
  hand-picked nasty values (empty strings, NUL, emoji, 2**63, 1e300, -0.0, deep nesting).
* ``mutated`` applies a few random edits to a valid document, at any depth: replace a value
  with arbitrary JSON, delete a key, wrap a value in a list, or swap its type. Starting from a
  realistic request (fixture 02 and the hook's own children dressed up as Metacontroller sends
  them) makes most mutations land where the hook actually looks.
* ``is_well_formed`` is the test's own reading of the request contract: the shell answers 400
  only when the request is not a CompositeController request at all (not an object, no parent
  object, no metadata object, a name that is not a DNS-1123 subdomain, a namespace that is missing
  or not a DNS-1123 label, a children map that is not a map of maps of objects, or a ``related``
  map whose ServiceOffers are not objects with a string name and namespace). Everything else is
  well-formed whatever the spec, the status or the children's contents hold, and must be
  answered.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from hooks.core import api

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/fixtures/sync"
MANAGED_KINDS = frozenset(kind for _, kind, _ in api.CHILD_TYPES)
RESPONSE_KEYS = frozenset({"status", "children", "resyncAfterSeconds", "finalized"})
# Kubernetes' own name rules (API conventions), written here independently of the hook.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MAX_DEPTH = 64  # orjson.dumps refuses more than 254 levels; see test_fuzz_sync.py

_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)  # no lone surrogates
NASTY: tuple[Any, ...] = (
    "", " ", "\x00", "0", "-1", "1e309", "null", "true", "💥" * 20, "Ω≈ç√∫", "a" * 300,
    "0x" + "f" * 40, "llm-sellers/qwen36-fast", "../../etc/passwd", "%s%n", "\u202e",
    0, -1, 1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), 1e300, -1e300, 5e-324, -0.0, 0.5,
    True, False, None, [], {}, [[[]]], {"": {}},
)  # fmt: skip

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
    st.sampled_from(NASTY).map(copy.deepcopy),  # fresh objects: mutations edit in place
)


def _nest(value: Any, depth: int, as_list: bool) -> Any:
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


json_values: st.SearchStrategy[Any] = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
) | st.builds(_nest, leaves, st.integers(1, MAX_DEPTH), st.booleans())

json_objects = st.dictionaries(_TEXT, json_values, max_size=6)


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.extend(_paths(value, (*prefix, index)))
    return found


def _parent_of(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        document = document[step]
    return document


def swap_type(value: Any) -> Any:
    """The same content in a different JSON type (number as string, object as list, ...)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return int(value) if value.isdigit() and len(value) < 18 else [value]
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return {str(index): item for index, item in enumerate(value)}
    return 0


@st.composite
def mutated(draw: st.DrawFn, document: Any, under: tuple[Any, ...] = (), max_edits: int = 4) -> Any:
    """``document`` (deep-copied) with 1..max_edits random edits below the path ``under``."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, max_edits))):
        candidates = [path for path in _paths(document) if path[: len(under)] == under]
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        action = draw(st.sampled_from(["replace", "delete", "wrap", "swap"]))
        if not path:  # the root itself
            document = draw(json_values) if action == "replace" else swap_type(document)
            continue
        container, key = _parent_of(document, path), path[-1]
        if action == "delete" and isinstance(container, dict):
            del container[key]
        elif action == "wrap":
            container[key] = [container[key]]
        elif action == "swap":
            container[key] = swap_type(container[key])
        else:
            container[key] = draw(json_values)
    return document


def is_well_formed(request: Any) -> bool:
    """The request contract (see the module notes); independent of the hook's code."""
    if not isinstance(request, Mapping):
        return False
    parent = request.get("parent")
    meta = parent.get("metadata") if isinstance(parent, Mapping) else None
    if not isinstance(meta, Mapping):
        return False
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        return False
    if not (isinstance(namespace, str) and _DNS_LABEL.fullmatch(namespace)):
        return False
    children = request.get("children")
    if children is not None and not (
        isinstance(children, Mapping)
        and all(
            isinstance(group, Mapping) and all(isinstance(obj, Mapping) for obj in group.values())
            for group in children.values()
        )
    ):
        return False
    return _related_well_formed(request.get("related"))


def _related_well_formed(related: Any) -> bool:
    # Only the ServiceOffers group is read (path ownership): a map of objects whose metadata
    # has a non-empty string name and namespace, as the API server lists them.
    if related is None:
        return True
    if not isinstance(related, Mapping):
        return False
    offers = related.get("ServiceOffer.obol.org/v1alpha1")
    if offers is None:
        return True
    if not isinstance(offers, Mapping):
        return False
    for obj in offers.values():
        meta = obj.get("metadata") if isinstance(obj, Mapping) else None
        if not isinstance(meta, Mapping):
            return False
        if not all(isinstance(meta.get(k), str) and meta.get(k) for k in ("name", "namespace")):
            return False
    return True


def observed_managed_children(request: Any) -> int:
    """How many observed children of our kinds (kind we manage, string name) the request has."""
    children = request.get("children") if isinstance(request, Mapping) else None
    if not isinstance(children, Mapping):
        return 0
    count = 0
    for group in children.values():
        if not isinstance(group, Mapping):
            continue
        for obj in group.values():
            meta = obj.get("metadata") if isinstance(obj, Mapping) else None
            name = meta.get("name") if isinstance(meta, Mapping) else None
            kind = obj.get("kind")
            if isinstance(kind, str) and kind in MANAGED_KINDS and isinstance(name, str):
                count += 1
    return count


def assert_children_are_the_offers_own(request: Any, response: Any) -> None:
    """Every child answered is in the offer's namespace and named after the offer; and an
    answer keeps nothing while children exist only for an offer whose spec is not rendered
    (nothing trusted to re-render from: the shell then answers 500 and nothing is applied)."""
    meta = request["parent"]["metadata"]
    for child in response["children"]:
        assert child["metadata"]["namespace"] == meta["namespace"], child["metadata"]
        assert child["metadata"]["name"].startswith("so-"), child["metadata"]
    if request.get("finalizing") is True or not observed_managed_children(request):
        return
    if not response["children"]:
        conditions = response["status"].get("conditions") or []
        ready = [c for c in conditions if c.get("type") == "Ready"]
        assert ready and ready[-1]["reason"] in ("InvalidSpec", "NotRendered"), ready


def assert_response_shape(response: Any) -> None:
    """A v2 hook response the shell can serialise: the contract keys, a list of child objects."""
    assert isinstance(response, dict), type(response)
    assert set(response) <= RESPONSE_KEYS, set(response)
    assert isinstance(response.get("status"), dict)
    children = response.get("children")
    assert isinstance(children, list)
    for child in children:
        assert isinstance(child, dict) and child.get("kind") in MANAGED_KINDS, child
        assert isinstance(child.get("metadata"), dict) and isinstance(
            child["metadata"].get("name"), str
        ), child

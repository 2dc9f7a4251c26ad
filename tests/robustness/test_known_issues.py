"""Known product issues found by the robustness fuzzers, pinned as strict xfails.

Design notes:

* Each case is the smallest realistic request showing one issue: fixture 02 or 08 with one
  edit. ``handle_sync_body`` is the exact code of ``POST /sync``, so "500" here is what
  Metacontroller would get (it keeps the children and retries, so nothing is deleted, but the
  offer's status never updates while the input stays like this).
* ``strict=True``: when a fix lands the test passes, the xfail turns into a failure, and the
  marker (and the matching shape in ``strategies.known_product_bug``) must be removed.
* In a real cluster these inputs are unlikely (the API server validates HTTPRoute status and
  child kinds against their schemas); the contract says a well-formed request is always
  answered, and these show where the code relies on the cluster instead of checking.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from hooks.app import handle_sync_body
from hooks.settings import Settings
from tests.robustness.strategies import FIXTURES

ROUTE_KEY = ("HTTPRoute.gateway.networking.k8s.io/v1", "llm-sellers/so-qwen36-fast")


def _request(name: str) -> dict[str, Any]:
    loaded = orjson.loads((FIXTURES / f"{name}.json").read_bytes())
    assert isinstance(loaded, dict)
    return copy.deepcopy(loaded)


def _route_parent(request: dict[str, Any]) -> dict[str, Any]:
    group, name = ROUTE_KEY
    parent = request["children"][group][name]["status"]["parents"][0]
    assert isinstance(parent, dict)
    return parent


def null_route_condition(request: dict[str, Any]) -> None:
    _route_parent(request)["conditions"].append(None)


def list_condition_type(request: dict[str, Any]) -> None:
    _route_parent(request)["conditions"][0]["type"] = ["Accepted"]


def string_conditions(request: dict[str, Any]) -> None:
    _route_parent(request)["conditions"] = "Accepted"


def string_parent_ref(request: dict[str, Any]) -> None:
    group, name = ROUTE_KEY
    request["children"][group][name]["status"]["parents"].insert(0, {"parentRef": "gateway"})


def list_child_kind(request: dict[str, Any]) -> None:
    request["children"]["ConfigMap.v1"]["x"] = {"kind": ["ConfigMap"], "metadata": {"name": "x"}}


ROUTE_STATUS_BUG = (
    "product bug: hooks/status.py route_condition assumes the observed HTTPRoute's "
    "status.parents[].parentRef is an object and its conditions a list of objects with a "
    "string type (AttributeError/TypeError -> 500)"
)
KIND_BUG = (
    "product bug: hooks/sync.py index_children tests `kind in _MANAGED_KINDS` before checking "
    "that kind is a string (TypeError: unhashable type -> 500)"
)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(null_route_condition, id="route-condition-null"),
        pytest.param(list_condition_type, id="route-condition-type-list"),
        pytest.param(string_conditions, id="route-conditions-string"),
        pytest.param(string_parent_ref, id="route-parentref-string"),
    ],
)
@pytest.mark.xfail(strict=True, reason=ROUTE_STATUS_BUG)
def test_junk_in_the_observed_route_status_is_answered(
    edit: Callable[[dict[str, Any]], None],
) -> None:
    request = _request("02-full-envelope-existing-children")
    edit(request)
    assert handle_sync_body(orjson.dumps(request), Settings()).status == 200


@pytest.mark.xfail(strict=True, reason=KIND_BUG)
def test_a_child_with_a_non_string_kind_is_answered() -> None:
    request = _request("02-full-envelope-existing-children")
    list_child_kind(request)
    assert handle_sync_body(orjson.dumps(request), Settings()).status in (200, 400)


@pytest.mark.xfail(
    strict=True,
    reason="product bug: hooks/app.py _checked_children counts every object in the children "
    "map, hooks/sync.py index_children only objects of our kinds with a string name; for an "
    "invalid spec with only such junk objects the core keeps nothing and the guard turns the "
    "answer into a 500 (suggestion: one definition, e.g. index_children raising SpecError "
    "for an object without a string kind and metadata.name, which also fixes the kind bug)",
)
def test_an_invalid_spec_with_only_junk_children_objects_is_not_a_500() -> None:
    request = _request("07-invalid-spec-new-offer")
    request["children"]["ConfigMap.v1"]["junk"] = {}
    assert handle_sync_body(orjson.dumps(request), Settings()).status in (200, 400)


def _deeply_nested_status_body(depth: int) -> bytes:
    request = _request("08-invalid-spec-keeps-children")
    request["parent"]["status"]["note"] = "@nest@"
    return orjson.dumps(request).replace(b'"@nest@"', b"[" * depth + b"]" * depth)


def test_nesting_orjson_can_echo_is_answered() -> None:
    assert handle_sync_body(_deeply_nested_status_body(200), Settings()).status == 200


@pytest.mark.xfail(
    strict=True,
    reason="product issue: with an invalid spec, hooks/sync.py _invalid_spec_response copies "
    "parent.status through unchanged, and orjson.dumps refuses more than 254 levels of "
    "nesting, so a 255..1023-level value there gives a 500 (orjson.loads accepts up to 1024)",
)
def test_deeply_nested_previous_status_with_an_invalid_spec_is_answered() -> None:
    assert handle_sync_body(_deeply_nested_status_body(300), Settings()).status == 200

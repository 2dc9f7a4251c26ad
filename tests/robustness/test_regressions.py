"""Regression tests for the crashes the robustness fuzzers found (fixed in 8e578e4).

Design notes:

* Each case is the smallest realistic request that used to crash the core or trip the shell's
  guard, so the answer was a 500: fixture 02, 07 or 08 with one edit. ``handle_sync_body`` is
  the exact code of ``POST /sync``. They now must be answered like any well-formed request.
* In a real cluster these inputs are unlikely (the API server validates HTTPRoute status and
  child kinds against their schemas and prunes unknown status fields); the contract is that a
  well-formed request is always answered, without relying on the cluster for it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from hooks.core.settings import Settings
from hooks.server.app import handle_sync_body
from tests.robustness.strategies import FIXTURES

ROUTE_KEY = ("HTTPRoute.gateway.networking.k8s.io/v1", "llm-sellers/so-qwen36-fast")


def _request(name: str) -> dict[str, Any]:
    loaded = orjson.loads((FIXTURES / f"{name}.json").read_bytes())
    assert isinstance(loaded, dict)
    return copy.deepcopy(loaded)


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    answered = handle_sync_body(orjson.dumps(request), Settings())
    assert answered.status == 200, (answered.status, answered.detail, answered.error)
    response = orjson.loads(answered.body)
    assert isinstance(response, dict)
    return response


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


def route_filters(value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(request: dict[str, Any]) -> None:
        group, name = ROUTE_KEY
        request["children"][group][name]["spec"]["rules"][0]["filters"] = value

    return edit


def list_child_kind(request: dict[str, Any]) -> None:
    request["children"]["ConfigMap.v1"]["x"] = {"kind": ["ConfigMap"], "metadata": {"name": "x"}}


@pytest.mark.parametrize(
    "edit",
    [
        # was: AttributeError / TypeError in status.route_condition
        pytest.param(null_route_condition, id="route-condition-null"),
        pytest.param(list_condition_type, id="route-condition-type-list"),
        pytest.param(string_conditions, id="route-conditions-string"),
        pytest.param(string_parent_ref, id="route-parentref-string"),
        # was: TypeError in status._route_extension_refs (found in review, session 2)
        pytest.param(route_filters(None), id="route-filters-null"),
        pytest.param(route_filters(3), id="route-filters-number"),
        # was: TypeError (unhashable kind) in sync.index_children
        pytest.param(list_child_kind, id="child-kind-list"),
    ],
)
def test_junk_in_observed_children_is_answered_with_children(
    edit: Callable[[dict[str, Any]], None],
) -> None:
    request = _request("02-full-envelope-existing-children")
    edit(request)
    assert _answer(request)["children"]


def test_an_invalid_spec_with_only_junk_children_objects_is_answered() -> None:
    # was: the shell's guard counted every object, the core only ours: "no children" -> 500
    request = _request("07-invalid-spec-new-offer")
    request["children"]["ConfigMap.v1"]["junk"] = {}
    answered = handle_sync_body(orjson.dumps(request), Settings())
    assert answered.outcome == "invalid_spec"
    assert orjson.loads(answered.body)["children"] == []


def _nested_status_body(path: tuple[str, ...], depth: int) -> bytes:
    request = _request("08-invalid-spec-keeps-children")
    target = request["parent"]["status"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = "@nest@"
    return orjson.dumps(request).replace(b'"@nest@"', b"[" * depth + b"]" * depth)


@pytest.mark.parametrize("path", [("note",), ("capacity", "note")], ids=["unknown", "carried"])
@pytest.mark.parametrize("depth", [200, 300, 1000])
def test_deeply_nested_previous_status_with_an_invalid_spec_is_answered(
    path: tuple[str, ...], depth: int
) -> None:
    # was: the invalid-spec answer carried parent.status through unchanged and orjson.dumps
    # refuses more than 254 levels (orjson.loads accepts up to 1024) -> 500
    answered = handle_sync_body(_nested_status_body(path, depth), Settings())
    assert answered.status == 200, (answered.detail, answered.error)
    assert orjson.loads(answered.body)["children"]

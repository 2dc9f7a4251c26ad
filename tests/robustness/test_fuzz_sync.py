"""Property-based fuzzing of the pure core: ``sync(request, settings)`` on hostile input.

Design notes:

* The properties (the brief of issue #6):
  1. a malformed request raises nothing but ``SpecError`` from ``parse_request`` (the shell's 400);
  2. a well-formed request (``strategies.is_well_formed``) never raises, whatever its spec,
     status or children hold, and the answer has the v2 shape and serialises with orjson;
  3. every child answered is in the offer's namespace and named after the offer; an answer has
     ``children: []`` while the request observed children of ours (finalizing aside) only for
     an invalid or not-rendered offer without trusted state to re-render from (the shell's
     guard then answers 500, so Metacontroller deletes nothing); and ``sync`` never changes its
     input (it is pure);
  4. a valid spec always gets children, whatever junk the status and the observed children hold.
* Inputs: arbitrary JSON as the spec; random edits of valid specs (wrong types, missing fields,
  huge numbers, unicode, nesting); random edits anywhere in realistic requests (the fixtures,
  whose children carry server-set fields); arbitrary top-level objects; junk children maps.
  Schema validity of the children of valid offers is tests/sync/test_properties.py's job.
* Each property runs with a small example budget by default and a large one under ``-m slow``
  (same test, parametrised by budget, so the two cannot drift apart).
* The crashes these fuzzers found (junk route status, non-string child kinds, deeply nested
  carried status) are fixed; test_regressions.py keeps the smallest example of each.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks.core.errors import SpecError
from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from tests.robustness.strategies import (
    FIXTURES,
    assert_children_are_the_offers_own,
    assert_response_shape,
    is_well_formed,
    json_objects,
    json_values,
    mutated,
)
from tests.support.observed import observed_children, parent_object, sync_request
from tests.sync.test_properties import valid_offers

SETTINGS = Settings()
FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
SLOW = settings(FAST, max_examples=1000)
BUDGETS = [pytest.param(FAST, id="fast"), pytest.param(SLOW, id="long", marks=pytest.mark.slow)]


def _fixture(path: Path) -> dict[str, Any]:
    loaded = orjson.loads(path.read_bytes())
    assert isinstance(loaded, dict)
    return loaded


REQUESTS = {path.stem: _fixture(path) for path in sorted(FIXTURES.glob("*.json"))}
ANSWERING = [request for request in REQUESTS.values() if request.get("finalizing") is not True]
assert len(ANSWERING) >= 10, "the sync fixtures are missing"

realistic_requests = st.sampled_from(ANSWERING)


def answer(request: Any) -> dict[str, Any] | None:
    """``sync``'s answer, checked against properties 1-3; None when it raised SpecError."""
    before = copy.deepcopy(request)
    try:
        response = sync(parse_request(request), SETTINGS).response
    except SpecError:
        assert not is_well_formed(request), "a well-formed request was refused"
        return None
    assert request == before, "sync changed its input"
    assert_response_shape(response)
    orjson.dumps(response, option=orjson.OPT_SORT_KEYS)  # the shell must be able to send it
    assert_children_are_the_offers_own(request, response)
    return response


@st.composite
def requests_with_arbitrary_spec(draw: st.DrawFn) -> dict[str, Any]:
    request: dict[str, Any] = copy.deepcopy(draw(realistic_requests))
    request["parent"]["spec"] = draw(json_values | json_objects)
    return request


@st.composite
def requests_with_mutated_spec(draw: st.DrawFn) -> dict[str, Any]:
    request = draw(realistic_requests)
    return draw(mutated(request, under=("parent", "spec"), max_edits=5))


@pytest.mark.parametrize("budget", BUDGETS)
def test_any_json_as_the_spec_is_answered(budget: settings) -> None:
    @budget
    @given(requests_with_arbitrary_spec())
    def check(request: dict[str, Any]) -> None:
        assert answer(request) is not None

    check()


@pytest.mark.parametrize("budget", BUDGETS)
def test_mutated_specs_are_answered(budget: settings) -> None:
    @budget
    @given(requests_with_mutated_spec())
    def check(request: dict[str, Any]) -> None:
        assert answer(request) is not None

    check()


# ---------------------------------------------------------------- (b) the whole request

TOP_LEVEL_KEYS = ("controller", "parent", "children", "related", "finalizing", "attachments")


@st.composite
def arbitrary_top_level(draw: st.DrawFn) -> Any:
    """Arbitrary JSON, or an object with some of the request's keys and arbitrary values."""
    if draw(st.booleans()):
        return draw(json_values)
    base = draw(realistic_requests)
    request: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(TOP_LEVEL_KEYS), unique=True)):
        request[key] = copy.deepcopy(base.get(key)) if draw(st.booleans()) else draw(json_values)
    request.update(draw(json_objects))  # extra keys a later Metacontroller might send
    return request


@st.composite
def junk_children(draw: st.DrawFn) -> dict[str, Any]:
    """A realistic request whose children map holds junk: real children edited, foreign objects,
    wrong kinds, duplicate names under other type keys."""
    request: dict[str, Any] = copy.deepcopy(draw(realistic_requests))
    real = [obj for group in (request.get("children") or {}).values() for obj in group.values()]
    groups: dict[str, dict[str, Any]] = {}
    for _ in range(draw(st.integers(0, 5))):
        members: dict[str, Any] = {}
        for _ in range(draw(st.integers(0, 4))):
            edit_a_real_child: bool = draw(st.booleans())
            if real and edit_a_real_child:
                obj = draw(mutated(draw(st.sampled_from(real)), max_edits=3))
            else:
                obj = draw(json_objects)
            members[draw(st.text(max_size=20))] = obj
        groups[draw(st.text(max_size=40))] = members
    request["children"] = groups
    return request


@pytest.mark.parametrize("budget", BUDGETS)
def test_mutated_requests_give_an_answer_or_a_spec_error(budget: settings) -> None:
    @budget
    @given(realistic_requests.flatmap(lambda request: mutated(request, max_edits=6)))
    def check(request: Any) -> None:
        answer(request)

    check()


@pytest.mark.parametrize("budget", BUDGETS)
def test_arbitrary_bodies_give_an_answer_or_a_spec_error(budget: settings) -> None:
    @budget
    @given(arbitrary_top_level())
    def check(request: Any) -> None:
        answer(request)

    check()


@pytest.mark.parametrize("budget", BUDGETS)
def test_children_maps_with_junk_give_an_answer_or_a_spec_error(budget: settings) -> None:
    @budget
    @given(junk_children())
    def check(request: dict[str, Any]) -> None:
        answer(request)

    check()


# ---------------------------------------------------------------- valid specs


@st.composite
def valid_offer_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid offer as a new offer, or existing with its children and status, with junk
    optionally edited into the observed children and into the previous status."""
    offer = draw(valid_offers())
    first = sync(parse_request(sync_request(parent_object(offer))), SETTINGS).response
    shape = draw(st.sampled_from(["new", "existing", "junk-children", "junk-status"]))
    if shape == "new":
        return sync_request(parent_object(offer))
    children = observed_children(first["children"])
    status: Any = first["status"]
    if shape == "junk-children":
        children = draw(mutated(children, max_edits=6))
    if shape == "junk-status":
        status = draw(mutated(status, max_edits=6))
    return sync_request(parent_object(offer, generation=2, status=status), children)


@pytest.mark.parametrize("budget", BUDGETS)
def test_valid_specs_always_get_children(budget: settings) -> None:
    @budget
    @given(valid_offer_requests())
    def check(request: dict[str, Any]) -> None:
        response = answer(request)
        if is_well_formed(request):
            assert response is not None and response["children"], "a valid spec got no children"
            ready = next(c for c in response["status"]["conditions"] if c["type"] == "Ready")
            assert ready["reason"] != "InvalidSpec", ready["message"]

    check()

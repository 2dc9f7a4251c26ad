"""Parsing Metacontroller's request envelope once (hooks.core.request).

Test design notes:
- What the typed request carries: names, generation, previous status, our children only.
- Every malformed envelope raises SpecError naming the field path; names the API server would
  never accept (and that children's names and the busy path are built from) are refused.
"""

from __future__ import annotations

from typing import Any

import pytest

from hooks.core import api
from hooks.core.errors import SpecError
from hooks.core.request import parse_request


def envelope(**metadata: Any) -> dict[str, Any]:
    """A request for a parent with this metadata (namespace ``llm`` unless given)."""
    return {"parent": {"metadata": {"namespace": "llm", **metadata}, "spec": {"type": "http"}}}


def test_a_request_is_parsed_into_names_status_and_our_children() -> None:
    route = {"kind": api.HTTPROUTE_KIND, "metadata": {"name": "so-a"}}
    foreign = {"kind": "Deployment", "metadata": {"name": "x"}}
    body = envelope(name="a", namespace="llm", generation=3)
    body["parent"]["status"] = {"endpoint": "/services/a"}
    body["children"] = {
        "HTTPRoute.gateway.networking.k8s.io/v1": {"so-a": route},
        "Deployment.apps/v1": {"x": foreign},
    }
    request = parse_request(body)
    assert (request.namespace, request.name, request.offer) == ("llm", "a", "llm/a")
    assert request.generation == 3 and request.spec == {"type": "http"}
    assert request.status == {"endpoint": "/services/a"}
    assert request.children == {(api.HTTPROUTE_KIND, "so-a"): route}
    assert request.finalizing is False


def test_defaults_generation_and_status() -> None:
    request = parse_request(envelope(name="a", generation="7"))
    assert request.generation is None
    assert request.status == {} and request.children == {}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        pytest.param([], "<request>", id="not-an-object"),
        pytest.param({}, "parent", id="no-parent"),
        pytest.param({"parent": {}}, "parent.metadata", id="no-metadata"),
        pytest.param(envelope(), "parent.metadata.name", id="no-name"),
        pytest.param(envelope(name=5), "parent.metadata.name", id="name-not-a-string"),
        pytest.param(envelope(name="A/b"), "parent.metadata.name", id="name-not-dns"),
        pytest.param(envelope(name="a" * 254), "parent.metadata.name", id="name-too-long"),
        pytest.param(envelope(name="a", namespace="a.b"), "parent.metadata.namespace", id="ns"),
        pytest.param(
            {"parent": {"metadata": {"name": "a"}, "spec": {}}},
            "parent.metadata.namespace",
            id="no-namespace",
        ),
        pytest.param(envelope(name="a", namespace=""), "parent.metadata.namespace", id="ns-empty"),
        pytest.param(envelope(name="a", namespace=None), "parent.metadata.namespace", id="ns-null"),
        pytest.param({**envelope(name="a"), "children": []}, "children", id="children-list"),
        pytest.param(
            {**envelope(name="a"), "children": {"k": []}}, "children['k']", id="child-type"
        ),
        pytest.param(
            {**envelope(name="a"), "children": {"k": {"n": 1}}}, "children['k']", id="child"
        ),
    ],
)
def test_a_malformed_envelope_names_the_field(body: Any, path: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_request(body)
    assert caught.value.problems[0].path == path

"""Behaviour of the pure sync core that goldens alone would not make obvious.

Design notes:
- The admission chain's filter order and the Middleware specs are asserted structurally here
  (which filter comes where, what keys the in-flight limits use), so a golden regeneration
  cannot silently reorder the chain.
- Gateway replica arithmetic: amount = floor(maxInFlight / replicas), never 0, with a warning.
- Request-shape errors raise SpecError (the server answers 400); spec errors never do.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from hooks.core import api
from hooks.core.errors import HookFailure, SpecError
from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import Outcome, sync
from hooks.server.app import handle_sync_body
from tests.support.observed import observed_children, parent_object, sync_request

ROOT = Path(__file__).resolve().parents[2]


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "examples" / name).read_text())


def children_by_name(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Middlewares and the route by name (the busy Service shares its Middleware's name)."""
    return {c["metadata"]["name"]: c for c in response["children"] if c["kind"] != "Service"}


def filters(response: dict[str, Any]) -> list[str]:
    route = next(c for c in response["children"] if c["kind"] == "HTTPRoute")
    (rule,) = route["spec"]["rules"]
    return [
        f["extensionRef"]["name"] if f["type"] == "ExtensionRef" else f["type"]
        for f in rule["filters"]
    ]


def run(offer: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    return sync(parse_request(sync_request(parent_object(offer))), settings or Settings()).response


def test_full_chain_order_puts_capacity_before_payment() -> None:
    offer = example("inference-qwen36-fast.yaml")
    offer["spec"]["capabilities"]["streaming"] = False
    assert filters(run(offer)) == [
        "RequestHeaderModifier",
        # The whole body is read before a slot is taken, so a slow body holds no slot.
        "so-qwen36-fast-body-limit",
        "so-qwen36-fast-busy",
        "so-qwen36-fast-inflight",
        "so-qwen36-fast-admitted",
        "so-qwen36-fast-x402",
        "so-qwen36-fast-buyer-inflight",
        "URLRewrite",
    ]


def test_offer_without_capacity_is_the_plain_paid_route() -> None:
    response = run(example("http-weather-api.yaml"))
    assert filters(response) == ["so-weather-api-x402", "URLRewrite"]
    kinds = sorted(c["kind"] for c in response["children"])
    assert kinds == ["ConfigMap", "HTTPRoute", "Middleware"]


def test_streaming_offer_never_gets_buffering() -> None:
    response = run(example("inference-qwen36-fast.yaml"))
    assert not any("buffering" in c.get("spec", {}) for c in response["children"])
    assert response["status"]["requestLimits"]["advertised"] == [
        "maxInputTokens",
        "maxOutputTokens",
        "maxBodyBytes",
    ]


def test_admission_key_is_set_not_added_and_keys_the_global_limit() -> None:
    response = run(example("inference-qwen36-fast.yaml"))
    route = children_by_name(response)["so-qwen36-fast"]
    header = route["spec"]["rules"][0]["filters"][0]["requestHeaderModifier"]
    assert header == {
        "set": [{"name": "X-Obol-Offer-Key", "value": "llm-sellers/qwen36-fast"}],
        "remove": ["X-Obol-Admitted"],  # a client cannot claim to have passed the global limit
    }
    limit = children_by_name(response)["so-qwen36-fast-inflight"]["spec"]["inFlightReq"]
    assert limit == {"amount": 8, "sourceCriterion": {"requestHeaderName": "X-Obol-Offer-Key"}}


def test_a_buyer_limit_below_the_global_one_marks_admitted_requests() -> None:
    # The busy responder tells a per-buyer 429 from a saturated offer by this marker.
    names = children_by_name(run(example("inference-qwen36-fast.yaml")))
    marker = names["so-qwen36-fast-admitted"]["spec"]
    assert marker == {"headers": {"customRequestHeaders": {"X-Obol-Admitted": "true"}}}
    offer = example("inference-qwen36-fast.yaml")
    del offer["spec"]["capacity"]["perBuyerMaxInFlight"]
    assert "so-qwen36-fast-admitted" not in children_by_name(run(offer))


def test_buyer_limit_keys_on_the_verified_payer_header() -> None:
    response = run(example("inference-qwen36-fast.yaml"))
    names = children_by_name(response)
    buyer = names["so-qwen36-fast-buyer-inflight"]["spec"]["inFlightReq"]
    assert buyer["sourceCriterion"] == {"requestHeaderName": "X-Payment-Payer"}
    auth = names["so-qwen36-fast-x402"]["spec"]["forwardAuth"]
    assert "X-Payment-Payer" in auth["authResponseHeaders"]
    assert auth["trustForwardHeader"] is False


def test_busy_path_carries_retry_after_and_no_payment_terms() -> None:
    response = run(example("inference-obol-ethereum.yaml"))
    errors = children_by_name(response)["so-llama-obol-busy"]["spec"]["errors"]
    assert errors["status"] == ["429"]
    assert errors["query"] == "/busy/llm-sellers/llama-obol?retryAfter=5&status={status}"
    service = next(c for c in response["children"] if c["kind"] == "Service")
    assert service["spec"]["type"] == "ExternalName"
    assert errors["service"] == {"name": service["metadata"]["name"], "port": 8081}


@pytest.mark.parametrize(
    ("max_in_flight", "replicas", "amount", "warned"),
    [
        pytest.param(8, 1, 8, False, id="one replica holds the ceiling"),
        pytest.param(8, 2, 4, False, id="even split"),
        pytest.param(9, 2, 4, True, id="uneven split warns"),
        pytest.param(1, 3, 1, True, id="never amount 0"),
    ],
)
def test_global_amount_is_split_across_gateway_replicas(
    max_in_flight: int, replicas: int, amount: int, warned: bool
) -> None:
    offer = example("inference-obol-ethereum.yaml")
    offer["spec"]["capacity"]["maxInFlight"] = max_in_flight
    response = run(offer, Settings(gateway_replicas=replicas))
    limit = children_by_name(response)["so-llama-obol-inflight"]["spec"]["inFlightReq"]
    assert limit["amount"] == amount
    warnings = response["status"].get("warnings", [])
    assert any("gateway replicas" in w for w in warnings) is warned
    assert response["status"]["capacity"]["perReplicaMaxInFlight"] == amount


def test_children_stay_in_the_offer_namespace_without_owner_references() -> None:
    offer = example("inference-obol-ethereum.yaml")
    for child in run(offer)["children"]:
        assert child["metadata"]["namespace"] == "llm-sellers"
        assert "ownerReferences" not in child["metadata"]
        assert (child["kind"], child["apiVersion"]) in {
            (kind, version) for version, kind, _ in api.CHILD_TYPES
        }


def test_cross_namespace_upstream_names_its_namespace() -> None:
    route = children_by_name(run(example("inference-obol-ethereum.yaml")))["so-llama-obol"]
    backend = route["spec"]["rules"][0]["backendRefs"][0]
    assert backend["namespace"] == "llm-backends"


def test_status_says_capacity_is_declared_and_unknown_until_observed() -> None:
    capacity = run(example("inference-qwen36-fast.yaml"))["status"]["capacity"]
    assert capacity["scalingControlled"] is False
    assert capacity["state"] == "Unknown"
    assert "inFlight" not in capacity
    assert "nothing is autoscaled" in capacity["message"]


def test_public_base_url_prefixes_the_endpoint() -> None:
    settings = Settings(public_base_url="https://sell.example.com/")
    status = run(example("http-weather-api.yaml"), settings)["status"]
    assert status["endpoint"] == "https://sell.example.com/services/weather-api"


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        pytest.param([], "<request>: must be a JSON object", id="not an object"),
        pytest.param({}, "parent: must be the ServiceOffer object", id="no parent"),
        pytest.param(
            {"parent": {"spec": {}}}, "parent.metadata: must be an object", id="no metadata"
        ),
        pytest.param(
            {"parent": {"metadata": {"name": ""}}},
            "parent.metadata.name: must be a DNS-1123 subdomain (got '')",
            id="no name",
        ),
        pytest.param(
            {"parent": {"metadata": {"name": "x"}, "spec": {}}},
            "parent.metadata.namespace: required field is missing",
            id="no namespace",
        ),
        pytest.param(
            {"parent": {"metadata": {"name": "x", "namespace": "llm"}}, "children": []},
            "children: must be an object keyed by Kind.apiVersion",
            id="children list",
        ),
    ],
)
def test_malformed_requests_raise_spec_error(request_body: Any, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        sync(parse_request(request_body), Settings())
    assert str(caught.value) == message


def test_invalid_spec_is_a_status_not_an_error() -> None:
    offer = example("inference-qwen36-fast.yaml")
    offer["spec"]["upstream"]["port"] = 0
    response = run(offer)
    ready = {c["type"]: c for c in response["status"]["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"] == "spec.upstream.port: must be >= 1 (got 0)"
    assert response["children"] == []


@pytest.mark.parametrize(
    ("edit", "outcome", "reason"),
    [
        pytest.param({}, Outcome.RENDERED, "NotReady", id="rendered-children-not-yet-observed"),
        pytest.param({"upstream": {"service": "vllm", "port": 0}}, Outcome.INVALID, "InvalidSpec"),
        pytest.param({"type": "dataset"}, Outcome.NOT_RENDERED, "NotRendered", id="not-rendered"),
    ],
)
def test_the_outcome_says_what_the_answer_means(
    edit: dict[str, Any], outcome: Outcome, reason: str
) -> None:
    offer = example("inference-qwen36-fast.yaml")
    offer["spec"].update(edit)
    result = sync(parse_request(sync_request(parent_object(offer))), Settings())
    ready = {c["type"]: c for c in result.response["status"]["conditions"]}["Ready"]
    assert (result.outcome, ready["reason"]) == (outcome, reason)
    assert result.problem == (None if outcome is Outcome.RENDERED else ready["message"])


def test_invalid_spec_keeps_every_live_child_exactly() -> None:
    offer = example("inference-qwen36-fast.yaml")
    good = run(offer)
    live = observed_children(good["children"])
    broken = copy.deepcopy(offer)
    broken["spec"]["payment"]["payTo"] = "nope"
    parent = parent_object(broken, status=good["status"])
    response = sync(parse_request(sync_request(parent, live)), Settings()).response
    key = lambda c: (c["kind"], c["metadata"]["name"])  # noqa: E731
    assert sorted(response["children"], key=key) == sorted(good["children"], key=key)


def test_invalid_spec_keeps_the_status_of_the_live_gate() -> None:
    # The kept children still run the seller-proxy gate, so status must still say so.
    settings = Settings(payment_gate="seller-proxy")
    offer = example("inference-qwen36-fast.yaml")
    good = sync(parse_request(sync_request(parent_object(offer))), settings).response
    assert good["status"]["paymentGate"]["mode"] == "seller-proxy"
    offer["spec"]["payment"]["payTo"] = "nope"
    parent = parent_object(offer, status=good["status"])
    response = sync(
        parse_request(sync_request(parent, observed_children(good["children"]))), settings
    ).response
    assert response["status"]["paymentGate"] == good["status"]["paymentGate"]
    assert response["status"]["requestLimits"] == good["status"]["requestLimits"]


def test_refuses_to_delete_everything_by_accident(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without trusted state to re-render from, the core keeps nothing; while children exist the
    # server's guard must turn that would-be "delete everything" answer into a 500, so
    # Metacontroller leaves the live children alone.
    monkeypatch.setattr("hooks.core.sync.kept_offer", lambda request, settings: None)
    offer = example("inference-qwen36-fast.yaml")
    live = observed_children(run(offer)["children"])
    offer["spec"]["payment"]["payTo"] = "nope"
    body = orjson.dumps(sync_request(parent_object(offer), live))
    answer = handle_sync_body(body, Settings())
    assert answer.status == 500 and isinstance(answer.error, HookFailure)


def test_finalizing_returns_no_children_and_finalized() -> None:
    offer = example("http-weather-api.yaml")
    request = sync_request(parent_object(offer), finalizing=True)
    result = sync(parse_request(request), Settings())
    assert result.outcome is Outcome.FINALIZED
    assert result.response["children"] == [] and result.response["finalized"] is True


def test_response_has_only_the_v2_keys() -> None:
    response = run(example("inference-qwen36-fast.yaml"))
    assert set(response) == {"status", "children", "resyncAfterSeconds"}


def test_settings_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().gateway_replicas = 2  # type: ignore[misc]

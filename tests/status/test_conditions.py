"""Status conditions and capacity state from observed children and observations.

Design notes:
- Conditions are computed only from what Metacontroller observed: each case builds the children
  the hook would have asked for, then removes or alters one observed object.
- Capacity use is Unknown without an observation, Available/Saturated with one; small moves of
  inFlight that do not change the state keep the previous value (fewer status writes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.core.observation import Observation, Observed
from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from tests.support.crd_validation import validate_status
from tests.support.observed import observed_children, parent_object, sync_request

ROOT = Path(__file__).resolve().parents[2]
QWEN = yaml.safe_load((ROOT / "examples/inference-qwen36-fast.yaml").read_text())


def conditions(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in response["status"]["conditions"]}


def live_children(**kwargs: Any) -> dict[str, Any]:
    first = sync(parse_request(sync_request(parent_object(QWEN))), Settings()).response
    return observed_children(first["children"], **kwargs)


def without(children: dict[str, Any], kind: str, suffix: str) -> dict[str, Any]:
    for key, objects in children.items():
        if key.startswith(kind + "."):
            for name in [n for n in objects if n.endswith(suffix)]:
                del objects[name]
    return children


def test_everything_observed_and_accepted_is_ready() -> None:
    response = sync(
        parse_request(sync_request(parent_object(QWEN), live_children())), Settings()
    ).response
    found = conditions(response)
    assert [
        found[t]["status"]
        for t in ("PaymentGateReady", "CapacityEnforced", "RoutePublished", "Ready")
    ] == ["True"] * 4
    assert found["UpstreamHealthy"]["status"] == "Unknown"
    assert not validate_status(response["status"])


@pytest.mark.parametrize(
    ("kind", "suffix", "condition", "reason"),
    [
        pytest.param("Middleware", "-x402", "PaymentGateReady", "Pending", id="no forwardAuth"),
        pytest.param("ConfigMap", "-pricing", "PaymentGateReady", "Pending", id="no pricing"),
        pytest.param("Middleware", "-inflight", "CapacityEnforced", "Pending", id="no limit"),
        pytest.param("Service", "-busy", "CapacityEnforced", "Pending", id="no busy service"),
        pytest.param("HTTPRoute", "fast", "RoutePublished", "Pending", id="no route"),
    ],
)
def test_a_missing_child_blocks_ready(kind: str, suffix: str, condition: str, reason: str) -> None:
    children = without(live_children(), kind, suffix)
    found = conditions(
        sync(parse_request(sync_request(parent_object(QWEN), children)), Settings()).response
    )
    assert (found[condition]["status"], found[condition]["reason"]) == ("False", reason)
    assert found["Ready"]["status"] == "False"
    assert condition in found["Ready"]["message"]


def test_route_refused_by_gateway_reports_its_reason() -> None:
    children = live_children(route_accepted=False)
    found = conditions(
        sync(parse_request(sync_request(parent_object(QWEN), children)), Settings()).response
    )
    assert found["RoutePublished"]["status"] == "False"
    assert found["RoutePublished"]["reason"] == "NotAccepted"
    assert "listener web allows Same" in found["RoutePublished"]["message"]


def test_stale_gateway_status_is_unknown() -> None:
    children = live_children()
    route = next(iter(children["HTTPRoute.gateway.networking.k8s.io/v1"].values()))
    route["metadata"]["generation"] = 2
    found = conditions(
        sync(parse_request(sync_request(parent_object(QWEN), children)), Settings()).response
    )
    assert (found["RoutePublished"]["status"], found["RoutePublished"]["reason"]) == (
        "Unknown",
        "WaitingForGateway",
    )


def test_route_status_from_another_gateway_is_ignored() -> None:
    children = live_children()
    route = next(iter(children["HTTPRoute.gateway.networking.k8s.io/v1"].values()))
    route["status"]["parents"][0]["parentRef"]["name"] = "other-gateway"
    found = conditions(
        sync(parse_request(sync_request(parent_object(QWEN), children)), Settings()).response
    )
    assert found["RoutePublished"]["reason"] == "WaitingForGateway"


def observe(observation: Observation, previous: Any = None) -> dict[str, Any]:
    request = sync_request(parent_object(QWEN, status=previous), live_children())
    return sync(parse_request(request), Settings(), lambda _: Observed(observation)).response


@pytest.mark.parametrize(
    ("in_flight", "state"),
    [
        pytest.param(0, "Available", id="idle"),
        pytest.param(7, "Available", id="one free"),
        pytest.param(8, "Saturated", id="full"),
        pytest.param(9, "Saturated", id="over"),
    ],
)
def test_observed_in_flight_sets_the_state(in_flight: int, state: str) -> None:
    status = observe(
        Observation(True, "GET /health answered 200", 200, in_flight, "vllm /metrics")
    )["status"]
    assert (status["capacity"]["inFlight"], status["capacity"]["state"]) == (in_flight, state)
    assert status["capacity"]["source"] == "vllm /metrics"
    assert status["upstream"]["httpStatus"] == 200
    assert not validate_status(status)


def test_unhealthy_upstream_blocks_ready_before_buyers_pay() -> None:
    found = conditions(observe(Observation(False, "GET /health answered 503", 503)))
    assert (found["UpstreamHealthy"]["status"], found["UpstreamHealthy"]["reason"]) == (
        "False",
        "Unhealthy",
    )
    assert found["UpstreamHealthy"]["message"] == "GET /health answered 503"
    assert found["Ready"]["status"] == "False"


def test_health_without_metrics_leaves_capacity_unknown() -> None:
    status = observe(Observation(True, "GET /health answered 200", 200))["status"]
    assert status["capacity"]["state"] == "Unknown" and "inFlight" not in status["capacity"]


@pytest.mark.parametrize(
    ("before", "now", "reported"),
    [
        pytest.param(3, 3, 3, id="unchanged"),
        pytest.param(3, 4, 4, id="a move of one slot is reported (ceiling 8 -> step 1)"),
        pytest.param(7, 8, 8, id="becoming saturated is always reported"),
    ],
)
def test_in_flight_hysteresis(before: int, now: int, reported: int) -> None:
    previous = observe(Observation(True, "ok", 200, before))["status"]
    status = observe(Observation(True, "ok", 200, now), previous)["status"]
    assert status["capacity"]["inFlight"] == reported


def test_small_moves_on_a_large_envelope_keep_the_previous_value() -> None:
    from hooks.core.status import _steady_in_flight

    assert _steady_in_flight(52, 100, {"inFlight": 45}) == 45
    assert _steady_in_flight(56, 100, {"inFlight": 45}) == 56
    assert _steady_in_flight(100, 100, {"inFlight": 95}) == 100

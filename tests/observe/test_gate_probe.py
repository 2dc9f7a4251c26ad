"""The no-free-ride probe: an unpaid GET of each offer's public path through the gateway.

Test design notes:
- Observer level, with the in-memory ``ScriptedFetch``: the probe is off unless a gateway URL
  is set; with one, a sync's observations carry the gateway's answer next to the upstream's,
  the path following ``spec.path``; a failed
  probe carries no status; the probe obeys the same first-probe budget as upstream probes.
- Core level (pure): every answer class maps to the documented condition and Ready follows:
  402/429 change nothing, 2xx is PaymentGateReady=False/FreeRide, 404 RoutePublished=False,
  5xx GateUnavailable, any other status UnexpectedGateAnswer; no status changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.core.observation import GateObservation, Observed
from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from hooks.observe.fetch import FetchResult
from hooks.observe.observer import Observer
from tests.observe.engines import ScriptedFetch, offer, plan_of
from tests.support.observed import observed_children, parent_object
from tests.support.observed import sync_request as full_request

GATEWAY = "http://traefik.traefik.svc.cluster.local"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inference-qwen36-fast.yaml"
Build = Callable[..., Observer]


def answered(status: int) -> Callable[[], FetchResult]:
    return lambda: FetchResult(status)


def test_no_gateway_url_means_no_gate_probe(observer: Build) -> None:
    fetch = ScriptedFetch()
    assert observer(fetch=fetch).observe(plan_of(offer())).gate is None
    assert not any(url.startswith(GATEWAY) for url in fetch.calls)


def test_the_gateway_answer_is_observed_under_the_offers_path(observer: Build) -> None:
    parent = offer(name="qwen", namespace="llm")
    fetch = ScriptedFetch({f"{GATEWAY}/services/qwen": answered(402)})
    seen = observer(fetch=fetch, gateway_url=GATEWAY, sync_budget_ms=2000).observe(plan_of(parent))
    assert seen.gate == GateObservation(
        402, "unpaid GET /services/qwen through the gateway answered 402"
    )


def test_the_probe_follows_spec_path(observer: Build) -> None:
    parent = offer(name="qwen", namespace="llm")
    parent["spec"]["path"] = "/api-llm/qwen"
    fetch = ScriptedFetch({f"{GATEWAY}/api-llm/qwen": answered(200)})
    seen = observer(fetch=fetch, gateway_url=GATEWAY, sync_budget_ms=2000).observe(plan_of(parent))
    assert seen.gate is not None and seen.gate.http_status == 200


def test_a_failed_probe_carries_no_status(observer: Build) -> None:
    fetch = ScriptedFetch()  # every URL: connection refused
    probe = (
        observer(fetch=fetch, gateway_url=GATEWAY, sync_budget_ms=2000)
        .observe(plan_of(offer(name="qwen")))
        .gate
    )
    assert probe is not None and probe.http_status is None
    assert "through the gateway failed" in probe.message


def test_a_sync_never_waits_longer_than_the_budget_for_the_gateway(observer: Build) -> None:
    fetch = ScriptedFetch({f"{GATEWAY}/services/qwen": answered(402)})
    fetch.gate.clear()  # every probe hangs until released
    try:
        seen = observer(fetch=fetch, gateway_url=GATEWAY, sync_budget_ms=50).observe(
            plan_of(offer(name="qwen"))
        )
        assert seen.gate is None
    finally:
        fetch.gate.set()


# --- the core: what each answer means ----------------------------------------------------------


def converged(probe: GateObservation | None) -> dict[str, dict[str, Any]]:
    """Conditions of a converged offer (children observed, route accepted) given ``probe``."""
    parent = parent_object(yaml.safe_load(EXAMPLE.read_text()))
    first = sync(parse_request(full_request(parent)), Settings()).response
    request = full_request(parent, observed_children(first["children"]))
    status = sync(parse_request(request), Settings(), lambda _: Observed(gate=probe)).response
    return {c["type"]: c for c in status["status"]["conditions"]}


@pytest.mark.parametrize("code", [402, 429])
def test_quoted_or_saturated_changes_nothing(code: int) -> None:
    assert converged(GateObservation(code, "x")) == converged(None)
    assert converged(None)["Ready"]["status"] == "True"


@pytest.mark.parametrize(
    ("code", "condition", "reason"),
    [
        (200, "PaymentGateReady", "FreeRide"),
        (204, "PaymentGateReady", "FreeRide"),
        (404, "RoutePublished", "NotServedByGateway"),
        (500, "PaymentGateReady", "GateUnavailable"),
        (503, "PaymentGateReady", "GateUnavailable"),
        (403, "PaymentGateReady", "UnexpectedGateAnswer"),
    ],
)
def test_every_other_answer_is_a_false_condition_and_not_ready(
    code: int, condition: str, reason: str
) -> None:
    conditions = converged(GateObservation(code, "x"))
    assert (conditions[condition]["status"], conditions[condition]["reason"]) == ("False", reason)
    assert f"answered {code}" in conditions[condition]["message"]
    assert conditions["Ready"]["status"] == "False"
    assert f"{condition} is False ({reason})" in conditions["Ready"]["message"]


def test_no_status_changes_nothing() -> None:
    assert converged(GateObservation(None, "failed")) == converged(None)

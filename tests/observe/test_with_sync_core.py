"""The observation layer feeding the pure core: what a seller reads in ``status``.

Test design notes:
- The request is built from ``examples/inference-qwen36-fast.yaml`` (maxInFlight 8) used as the
  parent with ``children: {}``, exactly as the shell will call
  ``sync(request, settings, observer.observe)``; the upstream is a loopback
  vLLM-like server behind the override of ``http://vllm-qwen36.llm-sellers.svc.cluster.local:8000``.
- Asserted here, where only the observer and the core together show it: an engine's running +
  waiting count (the quantity Traefik's inFlightReq counts for requests that reached the
  upstream) becomes ``status.capacity.inFlight/state/source``, ``status.upstream.httpStatus`` and
  ``UpstreamHealthy``; a stale observation says Unknown; the same observation gives the same
  status. Every status validates against the CRD's status schema. The thresholds (Available
  below maxInFlight, Saturated at and above it) and an unhealthy upstream are
  tests/status/test_conditions.py's topic; observation off is test_observer_cache.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.core.observation import Observed
from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.status import UPSTREAM_HEALTHY
from hooks.core.sync import Outcome, sync
from hooks.observe.observer import Observer
from tests.observe.engines import FakeClock, FakeEngine, vllm_exposition
from tests.support.crd_validation import validate_status

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "inference-qwen36-fast.yaml"
UPSTREAM = "http://vllm-qwen36.llm-sellers.svc.cluster.local:8000"
StartEngine = Callable[[str], FakeEngine]
Build = Callable[..., Observer]


def example_request() -> dict[str, Any]:
    parent = yaml.safe_load(EXAMPLE.read_text())
    return {"parent": parent, "children": {}}


def synced_status(observer: Observer) -> dict[str, Any]:
    request = example_request()
    response = sync(parse_request(request), Settings(), observer.observe).response
    status: dict[str, Any] = response["status"]
    assert validate_status(status) == []
    return status


def upstream_condition(status: dict[str, Any]) -> dict[str, Any]:
    (found,) = [c for c in status["conditions"] if c["type"] == UPSTREAM_HEALTHY]
    assert isinstance(found, dict)
    return found


def test_engine_metrics_become_capacity_state(engine: StartEngine, observer: Build) -> None:
    server = engine(vllm_exposition((3, 2), (2, 1)))  # two engines, running + waiting = 8
    watcher = observer(upstream_overrides={UPSTREAM: server.url}, sync_budget_ms=2000)
    status = synced_status(watcher)
    capacity = status["capacity"]
    assert (capacity["inFlight"], capacity["state"], capacity["source"]) == (
        8,
        "Saturated",
        "vllm /metrics",
    )
    assert status["upstream"] == {"url": UPSTREAM, "httpStatus": 200}
    condition = upstream_condition(status)
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "True",
        "Healthy",
        "GET /health answered 200",
    )


def test_a_stale_observation_says_unknown(engine: StartEngine, observer: Build) -> None:
    server = engine(vllm_exposition((2,), (0,)))
    clock = FakeClock()
    watcher = observer(upstream_overrides={UPSTREAM: server.url}, sync_budget_ms=2000, clock=clock)
    assert synced_status(watcher)["capacity"]["state"] == "Available"
    server.hold.clear()  # the refresh this stale read starts stays pending
    clock.advance(16)
    status = synced_status(watcher)
    assert upstream_condition(status)["status"] == "Unknown"
    assert status["capacity"]["state"] == "Unknown" and "inFlight" not in status["capacity"]
    server.hold.set()


def test_the_same_observation_gives_the_same_status(engine: StartEngine, observer: Build) -> None:
    server = engine(vllm_exposition((5,), (0,)))
    watcher = observer(upstream_overrides={UPSTREAM: server.url}, sync_budget_ms=2000)
    assert synced_status(watcher) == synced_status(watcher)  # no churn between syncs


@pytest.mark.parametrize(
    "upstream",
    [
        pytest.param({"service": "evil.example.com", "port": 80}, id="service-with-dots"),
        pytest.param({"service": "a@evil", "port": 80}, id="service-with-userinfo"),
        pytest.param({"service": "vllm", "port": 0}, id="port-zero"),
        pytest.param({"service": "vllm", "healthPath": "@evil.example.com/"}, id="health-path"),
    ],
)
def test_the_observer_is_never_asked_about_an_offer_the_hook_refuses(
    upstream: dict[str, Any],
) -> None:
    # Only a valid plan names something to probe: nothing else is ever contacted.
    request = example_request()
    request["parent"]["spec"]["upstream"] = upstream
    asked: list[Any] = []

    def observe(plan: Any) -> Observed:
        asked.append(plan)
        return Observed()

    result = sync(parse_request(request), Settings(), observe)
    assert result.outcome is Outcome.INVALID and asked == []

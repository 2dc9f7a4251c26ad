"""The Observer's cache and scheduling, with an in-memory fetch and a hand-moved clock.

Test design notes:
- ``ScriptedFetch`` answers by URL and can hold every call (a cleared gate) so tests control
  exactly when a probe finishes; ``FakeClock`` decides freshness, forgetting and due times, so
  no test sleeps to let time pass. Waits are on events and conditions, each bounded.
- Covered: off mode does nothing; which upstream a plan names; fresh vs stale; first-probe budget;
  one probe per upstream however many offers share it; background rounds refresh values and
  forget unwanted upstreams; bounded concurrency and bounded tracking; probe bugs never
  surface as "unhealthy"; the real background thread starts, refreshes and stops idempotently.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
import urllib.error
from collections.abc import Callable
from typing import Any

import pytest

from hooks.core.observation import Observation, Observed, UpstreamTarget
from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from hooks.observe import observer as observe
from hooks.observe.fetch import FetchResult, describe_error
from hooks.observe.observer import Observer
from tests.observe.engines import (
    FakeClock,
    ScriptedFetch,
    llamacpp_exposition,
    offer,
    ok,
    plan_of,
    sync_request,
)

BASE = "http://vllm.llm.svc.cluster.local:8000"
HEALTHY = Observation(True, "GET /health answered 200", 200, 7, "llama.cpp /metrics")
Build = Callable[..., Observer]


def engine_routes(base: str = BASE, running: int = 4, waiting: int = 3) -> dict[str, Any]:
    return {
        f"{base}/health": ok("{}"),
        f"{base}/metrics": ok(llamacpp_exposition(running, waiting)),
    }


# --- what the plan names ------------------------------------------------------------------


def test_the_plan_names_the_upstream_the_status_shows() -> None:
    plan = plan_of(offer(namespace="llm", service="vllm", port=8000))
    assert plan.upstream == UpstreamTarget(BASE, "/health", wants_metrics=True)
    assert sync(parse_request(sync_request(offer())), Settings()).response["status"][
        "upstream"
    ] == {"url": BASE}


def test_the_upstream_in_another_namespace_with_its_own_health_path() -> None:
    parent = offer(service="gpu", port=9000, health_path="/v1/models", type_="http")
    parent["spec"]["upstream"]["namespace"] = "inference"
    assert plan_of(parent).upstream == UpstreamTarget(
        "http://gpu.inference.svc.cluster.local:9000", "/v1/models", wants_metrics=False
    )


@pytest.mark.parametrize(
    ("type_", "capacity", "wants"),
    [("inference", True, True), ("inference", False, False), ("http", True, False)],
)
def test_metrics_are_wanted_only_for_inference_offers_with_capacity(
    type_: str, capacity: bool, wants: bool
) -> None:
    assert plan_of(offer(type_=type_, capacity=capacity)).upstream.wants_metrics is wants


def test_an_offer_without_a_port_probes_obols_default_port() -> None:
    parent = offer(namespace="llm", service="ollama", port=8000)
    del parent["spec"]["upstream"]["port"]
    assert plan_of(parent).upstream.url == "http://ollama.llm.svc.cluster.local:11434"


def test_obols_limits_ceiling_wants_metrics_like_capacity() -> None:
    parent = offer(type_="inference", capacity=False)
    parent["spec"]["limits"] = {"maxInFlight": 8}
    assert plan_of(parent).upstream.wants_metrics
    parent["spec"]["limits"] = {"maxInFlight": 0, "rps": 5}
    assert not plan_of(parent).upstream.wants_metrics


# --- off mode ------------------------------------------------------------------------------


def test_off_mode_probes_nothing_and_starts_nothing(observer: Build) -> None:
    fetch = ScriptedFetch(engine_routes())
    quiet = observer(fetch=fetch, enabled=False)
    threads = threading.active_count()
    quiet.start()
    assert quiet.observe(plan_of(offer())) == Observed()
    assert quiet.refresh_due() == 0
    assert (quiet.running, fetch.calls, quiet.tracked()) == (False, [], ())
    assert threading.active_count() == threads


# --- freshness -----------------------------------------------------------------------------


def test_first_sight_probes_and_waits_then_answers_from_cache(observer: Build) -> None:
    fetch, clock = ScriptedFetch(engine_routes()), FakeClock()
    watcher = observer(fetch=fetch, clock=clock, sync_budget_ms=2000)
    request = offer()
    assert watcher.observe(plan_of(request)) == Observed(HEALTHY)
    assert fetch.calls == [f"{BASE}/health", f"{BASE}/metrics"]
    clock.advance(14.9)
    assert watcher.observe(plan_of(request)) == Observed(HEALTHY)
    assert len(fetch.calls) == 2  # answered from the cache


def test_stale_results_are_not_returned_and_a_refresh_is_started(observer: Build) -> None:
    fetch, clock = ScriptedFetch(engine_routes()), FakeClock()
    watcher = observer(fetch=fetch, clock=clock, sync_budget_ms=2000)
    request = offer()
    watcher.observe(plan_of(request))
    fetch.routes.update(engine_routes(running=1, waiting=0))
    fetch.gate.clear()  # hold the refresh so the stale answer is observable
    clock.advance(15.1)
    started = time.monotonic()
    assert watcher.observe(plan_of(request)) == Observed()  # stale: Unknown, never the old value
    assert time.monotonic() - started < 0.5  # a stale entry is not waited for
    assert fetch.wait_active(1)
    fetch.gate.set()
    assert watcher.wait_idle(5)
    assert watcher.observe(plan_of(request)).upstream.in_flight == 1


def test_a_slow_first_probe_costs_a_sync_at_most_the_budget(observer: Build) -> None:
    fetch = ScriptedFetch(engine_routes())
    fetch.gate.clear()
    watcher = observer(fetch=fetch, sync_budget_ms=150)
    started = time.monotonic()
    assert watcher.observe(plan_of(offer())) == Observed()
    elapsed = time.monotonic() - started
    assert 0.1 <= elapsed < 0.15 + 0.35
    # A second sync while the first probe still runs waits (at most) the budget again.
    started = time.monotonic()
    assert watcher.observe(plan_of(offer(name="other"))) == Observed()
    assert time.monotonic() - started < 0.15 + 0.35
    assert len(fetch.calls) == 1  # one probe in flight per upstream
    fetch.gate.set()
    assert watcher.wait_idle(5)
    assert watcher.observe(plan_of(offer())).upstream == HEALTHY


def test_zero_budget_never_waits(observer: Build) -> None:
    fetch = ScriptedFetch(engine_routes())
    fetch.gate.clear()
    watcher = observer(fetch=fetch, sync_budget_ms=0)
    started = time.monotonic()
    assert watcher.observe(plan_of(offer())) == Observed()
    assert time.monotonic() - started < 0.1
    fetch.gate.set()


# --- sharing, scheduling, forgetting -------------------------------------------------------


def test_offers_sharing_an_upstream_share_one_probe(observer: Build) -> None:
    fetch, clock = ScriptedFetch(engine_routes()), FakeClock()
    watcher = observer(fetch=fetch, clock=clock, sync_budget_ms=2000)
    for index in range(50):
        answer = watcher.observe(plan_of(offer(name=f"offer-{index}")))
        assert answer == Observed(HEALTHY)
    assert fetch.calls == [f"{BASE}/health", f"{BASE}/metrics"]
    assert watcher.tracked() == (BASE,)


def test_metrics_are_probed_once_any_offer_on_the_upstream_wants_them(observer: Build) -> None:
    fetch, clock = ScriptedFetch(engine_routes()), FakeClock()
    watcher = observer(fetch=fetch, clock=clock, sync_budget_ms=2000)
    plain = watcher.observe(plan_of(offer(type_="http")))
    assert plain == Observed(Observation(True, "GET /health answered 200", 200))
    assert fetch.calls == [f"{BASE}/health"]
    watcher.observe(plan_of(offer(name="llm")))  # fresh: no new probe yet
    clock.advance(10)
    assert watcher.refresh_due() == 1
    assert watcher.wait_idle(5)
    assert fetch.calls[1:] == [f"{BASE}/health", f"{BASE}/metrics"]
    assert watcher.observe(plan_of(offer(type_="http"))).upstream == HEALTHY


def test_background_rounds_refresh_due_upstreams_only(observer: Build) -> None:
    fetch, clock = ScriptedFetch(engine_routes()), FakeClock()
    watcher = observer(fetch=fetch, clock=clock, sync_budget_ms=2000)
    request = offer()
    watcher.observe(plan_of(request))
    clock.advance(9.9)
    assert watcher.refresh_due() == 0  # not due before the interval
    fetch.routes.update(engine_routes(running=8, waiting=2))
    clock.advance(0.1)
    assert watcher.refresh_due() == 1
    assert watcher.wait_idle(5)
    assert watcher.observe(plan_of(request)).upstream.in_flight == 10
    assert len(fetch.calls) == 4


def test_upstreams_no_sync_asks_about_are_forgotten(observer: Build) -> None:
    fetch, clock = ScriptedFetch(engine_routes()), FakeClock()
    watcher = observer(fetch=fetch, clock=clock, sync_budget_ms=2000, forget_seconds=60)
    watcher.observe(plan_of(offer()))
    for _ in range(6):  # re-probed while a sync asked within the last 60 s
        clock.advance(10)
        watcher.refresh_due()
        assert watcher.wait_idle(5)
    assert watcher.tracked() == (BASE,)
    calls = len(fetch.calls)
    clock.advance(0.1)  # 60.1 s since the last sync asked
    assert watcher.refresh_due() == 0
    assert watcher.tracked() == ()
    clock.advance(100)
    assert watcher.refresh_due() == 0
    assert len(fetch.calls) == calls


def test_probes_run_with_bounded_concurrency(observer: Build) -> None:
    routes: dict[str, Any] = {}
    for index in range(10):
        routes.update(engine_routes(f"http://vllm-{index}.llm.svc.cluster.local:8000"))
    fetch = ScriptedFetch(routes)
    fetch.gate.clear()
    watcher = observer(fetch=fetch, concurrency=3, sync_budget_ms=0)
    for index in range(10):
        watcher.observe(plan_of(offer(service=f"vllm-{index}")))
    assert fetch.wait_active(3)
    assert not fetch.wait_active(4, timeout=0.2)  # the pool never runs a fourth
    fetch.gate.set()
    assert watcher.wait_idle(5)
    assert fetch.peak == 3
    assert len(fetch.calls) == 20
    assert len(watcher.tracked()) == 10


def test_tracking_is_bounded(observer: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observe, "MAX_UPSTREAMS", 3)
    fetch = ScriptedFetch()
    watcher = observer(fetch=fetch, sync_budget_ms=2000)
    for index in range(5):
        watcher.observe(plan_of(offer(service=f"vllm-{index}")))
    assert len(watcher.tracked()) == 3
    assert len(fetch.calls) == 3


# --- failures stay honest ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (TimeoutError("timed out"), "timed out after 800 ms"),
        (urllib.error.URLError(TimeoutError("timed out")), "timed out after 800 ms"),
        (urllib.error.URLError(ConnectionRefusedError(111, "x")), "connection refused"),
        (http.client.RemoteDisconnected("closed"), "connection closed without an answer"),
        (ConnectionResetError(104, "Connection reset by peer"), "connection reset"),
        (socket.gaierror(-2, "Name or service not known"), "host name not resolved"),
        (http.client.BadStatusLine("garbage"), "invalid HTTP answer"),
        (OSError(113, "No route to host"), "no route to host"),
        (ValueError("odd"), "ValueError"),
    ],
)
def test_transport_errors_are_described_shortly(error: BaseException, text: str) -> None:
    assert describe_error(error, 800) == text


def test_a_full_table_is_logged_once(
    observer: Build, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(observe, "MAX_UPSTREAMS", 1)
    watcher = observer(fetch=ScriptedFetch(), sync_budget_ms=0)
    with caplog.at_level(logging.WARNING, logger="obol.hook.observe"):
        for index in range(5):
            watcher.observe(plan_of(offer(service=f"vllm-{index}")))
    assert [r.getMessage() for r in caplog.records] == [
        "not observing new upstreams: 1 upstreams already tracked"
    ]


def test_a_bug_in_probing_reports_unknown_not_unhealthy(observer: Build) -> None:
    def broken(url: str, timeout: float, max_bytes: int) -> FetchResult:
        return None  # type: ignore[return-value]  # a fetch that breaks its contract

    watcher = observer(fetch=broken, sync_budget_ms=2000)
    answer = watcher.observe(plan_of(offer())).upstream
    assert answer is not None and answer.healthy is None


def test_the_sync_path_swallows_internal_errors(
    observer: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = observer(fetch=ScriptedFetch(engine_routes()))

    def explode(*args: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(watcher, "_observe", explode)
    assert watcher.observe(plan_of(offer())) == Observed()


# --- the background thread -----------------------------------------------------------------


def test_the_background_thread_refreshes_and_stops(observer: Build) -> None:
    fetch = ScriptedFetch(engine_routes())
    watcher = observer(fetch=fetch, interval_seconds=0.05, ttl_seconds=5, sync_budget_ms=2000)
    watcher.start()
    thread = watcher._thread
    watcher.start()  # idempotent: the same thread keeps running
    assert watcher.running and watcher._thread is thread
    request = offer()
    assert watcher.observe(plan_of(request)).upstream.in_flight == 7
    fetch.routes.update(engine_routes(running=0, waiting=0))
    deadline = time.monotonic() + 5
    while watcher.observe(plan_of(request)).upstream.in_flight != 0:
        assert time.monotonic() < deadline, "the background thread never refreshed"
        threading.Event().wait(0.02)
    watcher.stop()
    watcher.stop()  # idempotent
    assert not watcher.running
    assert thread is not None and not thread.is_alive()
    watcher.start()  # restartable
    assert watcher.running

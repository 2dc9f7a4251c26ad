"""The Observer against real HTTP servers on 127.0.0.1 (the default urllib fetch, end to end).

Test design notes:
- Each ``FakeEngine`` is a stdlib ``ThreadingHTTPServer`` on a random loopback port acting as
  vLLM or llama.cpp; the offer's in-cluster URL is pointed at it with an
  ``OBOL_OBSERVE_UPSTREAM_OVERRIDES``-style override, exactly as the hook is run outside a
  cluster. The server logs the paths it saw, so tests assert what was and was not probed.
- Cases: healthy vLLM and llama.cpp (in-flight and source), 503 (unhealthy, metrics skipped),
  slow beyond the timeout (the sync returns within the budget plus slack, the probe later
  reports the timeout), connection refused, llama.cpp without ``--metrics`` (healthy, in-flight
  unknown and why), a metrics body over the cap or dripping past the deadline, a redirect
  (not followed), an HTTP proxy in
  the environment (ignored), and a forked worker (its own threads, the cache kept).
- Timing: the only timing assertion is "returned within budget + 350 ms", measured with a
  monotonic clock; every other wait is on an event or a bounded condition.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import pytest

from hooks.config import load_config
from hooks.core.observation import Observation, Observed
from hooks.observe.observer import MAX_METRICS_BYTES, Observer
from tests.observe.engines import (
    FakeEngine,
    llamacpp_exposition,
    offer,
    plan_of,
    refused_url,
    vllm_exposition,
)

BASE = "http://vllm.llm.svc.cluster.local:8000"
PLAN = plan_of(offer(namespace="llm", service="vllm", port=8000))
StartEngine = Callable[[str], FakeEngine]
Build = Callable[..., Observer]


def pointed_at(build: Build, url: str, **settings: object) -> Observer:
    settings.setdefault("sync_budget_ms", 2000)
    return build(upstream_overrides={BASE: url}, **settings)


def test_healthy_vllm_reports_in_flight_from_its_metrics(
    engine: StartEngine, observer: Build
) -> None:
    server = engine(vllm_exposition((3, 2), (1, 0)))
    answer = pointed_at(observer, server.url).observe(PLAN)
    assert answer == Observed(
        Observation(True, "GET /health answered 200", 200, 6, "vllm /metrics")
    )
    assert server.paths == ["/health", "/metrics"]


def test_healthy_llamacpp_reports_processing_plus_deferred(
    engine: StartEngine, observer: Build
) -> None:
    server = engine(llamacpp_exposition(4, 3))
    answer = pointed_at(observer, server.url).observe(PLAN)
    assert answer.upstream == Observation(
        True, "GET /health answered 200", 200, 7, "llama.cpp /metrics"
    )


def test_unhealthy_upstream_is_not_asked_for_metrics(engine: StartEngine, observer: Build) -> None:
    server = engine(vllm_exposition((1,), (0,)))
    server.health_status = 503  # llama.cpp answers 503 while the model loads
    answer = pointed_at(observer, server.url).observe(PLAN)
    assert answer == Observed(Observation(False, "GET /health answered 503", 503))
    assert server.paths == ["/health"]


def test_custom_health_path_is_probed(engine: StartEngine, observer: Build) -> None:
    server = engine("")
    request = offer(health_path="/v1/models", type_="http")
    answer = pointed_at(observer, server.url).observe(plan_of(request))
    assert answer.upstream == Observation(True, "GET /v1/models answered 200", 200)
    assert server.paths == ["/v1/models"]


def test_slow_upstream_never_holds_a_sync_beyond_the_budget(
    engine: StartEngine, observer: Build
) -> None:
    server = engine(vllm_exposition((1,), (0,)))
    server.hold.clear()
    watcher = pointed_at(observer, server.url, sync_budget_ms=150, probe_timeout_ms=800)
    started = time.monotonic()
    assert watcher.observe(PLAN) == Observed()
    assert time.monotonic() - started < 0.15 + 0.35
    assert server.wait_for("/health")
    assert watcher.wait_idle(5)  # the probe gives up after its own timeout
    server.hold.set()
    assert watcher.observe(PLAN) == Observed(
        Observation(False, "GET /health failed: timed out after 800 ms")
    )


def test_a_dripping_metrics_body_is_cut_off_at_the_deadline(
    engine: StartEngine, observer: Build
) -> None:
    server = engine(llamacpp_exposition(1, 0))  # 30 lines, 0.1 s apart: 3 s in all
    server.drip = 0.1
    watcher = pointed_at(observer, server.url, probe_timeout_ms=300)
    started = time.monotonic()
    answer = watcher.observe(PLAN)
    assert time.monotonic() - started < 0.3 * 2 + 0.5  # about twice the timeout at most
    assert answer.upstream == Observation(
        True,
        "GET /health answered 200; in-flight not observed:"
        " GET /metrics failed: timed out after 300 ms",
        200,
    )


def test_connection_refused(observer: Build) -> None:
    answer = pointed_at(observer, refused_url()).observe(PLAN)
    assert answer == Observed(Observation(False, "GET /health failed: connection refused"))


@pytest.mark.parametrize("status", [404, 501])
def test_llamacpp_without_metrics_flag_is_healthy_with_unknown_in_flight(
    engine: StartEngine, observer: Build, status: int
) -> None:
    server = engine("")
    server.metrics_status = status
    answer = pointed_at(observer, server.url).observe(PLAN)
    assert answer.upstream == Observation(
        True,
        f"GET /health answered 200; in-flight not observed: GET /metrics answered {status}",
        200,
    )


def test_metrics_without_engine_gauges(engine: StartEngine, observer: Build) -> None:
    server = engine("# HELP up whatever\n# TYPE up gauge\nup 1\n")
    answer = pointed_at(observer, server.url).observe(PLAN)
    assert answer.upstream.in_flight is None
    assert answer.upstream.message.endswith("GET /metrics has no vLLM or llama.cpp request gauges")


def test_metrics_body_over_the_cap_is_not_parsed(engine: StartEngine, observer: Build) -> None:
    padding = "# padding\n" * (MAX_METRICS_BYTES // 10 + 1)
    server = engine(llamacpp_exposition(1, 0) + padding)
    answer = pointed_at(observer, server.url).observe(PLAN)
    assert (answer.upstream.healthy, answer.upstream.in_flight) == (True, None)
    assert answer.upstream.message.endswith("GET /metrics body exceeds 2 MiB")


def test_redirects_are_answers_not_followed(engine: StartEngine, observer: Build) -> None:
    elsewhere = engine("")
    server = engine("")
    server.redirect_to = elsewhere.url + "/health"
    answer = pointed_at(observer, server.url).observe(PLAN)
    assert answer.upstream == Observation(False, "GET /health answered 302", 302)
    assert elsewhere.paths == []


def test_http_proxy_settings_are_ignored(
    engine: StartEngine, observer: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, refused_url())
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    server = engine(llamacpp_exposition(0, 0))
    assert pointed_at(observer, server.url).observe(PLAN).upstream.healthy is True


def test_background_refresh_follows_the_engine(engine: StartEngine, observer: Build) -> None:
    server = engine(llamacpp_exposition(1, 0))
    watcher = pointed_at(observer, server.url, interval_seconds=0.05, ttl_seconds=5)
    watcher.start()
    assert watcher.observe(PLAN).upstream.in_flight == 1
    server.metrics = llamacpp_exposition(5, 4)
    deadline = time.monotonic() + 5
    while watcher.observe(PLAN).upstream.in_flight != 9:
        assert time.monotonic() < deadline, "no refresh reached the cache"
        server.wait_for("/metrics", server.count("/metrics") + 1, timeout=1)
    server.health_status = 503
    while watcher.observe(PLAN).upstream.healthy is not False:
        assert time.monotonic() < deadline, "no refresh reached the cache"
        server.wait_for("/health", server.count("/health") + 1, timeout=1)


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs fork")
def test_a_forked_worker_gets_its_own_threads_and_keeps_the_cache(
    engine: StartEngine, observer: Build
) -> None:
    server = engine(llamacpp_exposition(2, 0))
    other = engine(llamacpp_exposition(3, 0))
    watcher = observer(
        upstream_overrides={BASE: server.url, "http://other.llm.svc.cluster.local:8000": other.url},
        sync_budget_ms=2000,
    )
    watcher.start()
    assert watcher.observe(PLAN).upstream.in_flight == 2
    pid = os.fork()
    if pid == 0:  # the child: like a gunicorn worker forked from a master that started one
        code = 1
        try:
            cached = watcher.observe(PLAN).upstream.in_flight == 2
            fresh = not watcher.running
            watcher.start()
            other_request = offer(service="other")
            probed = watcher.observe(plan_of(other_request))
            code = 0 if cached and fresh and watcher.running and probed else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert watcher.running  # the parent's thread is untouched


def test_observer_settings_from_env_drive_a_real_probe(engine: StartEngine) -> None:
    server = engine(vllm_exposition((8,), (0,)))
    settings = load_config(
        {
            "OBOL_OBSERVE": "on",
            "OBOL_SYNC_PROBE_BUDGET_MS": "2000",
            "OBOL_OBSERVE_UPSTREAM_OVERRIDES": f'{{"{BASE}": "{server.url}"}}',
        }
    ).observe
    watcher = Observer(settings)
    try:
        assert watcher.observe(PLAN).upstream.in_flight == 8
    finally:
        watcher.stop()

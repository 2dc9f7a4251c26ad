"""A bounded storm of mixed good and hostile requests against the real servers.

Design notes:

* The servers are ``obol hook serve`` and ``obol hook busy`` with a 256 KiB body cap (so
  oversized bodies are cheap to send); the default answer cache stays on.
* The mix (``load.py``): 300 distinct offers' sync requests (90 % existing with live children,
  2 % of those with a bad edit) at half the weight, and every hostile kind at the rest: invalid
  specs, malformed and truncated JSON, random bytes, wrong content types, bodies over the cap
  (with Content-Length and chunked), the busy responder, unknown paths, wrong methods.
* Six client threads for a bounded time and number of requests (default 6 s / 2,500 requests;
  ``-m slow``: 20 s / 12,000). Checked: zero 5xx, zero connection errors (refused, reset,
  timeout), every status the expected one, every 200 the answer for its own offer with the v2
  keys, every error JSON, no worker restarted, no ``error`` outcome in the metrics.
* Memory: RSS of both servers (the gunicorn master and worker, the busy responder) is read
  after a warm-up of the same mix and again at the end. Nothing but the worker's answer cache
  outlives a request, and the warm-up has already sent every distinct valid body (300 answers
  of about 7 KiB, at most ~2.5 MiB), so the bound is 16 MiB in all: allocator slack, and small
  enough that a leak of one request body (~20 KiB) per request would exceed it within 1,000
  requests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.http.http_harness import HookServer, LaunchHook
from tests.robustness.load import (
    Outcome,
    hostile_probes,
    metric,
    run_load,
    tree_rss,
    urls,
    valid_probes,
)

CAP = 256 * 1024
RSS_BOUND = 16 * 2**20
VALID_OFFERS = 300


@pytest.fixture(scope="module")
def server(launch: LaunchHook) -> Iterator[HookServer]:
    with launch({"OBOL_MAX_REQUEST_BYTES": str(CAP)}) as running:
        yield running


def assert_clean(outcome: Outcome) -> None:
    assert outcome.requests > 0
    assert outcome.server_errors == 0, outcome.statuses
    assert not outcome.connection_errors, outcome.connection_errors[:5]
    assert not outcome.wrong_status, outcome.wrong_status[:5]
    assert not outcome.wrong_body, outcome.wrong_body[:5]


@pytest.mark.parametrize(
    ("seconds", "max_requests"),
    [
        pytest.param(6.0, 2500, id="6s"),
        pytest.param(20.0, 12000, id="20s", marks=pytest.mark.slow),
    ],
)
def test_a_mixed_storm_gets_only_expected_answers_in_bounded_memory(
    server: HookServer, seconds: float, max_requests: int
) -> None:
    hostile = hostile_probes(CAP)
    # Valid requests get half of the total weight, spread over the distinct offers.
    valid = valid_probes(VALID_OFFERS, weight=sum(p.weight for p in hostile) / VALID_OFFERS)
    probes = valid + hostile
    base = urls(server)
    worker = server.gunicorn_worker()

    warm_up = run_load(base, valid, threads=6, seconds=30, max_requests=900)
    warm_up.merge(run_load(base, probes, threads=6, seconds=3, max_requests=600, seed=1))
    assert_clean(warm_up)
    before = tree_rss(server.process.pid) + tree_rss(server.busy_process.pid)

    outcome = run_load(base, probes, threads=6, seconds=seconds, max_requests=max_requests, seed=2)
    after = tree_rss(server.process.pid) + tree_rss(server.busy_process.pid)

    print(
        f"storm: {outcome.requests} requests in <= {seconds:g} s, RSS {before / 2**20:.1f} -> "
        f"{after / 2**20:.1f} MiB, statuses {sorted(outcome.statuses.items())}"
    )
    assert_clean(outcome)
    kinds = {name for name, _ in outcome.statuses}
    assert {"valid-existing", "oversized", "garbage", "busy"} <= kinds, kinds
    assert server.gunicorn_worker() == worker, "the worker was restarted during the storm"
    assert after - before <= RSS_BOUND, (
        f"RSS grew by {(after - before) / 2**20:.1f} MiB over {outcome.requests} requests"
    )
    metrics = requests.get(server.sync_url + "/metrics", timeout=5).text
    assert metric(metrics, "obol_hook_sync_requests_total", '{outcome="error"}') == 0

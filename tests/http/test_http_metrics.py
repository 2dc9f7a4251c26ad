"""/metrics of each server: every request its threads answered, counted once, in its own scrape.

Test-design notes:

* A dedicated pair of servers, so the counts start at zero and belong to this module only.
* Requests go out from 8 threads at once (syncs, malformed syncs, busy 429s of two
  namespaces); each server's scrape must then equal exactly what was sent to it.
* Busy responses are counted by namespace only; an offer name never becomes a label.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hooks.server.metrics import package_version
from tests.http.http_harness import HookServer, LaunchHook

SYNC_OK = 'obol_hook_sync_requests_total{outcome="ok"}'
SYNC_BAD = 'obol_hook_sync_requests_total{outcome="bad_request"}'
CHILDREN = "obol_hook_sync_children_total"
DURATION_COUNT = "obol_hook_sync_duration_seconds_count"
ROUND = 40  # requests of each kind


@pytest.fixture(scope="module")
def server(launch_hook: LaunchHook) -> Iterator[HookServer]:
    with launch_hook() as server:
        yield server


def samples(text: str) -> dict[str, float]:
    """Exposition text as {'name{label="v",...}': value}."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def scrape(url: str, server: HookServer) -> dict[str, float]:
    response = server.get(url + "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return samples(response.text)


def test_concurrent_requests_are_each_counted_once(server: HookServer, valid_body: bytes) -> None:
    def one(index: int) -> int:
        kind = index % 4
        if kind == 0:
            return server.post_sync(valid_body).status_code
        if kind == 1:
            return server.post_sync(b"{broken").status_code
        namespace = "tenant-a" if kind == 2 else "tenant-b"
        url = f"{server.busy_url}/busy/{namespace}/offer-{index}?retryAfter=1"
        return server.get(url).status_code

    children_per_answer = len(orjson.loads(server.post_sync(valid_body).content)["children"])
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(one, range(4 * ROUND)))
    assert sorted(set(codes)) == [200, 400, 429]

    ok, bad = ROUND + 1, ROUND  # +1: the request that counted children
    sync = scrape(server.sync_url, server)
    assert (sync[SYNC_OK], sync[SYNC_BAD], sync[DURATION_COUNT]) == (ok, bad, ok + bad)
    assert sync[CHILDREN] == ok * children_per_answer
    busy = scrape(server.busy_url, server)
    assert busy['obol_hook_busy_responses_total{namespace="tenant-a"}'] == ROUND
    assert busy['obol_hook_busy_responses_total{namespace="tenant-b"}'] == ROUND


def test_busy_counts_never_carry_the_offer_name(server: HookServer) -> None:
    server.get(server.busy_url + "/busy/tenant-c/secret-offer-name?retryAfter=1")
    text = server.get(server.busy_url + "/metrics").text
    assert "secret-offer-name" not in text
    assert 'obol_hook_busy_responses_total{namespace="tenant-c"}' in text


def test_every_outcome_is_exported_from_the_start(server: HookServer) -> None:
    metrics = scrape(server.sync_url, server)
    for outcome in ("ok", "invalid_spec", "bad_request", "error", "unauthorized"):
        assert f'obol_hook_sync_requests_total{{outcome="{outcome}"}}' in metrics


def test_build_info_carries_the_version(server: HookServer) -> None:
    for url in (server.sync_url, server.busy_url):
        metrics = scrape(url, server)
        assert metrics[f'obol_hook_build_info{{version="{package_version()}"}}'] == 1

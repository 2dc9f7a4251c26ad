"""/metrics through two gunicorn workers: counts from every worker add up in one scrape.

Test-design notes:

* A dedicated two-worker server, so the counts start at zero and belong to this module only.
* Requests go out from 8 threads in rounds until the per-worker sample files prove that both
  workers served some (bounded: at most 20 rounds); the scrape, which any one worker answers,
  must then equal the totals sent, and the per-worker counts (read one file at a time with
  prometheus_client's own MultiProcessCollector) must sum to the same totals.
* Busy responses are counted by namespace only; an offer name never becomes a label.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from hooks.server.metrics import package_version
from tests.http.http_harness import HookServer, LaunchHook

SYNC_OK = 'obol_hook_sync_requests_total{outcome="ok"}'
SYNC_BAD = 'obol_hook_sync_requests_total{outcome="bad_request"}'
CHILDREN = "obol_hook_sync_children_total"
DURATION_COUNT = "obol_hook_sync_duration_seconds_count"
ROUND = 40  # requests of each kind per round
MAX_ROUNDS = 20


@pytest.fixture(scope="module")
def two_workers(launch_hook: LaunchHook) -> Iterator[HookServer]:
    with launch_hook(workers=2) as server:
        yield server


def samples(text: str) -> dict[str, float]:
    """Exposition text as {'name{label="v",...}': value}."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def scrape(server: HookServer) -> dict[str, float]:
    response = server.get(server.sync_url + "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return samples(response.text)


def per_worker_sync_counts(metrics_dir: Path, scratch: Path) -> dict[str, float]:
    """Sync requests answered by each worker, read from its own counter file."""
    counts: dict[str, float] = {}
    for path in sorted(metrics_dir.glob("counter_*.db")):
        single = scratch / path.stem
        single.mkdir(exist_ok=True)
        shutil.copy(path, single / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(single))
        values = samples(generate_latest(registry).decode())
        counts[path.stem] = values.get(SYNC_OK, 0.0) + values.get(SYNC_BAD, 0.0)
    return counts


def send_round(server: HookServer, valid_body: bytes) -> None:
    def one(index: int) -> int:
        kind = index % 4
        if kind == 0:
            return server.post_sync(valid_body).status_code
        if kind == 1:
            return server.post_sync(b"{broken").status_code
        namespace = "tenant-a" if kind == 2 else "tenant-b"
        return server.get(
            f"{server.busy_url}/busy/{namespace}/offer-{index}?retryAfter=1"
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(one, range(4 * ROUND)))
    assert sorted(set(codes)) == [200, 400, 429]


def test_counts_add_up_across_two_workers(
    two_workers: HookServer, valid_body: bytes, tmp_path: Path
) -> None:
    children_per_answer = len(orjson.loads(two_workers.post_sync(valid_body).content)["children"])
    rounds = 0
    per_worker: dict[str, float] = {}
    while rounds < MAX_ROUNDS and len(busy_workers(per_worker)) < 2:
        send_round(two_workers, valid_body)
        rounds += 1
        per_worker = per_worker_sync_counts(two_workers.metrics_dir, tmp_path)
    assert len(busy_workers(per_worker)) >= 2, f"one worker served everything: {per_worker}"

    ok, bad = rounds * ROUND + 1, rounds * ROUND  # +1: the request that counted children
    metrics = scrape(two_workers)
    assert metrics[SYNC_OK] == ok
    assert metrics[SYNC_BAD] == bad
    assert sum(per_worker.values()) == ok + bad
    assert metrics[DURATION_COUNT] == ok + bad
    assert metrics[CHILDREN] == ok * children_per_answer
    assert metrics['obol_hook_busy_responses_total{namespace="tenant-a"}'] == rounds * ROUND
    assert metrics['obol_hook_busy_responses_total{namespace="tenant-b"}'] == rounds * ROUND


def busy_workers(per_worker: dict[str, float]) -> list[str]:
    return [worker for worker, count in per_worker.items() if count > 0]


def test_busy_counts_never_carry_the_offer_name(two_workers: HookServer) -> None:
    two_workers.get(two_workers.busy_url + "/busy/tenant-c/secret-offer-name?retryAfter=1")
    text = two_workers.get(two_workers.sync_url + "/metrics").text
    assert "secret-offer-name" not in text
    assert 'obol_hook_busy_responses_total{namespace="tenant-c"}' in text


def test_every_outcome_is_exported_from_the_start(two_workers: HookServer) -> None:
    metrics = scrape(two_workers)
    for outcome in ("ok", "invalid_spec", "bad_request", "error", "unauthorized"):
        assert f'obol_hook_sync_requests_total{{outcome="{outcome}"}}' in metrics


def test_build_info_carries_the_version(two_workers: HookServer) -> None:
    metrics = scrape(two_workers)
    assert metrics[f'obol_hook_build_info{{version="{package_version()}"}}'] == 1

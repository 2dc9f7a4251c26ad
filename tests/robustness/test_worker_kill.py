"""The server survives a worker killed with SIGKILL in the middle of a load.

Design notes:

* The real server (``obol hook serve``, 2 one-thread workers) gets valid sync requests for 300
  distinct offers from four client threads. Each answer is checked to be a 200 for *its own*
  offer (``status.endpoint``) with children for an existing offer, so a mixed-up or partial
  answer would be caught, not only a wrong status.
* While the clients run, one worker (a child of the master, from ``/proc``) gets SIGKILL;
  gunicorn's master starts a new one. A worker serves one request at a time, the sync listener
  closes every connection after its answer, and the listening socket is shared (connections
  waiting in the kernel's accept queue belong to no worker), so at most the one request that
  worker was serving can fail, as a connection error;
  the bound is therefore one connection error per kill, and every answer that arrives is right.
* After the kills, the master must have its full worker count again (new PIDs) and a follow-up
  batch must succeed without a single error. ``-m slow``: five kills over a 20 s load.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.http.http_harness import HookServer, LaunchHook
from tests.robustness.load import run_load, urls, valid_probes, wait_for_workers, workers_of

WORKERS = 2
RESPAWN_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def server(launch: LaunchHook) -> Iterator[HookServer]:
    with launch(workers=WORKERS) as running:
        yield running


@pytest.mark.parametrize(
    ("kills", "seconds"),
    [
        pytest.param(1, 4.0, id="one-kill"),
        pytest.param(5, 20.0, id="five-kills", marks=pytest.mark.slow),
    ],
)
def test_killing_a_worker_mid_load_loses_at_most_its_request(
    server: HookServer, kills: int, seconds: float
) -> None:
    probes = valid_probes(300)
    base = urls(server)
    master = server.gunicorn_master()
    killed: set[int] = set()

    def kill_workers() -> None:
        interval = seconds / (kills + 1)
        for _ in range(kills):
            time.sleep(interval)
            victim = workers_of(master)[0]
            os.kill(victim, signal.SIGKILL)
            killed.add(victim)
            wait_for_workers(master, WORKERS, killed, RESPAWN_TIMEOUT)

    outcome = run_load(
        base, probes, threads=4, seconds=seconds, max_requests=100_000, during=kill_workers
    )
    print(
        f"{outcome.requests} requests, {len(killed)} workers killed, "
        f"{len(outcome.connection_errors)} connection errors: {outcome.connection_errors}"
    )
    assert len(killed) == kills
    assert not outcome.wrong_status, outcome.wrong_status[:5]
    assert not outcome.wrong_body, outcome.wrong_body[:5]
    assert len(outcome.connection_errors) <= kills, outcome.connection_errors

    survivors = wait_for_workers(master, WORKERS, killed, RESPAWN_TIMEOUT)
    assert not set(survivors) & killed
    after = run_load(base, probes, threads=4, seconds=30, max_requests=200, seed=9)
    assert after.requests == 200
    assert not (after.connection_errors or after.wrong_status or after.wrong_body)

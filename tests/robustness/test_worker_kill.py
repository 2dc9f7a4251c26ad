"""The sync server survives its worker killed with SIGKILL in the middle of a load.

Design notes:

* The real server (``obol hook serve``: one gthread worker) gets valid sync requests for 300
  distinct offers from four client threads. Each answer is checked to be a 200 for *its own*
  offer (``status.endpoint``) with children for an existing offer, so a mixed-up or partial
  answer would be caught, not only a wrong status.
* While the clients run, the worker (the master's child, from ``/proc``) gets SIGKILL; gunicorn's
  master starts a new one. The sync listener closes every connection after its answer and the
  listening socket belongs to the master (connections waiting in the kernel's accept queue
  belong to no worker), so at most the requests the worker's threads were serving can fail, as
  connection errors: one per client thread per kill at most, and every answer that arrives is
  right.
* After the kills, the master must have its worker again (a new PID) and a follow-up batch must
  succeed without a single error. ``-m slow``: five kills over a 20 s load.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.http.http_harness import HookServer, LaunchHook
from tests.robustness.load import run_load, urls, valid_probes, wait_for_workers, workers_of

WORKERS = 1
CLIENT_THREADS = 4
RESPAWN_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def server(launch: LaunchHook) -> Iterator[HookServer]:
    with launch() as running:
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
    master = server.process.pid
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
        base,
        probes,
        threads=CLIENT_THREADS,
        seconds=seconds,
        max_requests=100_000,
        during=kill_workers,
    )
    print(
        f"{outcome.requests} requests, {len(killed)} workers killed, "
        f"{len(outcome.connection_errors)} connection errors: {outcome.connection_errors}"
    )
    assert len(killed) == kills
    assert not outcome.wrong_status, outcome.wrong_status[:5]
    assert not outcome.wrong_body, outcome.wrong_body[:5]
    assert len(outcome.connection_errors) <= kills * CLIENT_THREADS, outcome.connection_errors

    survivors = wait_for_workers(master, WORKERS, killed, RESPAWN_TIMEOUT)
    assert not set(survivors) & killed
    after = run_load(base, probes, threads=4, seconds=30, max_requests=200, seed=9)
    assert after.requests == 200
    assert not (after.connection_errors or after.wrong_status or after.wrong_body)

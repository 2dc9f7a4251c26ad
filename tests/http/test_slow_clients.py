"""Clients that trickle or sit silent on either port, with the shipped settings.

Test-design notes:

* The issue's target, per container: while 2 such clients hold on to its port, every probe
  (``/healthz``, ``/readyz``, kubelet's 1 s timeout) answers in time and ``/sync`` p99 stays
  under 1 s. The sync server's spare gthread threads and the busy responder's event loop carry
  that with stock settings (hooks/server/sync_server.py, hooks/server/busy.py).
* Beyond a few such clients the NetworkPolicy is the protection (only Metacontroller reaches the
  sync port, only Traefik the busy port): the 64-client runs print what happens, with no target,
  and check only that both servers answer again once those clients are gone.
* The load itself is tests/support/slow_clients.py, shared with tests/bench/pod_targets.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.http.http_harness import HookServer, LaunchHook
from tests.support import slow_clients

# Long enough for a trickling head to send a byte and for a dozen probes (every 0.25 s): a
# server that gives a slow client a thread or its loop misses them from the first second.
SECONDS = 3.0


@pytest.fixture(scope="module")
def server(launch_hook: LaunchHook) -> Iterator[HookServer]:
    with launch_hook() as server:
        yield server


def attack(
    server: HookServer, body: bytes, port: str, mode: str, clients: int
) -> slow_clients.Outcome:
    attacked = server.sync_url if port == "sync" else server.busy_url
    outcome = slow_clients.run(attacked, server.sync_url, body, mode, clients, SECONDS)
    print(f"{clients} {mode} clients on the {port} port: {outcome.line()}")
    return outcome


@pytest.mark.parametrize("mode", ["trickle", "silent"])
@pytest.mark.parametrize("port", ["sync", "busy"])
def test_two_slow_clients_miss_no_probe_and_keep_sync_p99_under_1s(
    server: HookServer, valid_body: bytes, port: str, mode: str
) -> None:
    outcome = attack(server, valid_body, port, mode, 2)
    assert outcome.probes >= SECONDS / 2 and outcome.probe_misses == 0, outcome
    assert outcome.sync_failures == 0 and outcome.sync_p99 < 1.0, outcome


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["trickle", "silent"])
@pytest.mark.parametrize("port", ["sync", "busy"])
def test_what_64_slow_clients_do(
    server: HookServer, valid_body: bytes, port: str, mode: str
) -> None:
    attack(server, valid_body, port, mode, 64)  # prints what they do; no target
    for url in (server.sync_url, server.busy_url):
        assert requests.get(url + "/readyz", timeout=5).status_code == 200

"""Two servers under one ``obol hook serve``: gunicorn on the sync port, the busy responder apart.

Test-design notes:

* The separation is what lets the NetworkPolicy admit only Metacontroller to /sync and only
  Traefik to the busy responder, so each direction is tested through the real servers.
* ``obol hook serve`` runs the two as one unit (hooks/server/supervise.py): the supervision
  tests start a dedicated server, kill one of its servers or signal the unit, and check that
  nothing is left running and the exit status says what happened.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import requests

from hooks.server.busy import NICENESS
from tests.http.http_harness import (
    HookServer,
    LaunchHook,
    children,
    free_port,
    server_environment,
)

BUSY_PATH = "/busy/llm-sellers/qwen36-fast?retryAfter=2&status=429"
EXIT_WAIT = 40.0  # the unit's own stop wait is 30 s per server


def test_sync_is_refused_on_the_busy_port(hook_server: HookServer, valid_body: bytes) -> None:
    for path in ("/sync", "/finalize"):
        response = requests.post(hook_server.busy_url + path, data=valid_body, timeout=5)
        assert response.status_code == 404
        assert orjson.loads(response.content)["error"] == "not_found"


def test_busy_is_refused_on_the_sync_port(hook_server: HookServer) -> None:
    response = hook_server.get(hook_server.sync_url + BUSY_PATH)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert "Retry-After" not in response.headers


def test_each_endpoint_answers_on_its_own_port(hook_server: HookServer, valid_body: bytes) -> None:
    assert hook_server.post_sync(valid_body).status_code == 200
    assert hook_server.get(hook_server.busy_url + BUSY_PATH).status_code == 429


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_on_both_ports(hook_server: HookServer, path: str) -> None:
    for url in (hook_server.sync_url, hook_server.busy_url):
        response = hook_server.get(url + path)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"


def test_metrics_answer_on_the_sync_port_only(hook_server: HookServer) -> None:
    assert hook_server.get(hook_server.sync_url + "/metrics").status_code == 200
    assert hook_server.get(hook_server.busy_url + "/metrics").status_code == 404


def test_both_ports_say_the_same_server_name(hook_server: HookServer) -> None:
    sync = hook_server.get(hook_server.sync_url + "/healthz")
    busy = hook_server.get(hook_server.busy_url + BUSY_PATH)
    assert sync.headers["Server"] == busy.headers["Server"] == "obol-hook"


def test_the_busy_responder_keeps_connections_alive(hook_server: HookServer) -> None:
    # The gateway reuses its connections for every busy 429; the sync port closes after each.
    with requests.Session() as session:
        first = session.get(hook_server.busy_url + BUSY_PATH, timeout=5)
        second = session.get(hook_server.busy_url + BUSY_PATH, timeout=5)
        sync = session.get(hook_server.sync_url + "/healthz", timeout=5)
    assert first.status_code == second.status_code == 429
    assert first.headers.get("Connection", "keep-alive").lower() == "keep-alive"
    assert sync.headers["Connection"].lower() == "close"


def command_of(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        return cmdline.read().replace(b"\0", b" ").decode()


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return True


def wait_for_exit(process: subprocess.Popen[bytes]) -> int:
    return process.wait(timeout=EXIT_WAIT)


@pytest.mark.parametrize("victim", ["hooks.server.busy", "gunicorn"])
def test_when_one_server_dies_the_unit_stops_and_fails(
    launch_hook: LaunchHook, victim: str
) -> None:
    with launch_hook(workers=1) as server:
        unit = server.process.pid
        servers = children(unit)
        assert len(servers) == 2, [command_of(pid) for pid in servers]
        (target,) = [pid for pid in servers if victim in command_of(pid)]
        os.kill(target, signal.SIGKILL)
        assert wait_for_exit(server.process) != 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(gone(pid) for pid in servers):
            time.sleep(0.05)
        assert all(gone(pid) for pid in servers)


def test_sigterm_stops_both_servers_and_exits_0(launch_hook: LaunchHook) -> None:
    with launch_hook(workers=1) as server:
        servers = children(server.process.pid)
        assert len(servers) == 2
        server.process.send_signal(signal.SIGTERM)
        assert wait_for_exit(server.process) == 0
        assert all(gone(pid) for pid in servers)
        with pytest.raises(requests.ConnectionError):
            requests.get(server.busy_url + "/healthz", timeout=2)


def niceness(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return int(stat.read().rsplit(b")", 1)[1].split()[16])  # field 19: nice


def test_a_429_flood_yields_the_cpu_to_syncs(hook_server: HookServer) -> None:
    # The busy responder runs at a lower scheduling priority than the gunicorn workers.
    servers = {command_of(pid): pid for pid in children(hook_server.process.pid)}
    (busy,) = [pid for command, pid in servers.items() if "hooks.server.busy" in command]
    gunicorn = hook_server.gunicorn_master()
    assert niceness(busy) == niceness(gunicorn) + NICENESS


def test_the_busy_port_listens_once_the_sync_port_is_ready(launch_hook: LaunchHook) -> None:
    # The unit starts gunicorn only once the busy responder listens, so a pod that passes its
    # readiness probe (the sync port's /readyz) never sends the gateway's 429s to a closed port.
    with launch_hook(workers=1) as server:  # returns as soon as the sync /readyz answers
        assert server.get(server.busy_url + BUSY_PATH).status_code == 429


def test_a_busy_port_in_use_fails_the_unit_before_gunicorn_starts(tmp_path: Path) -> None:
    sync_port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]
        metrics = tmp_path / "prometheus"
        metrics.mkdir()
        command = [
            sys.executable, "-c", "from hooks.cli.main import main; main()", "hook", "serve",
            "--bind", f"127.0.0.1:{sync_port}", "--busy-bind", f"127.0.0.1:{busy_port}",
        ]  # fmt: skip
        finished = subprocess.run(
            command,
            env=server_environment(tmp_path, metrics, {}),
            capture_output=True,
            timeout=EXIT_WAIT,
            check=False,
        )
    assert finished.returncode != 0
    assert b"gunicorn" not in finished.stderr.lower(), finished.stderr.decode()[-2000:]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{sync_port}/healthz", timeout=2)

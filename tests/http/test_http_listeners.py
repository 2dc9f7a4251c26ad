"""Two servers, two commands: ``obol hook serve`` (gunicorn) on the sync port and ``obol hook
busy`` (uvicorn) on the busy port, as the Pod's two containers run them.

Test-design notes:

* The separation is what lets the NetworkPolicy admit only Metacontroller to /sync and only
  Traefik to the busy responder, so each direction is tested through the real servers.
* Starting, probing, restarting and stopping them is Kubernetes' job (the Deployment's
  probes and restart policy), not ours: nothing here supervises.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import orjson
import pytest
import requests

from tests.http.http_harness import OBOL, HookServer, server_environment

BUSY_PATH = "/busy/llm-sellers/qwen36-fast?retryAfter=2&status=429"


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


def test_each_server_has_its_own_metrics(hook_server: HookServer) -> None:
    sync = hook_server.get(hook_server.sync_url + "/metrics").text
    busy = hook_server.get(hook_server.busy_url + "/metrics").text
    assert "obol_hook_sync_requests_total" in sync and "obol_hook_busy" not in sync
    assert "obol_hook_busy_responses_total" in busy and "obol_hook_sync" not in busy
    assert 'obol_hook_build_info{version="' in sync and 'obol_hook_build_info{version="' in busy


@pytest.mark.parametrize("command", ["serve", "busy"])
def test_a_taken_port_fails_with_one_line_and_exit_8_before_any_server_starts(
    tmp_path: Path, command: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        variable = "OBOL_BIND" if command == "serve" else "OBOL_BUSY_BIND"
        finished = subprocess.run(
            [*OBOL, command],
            env=server_environment(tmp_path, {variable: f"127.0.0.1:{port}"}),
            capture_output=True,
            timeout=30,
            check=False,
        )
    assert finished.returncode == 8
    assert finished.stderr.decode().splitlines() == [
        f"Error: configuration: {variable}: cannot listen on 127.0.0.1:{port}:"
        " Address already in use"
    ]
    assert finished.stdout == b""


def test_a_retired_variable_is_named_with_what_replaced_it(tmp_path: Path) -> None:
    # An upgraded Deployment may still set OBOL_WORKERS: it is said, never silently ignored,
    # and never stops the server (the taken port stops it here, after the warning).
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"OBOL_BIND": f"127.0.0.1:{port}", "OBOL_WORKERS": "2"}
        finished = subprocess.run(
            [*OBOL, "serve"],
            env=server_environment(tmp_path, env),
            capture_output=True,
            timeout=30,
            check=False,
        )
    assert finished.returncode == 8
    assert finished.stderr.decode().splitlines()[0] == (
        "Warning: OBOL_WORKERS is no longer read: the sync server runs one gunicorn worker;"
        " set OBOL_THREADS for its threads"
    )

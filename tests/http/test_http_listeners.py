"""Two listeners, one app: /sync only on the sync port, /busy only on the busy port.

Test-design notes:

* The separation is what lets the NetworkPolicy admit only Metacontroller to /sync and only
  Traefik to the busy responder, so each direction is tested through the real server, where
  gunicorn sets SERVER_PORT from the listening socket (not from the Host header, which a client
  controls: one test forges it).
* A dedicated one-listener server (``--bind`` equal to ``--busy-bind``) checks that a shared
  port serves everything.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
import requests

from tests.http.http_harness import HookServer, LaunchHook

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


def test_a_forged_host_header_does_not_change_the_listener(hook_server: HookServer) -> None:
    busy_port = hook_server.busy_url.rsplit(":", 1)[1]
    response = hook_server.get(
        hook_server.sync_url + BUSY_PATH, headers={"Host": f"127.0.0.1:{busy_port}"}
    )
    assert response.status_code == 404


def test_each_endpoint_answers_on_its_own_port(hook_server: HookServer, valid_body: bytes) -> None:
    assert hook_server.post_sync(valid_body).status_code == 200
    assert hook_server.get(hook_server.busy_url + BUSY_PATH).status_code == 429


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_metrics_answer_on_both_ports(hook_server: HookServer, path: str) -> None:
    for url in (hook_server.sync_url, hook_server.busy_url):
        assert hook_server.get(url + path).status_code == 200


@pytest.fixture(scope="module")
def one_listener(launch_hook: LaunchHook) -> Iterator[HookServer]:
    with launch_hook(workers=1, one_listener=True) as server:
        yield server


def test_one_shared_listener_serves_sync_and_busy(
    one_listener: HookServer, valid_body: bytes
) -> None:
    assert one_listener.sync_url == one_listener.busy_url
    assert one_listener.post_sync(valid_body).status_code == 200
    assert one_listener.get(one_listener.busy_url + BUSY_PATH).status_code == 429

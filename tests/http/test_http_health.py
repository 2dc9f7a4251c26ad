"""/healthz and /readyz: the kubelet's view of the hook.

Test-design notes:

* Each container has its own probes: the kubelet asks the sync server and the busy responder
  on their own ports, and a container whose server does not answer is restarted.
"""

from __future__ import annotations

import orjson
import pytest

from tests.http.http_harness import HookServer


@pytest.mark.parametrize("port", ["sync", "busy"])
def test_healthz_says_alive(hook_server: HookServer, port: str) -> None:
    response = hook_server.get(getattr(hook_server, f"{port}_url") + "/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert orjson.loads(response.content) == {"status": "alive"}


@pytest.mark.parametrize("port", ["sync", "busy"])
def test_readyz_says_ready(hook_server: HookServer, port: str) -> None:
    response = hook_server.get(getattr(hook_server, f"{port}_url") + "/readyz")
    assert response.status_code == 200
    assert orjson.loads(response.content) == {"status": "ready"}

"""/healthz and /readyz: the kubelet's view of the hook.

Test-design notes:

* Liveness says only "the process answers"; readiness also needs the Prometheus multiprocess
  directory to be writable (a worker that cannot record metrics must not take traffic).
* The real server covers the happy path; the not-ready path uses the app factory with a metrics
  object pointing at a missing directory, since breaking a live server's directory would race
  with its workers.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from hooks.core.settings import Settings
from hooks.server.app import create_app
from hooks.server.metrics import HookMetrics
from tests.http.http_harness import HookServer


def test_healthz_says_alive(hook_server: HookServer) -> None:
    response = hook_server.get(hook_server.sync_url + "/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert orjson.loads(response.content) == {"status": "alive"}


def test_readyz_says_ready(hook_server: HookServer) -> None:
    response = hook_server.get(hook_server.sync_url + "/readyz")
    assert response.status_code == 200
    assert orjson.loads(response.content) == {"status": "ready"}


def test_readyz_is_503_when_metrics_cannot_be_written(tmp_path: Path) -> None:
    metrics = HookMetrics("test", multiprocess_dir=str(tmp_path / "missing"))
    client = create_app(Settings(), metrics=metrics).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    answer = orjson.loads(response.data)
    assert answer["status"] == "not_ready"
    assert "PROMETHEUS_MULTIPROC_DIR" in answer["detail"]
    assert client.get("/healthz").status_code == 200  # alive, just not ready

"""The observation layer wired into the real server: a sync reports what the upstream says.

Test-design notes:

* A tiny loopback HTTP server stands in for the offer's upstream (vLLM-style /health and
  /metrics); ``OBOL_OBSERVE_UPSTREAM_OVERRIDES`` points the offer's in-cluster URL at it, and a
  generous first-probe budget keeps the test independent of scheduling. The observer is built
  before gunicorn forks and started in its worker, so this is the real server's path.
* With observation off (the shared server) the same status says Unknown/NotObserved.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from hooks.core.observation import Observation, Observed
from hooks.core.settings import Settings
from hooks.server.app import handle_sync_body
from tests.http.http_harness import HookServer, LaunchHook

UPSTREAM = "http://vllm-qwen36.llm-sellers.svc.cluster.local:8000"  # examples/inference-qwen36-fast
VLLM_METRICS = b"""\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="qwen"} 3.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="qwen"} 1.0
"""


class FakeUpstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body, status = {"/health": (b"ok", 200), "/metrics": (VLLM_METRICS, 200)}.get(
            self.path, (b"missing", 404)
        )
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def observing_server(launch_hook: LaunchHook, upstream: str) -> Iterator[HookServer]:
    env = {
        "OBOL_OBSERVE": "on",
        "OBOL_OBSERVE_UPSTREAM_OVERRIDES": json.dumps({UPSTREAM: upstream}),
        "OBOL_SYNC_PROBE_BUDGET_MS": "2000",
    }
    with launch_hook(env) as server:
        yield server


def conditions(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in answer["status"]["conditions"]}


def test_a_sync_reports_the_observed_upstream(
    observing_server: HookServer, valid_body: bytes
) -> None:
    for _ in range(4):
        response = observing_server.post_sync(valid_body)
        assert response.status_code == 200
        answer = orjson.loads(response.content)
        assert answer["status"]["upstream"]["httpStatus"] == 200
        assert conditions(answer)["UpstreamHealthy"]["status"] == "True"
        assert answer["resyncAfterSeconds"] == 30  # three probe intervals, observation on


def test_without_observation_the_upstream_is_not_observed(
    hook_server: HookServer, valid_body: bytes
) -> None:
    answer = orjson.loads(hook_server.post_sync(valid_body).content)
    assert "httpStatus" not in answer["status"]["upstream"]
    assert conditions(answer)["UpstreamHealthy"]["status"] == "Unknown"


def test_handle_sync_body_passes_observations_to_the_core(valid_body: bytes) -> None:
    seen: list[Any] = []

    def observe(plan: Any) -> Observed:
        seen.append(plan.upstream.url)
        return Observed(Observation(healthy=True, message="ok", http_status=204))

    answer = handle_sync_body(valid_body, Settings(), observe)
    assert seen == [UPSTREAM]
    assert orjson.loads(answer.body)["status"]["upstream"]["httpStatus"] == 204

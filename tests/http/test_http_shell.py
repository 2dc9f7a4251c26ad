"""The HTTP shell in-process (Flask test client and ``handle_sync_body``): paths a real server
cannot reach without breaking the core on purpose.

Test-design notes:

* The core is replaced by stubs that crash or misbehave, to prove the shell's promises: a JSON
  500 with a generic body (no exception text, since Metacontroller copies bodies into Events),
  and never a 200 that would delete children (no empty list while children exist, no keys
  outside the v2 contract).
* Listener routing is checked with the test client's base URL port, which becomes
  ``SERVER_PORT`` as gunicorn sets it from the listening socket.
* ``create_app`` takes the configuration read once by the command (never the environment).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hooks.config import ShellConfig, load_config
from hooks.core.settings import Settings
from hooks.core.sync import Outcome, SyncResult
from hooks.server import app as app_module
from hooks.server.app import create_app, handle_sync_body
from hooks.server.busy import busy_body, retry_after_seconds
from tests.http.http_harness import example_offer, sync_body

SECRET_TEXT = "detail-that-must-not-leak"


def crash(request: Any, settings: Settings, observations: Any = None) -> Any:
    raise RuntimeError(SECRET_TEXT)


def test_a_crash_in_the_core_is_a_generic_json_500(
    monkeypatch: pytest.MonkeyPatch, valid_body: bytes
) -> None:
    monkeypatch.setattr(app_module, "sync", crash)
    response = create_app(ShellConfig(Settings())).test_client().post("/sync", data=valid_body)
    assert response.status_code == 500
    assert response.content_type == "application/json"
    assert orjson.loads(response.data)["error"] == "internal_error"
    assert SECRET_TEXT.encode() not in response.data


def test_handle_sync_body_hands_the_exception_to_the_shell(
    monkeypatch: pytest.MonkeyPatch, valid_body: bytes
) -> None:
    monkeypatch.setattr(app_module, "sync", crash)
    answer = handle_sync_body(valid_body, Settings())
    assert (answer.status, answer.outcome, answer.child_count) == (500, "error", 0)
    assert isinstance(answer.error, RuntimeError)
    assert answer.offer == "llm-sellers/qwen36-fast"


def existing_children_body() -> bytes:
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "so-qwen36-fast", "namespace": "llm-sellers"}}  # fmt: skip
    return sync_body(
        example_offer("inference-qwen36-fast.yaml"),
        children={"HTTPRoute.gateway.networking.k8s.io/v1": {"llm-sellers/so-qwen36-fast": route}},
    )


@pytest.mark.parametrize(
    "bad_answer",
    [
        pytest.param({"status": {}, "children": []}, id="empty-children-while-children-exist"),
        pytest.param({"status": {}}, id="no-children-key"),
        pytest.param({"status": {}, "children": [{}], "debug": 1}, id="key-outside-contract"),
        pytest.param([], id="not-an-object"),
        pytest.param({"status": {}, "children": b"[{}]"}, id="children-not-a-list"),
    ],
)
def test_a_dangerous_core_answer_becomes_500(
    monkeypatch: pytest.MonkeyPatch, bad_answer: Any
) -> None:
    def core(request: Any, settings: Settings, observe: Any = None) -> Any:
        return SyncResult(Outcome.RENDERED, bad_answer)

    monkeypatch.setattr(app_module, "sync", core)
    answer = handle_sync_body(existing_children_body(), Settings())
    assert answer.status == 500
    assert b"children" not in answer.body


def test_empty_children_are_fine_when_finalizing_or_when_nothing_exists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        app_module,
        "sync",
        lambda request, settings, observe=None: SyncResult(
            Outcome.RENDERED, {"status": {}, "children": []}
        ),
    )
    offer = example_offer("inference-qwen36-fast.yaml")
    assert handle_sync_body(sync_body(offer), Settings()).status == 200
    finalizing = orjson.loads(existing_children_body())
    finalizing["finalizing"] = True
    assert handle_sync_body(orjson.dumps(finalizing), Settings()).status == 200


def test_an_invalid_spec_is_counted_as_invalid_spec() -> None:
    answer = handle_sync_body(sync_body(example_offer("invalid/zero-price.yaml")), Settings())
    assert (answer.status, answer.outcome) == (200, "invalid_spec")


def test_the_flask_app_has_no_busy_route(valid_body: bytes) -> None:
    # The busy responder is a server of its own (hooks.server.busy): one way in for each path.
    client = create_app(ShellConfig(Settings())).test_client()
    assert client.post("/sync", data=valid_body).status_code == 200
    assert client.get("/busy/a/b").status_code == 404


def test_the_app_follows_the_configuration_it_is_given(valid_body: bytes) -> None:
    config = load_config(
        {"OBOL_GATEWAY_NAME": "gw", "OBOL_MAX_REQUEST_BYTES": "4096", "OBOL_HOOK_TOKEN": "tk"}
    )
    app = create_app(config)
    assert app.config["MAX_CONTENT_LENGTH"] == 4096
    client = app.test_client()
    assert client.post("/sync", data=valid_body).status_code == 401
    padded = valid_body + b" " * 4096
    response = client.post("/sync", data=padded, headers={"Authorization": "Bearer tk"})
    assert response.status_code == 413
    answer = client.post("/sync", data=valid_body, headers={"Authorization": "Bearer tk"})
    route = orjson.loads(answer.data)["children"][0]
    assert route["spec"]["parentRefs"][0]["name"] == "gw"


def test_the_default_body_cap_is_8_mib() -> None:
    assert create_app(ShellConfig(Settings())).config["MAX_CONTENT_LENGTH"] == 8 * 1024 * 1024


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 2), ("7", 7), ("0", 1), ("4000", 3600), ("x", 2), ("٣", 2), ("1e3", 2)],
)
def test_retry_after_seconds(raw: str | None, expected: int) -> None:
    assert retry_after_seconds(raw) == expected


def test_retry_after_jitter_bounds() -> None:
    values = {retry_after_seconds("10", jitter=2) for _ in range(200)}
    assert values <= {10, 11, 12}
    assert len(values) > 1


def test_busy_body_has_no_payment_terms() -> None:
    body = orjson.loads(busy_body("ns", "offer", 3))
    assert set(body) == {"error", "offer", "retryAfterSeconds", "message"}


def _sync_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = [line for line in capsys.readouterr().err.splitlines() if '"message":"sync"' in line]
    return [orjson.loads(line) for line in lines]


def test_one_log_line_per_sync_without_the_body(
    capsys: pytest.CaptureFixture[str], valid_body: bytes
) -> None:
    create_app(ShellConfig(Settings(), log_level="debug")).test_client().post(
        "/sync", data=valid_body
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if '"message":"sync"' in line]
    assert len(lines) == 1
    entry = orjson.loads(lines[0])
    assert entry["offer"] == "llm-sellers/qwen36-fast"
    assert (entry["level"], entry["outcome"]) == ("debug", "ok")
    assert entry["children"] > 0 and entry["durationMs"] >= 0
    assert "payTo" not in lines[0] and "spec" not in entry


def test_sync_lines_at_the_default_level_are_the_ones_that_say_something(
    capsys: pytest.CaptureFixture[str], valid_body: bytes
) -> None:
    client = create_app(ShellConfig(Settings(), hook_token="t", log_level="info")).test_client()
    auth = {"Authorization": "Bearer t"}
    invalid = orjson.loads(valid_body)
    invalid["parent"]["spec"]["capacity"]["maxInFlight"] = 0
    assert client.post("/sync", data=valid_body, headers=auth).status_code == 200
    assert client.post("/sync", data=orjson.dumps(invalid), headers=auth).status_code == 200
    assert client.post("/sync", data=b"{", headers=auth).status_code == 400
    assert client.post("/sync", data=valid_body).status_code == 401
    found = [(entry["level"], entry["outcome"], entry["status"]) for entry in _sync_lines(capsys)]
    assert found == [
        ("info", "invalid_spec", 200),
        ("warning", "bad_request", 400),
        ("warning", "unauthorized", 401),
    ]


def test_examples_render_through_the_shell() -> None:
    # Every valid example gives children; keeps this module honest if examples change.
    for name in ("inference-qwen36-fast.yaml", "http-weather-api.yaml"):
        answer = handle_sync_body(sync_body(example_offer(name)), Settings())
        assert answer.status == 200 and answer.child_count > 0

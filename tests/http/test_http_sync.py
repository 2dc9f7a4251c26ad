"""POST /sync, /finalize and /customize: the HTTP contract of the sync port.

Test-design notes:

* The contract is tested on the app in-process (Flask's test client, ``client``), built from
  the configuration as the server builds it; two smoke tests go through the real gunicorn
  server (``hook_server``): the children with only the contract keys, and the same bytes as
  ``obol hook sync`` from another process.
* Bodies are built the way Metacontroller sends them (compact JSON, v2 keys, no observed
  children) from the offers in ``examples/``; the golden tests own the exact child content, so
  these tests check the HTTP contract: status, content type, allowed top-level keys, JSON error
  bodies and the shared code path with ``obol hook sync`` (the same bytes from another process).
* Both cap bodies at 1 MiB, so the 413 test sends a little over 1 MiB.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hooks.core import api
from hooks.core.settings import Settings
from hooks.server.app import handle_sync_body
from tests.http.http_harness import AppClient, HookServer, example_offer, sync_body

RESPONSE_KEYS = {"status", "children", "resyncAfterSeconds", "finalized"}
CHILD_KINDS = {(version, kind) for version, kind, _ in api.CHILD_TYPES}


def json_of(response: Any) -> Any:
    assert response.headers["Content-Type"] == "application/json"
    # A Flask test response (the app in-process) or a requests one (the real server).
    return orjson.loads(response.get_data() if hasattr(response, "get_data") else response.content)


def test_sync_answers_the_children_with_only_the_contract_keys(
    hook_server: HookServer, valid_body: bytes
) -> None:
    response = hook_server.post_sync(valid_body)
    assert response.status_code == 200
    answer = json_of(response)
    assert set(answer) <= RESPONSE_KEYS
    assert {"status", "children"} <= set(answer)
    assert answer["children"], "a valid offer must get children"
    assert {(c["apiVersion"], c["kind"]) for c in answer["children"]} <= CHILD_KINDS
    ready = [c for c in answer["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["reason"] != "InvalidSpec"


def test_the_server_and_obol_hook_sync_share_one_code_path(
    hook_server: HookServer, valid_body: bytes
) -> None:
    # The server runs with the embedded defaults, so Settings() reproduces it in-process.
    assert (
        hook_server.post_sync(valid_body).content == handle_sync_body(valid_body, Settings()).body
    )


def test_keys_are_sorted_and_compact(client: AppClient, valid_body: bytes) -> None:
    response = client.post_sync(valid_body)
    assert response.data == orjson.dumps(orjson.loads(response.data), option=orjson.OPT_SORT_KEYS)


def test_an_invalid_spec_is_200_with_ready_false_invalid_spec(client: AppClient) -> None:
    offer = example_offer("invalid/no-price.yaml")
    expected = offer["metadata"]["annotations"]["examples.obol.org/expected-error"]
    response = client.post_sync(sync_body(offer))
    assert response.status_code == 200
    answer = json_of(response)
    assert set(answer) <= RESPONSE_KEYS
    ready = next(c for c in answer["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert expected in ready["message"]
    assert answer["children"] == []  # a new offer: nothing exists, nothing to keep


def test_finalize_is_served_by_the_same_handler(client: AppClient) -> None:
    body = sync_body(example_offer("inference-qwen36-fast.yaml"), finalizing=True)
    response = client.post_sync(body, path="/finalize")
    assert response.status_code == 200
    answer = json_of(response)
    assert answer["finalized"] is True
    assert set(answer) <= RESPONSE_KEYS


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(b"{not json", "invalid_json", id="garbage"),
        pytest.param(b"", "invalid_json", id="empty"),
        pytest.param(b"\xff\xfe", "invalid_json", id="not-utf8"),
        pytest.param(b"[1, 2]", "malformed_request", id="array"),
        pytest.param(b'"text"', "malformed_request", id="string"),
        pytest.param(b'{"parent": 5}', "malformed_request", id="parent-not-object"),
        pytest.param(b'{"parent": {"metadata": {}}}', "malformed_request", id="no-name"),
    ],
)
def test_a_malformed_request_is_400_json(client: AppClient, body: bytes, error: str) -> None:
    response = client.post_sync(body)
    assert response.status_code == 400
    answer = json_of(response)
    assert set(answer) == {"error", "detail"}
    assert answer["error"] == error
    assert answer["detail"]


def test_a_malformed_request_names_the_field(client: AppClient) -> None:
    answer = json_of(client.post_sync(b'{"parent": 5}'))
    assert answer["detail"].startswith("parent: ")


def test_a_parent_without_a_namespace_is_400_json(client: AppClient) -> None:
    # Metacontroller always sends a namespaced parent's namespace; without one the hook must
    # not guess ("default" would put the offer's children into a namespace nobody chose).
    offer = example_offer("inference-qwen36-fast.yaml")
    del offer["metadata"]["namespace"]
    response = client.post_sync(sync_body(offer))
    assert response.status_code == 400
    answer = json_of(response)
    assert answer["error"] == "malformed_request"
    assert answer["detail"].startswith("parent.metadata.namespace: required field is missing")


def test_an_oversized_body_is_413_json(client: AppClient) -> None:
    cap = int(client.env["OBOL_MAX_REQUEST_BYTES"])
    response = client.post_sync(b" " * (cap + 1))
    assert response.status_code == 413
    answer = json_of(response)
    assert answer["error"] == "payload_too_large"
    assert str(cap) in answer["detail"]


def test_a_body_just_under_the_cap_is_parsed(client: AppClient, valid_body: bytes) -> None:
    cap = int(client.env["OBOL_MAX_REQUEST_BYTES"])
    padded = valid_body + b" " * (cap - len(valid_body))  # JSON allows trailing whitespace
    assert client.post_sync(padded).status_code == 200


def test_an_unknown_path_is_404_json(client: AppClient) -> None:
    response = client.client.get("/no/such/thing")
    assert response.status_code == 404
    assert json_of(response)["error"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", "/sync", "POST"), ("PUT", "/finalize", "POST"), ("POST", "/healthz", "GET")],
)
def test_a_wrong_method_is_405_json(
    client: AppClient, method: str, path: str, allowed: str
) -> None:
    response = client.client.open(path, method=method)
    assert response.status_code == 405
    assert json_of(response)["error"] == "method_not_allowed"
    assert allowed in response.headers["Allow"]


def test_no_token_is_needed_when_none_is_configured(client: AppClient, valid_body: bytes) -> None:
    response = client.post_sync(valid_body, headers={"Authorization": "Bearer anything"})
    assert response.status_code == 200


def test_customize_asks_for_every_serviceoffer_of_every_namespace(
    client: AppClient, valid_body: bytes
) -> None:
    # Metacontroller's customize request is {controller, parent}; a sync body is a superset.
    response = client.post_sync(valid_body, path="/customize")
    assert response.status_code == 200
    # v2 answers are parsed strictly: relatedResources only. No namespace and no selector:
    # Metacontroller lists every namespace (customize/manager.go, selectByLabels).
    assert json_of(response) == {
        "relatedResources": [{"apiVersion": "obol.org/v1alpha1", "resource": "serviceoffers"}]
    }


@pytest.mark.parametrize("body", [b"{", b"[]", b'{"parent": {"metadata": {}}}'])
def test_a_customize_request_without_a_valid_parent_is_400_json(
    client: AppClient, body: bytes
) -> None:
    response = client.post_sync(body, path="/customize")
    assert response.status_code == 400
    assert json_of(response)["error"] in {"invalid_json", "malformed_request"}

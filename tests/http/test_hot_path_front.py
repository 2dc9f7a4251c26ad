"""The WSGI front that answers plain syncs and busy bodies without Flask
(hooks.server.app.HotPathFront).

Test-design notes:

* The front must be invisible except in cost: for every request it answers, the bytes, status
  and headers that matter must equal what the Flask view gives; every request it does not take
  must reach Flask. Equality is checked through the real gunicorn server by sending one body
  twice, once with Content-Length (the front) and once chunked (Flask's view, since the front
  takes only plain Content-Length bodies).
* Which path answered is observed in-process with a ``before_request`` counter on the Flask app:
  it runs for every request Flask handles and never for one the front answers. That is the
  structural form of the performance claim; its size is measured by ``make bench``.
* The busy responder: the front's answer is compared with Flask's view in-process (both WSGI
  callables of one app) over generated namespaces, names and query strings, including the ones
  the front must hand over (upper case, percent-encoded, too long).
* Failures the front owns: a body shorter than its Content-Length (400 JSON) and an exception
  after the core (500 JSON with the generic body, traceback in the log only).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import urlsplit

import orjson
import pytest
import requests
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder, run_wsgi_app

from hooks.core.settings import Settings
from hooks.server.app import create_app
from tests.http.http_harness import HookServer, example_offer, sync_body

TOKEN = "fast-path-token"


def chunks_of(body: bytes, size: int = 4096) -> Iterator[bytes]:
    """The body as a generator: requests then sends it with Transfer-Encoding: chunked."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def counted(app: Flask) -> list[str]:
    """Paths of the requests that went through Flask's request cycle."""
    seen: list[str] = []

    @app.before_request
    def count() -> None:
        from flask import request

        seen.append(request.path)

    return seen


@pytest.mark.parametrize(
    "offer",
    ["inference-qwen36-fast.yaml", "http-weather-api.yaml", "inference-obol-ethereum.yaml"],
)
@pytest.mark.parametrize("path", ["/sync", "/finalize"])
def test_front_and_flask_view_answer_byte_identically(
    hook_server: HookServer, offer: str, path: str
) -> None:
    body = sync_body(example_offer(offer))
    plain = hook_server.post_sync(body, path)
    chunked = hook_server.post_sync(chunks_of(body), path)  # type: ignore[arg-type]
    assert plain.status_code == chunked.status_code == 200
    assert plain.content == chunked.content
    for response in (plain, chunked):
        assert response.headers["Content-Type"] == "application/json"
        assert int(response.headers["Content-Length"]) == len(response.content)


def test_front_and_flask_view_refuse_malformed_requests_alike(hook_server: HookServer) -> None:
    for body in (b"{not json", b"[]", b'{"parent": 3}', orjson.dumps({"parent": {}})):
        plain = hook_server.post_sync(body)
        chunked = hook_server.post_sync(chunks_of(body))  # type: ignore[arg-type]
        assert plain.status_code == chunked.status_code == 400, body
        assert plain.content == chunked.content
        assert plain.headers["Content-Type"] == "application/json"


def test_plain_syncs_skip_flask_and_everything_else_goes_through_it(valid_body: bytes) -> None:
    app = create_app(Settings(), hook_token=TOKEN, max_request_bytes=1 << 20)
    through_flask = counted(app)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}

    assert client.post("/sync", data=valid_body, headers=auth).status_code == 200
    assert client.post("/finalize", data=valid_body, headers=auth).status_code == 200
    assert through_flask == []

    assert client.post("/sync", data=valid_body).status_code == 401  # no token
    assert client.post("/sync", data=b"x" * (2 << 20), headers=auth).status_code == 413
    assert client.get("/sync", headers=auth).status_code == 405
    assert client.post("/sync/", data=valid_body, headers=auth).status_code == 404
    assert client.get("/healthz").status_code == 200
    assert through_flask == ["/sync", "/sync", "/sync", "/sync/", "/healthz"]


def test_the_busy_port_still_refuses_syncs(valid_body: bytes) -> None:
    app = create_app(Settings(), sync_port=8080, busy_port=8081)
    client = app.test_client()
    on_busy = client.post("/sync", data=valid_body, environ_overrides={"SERVER_PORT": "8081"})
    assert on_busy.status_code == 404
    assert on_busy.json == {"error": "not_found", "detail": "no such endpoint on this port"}
    on_sync = client.post("/sync", data=valid_body, environ_overrides={"SERVER_PORT": "8080"})
    assert on_sync.status_code == 200


def test_a_body_shorter_than_its_content_length_is_a_400(
    hook_server: HookServer, valid_body: bytes
) -> None:
    parts = urlsplit(hook_server.sync_url)
    head = (
        f"POST /sync HTTP/1.1\r\nHost: hook\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(valid_body) + 100}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(head + valid_body)
        sock.shutdown(socket.SHUT_WR)  # the promised last 100 bytes never come
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 400"), answer[:200]
    body = rest.partition(b"\r\n\r\n")[2]
    assert orjson.loads(body) == {
        "error": "incomplete_body",
        "detail": "request body ended before its Content-Length",
    }
    assert hook_server.post_sync(valid_body).status_code == 200


def test_a_failure_after_the_core_is_a_generic_500(
    valid_body: bytes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(), cache_entries=0)
    shell = cast(Any, app.view_functions["sync"]).__self__

    def broken(*_: Any, **__: Any) -> None:
        raise OSError("metrics directory vanished")

    monkeypatch.setattr(shell.metrics, "observe_sync", broken)
    response = app.test_client().post("/sync", data=valid_body)
    assert response.status_code == 500
    assert response.json == {
        "error": "internal_error",
        "detail": "the hook failed to answer; the hook's log has the details",
    }
    assert b"vanished" not in response.data


def test_requests_library_chunked_upload_really_is_chunked(hook_server: HookServer) -> None:
    # Guards the equality tests above: they compare two paths only if this holds.
    prepared = requests.Request(
        "POST", hook_server.sync_url + "/sync", data=chunks_of(b"{}")
    ).prepare()
    assert prepared.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in prepared.headers


def wsgi_answer(wsgi: Any, path: str, query: str) -> tuple[str, dict[str, str], bytes]:
    environ = EnvironBuilder(path=path, query_string=query, method="GET").get_environ()
    body, status, headers = run_wsgi_app(wsgi, environ)
    return status, dict(headers), b"".join(body)


BUSY_APP = create_app(Settings())
FLASK_ONLY = BUSY_APP.wsgi_app.app  # type: ignore[attr-defined]
NAME_CHARS = "abcz09-.A_%/ é"
KUBE_NAMES = st.from_regex(r"[a-z0-9][-a-z0-9.]{0,70}", fullmatch=True)
QUERIES = st.one_of(
    st.sampled_from(["", "retryAfter=5", "retryAfter=5&status=429", "status=429&retryAfter=7",
                     "retryAfter=", "retryAfter", "retryAfter=%37", "retryAfter=99999999",
                     "retryAfter=3&retryAfter=9", "retryAfter=-1", "retryAfter=1e3"]),
    st.text(alphabet="retryAfte=&%0123456789", max_size=30),
)  # fmt: skip


@given(
    namespace=st.one_of(KUBE_NAMES, st.text(alphabet=NAME_CHARS, min_size=1, max_size=70)),
    name=st.one_of(KUBE_NAMES, st.text(alphabet=NAME_CHARS, min_size=1, max_size=260)),
    query=QUERIES,
)
def test_busy_front_answers_exactly_like_the_flask_view(
    namespace: str, name: str, query: str
) -> None:
    path = f"/busy/{namespace}/{name}"
    assert wsgi_answer(BUSY_APP, path, query) == wsgi_answer(FLASK_ONLY, path, query)


def test_plain_busy_requests_skip_flask_and_unusual_ones_go_through_it() -> None:
    app = create_app(Settings(), sync_port=8080, busy_port=8081)
    through_flask = counted(app)
    client = app.test_client()
    on_busy = {"SERVER_PORT": "8081"}
    plain = client.get("/busy/llm-sellers/qwen36.fast?retryAfter=4", environ_overrides=on_busy)
    assert plain.status_code == 429
    assert plain.headers["Retry-After"] == "4"
    assert plain.headers["Cache-Control"] == "no-store"
    assert plain.headers["Content-Type"] == "application/json"
    assert plain.json is not None and plain.json["offer"] == "llm-sellers/qwen36.fast"
    assert through_flask == []

    assert client.get("/busy/Tenant/offer", environ_overrides=on_busy).status_code == 429
    assert client.get("/busy/ns/of%20fer", environ_overrides=on_busy).status_code == 429
    assert client.head("/busy/ns/offer", environ_overrides=on_busy).status_code == 429
    assert through_flask == ["/busy/Tenant/offer", "/busy/ns/of fer", "/busy/ns/offer"]
    # On the sync port Flask's listener check answers 404 before the counter runs.
    on_sync = client.get("/busy/ns/offer", environ_overrides={"SERVER_PORT": "8080"})
    assert on_sync.status_code == 404

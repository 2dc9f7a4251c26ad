"""HTTP error paths the HTTP tests do not cover yet, through a real server with a bearer token.

Design notes:

* tests/http already covers 413 for a plain oversized body, 404 on both ports, 405 on the sync
  port and 401 in detail; this module adds the combinations a hostile or broken client
  produces: an oversized body without a token (401 first: the body is never read), a declared
  Content-Length over the cap with no body behind it (413 at once, no wait for the body), a
  chunked body over the cap (cut at the cap, answered 413 JSON, the worker free again), 405 and
  404 on the busy port, and malformed HTTP that the servers' parsers refuse before an app runs
  (gunicorn on the sync port, uvicorn's httptools on the busy port; answered as JSON too).
* Raw sockets where ``requests`` would fix the request up; every socket has a short timeout.
* Under ``-m slow``: stalled connections must not stop syncs. A plain gunicorn worker would block
  on each (``sync``: until the 30 s worker timeout); hooks/server/gunicorn_worker.py sends a
  connection that has sent nothing after 0.1 s back to its poller and bounds every later stalled
  read at 2 s, so two idle or half-sent connections delay a sync by a few seconds at most, inside
  Metacontroller's 5 s hook timeout.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import orjson
import pytest
import requests

from tests.http.http_harness import HookServer, LaunchHook, example_offer, sync_body
from tests.robustness.load import workers_of

TOKEN = "robustness-token"
CAP = 64 * 1024
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(launch: LaunchHook) -> Iterator[HookServer]:
    with launch({"OBOL_HOOK_TOKEN": TOKEN, "OBOL_MAX_REQUEST_BYTES": str(CAP)}) as running:
        yield running


@pytest.fixture(scope="module")
def valid_body() -> bytes:
    return sync_body(example_offer("inference-qwen36-fast.yaml"))


def exchange(url: str, data: bytes, timeout: float = 3.0) -> tuple[bytes, float]:
    """Send raw bytes, read until the server closes; the answer and how long it took."""
    parts = urlsplit(url)
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer, time.monotonic() - started


def status_and_json(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    parsed = orjson.loads(body)
    assert isinstance(parsed, dict)
    return status, parsed


def test_an_oversized_body_without_the_token_is_401_json(server: HookServer) -> None:
    response = requests.post(server.sync_url + "/sync", data=b" " * (16 * CAP), timeout=10)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert orjson.loads(response.content)["error"] == "unauthorized"


def test_a_declared_length_over_the_cap_is_413_without_waiting_for_the_body(
    server: HookServer,
) -> None:
    request = (
        f"POST /sync HTTP/1.1\r\nHost: hook\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {100 * CAP}\r\n\r\n{{"
    ).encode()
    answer, seconds = exchange(server.sync_url, request)
    status, body = status_and_json(answer)
    assert (status, body["error"]) == (413, "payload_too_large")
    assert seconds < 2.0


def test_a_chunked_body_over_the_cap_is_cut_and_answered_413_json(
    server: HookServer, valid_body: bytes
) -> None:
    def chunks() -> Iterator[bytes]:
        yield valid_body
        for _ in range(32):
            yield b"x" * 8192  # 256 KiB after a valid request: over the 64 KiB cap

    response = requests.post(server.sync_url + "/sync", data=chunks(), headers=AUTH, timeout=10)
    # Werkzeug reads a chunked body only up to the cap; the byte after it makes the answer 413.
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    assert orjson.loads(response.content)["error"] == "payload_too_large"
    started = time.monotonic()
    follow_up = requests.post(server.sync_url + "/sync", data=valid_body, headers=AUTH, timeout=5)
    assert follow_up.status_code == 200 and time.monotonic() - started < 2.0


def test_a_chunked_body_exactly_at_the_cap_is_answered(
    server: HookServer, valid_body: bytes
) -> None:
    padded = valid_body + b" " * (CAP - len(valid_body))  # JSON allows trailing whitespace
    assert len(padded) == CAP

    def chunks() -> Iterator[bytes]:
        for start in range(0, CAP, 8192):
            yield padded[start : start + 8192]

    response = requests.post(server.sync_url + "/sync", data=chunks(), headers=AUTH, timeout=10)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("DELETE", "/busy/ns/offer", 405, "method_not_allowed"),
        ("POST", "/busy/ns/offer", 405, "method_not_allowed"),
        ("POST", "/no/such/thing", 404, "not_found"),
        ("PUT", "/sync", 404, "not_found"),  # /sync does not exist on the busy port
    ],
)
def test_errors_on_the_busy_port_are_json(
    server: HookServer, method: str, path: str, status: int, error: str
) -> None:
    response = requests.request(method, server.busy_url + path, timeout=5)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert orjson.loads(response.content)["error"] == error


MALFORMED_HTTP = {
    "tls-handshake": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
    "request-line-too-long": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "too-many-headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-%d: y\r\n" % n for n in range(200))
    + b"\r\n",
    "header-too-large": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    "content-length-not-a-number": b"POST /sync HTTP/1.1\r\nHost: x\r\nContent-Length: ab\r\n\r\n",
    "content-length-and-chunked": b"POST /sync HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
}


def test_malformed_http_is_refused_by_gunicorn_and_the_workers_survive(
    server: HookServer, valid_body: bytes
) -> None:
    workers = workers_of(server.gunicorn_master())
    for name, request in MALFORMED_HTTP.items():
        answer, _ = exchange(server.sync_url, request)
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, (name, answer[:200])
        # gunicorn answers these itself, before the app: as JSON too, and without its name.
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"Content-Type: application/json" in head, (name, head)
        assert b"gunicorn" not in head.lower(), (name, head)
        assert orjson.loads(body)["status"] == status, (name, body)
    assert workers_of(server.gunicorn_master()) == workers
    response = requests.post(server.sync_url + "/sync", data=valid_body, headers=AUTH, timeout=5)
    assert response.status_code == 200


HOOK_TIMEOUT = 5.0  # metacontroller/compositecontroller.yaml: hooks.core.sync.webhook.timeout
STALLS = {
    # (port, bytes sent before going silent)
    "idle": ("busy", b""),
    "partial-headers": ("busy", b"GET /busy/ns/offer HTTP/1.1\r\nHost: hook\r\n"),
    "partial-body": (  # with the token: without it the hook answers 401 unread
        "sync",
        b"POST /sync HTTP/1.1\r\nHost: hook\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {TOKEN}\r\n".encode()
        + b"Content-Length: 1000\r\n\r\n{",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "stall",
    [
        pytest.param("idle", id="idle"),
        pytest.param("partial-headers"),
        pytest.param("partial-body"),
    ],
)
def test_stalled_connections_do_not_stop_syncs(
    server: HookServer, valid_body: bytes, stall: str
) -> None:
    port, sent = STALLS[stall]
    parts = urlsplit(server.busy_url if port == "busy" else server.sync_url)
    stalled = [socket.create_connection((parts.hostname, parts.port)) for _ in range(2)]
    try:
        for sock in stalled:
            sock.sendall(sent)
        time.sleep(0.2)
        # Answered within Metacontroller's hook timeout, though a worker may first spend up to
        # about 3 s on each silent connection (1 s for the first byte, then gunicorn's
        # close_graceful lingers up to 2 s for the peer's FIN).
        response = requests.post(
            server.sync_url + "/sync", data=valid_body, headers=AUTH, timeout=HOOK_TIMEOUT
        )
        assert response.status_code == 200
    finally:
        for sock in stalled:
            sock.close()


def _log_lines_since(server: HookServer, offset: int) -> list[dict[str, object]]:
    text = server.log_path.read_text(errors="replace")[offset:]
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("stall", ["partial-headers", "partial-body"])
def test_a_stalled_client_is_one_warning_line_without_traceback(
    server: HookServer, stall: str
) -> None:
    port, sent = STALLS[stall]
    parts = urlsplit(server.busy_url if port == "busy" else server.sync_url)
    offset = len(server.log_path.read_text(errors="replace"))
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(sent)
        sock.settimeout(10)
        answer = b""
        while chunk := sock.recv(65536):  # the worker gives up after its 2 s socket timeout
            answer += chunk
    if stall == "partial-body":
        status, body = status_and_json(answer)
        assert status == 400 and "stopped arriving" in str(body["detail"])
    else:
        assert answer == b""  # nothing to answer a request that never was
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not _log_lines_since(server, offset):
        time.sleep(0.1)
    lines = _log_lines_since(server, offset)
    assert len(lines) == 1, lines
    assert lines[0]["level"] == "warning" and "exception" not in lines[0], lines


@pytest.mark.parametrize(
    "name", ["tls-handshake", "content-length-not-a-number", "content-length-and-chunked"]
)
def test_malformed_http_on_the_busy_port_is_a_json_400(server: HookServer, name: str) -> None:
    # uvicorn's parser refuses these before the busy responder sees them; as JSON here too.
    request = MALFORMED_HTTP[name].replace(b"/sync", b"/busy/ns/offer")
    answer, _ = exchange(server.busy_url, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), (name, head)
    assert b"content-type: application/json" in head.lower(), (name, head)
    assert orjson.loads(body)["error"] == "bad_request", (name, body)
    assert server.get(server.busy_url + "/busy/ns/offer?retryAfter=1").status_code == 429

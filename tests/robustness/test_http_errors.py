"""HTTP error paths the HTTP tests do not cover yet, through a real server with a bearer token.

Design notes:

* tests/http already covers 413 for a plain oversized body, 404 on both ports, 405 on the sync
  port and 401 in detail; this module adds the combinations a hostile or broken client
  produces: an oversized body without a token (401 first: the body is never read), a declared
  Content-Length over the cap with no body behind it (413 at once, no wait for the body), a
  chunked body over the cap (cut at the cap, answered 413 JSON, the worker free again), 405 and
  404 on the busy port, and malformed HTTP that the stock servers' parsers refuse with their
  own 400 before an app runs (gunicorn on the sync port, uvicorn's h11 on the busy port, which
  also refuses a request head over 8 KiB), after which both keep serving.
* Raw sockets where ``requests`` would fix the request up; every socket has a short timeout.
* Clients that stall on purpose are tests/http/test_slow_clients.py's topic.
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


def test_malformed_http_is_refused_by_gunicorn_and_its_worker_survives(
    server: HookServer, valid_body: bytes
) -> None:
    worker = server.gunicorn_worker()
    for name, request in MALFORMED_HTTP.items():
        answer, _ = exchange(server.sync_url, request)
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, (name, answer[:200])
    assert server.gunicorn_worker() == worker
    response = requests.post(server.sync_url + "/sync", data=valid_body, headers=AUTH, timeout=5)
    assert response.status_code == 200


# h11 reads a head with both lengths by its Transfer-Encoding, as RFC 9112 section 6.3 allows,
# and bounds a head's bytes, not its number of fields.
@pytest.mark.parametrize(
    "name", sorted(set(MALFORMED_HTTP) - {"content-length-and-chunked", "too-many-headers"})
)
def test_malformed_http_on_the_busy_port_is_a_400_and_it_keeps_serving(
    server: HookServer, name: str
) -> None:
    request = MALFORMED_HTTP[name].replace(b"/sync", b"/busy/ns/offer")
    answer, _ = exchange(server.busy_url, request)
    assert answer.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 431 ")), (name, answer[:200])
    assert server.get(server.busy_url + "/busy/ns/offer?retryAfter=1").status_code == 429

"""The busy responder: what a buyer of a saturated offer gets instead of a payment quote.

Test-design notes:

* Traefik's errors Middleware copies the responder's headers and body and forces the status to
  the caught 429, so headers and body are the contract: ``Retry-After`` (integer seconds),
  ``Content-Type: application/json``, ``Cache-Control: no-store``, a small JSON body, and never
  any x402 payment terms (no ``accepts``, no ``x402Version``, no PAYMENT-REQUIRED header).
* ``retryAfter`` comes from the Middleware's query (hooks.core.admission.busy_query); a table covers
  the fallback (2) and the clamp (1..3600).
* Request heads: over 8 KiB refused whether the head arrives whole (the app's 431) or in pieces
  (h11's 400 once 8 KiB are buffered incomplete), and a 1 MB head is never buffered whole (the
  responder's RSS stays put). Through real Traefik: tests/e2e/test_admission_chain.py.
* Jitter is random by design, so its test checks bounds over many draws on a dedicated server,
  plus that more than one value occurs (the chance that 60 draws from 0..3 agree is 4^-59).
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import orjson
import pytest

from hooks.core.admission import ADMITTED_HEADER, busy_query
from tests.http.http_harness import HookServer, LaunchHook
from tests.support.rss import rss_bytes

X402_BODY_KEYS = {"accepts", "x402Version", "paymentRequirements", "payTo", "price", "resource"}
X402_HEADERS = {"payment-required", "x-payment-required", "payment-response", "x-payment-response"}


def busy(server: HookServer, query: str) -> tuple[int, dict[str, str], dict[str, object]]:
    response = server.get(server.busy_url + query)
    headers = {k.lower(): v for k, v in response.headers.items()}
    return response.status_code, headers, orjson.loads(response.content)


def test_saturation_is_429_with_retry_after_and_json(hook_server: HookServer) -> None:
    # Exactly the path and query the offer's errors Middleware asks for (Traefik fills {status}).
    query = busy_query("llm-sellers", "qwen36-fast", 5).replace("{status}", "429")
    status, headers, body = busy(hook_server, query)
    assert status == 429
    assert headers["retry-after"] == "5"
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    assert body["error"] == "offer_saturated"
    assert body["offer"] == "llm-sellers/qwen36-fast"
    assert body["retryAfterSeconds"] == 5
    assert "Retry after 5 seconds" in str(body["message"])
    assert "No payment was quoted or charged" in str(body["message"])
    assert headers["x-obol-reject-reason"] == "offer_saturated"


def test_a_request_past_the_global_limit_is_told_it_hit_its_buyer_limit(
    hook_server: HookServer,
) -> None:
    # The route marks requests the global limit let through (X-Obol-Admitted: true); Traefik's
    # errors Middleware forwards the original request headers to the responder.
    query = busy_query("llm-sellers", "qwen36-fast", 3).replace("{status}", "429")
    response = hook_server.get(hook_server.busy_url + query, headers={"X-Obol-Admitted": "true"})
    body = orjson.loads(response.content)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.headers["X-Obol-Reject-Reason"] == body["error"] == "buyer_limit"
    assert body["retryAfterSeconds"] == 3
    assert "Retry after 3 seconds" in str(body["message"])
    assert "not charged" in str(body["message"])
    other = hook_server.get(hook_server.busy_url + query, headers={"X-Obol-Admitted": "yes"})
    assert other.headers["X-Obol-Reject-Reason"] == "offer_saturated"  # only the route's value


def test_no_x402_terms_are_ever_returned(hook_server: HookServer) -> None:
    status, headers, body = busy(hook_server, "/busy/tenant-a/weather-api?retryAfter=2&status=402")
    assert status == 429  # whatever status Traefik caught, the responder says 429
    assert not X402_BODY_KEYS & set(body)
    assert not X402_HEADERS & set(headers)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("retryAfter=7", 7, id="given"),
        pytest.param("", 2, id="missing"),
        pytest.param("retryAfter=", 2, id="empty"),
        pytest.param("retryAfter=abc", 2, id="not-a-number"),
        pytest.param("retryAfter=-5", 2, id="negative"),
        pytest.param("retryAfter=2.5", 2, id="fraction"),
        pytest.param("retryAfter=0", 1, id="zero-clamped-to-1"),
        pytest.param("retryAfter=3600", 3600, id="maximum"),
        pytest.param("retryAfter=3601", 3600, id="above-maximum"),
        pytest.param("retryAfter=86401", 3600, id="a day and a second"),
        pytest.param("retryAfter=99999999999", 3600, id="absurd-clamped-to-the-maximum"),
        pytest.param("retryAfter=0000000000003", 3, id="leading-zeros"),
    ],
)
def test_retry_after_falls_back_and_clamps(
    hook_server: HookServer, raw: str, expected: int
) -> None:
    status, headers, body = busy(hook_server, f"/busy/ns/offer?{raw}")
    assert status == 429
    assert headers["retry-after"] == str(expected)
    assert body["retryAfterSeconds"] == expected


def test_names_that_are_not_kubernetes_names_are_not_echoed(hook_server: HookServer) -> None:
    status, _, body = busy(hook_server, "/busy/Not_A_Namespace/%3Cscript%3E?retryAfter=2")
    assert status == 429
    assert "offer" not in body


@pytest.fixture(scope="module")
def jitter_server(launch_hook: LaunchHook) -> Iterator[HookServer]:
    with launch_hook({"OBOL_BUSY_JITTER_SECONDS": "3"}) as server:
        yield server


def test_jitter_stays_within_zero_to_the_configured_seconds(jitter_server: HookServer) -> None:
    seen = set()
    for _ in range(60):
        status, headers, body = busy(jitter_server, "/busy/ns/offer?retryAfter=5")
        assert status == 429
        value = int(headers["retry-after"])
        assert 5 <= value <= 8
        assert body["retryAfterSeconds"] == value  # header and body agree
        seen.add(value)
    assert len(seen) > 1


def test_no_jitter_by_default(hook_server: HookServer) -> None:
    values = {busy(hook_server, "/busy/ns/offer?retryAfter=4")[1]["retry-after"] for _ in range(20)}
    assert values == {"4"}


def test_the_gateway_keeps_its_connection_to_the_responder(hook_server: HookServer) -> None:
    # Traefik keeps connections to the busy Service alive; a TCP connect per 429 cost it about
    # 3x the CPU (tests/bench/dataplane.py). Three 429s over one connection, none closing it.
    parts = urlsplit(hook_server.busy_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", "/busy/llm-sellers/qwen36-fast?retryAfter=2&status=429")
            response = connection.getresponse()
            assert response.status == 429
            assert orjson.loads(response.read())["error"] == "offer_saturated"
            assert (response.getheader("Connection") or "").lower() != "close"
            assert connection.sock is not None  # still the same open connection
    finally:
        connection.close()


def test_answers_on_a_kept_alive_connection_do_not_wait_for_delayed_acks(
    hook_server: HookServer,
) -> None:
    # The answer goes out in two writes (head, body); without TCP_NODELAY on the accepted
    # socket the second waits for the peer's delayed ACK, about 40 ms per 429 on Linux: 20 of
    # them would take 0.8 s. Loopback answers them in a few ms each.
    parts = urlsplit(hook_server.busy_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        started = time.monotonic()
        for _ in range(20):
            connection.request("GET", "/busy/ns/offer?retryAfter=2")
            assert connection.getresponse().read()
        assert time.monotonic() - started < 0.5
    finally:
        connection.close()


def test_the_sync_listener_closes_after_each_answer(hook_server: HookServer) -> None:
    # Only the busy listener keeps connections (gunicorn's keepalive is 0 on the sync port).
    response = hook_server.get(hook_server.sync_url + "/healthz")
    assert response.status_code == 200
    assert response.headers.get("Connection", "").lower() == "close"


def test_a_per_buyer_429_without_the_payer_header_is_counted_and_warned(
    hook_server: HookServer,
) -> None:
    def missing() -> float:
        text = hook_server.get(f"{hook_server.busy_url}/metrics").text
        prefix = 'obol_hook_busy_missing_payer_total{namespace="nopayer"} '
        return sum(
            float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)
        )

    before = missing()
    url = f"{hook_server.busy_url}/busy/nopayer/offer?retryAfter=2"
    admitted = {ADMITTED_HEADER: "true"}
    # With the payer header (the verifier sent it): nothing to report.
    hook_server.get(url, headers={**admitted, "X-Payment-Payer": "0x" + "ab" * 20})
    assert missing() == before
    # Without it every buyer shares one per-buyer bucket: counted, and one warning line.
    reply = hook_server.get(url, headers=admitted)
    assert reply.status_code == 429 and reply.json()["error"] == "buyer_limit"
    assert missing() == before + 1
    assert "per-buyer 429 without a payer header" in hook_server.log_tail()


def head_of(size: int) -> bytes:
    """A busy request whose head is exactly ``size`` bytes."""
    start = b"GET /busy/ns/offer?retryAfter=1 HTTP/1.1\r\nHost: hook\r\nX-Pad: "
    return start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"


def status_of(server: HookServer, head: bytes, chunk: int) -> int:
    parts = urlsplit(server.busy_url)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        try:
            for start in range(0, len(head), chunk):
                sock.sendall(head[start : start + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed before the rest arrived: what we want
        return int(sock.recv(65536).split(b" ", 2)[1])


@pytest.mark.parametrize("chunk", [64 * 1024, 1024], ids=["whole", "in-pieces"])
def test_a_head_over_8_kib_is_refused_and_one_under_it_answered(
    hook_server: HookServer, chunk: int
) -> None:
    assert status_of(hook_server, head_of(8 * 1024 - 64), chunk) == 429
    assert status_of(hook_server, head_of(8 * 1024 + 64), chunk) in (400, 431)


def test_a_1_mb_head_is_refused_without_being_buffered(hook_server: HookServer) -> None:
    pid = hook_server.busy_process.pid
    before = rss_bytes(pid)
    for _ in range(20):
        assert status_of(hook_server, head_of(1 << 20), 64 * 1024) == 400
    assert rss_bytes(pid) - before < 8 * 2**20
    assert status_of(hook_server, head_of(512), 512) == 429

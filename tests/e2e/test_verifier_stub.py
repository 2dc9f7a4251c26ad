"""The stand-in verifier without a cluster: what it accepts, refuses, and charges.

Not marked ``e2e``: loopback servers only (the stand-in, and a tiny upstream in this process).
It pins the parts of :mod:`.verifier_stub` the e2e suite relies on, including the ones no
gateway test reaches: a quote published with a wrong EIP-712 domain cannot be paid (the token
ledger recovers the signer with the token's real domain), the v1 header name ``X-PAYMENT`` is
accepted, an unknown route fails closed, and nothing is settled for an upstream error.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from .buyer import Buyer
from .verifier_stub import VerifierStub

BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
ROUTE: dict[str, Any] = {
    "pattern": "/services/demo/*",
    "price": "0.002",
    "payTo": "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31",
    "network": "eip155:8453",
    "assetAddress": BASE_USDC,
    "assetDecimals": 6,
    "assetSymbol": "USDC",
    "assetTransferMethod": "eip3009",
    "eip712Name": "USD Coin",
    "eip712Version": "2",
    "maxTimeoutSeconds": 300,
    "offerNamespace": "shop",
    "offerName": "demo",
    "upstreamURL": "http://demo.shop.svc.cluster.local:8000",
    "stripPrefix": "/services/demo",
    "perBuyerMaxInFlight": 1,
    "retryAfterSeconds": 4,
}


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        status = 503 if self.path.startswith("/down") else 200
        body = json.dumps({"path": self.path, "payer": self.headers.get("X-Payment-Payer")})
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[VerifierStub]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    address = f"http://127.0.0.1:{upstream.server_address[1]}"
    server = VerifierStub(upstream_resolver=lambda url: address)
    server.set_routes([ROUTE])
    server.start()
    yield server
    server.stop()
    upstream.shutdown()
    upstream.server_close()


def _quote(stub: VerifierStub, path: str = "/services/demo/v1/models") -> requests.Response:
    reply = requests.get(stub.proxy_url + path, timeout=10)
    assert reply.status_code == 402, reply.text
    return reply


def test_a_paid_request_is_proxied_settled_once_and_the_balance_moves(stub: VerifierStub) -> None:
    buyer = Buyer()
    stub.fund(buyer.address, 10_000)
    headers = buyer.pay(_quote(stub))
    reply = requests.get(stub.proxy_url + "/services/demo/v1/models", headers=headers, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"path": "/v1/models", "payer": buyer.address}
    assert "X-PAYMENT-RESPONSE" in reply.headers
    [settled] = stub.settlements()
    assert (settled.payer, settled.amount, settled.upstream_status) == (buyer.address, "2000", 200)
    assert stub.chain.balance(buyer.address, BASE_USDC) == 8_000


def test_the_v1_header_name_is_accepted(stub: VerifierStub) -> None:
    buyer = Buyer()
    stub.fund(buyer.address, 10_000)
    value = buyer.pay(_quote(stub))["PAYMENT-SIGNATURE"]
    reply = requests.get(
        stub.proxy_url + "/services/demo/x", headers={"X-PAYMENT": value}, timeout=10
    )
    assert reply.status_code == 200, reply.text


def test_a_quote_with_a_wrong_eip712_domain_cannot_be_paid(stub: VerifierStub) -> None:
    # Base USDC signs as "USD Coin"; a quote that says "USDC" makes the buyer sign a digest the
    # token contract (the ledger, which takes the domain from the SDK's asset table) rejects.
    stub.set_routes([{**ROUTE, "eip712Name": "USDC"}])
    buyer = Buyer()
    stub.fund(buyer.address, 10_000)
    headers = buyer.pay(_quote(stub))
    reply = requests.get(stub.proxy_url + "/services/demo/x", headers=headers, timeout=10)
    assert reply.status_code == 402
    assert "invalid payment" in reply.json()["error"]
    assert stub.settlements() == [] and stub.chain.transfers == []


def test_a_payment_without_funds_is_refused(stub: VerifierStub) -> None:
    buyer = Buyer()  # never funded
    headers = buyer.pay(_quote(stub))
    reply = requests.get(stub.proxy_url + "/services/demo/x", headers=headers, timeout=10)
    assert reply.status_code == 402 and stub.settlements() == []


def test_a_signature_from_another_key_is_refused(stub: VerifierStub) -> None:
    buyer, thief = Buyer(), Buyer()
    stub.fund(buyer.address, 10_000)
    signed = json.loads(base64.b64decode(thief.pay(_quote(stub))["PAYMENT-SIGNATURE"]))
    signed["payload"]["authorization"]["from"] = buyer.address  # spend someone else's funds
    forged = base64.b64encode(json.dumps(signed).encode()).decode()
    reply = requests.get(
        stub.proxy_url + "/services/demo/x", headers={"PAYMENT-SIGNATURE": forged}, timeout=10
    )
    assert reply.status_code == 402 and stub.settlements() == []


def test_an_upstream_error_is_returned_and_not_settled(stub: VerifierStub) -> None:
    buyer = Buyer()
    stub.fund(buyer.address, 10_000)
    headers = buyer.pay(_quote(stub))
    reply = requests.get(stub.proxy_url + "/services/demo/down", headers=headers, timeout=10)
    assert reply.status_code == 503
    assert stub.settlements() == [] and stub.chain.balance(buyer.address, BASE_USDC) == 10_000


def test_unknown_routes_fail_closed_unless_told_otherwise(stub: VerifierStub) -> None:
    assert requests.get(stub.proxy_url + "/services/other", timeout=10).status_code == 404
    verify = {"X-Forwarded-Uri": "/services/other", "X-Forwarded-Host": "h"}
    assert requests.get(stub.verify_url, headers=verify, timeout=10).status_code == 403
    stub.free_unknown = True
    assert requests.get(stub.verify_url, headers=verify, timeout=10).status_code == 200


def test_forward_auth_verifies_and_settles_only_when_told(stub: VerifierStub) -> None:
    buyer = Buyer()
    stub.fund(buyer.address, 10_000)
    quote = _quote(stub)
    forwarded = {"X-Forwarded-Uri": "/services/demo/v1/models", "X-Forwarded-Host": "h"}
    first = requests.get(stub.verify_url, headers={**forwarded, **buyer.pay(quote)}, timeout=10)
    assert first.status_code == 200 and first.headers["X-Payment-Payer"] == buyer.address
    assert stub.settlements() == []  # verify-only
    stub.settle_on_verify = True
    second = requests.get(stub.verify_url, headers={**forwarded, **buyer.pay(quote)}, timeout=10)
    assert second.status_code == 200 and "X-PAYMENT-RESPONSE" in second.headers
    assert [s.upstream_status for s in stub.settlements()] == [None]

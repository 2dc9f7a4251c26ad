"""The stand-in verifier without a cluster: does it do what obol-stack's verifier does?

Not marked ``e2e``: loopback servers only (the stand-in, and a tiny upstream in this process).
It pins the obol-stack behaviours the e2e suite relies on (each named in :mod:`.verifier_stub`
with the obol-stack file it comes from) and the ones no gateway test reaches: the strict decode
agrees with obol-stack's own converter (the Go program in tests/obol_decode) on every offer this
repository holds and on broken ones; one undecodable offer keeps the previous table and a fresh
stand-in not ready; obol-stack's price selection and asset defaults; a quote with a wrong
EIP-712 domain cannot be paid; the per-buyer limit only when asked for.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support.obol_decode import decode as go_decode

from .buyer import Buyer
from .verifier_stub import SERVICE_OFFER, DecodeError, VerifierStub, decode, route_table

ROOT = Path(__file__).resolve().parents[2]
BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"
PUBLISHED = {"conditions": [{"type": "RoutePublished", "status": "True"}]}


def offer(name: str = "demo", namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "upstream": {"service": "demo", "port": 8000},
        "payment": {"network": "base", "payTo": PAY_TO, "price": {"perRequest": "0.002"}},
        "capacity": {"maxInFlight": 4, "perBuyerMaxInFlight": 1, "retryAfterSeconds": 4},
    }
    return {
        "apiVersion": "obol.org/v1alpha1",
        "kind": "ServiceOffer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {**base, **spec},
        "status": PUBLISHED,
    }


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    holding = threading.Event()  # a /hold request has reached the upstream
    release = threading.Event()

    def do_GET(self) -> None:
        if self.path.startswith("/hold"):
            self.holding.set()
            self.release.wait(10)
        status = 503 if self.path.startswith("/down") else 200
        body = json.dumps(
            {
                "path": self.path,
                "payer": self.headers.get("X-Payment-Payer"),
                "authorization": self.headers.get("Authorization"),
            }
        )
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Upstream.holding.clear()
    _Upstream.release.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Upstream.release.set()
    server.shutdown()
    server.server_close()


def _stub(upstream: str, *offers: dict[str, Any], **options: Any) -> VerifierStub:
    server = VerifierStub(upstream_resolver=lambda url: upstream, **options)
    server.load(offers or [offer()])
    return server.start()


@pytest.fixture
def stub(upstream: str) -> Iterator[VerifierStub]:
    server = _stub(upstream)
    yield server
    server.stop()


def _quote(stub: VerifierStub, path: str = "/services/demo/v1/models") -> requests.Response:
    reply = requests.get(stub.proxy_url + path, timeout=10)
    assert reply.status_code == 402, reply.text
    return reply


# --- the table: what obol-stack's serviceoffer_source.go builds ------------------------------


def test_only_published_offers_become_rules_in_first_match_order() -> None:
    unpublished = {**offer("zeta"), "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    rules = route_table([offer("b", "ns2"), offer("a", "ns2"), unpublished, offer("c", "ns1")])
    assert [(r["offerNamespace"], r["offerName"]) for r in rules] == [
        ("ns1", "c"), ("ns2", "a"), ("ns2", "b"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ({"perRequest": "0.002", "perMTok": "0.5"}, ("0.002", "perRequest")),
        ({"perMTok": "0.50"}, ("0.0005", "perMTok")),
        ({"perHour": "1.5", "perMB": "2"}, ("1.5", "perHour")),
        ({"perMB": "0.01"}, ("0.01", "perMB")),
        ({"perEpoch": "3"}, ("0", "")),
    ],
)
def test_obol_stacks_price_selection(price: dict[str, str], expected: tuple[str, str]) -> None:
    terms = {"network": "base", "payTo": PAY_TO, "price": price}
    [rule] = route_table([offer(payment=terms)])
    assert (rule["price"], rule["priceModel"]) == expected


def test_the_rule_carries_obol_stacks_defaults_and_the_asset_overlay() -> None:
    asset = {"symbol": "OBOL", "address": "0x0B010000b7624eb9B3DfBC279673C76E9D29D5F7",
             "decimals": 18, "transferMethod": "permit2", "eip712Name": "Obol Network",
             "eip712Version": "1"}  # fmt: skip
    terms = {"network": "ethereum", "payTo": PAY_TO, "price": {"perRequest": "1"}, "asset": asset}
    [plain] = route_table([offer(upstream={"service": "vllm"})])
    [obol] = route_table([offer(payment=terms, path="/x/", upstream={"service": "v", "port": 80})])
    assert plain["upstreamURL"] == "http://vllm.shop.svc.cluster.local:11434"
    assert (plain["pattern"], plain["stripPrefix"]) == ("/services/demo/*", "/services/demo")
    assert (plain["assetAddress"], plain["eip712Name"], plain["assetDecimals"]) == (
        BASE_USDC, "USD Coin", 6
    )  # fmt: skip
    assert (obol["pattern"], obol["network"], obol["assetDecimals"]) == ("/x/*", "eip155:1", 18)
    assert (obol["assetTransferMethod"], obol["eip712Name"]) == ("permit2", "Obol Network")


def test_a_drained_offer_is_no_rule() -> None:
    drained = offer(drainAt="2026-01-01T00:00:00Z", drainGracePeriod="1h")
    assert route_table([drained]) == []


# --- strict decode: one undecodable offer stops every reload ---------------------------------


def test_one_undecodable_offer_keeps_the_previous_table(stub: VerifierStub) -> None:
    broken = offer("broken", "elsewhere")
    broken["spec"]["payment"]["asset"] = "usdc"
    broken["status"] = {}  # not even published: decoding comes first
    repriced = offer()
    repriced["spec"]["payment"]["price"] = {"perRequest": "0.005"}
    assert stub.load([repriced, broken]) is False
    assert "cannot restore struct from: string" in stub.reload_errors[-1]
    assert _quote(stub).json()["accepts"][0]["amount"] == "2000"  # still the old price
    assert stub.load([repriced]) is True
    assert _quote(stub).json()["accepts"][0]["amount"] == "5000"


def test_a_fresh_verifier_stays_not_ready_until_a_reload_succeeds(upstream: str) -> None:
    broken = offer()
    broken["spec"]["payment"]["price"] = {"perRequest": 0.002}
    server = _stub(upstream, broken)
    try:
        assert requests.get(server.proxy_url + "/readyz", timeout=10).status_code == 503
        assert requests.get(server.proxy_url + "/services/demo", timeout=10).status_code == 503
        assert server.load([offer()])
        assert requests.get(server.proxy_url + "/readyz", timeout=10).status_code == 200
    finally:
        server.stop()


def _corpus() -> dict[str, Any]:
    docs: dict[str, Any] = {}
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        docs[path.name] = yaml.safe_load(path.read_text())
    for path in sorted((ROOT / "tests/fixtures/obol").glob("*.yaml")):
        docs[path.name] = yaml.safe_load(path.read_text())
    for path in sorted((ROOT / "tests/fixtures/sync").glob("*.json")):
        parent = json.loads(path.read_text())["parent"]
        golden = ROOT / "tests/golden/sync" / f"{path.stem}.yaml"
        parent["status"] = yaml.safe_load(golden.read_text())["status"]
        docs[path.name] = parent
    base = offer()
    for label, where, value in [
        ("string asset", ("spec", "payment", "asset"), "usdc"),
        ("number price", ("spec", "payment", "price", "perRequest"), 0.002),
        ("string port", ("spec", "upstream", "port"), "8000"),
        ("float port", ("spec", "upstream", "port"), 8000.5),
        ("integral float port", ("spec", "upstream", "port"), 8000.0),
        ("list upstream", ("spec", "upstream"), ["demo"]),
        ("bad time", ("spec", "drainAt"), "yesterday"),
        ("bad duration", ("spec", "drainGracePeriod"), "an hour"),
        ("number in a map", ("spec", "provenance"), {"k": 1}),
        ("bool as string", ("spec", "registration"), {"enabled": "true"}),
        ("null asset", ("spec", "payment", "asset"), None),
        ("unknown field", ("spec", "capacity"), {"anything": ["goes"]}),
        ("condition without reason", ("status", "conditions"), [{"type": "A", "status": "X"}]),
    ]:
        doc = copy.deepcopy(base)
        node = doc
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value
        docs[label] = doc
    return docs


def test_the_strict_decode_agrees_with_obol_stacks_converter() -> None:
    corpus = _corpus()
    go = {name: v.ok for name, v in zip(corpus, go_decode(list(corpus.values())), strict=True)}

    def python_ok(doc: Any) -> bool:
        try:
            decode(doc, SERVICE_OFFER)
        except DecodeError:
            return False
        return True

    assert {name: python_ok(doc) for name, doc in corpus.items()} == go
    assert not go["string asset"] and go["unknown field"]  # the check can fail, and forgive


# --- the protocol -------------------------------------------------------------------------------


def test_a_paid_request_is_proxied_settled_once_and_the_balance_moves(stub: VerifierStub) -> None:
    buyer = Buyer()
    stub.fund(buyer.address, 10_000)
    headers = buyer.pay(_quote(stub))
    forged = {"X-Payment-Payer": "0x" + "1" * 40}
    reply = requests.get(
        stub.proxy_url + "/services/demo/v1/models?x=1", headers={**headers, **forged}, timeout=10
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"path": "/v1/models?x=1", "payer": buyer.address, "authorization": None}
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
    # Base USDC signs as "USD Coin"; an offer that says "USDC" makes the buyer sign a digest the
    # token contract (the ledger, which takes the domain from the SDK's asset table) rejects.
    terms = {"network": "base", "payTo": PAY_TO, "price": {"perRequest": "0.002"},
             "asset": {"eip712Name": "USDC"}}  # fmt: skip
    assert stub.load([offer(payment=terms)])
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


def test_unknown_paths_the_proxy_refuses_and_verify_waves_through(stub: VerifierStub) -> None:
    """obol-stack's /verify answers 200 for a path outside the prefixes it knows as paid: behind
    forwardAuth such a path is served free (the window docs/verifier-contract.md describes)."""
    assert requests.get(stub.proxy_url + "/services/other", timeout=10).status_code == 404
    verify = {"X-Forwarded-Uri": "/services/other/v1", "X-Forwarded-Host": "h"}
    assert requests.get(stub.verify_url, headers=verify, timeout=10).status_code == 200
    assert requests.get(stub.verify_url, timeout=10).status_code == 403  # no X-Forwarded-Uri


def test_forward_auth_answers_obol_stacks_headers_and_settles_only_when_told(
    upstream: str,
) -> None:
    key = base64.b64encode(b"sk-litellm").decode()
    secret = {"metadata": {"name": "litellm-secrets", "namespace": "shop"},
              "data": {"LITELLM_MASTER_KEY": key}}  # fmt: skip
    server = VerifierStub(upstream_resolver=lambda url: upstream)
    server.load([offer(upstream={"service": "litellm", "port": 4000})], [secret])
    server.start()
    try:
        buyer = Buyer()
        server.fund(buyer.address, 10_000)
        quote = _quote(server)
        forwarded = {"X-Forwarded-Uri": "/services/demo/v1/models?q=1", "X-Forwarded-Host": "h"}
        first = requests.get(
            server.verify_url, headers={**forwarded, **buyer.pay(quote)}, timeout=10
        )
        assert first.status_code == 200
        assert first.headers["X-Payment-Payer"] == buyer.address
        assert first.headers["Authorization"] == "Bearer sk-litellm"
        assert first.headers["X-Verified-Wallet"] == ""
        assert server.settlements() == []  # verify-only, obol-stack's default
        server.settle_on_verify = True
        second = requests.get(
            server.verify_url, headers={**forwarded, **buyer.pay(quote)}, timeout=10
        )
        assert second.status_code == 200 and "X-PAYMENT-RESPONSE" in second.headers
        assert [s.upstream_status for s in server.settlements()] == [None]
    finally:
        server.stop()


@pytest.mark.parametrize("limits_buyers", [False, True], ids=["obol-stack", "per-buyer limit"])
def test_the_per_buyer_limit_only_in_a_verifier_that_implements_it(
    upstream: str, limits_buyers: bool
) -> None:
    server = _stub(upstream, per_buyer_limit=limits_buyers)
    try:
        buyer = Buyer()
        server.fund(buyer.address, 10_000)
        quote = _quote(server)
        held: list[requests.Response] = []
        first = threading.Thread(
            target=lambda: held.append(
                requests.get(
                    server.proxy_url + "/services/demo/hold", headers=buyer.pay(quote), timeout=20
                )
            )
        )
        first.start()
        assert _Upstream.holding.wait(10), "the first request never reached the upstream"
        second = requests.get(
            server.proxy_url + "/services/demo/x", headers=buyer.pay(quote), timeout=10
        )
        _Upstream.release.set()
        first.join(20)
        if limits_buyers:
            assert second.status_code == 429 and second.headers["Retry-After"] == "4"
            assert len(server.settlements()) == 1  # only the held request, once served
        else:
            assert second.status_code == 200, second.text
            assert len(server.settlements()) == 2
        assert [r.status_code for r in held] == [200]
    finally:
        server.stop()

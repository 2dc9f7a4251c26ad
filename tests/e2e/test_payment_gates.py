"""Who is charged, and when, in each payment gate, proven with real traffic and a real buyer.

The invariant (docs/verifier-contract.md): a buyer is charged only for a
request the upstream answered below 400; a request the gateway rejects (429, 413) is never quoted
when saturated and never charged; the seller is paid for every request served.

The stand-in runs in obol-stack's mode (routes from the ServiceOffers, strict decode, no
per-buyer limit; :mod:`.verifier_stub`).

* ``seller-proxy`` (module fixture ``proxy_gate``): the hook runs with
  ``OBOL_PAYMENT_GATE=seller-proxy``; the route's backend is the stand-in verifier's proxy,
  reached through the offer's TraefikService and ExternalName Service. The invariant holds in
  full: one settlement per served request, none for 429 / 413 / upstream 5xx; nothing limits a
  single buyer (obol-stack's proxy has no such limit, and status says so).
* ``forward-auth`` with a verifier that settles on /verify (``OBOL_VERIFIER_SETTLEMENT=on-verify``,
  fixture ``settling_gate``): saturation and oversized bodies are still rejected before the
  verifier (zero verifications, zero settlements), the per-buyer limiter is not rendered, and the
  test pins the documented limit of that gate: an upstream 5xx has already been charged.

Both gates run on one stack, one after the other (the second re-creates the hook and the
offers), so Traefik, etcd and the API server start once. Every buyer is :class:`.buyer.Buyer`
(the x402 SDK's client with a fresh eth-account key); the stand-in verifies and settles with the
SDK's own facilitator against an in-memory EIP-3009 ledger (:mod:`.verifier_stub`).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from x402.http.utils import decode_payment_response_header

from .buyer import Buyer, Held, header, owned_children, paid, quote
from .conftest import print_diagnostics_on_failure
from .driver import Driver, condition, ready
from .hook_process import HookServer, start_hook
from .kube import KubeClient
from .stack import HTTPServerProcess, Stack, wait_until
from .verifier_stub import VerifierStub, start_verifier

pytestmark = pytest.mark.e2e

NS = "gates"
PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"
BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
PRICE_ATOMIC = "2000"  # 0.002 USDC
HOLD_TIMEOUT = 25.0
ALICE, BOB, CAROL, DAVE = Buyer(), Buyer(), Buyer(), Buyer()
BUYERS = (ALICE, BOB, CAROL, DAVE)


def _offer(name: str, service: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "obol.org/v1alpha1",
        "kind": "ServiceOffer",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "type": "inference",
            "upstream": {"service": service, "port": 8000},
            "capabilities": {"protocol": "openai-chat", "streaming": False},
            "payment": {"network": "base", "payTo": PAY_TO, "price": {"perRequest": "0.002"}},
            **spec,
        },
    }


def _offers(prefix: str) -> tuple[dict[str, Any], ...]:
    """The capped offer, the offer whose upstream answers 500 and a rate-limited offer (obol-stack's
    ``limits.rps``), named ``<prefix>capped``, ``<prefix>broken`` and ``<prefix>limited`` (each
    gate has its own, so both can be up on one Gateway)."""
    capped = _offer(
        f"{prefix}capped",
        "echo",
        requestLimits={"maxBodyBytes": 1024},
        capacity={
            "mode": "external-static",
            "maxInFlight": 2,
            "perBuyerMaxInFlight": 1,
            "retryAfterSeconds": 3,
        },
    )
    return (
        capped,
        _offer(f"{prefix}broken", "broken"),
        _offer(f"{prefix}limited", "echo", limits={"rps": 1}),
    )


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def upstreams(stack: Stack) -> dict[str, HTTPServerProcess]:
    stack.ensure_namespace(NS)
    echo = stack.start_upstream("echo", hold_timeout=HOLD_TIMEOUT)
    # A fixed 500 responder inside the namespace, where Traefik can reach it as a backend too
    # (start_responder listens on loopback, which an EndpointSlice may not name).
    assert stack.netns is not None
    broken = stack._start_server(  # start_upstream has no fixed-status mode
        "broken",
        ["--fixed-status", "500", "--fixed-body", '{"error":"engine crashed"}'],
        in_netns=True,
        host=stack.netns.ns_ip,
    )
    for name, server in (("echo", echo), ("broken", broken)):
        stack.expose_endpoints(NS, name, server.host, server.port, service_port=8000)
    return {"echo": echo, "broken": broken}


def _resolver(upstreams: dict[str, HTTPServerProcess]) -> Any:
    # The stand-in runs outside the cluster: in-cluster upstream URLs -> the stand-in servers.
    table = {
        f"http://{name}.{NS}.svc.cluster.local:8000": server.url
        for name, server in upstreams.items()
    }
    return lambda url: table[url]


class Gate:
    """One payment gate under test: its verifier, hook and driver, offers converged."""

    def __init__(
        self,
        stack: Stack,
        kube: KubeClient,
        verifier: VerifierStub,
        env: dict[str, str],
        prefix: str,
    ) -> None:
        self.stack, self.verifier = stack, verifier
        self.offers = _offers(prefix)
        self.capped = f"/services/{prefix}capped"
        self.broken = f"/services/{prefix}broken"
        self.limited = f"/services/{prefix}limited"
        self.hook: HookServer = start_hook(stack, verifier_url=verifier.verify_url, extra_env=env)
        self.driver = Driver(kube, self.hook.sync_endpoint)
        stack.add_diagnostics(self.driver.diagnostics)
        stack.add_diagnostics(self.recent)
        stack.apply(*self.offers)
        for offer in self.offers:
            name = offer["metadata"]["name"]
            self.driver.converge(NS, name, ready, timeout=60)
            stack.wait_for_route(NS, f"so-{name}", timeout=30)
            path = f"/services/{name}"

            def quoted(path: str = path) -> bool:
                return stack.http("GET", path).status_code == 402

            wait_until(quoted, timeout=30, what=f"402 from {path} through Traefik", interval=0.3)

    def recent(self) -> str:
        lines = ["---- verifier stand-in: last calls and settlements"]
        lines += [
            f"  {c.kind} {c.method} {c.uri} -> {c.status} payer={c.payer}"
            for c in self.verifier.calls()[-12:]
        ]
        lines += [
            f"  settled {s.amount} from {s.payer} for {s.uri}"
            for s in self.verifier.settlements()[-6:]
        ]
        lines += [f"  error: {e}" for e in self.verifier.errors[-5:]]
        return "\n".join(lines)

    def stop(self) -> None:
        for offer in self.offers:
            self.stack.kubectl("delete", "serviceoffer", offer["metadata"]["name"], "-n", NS)
        self.hook.stop()
        self.verifier.stop()


@pytest.fixture(scope="module")
def proxy_gate(
    stack: Stack, kube: KubeClient, upstreams: dict[str, HTTPServerProcess]
) -> Iterator[Gate]:
    verifier = start_verifier(
        kube.api_url, kube.token, str(kube.ca_file), funded=[b.address for b in BUYERS],
        upstream_resolver=_resolver(upstreams),
    )  # fmt: skip
    env = {"OBOL_PAYMENT_GATE": "seller-proxy", "OBOL_VERIFIER_PROXY_URL": verifier.proxy_url}
    gate = Gate(stack, kube, verifier, env, "sp-")
    yield gate
    gate.stop()


@pytest.fixture(scope="module")
def settling_gate(
    stack: Stack, kube: KubeClient, upstreams: dict[str, HTTPServerProcess]
) -> Iterator[Gate]:
    verifier = start_verifier(
        kube.api_url, kube.token, str(kube.ca_file), funded=[b.address for b in BUYERS],
        settle_on_verify=True,
    )  # fmt: skip
    gate = Gate(stack, kube, verifier, {"OBOL_VERIFIER_SETTLEMENT": "on-verify"}, "fa-")
    yield gate
    gate.stop()


@pytest.fixture(autouse=True)
def _diagnostics_on_failure(request: pytest.FixtureRequest, stack: Stack) -> Iterator[None]:
    yield
    print_diagnostics_on_failure(request, stack)


def _receipt(reply: requests.Response) -> Any:
    value = reply.headers.get("X-PAYMENT-RESPONSE")
    assert value, f"no X-PAYMENT-RESPONSE: {reply.status_code} {dict(reply.headers)}"
    return decode_payment_response_header(value)


def _assert_busy(reply: requests.Response, reason: str = "offer_saturated") -> None:
    assert reply.status_code == 429, f"{reply.status_code} {reply.text[:300]}"
    assert reply.headers.get("Retry-After") == "3"
    assert "PAYMENT-REQUIRED" not in reply.headers
    assert "accepts" not in reply.json()
    assert reply.json()["error"] == reply.headers.get("X-Obol-Reject-Reason") == reason


# ---------------------------------------------------------------------------------------------
# seller-proxy


def test_seller_proxy_children_and_status_name_the_gate(proxy_gate: Gate, kube: KubeClient) -> None:
    children = owned_children(kube, NS, "sp-capped")
    assert ("TraefikService", "so-sp-capped-verifier") in children
    service = children[("Service", "so-sp-capped-verifier")]
    assert (service["type"], service["externalName"]) == ("ExternalName", "localhost")
    assert not any(kind == "Middleware" and name.endswith("-x402") for kind, name in children)
    status = proxy_gate.driver.sync(NS, "sp-capped").status
    assert status["paymentGate"]["mode"] == "seller-proxy"
    assert status["paymentGate"]["settlement"] == "after-upstream"
    assert status["paymentGate"]["perBuyerLimit"] == "none"  # obol-stack's proxy has none
    assert any("perBuyerMaxInFlight 1 is not enforced" in w for w in status["warnings"])
    assert ("Middleware", "so-sp-capped-admitted") not in children
    assert condition(status, "Ready")["status"] == "True"
    assert condition(status, "RoutePublished")["status"] == "True"


def test_seller_proxy_idle_unpaid_request_gets_the_402_and_nothing_is_settled(
    proxy_gate: Gate, stack: Stack
) -> None:
    mark = proxy_gate.verifier.mark()
    reply = stack.http("GET", f"{proxy_gate.capped}/v1/models?page=1")
    assert reply.status_code == 402, reply.text
    body = reply.json()
    assert json.loads(base64.b64decode(reply.headers["PAYMENT-REQUIRED"])) == body
    (terms,) = body["accepts"]
    assert (terms["amount"], terms["asset"], terms["payTo"]) == (PRICE_ATOMIC, BASE_USDC, PAY_TO)
    [call] = proxy_gate.verifier.calls_since(mark)
    assert (call.kind, call.uri) == (
        "proxy",
        f"{proxy_gate.capped}/v1/models?page=1",
    )  # public path
    assert proxy_gate.verifier.settlements_since(mark) == []


def test_seller_proxy_paid_request_is_served_and_settled_exactly_once(
    proxy_gate: Gate, stack: Stack, upstreams: dict[str, HTTPServerProcess]
) -> None:
    verifier = proxy_gate.verifier
    before = verifier.chain.balance(ALICE.address, BASE_USDC)
    unpaid = stack.http("GET", f"{proxy_gate.capped}/v1/models")
    mark = verifier.mark()
    forged = {"X-Payment-Payer": CAROL.address}
    reply = stack.http(
        "POST", f"{proxy_gate.capped}/v1/chat/completions?x=1", data=b"{}",
        headers={**ALICE.pay(unpaid), **forged},
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    seen = reply.json()
    assert (seen["path"], seen["query"]) == ("/v1/chat/completions", "x=1")  # prefix stripped
    assert header(seen["headers"], "X-Payment-Payer") == ALICE.address  # not the forged one
    receipt = _receipt(reply)
    assert receipt.success and receipt.payer == ALICE.address and receipt.transaction
    [settled] = verifier.settlements_since(mark)
    assert (settled.payer, settled.amount, settled.upstream_status) == (
        ALICE.address,
        PRICE_ATOMIC,
        200,
    )
    assert settled.transaction == receipt.transaction
    assert verifier.chain.balance(ALICE.address, BASE_USDC) == before - int(PRICE_ATOMIC)


def test_seller_proxy_replayed_payment_is_refused_and_charged_once(
    proxy_gate: Gate, stack: Stack
) -> None:
    verifier = proxy_gate.verifier
    payment = BOB.pay(stack.http("GET", f"{proxy_gate.capped}/ping"))
    mark = verifier.mark()
    first = stack.http("GET", f"{proxy_gate.capped}/ping", headers=payment)
    again = stack.http("GET", f"{proxy_gate.capped}/ping", headers=payment)
    assert first.status_code == 200, first.text
    assert again.status_code == 402 and "nonce" in again.json()["error"], again.text
    assert len(verifier.settlements_since(mark)) == 1


def test_seller_proxy_tampered_payment_is_refused(proxy_gate: Gate, stack: Stack) -> None:
    payment = BOB.pay(stack.http("GET", f"{proxy_gate.capped}/ping"))
    decoded = json.loads(base64.b64decode(payment["PAYMENT-SIGNATURE"]))
    decoded["payload"]["authorization"]["to"] = BOB.address  # pay myself instead
    decoded["accepted"]["payTo"] = BOB.address
    tampered = {"PAYMENT-SIGNATURE": base64.b64encode(json.dumps(decoded).encode()).decode()}
    mark = proxy_gate.verifier.mark()
    reply = stack.http("GET", f"{proxy_gate.capped}/ping", headers=tampered)
    assert reply.status_code == 402, reply.text
    assert proxy_gate.verifier.settlements_since(mark) == []


def test_seller_proxy_saturated_offer_answers_429_without_verifying_or_settling(
    proxy_gate: Gate, stack: Stack, upstreams: dict[str, HTTPServerProcess]
) -> None:
    verifier, echo = proxy_gate.verifier, upstreams["echo"]
    required = quote(stack, f"{proxy_gate.capped}/v1/models")
    holders = [paid(required, ALICE), paid(required, BOB)]
    start = verifier.mark()
    with Held(
        stack, echo, f"{proxy_gate.capped}/v1/chat/completions", "proxy-sat", holders
    ) as held:
        mark = verifier.mark()
        _assert_busy(stack.http("GET", f"{proxy_gate.capped}/v1/models"))
        _assert_busy(
            stack.http("GET", f"{proxy_gate.capped}/v1/models", headers=paid(required, CAROL))
        )
        # An oversized body is refused first (buffering runs before the in-flight limit).
        big = stack.http("POST", f"{proxy_gate.capped}/v1/x", data=b"x" * 4096)
        assert big.status_code == 413
        assert verifier.calls_since(mark) == [], "a rejected request reached the verifier"
        assert verifier.settlements_since(mark) == []
    assert [r.status_code for r in held.responses] == [200, 200]
    # The two served requests, each settled exactly once, after the upstream answered.
    settled = verifier.settlements_since(start)
    assert sorted(s.payer for s in settled) == sorted([ALICE.address, BOB.address])
    assert all(s.upstream_status == 200 for s in settled)


def test_seller_proxy_has_no_per_buyer_limit_and_charges_each_served_request_once(
    proxy_gate: Gate, stack: Stack, upstreams: dict[str, HTTPServerProcess]
) -> None:
    """obol-stack's seller proxy enforces no per-buyer limit (status says perBuyerLimit none):
    the same buyer's second request while one is in flight is served, and each is settled once.
    A verifier that does implement the limit is tests/e2e/test_verifier_stub.py's."""
    verifier, echo = proxy_gate.verifier, upstreams["echo"]
    required = quote(stack, f"{proxy_gate.capped}/v1/models")
    mark = verifier.mark()
    with Held(
        stack,
        echo,
        f"{proxy_gate.capped}/v1/chat/completions",
        "proxy-buyer",
        [paid(required, DAVE)],
    ) as held:
        again = stack.http("GET", f"{proxy_gate.capped}/v1/models", headers=paid(required, DAVE))
        assert again.status_code == 200, again.text
    assert [r.status_code for r in held.responses] == [200]
    settled = verifier.settlements_since(mark)
    assert [s.payer for s in settled] == [DAVE.address, DAVE.address]
    assert all(s.upstream_status == 200 for s in settled)


def test_seller_proxy_oversized_body_gets_413_unverified_and_unsettled(
    proxy_gate: Gate, stack: Stack
) -> None:
    verifier = proxy_gate.verifier
    required = quote(stack, f"{proxy_gate.capped}/v1/models")
    mark = verifier.mark()
    big = stack.http(
        "POST", f"{proxy_gate.capped}/v1/x", data=b"x" * 4096, headers=paid(required, ALICE)
    )
    assert big.status_code == 413
    assert verifier.calls_since(mark) == [] and verifier.settlements_since(mark) == []


def test_seller_proxy_upstream_5xx_is_returned_and_never_settled(
    proxy_gate: Gate, stack: Stack
) -> None:
    verifier = proxy_gate.verifier
    unpaid = stack.http("GET", f"{proxy_gate.broken}/v1/models")
    assert unpaid.status_code == 402, unpaid.text
    mark = verifier.mark()
    reply = stack.http("GET", f"{proxy_gate.broken}/v1/models", headers=ALICE.pay(unpaid))
    assert reply.status_code == 500 and "engine crashed" in reply.text
    assert "X-PAYMENT-RESPONSE" not in reply.headers
    [call] = verifier.calls_since(mark)
    assert (call.status, call.payer) == (500, ALICE.address)  # verified, proxied, not settled
    assert verifier.settlements_since(mark) == []


def test_seller_proxy_rate_limited_requests_are_never_verified_or_settled(
    proxy_gate: Gate, stack: Stack
) -> None:
    verifier, path = proxy_gate.verifier, proxy_gate.limited
    required = quote(stack, f"{path}/v1/models")
    # The quote and the fixture's readiness checks drew on the same bucket (1 rps, burst 2):
    # let it refill, so the burst below starts from a full bucket whatever the timing.
    time.sleep(2.5)
    mark = verifier.mark()
    # limits.rps 1 (burst 2): six paid requests in a row, so some are rate-limited.
    replies = [
        stack.http("GET", f"{path}/v1/models", headers=paid(required, CAROL)) for _ in range(6)
    ]
    codes = [r.status_code for r in replies]
    assert set(codes) <= {200, 429} and 429 in codes and 200 in codes, codes
    calls, settled = verifier.calls_since(mark), verifier.settlements_since(mark)
    assert len(calls) == len(settled) == codes.count(200)  # the rejected ones never reached it
    assert all(s.payer == CAROL.address and s.upstream_status == 200 for s in settled)


# ---------------------------------------------------------------------------------------------
# forward-auth with a verifier that settles on /verify


def test_settling_forward_auth_drops_the_per_buyer_limiter_and_says_why(
    settling_gate: Gate, kube: KubeClient
) -> None:
    children = owned_children(kube, NS, "fa-capped")
    assert ("Middleware", "so-fa-capped-x402") in children
    assert ("Middleware", "so-fa-capped-buyer-inflight") not in children
    status = settling_gate.driver.sync(NS, "fa-capped").status
    gate = status["paymentGate"]
    assert (gate["mode"], gate["settlement"], gate["perBuyerLimit"]) == (
        "forward-auth", "on-verify", "none"
    )  # fmt: skip
    assert any("perBuyerMaxInFlight 1 is not enforced" in w for w in status["warnings"])
    assert condition(status, "Ready")["status"] == "True"


def test_settling_forward_auth_charges_a_paid_request_once_and_rejected_ones_never(
    settling_gate: Gate, stack: Stack, upstreams: dict[str, HTTPServerProcess]
) -> None:
    verifier, echo, path = settling_gate.verifier, upstreams["echo"], settling_gate.capped
    required = quote(stack, f"{path}/v1/models")
    mark = verifier.mark()
    served = stack.http("GET", f"{path}/v1/models", headers=paid(required, ALICE))
    assert served.status_code == 200, served.text
    [settled] = verifier.settlements_since(mark)
    assert (settled.payer, settled.amount, settled.upstream_status) == (
        ALICE.address, PRICE_ATOMIC, None  # settled during /verify, before the upstream
    )  # fmt: skip

    holders = [paid(required, BOB), paid(required, CAROL)]
    with Held(stack, echo, f"{path}/v1/chat/completions", "fa-sat", holders):
        mark = verifier.mark()
        _assert_busy(stack.http("GET", f"{path}/v1/models"))
        _assert_busy(stack.http("GET", f"{path}/v1/models", headers=paid(required, DAVE)))
        big = stack.http("POST", f"{path}/v1/x", data=b"x" * 4096)
        assert big.status_code == 413  # buffering runs before the in-flight limit
        assert verifier.calls_since(mark) == [], "a rejected request reached the verifier"
        assert verifier.settlements_since(mark) == []
    mark = verifier.mark()
    big = stack.http("POST", f"{path}/v1/x", data=b"x" * 4096, headers=paid(required, DAVE))  # idle
    assert big.status_code == 413
    assert verifier.calls_since(mark) == [] and verifier.settlements_since(mark) == []


def test_settling_forward_auth_has_charged_before_an_upstream_5xx(
    settling_gate: Gate, stack: Stack
) -> None:
    """The documented limit of this gate (docs/verifier-contract.md): forwardAuth never sees the
    upstream's answer, so a verifier that settles on /verify has charged the buyer before the
    upstream failed."""
    verifier = settling_gate.verifier
    unpaid = stack.http("GET", f"{settling_gate.broken}/v1/models")
    mark = verifier.mark()
    reply = stack.http("GET", f"{settling_gate.broken}/v1/models", headers=DAVE.pay(unpaid))
    assert reply.status_code == 500
    assert [s.payer for s in verifier.settlements_since(mark)] == [DAVE.address]

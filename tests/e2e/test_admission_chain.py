"""The product's promise, proven with real traffic: 429 before 402, never a quote when saturated.

Everything here is real except two stand-ins for things outside this repository: the
Metacontroller stand-in (:mod:`.driver`, because Metacontroller cannot be built here) and the
x402 verifier stand-in (:mod:`.verifier_stub`). The rest is the product and real infrastructure:
the CRD installed in a real kube-apiserver (with etcd), the hook served by ``obol hook serve``
(gunicorn), the children it asks for written by the driver's dynamic-apply, Traefik v3.6
loading them through its kubernetesGateway and kubernetesCRD providers, the busy responder
reached through the offer's ExternalName Service, and an upstream in a network namespace behind
a selectorless Service + EndpointSlice, as an external vLLM is exposed.

Design notes
    * One stack, one hook, one verifier and one upstream per module (start-up about 10 s). All
      offers are created and converged up front (fixture ``shop``), so no test changes Traefik's
      configuration while another holds requests: an inFlightReq counter resets on every
      configuration reload. Tests that edit or add offers come last.
    * Offers: ``e2e-shop/capped`` (maxInFlight 2, maxBodyBytes 1024, not streaming: the full
      chain including the buffering step), the repository examples ``llm-sellers/qwen36-fast``
      (per-buyer limit, per-token quote) and ``tenant-a/weather-api`` (no capacity envelope),
      and ``e2e-shop/editable`` for the invalid-edit test.
    * A request is held open at the upstream with ``?hold=<key>`` until the test releases it;
      every hold key is unique to its test, every request has a timeout, every wait is bounded.
    * "Not quoted, not charged" is observed directly: the verifier stub records every call, so a
      429 or 413 with no new call proves no 402 was built and no payment was verified; the
      upstream's request log proves the request never reached it.
    * On failure, the stack's log tails (Traefik, API server, etcd, hook, stand-ins), the
      driver's last syncs and the verifier's last calls are printed into the test's report.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import json
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from hooks.core import api
from tests.support.rss import peak_rss, rss_bytes

from .buyer import Buyer, Held, assert_busy, header, owned_children, paid, quote, run_obol
from .conftest import print_diagnostics_on_failure
from .driver import Driver, HookError, condition, ready
from .hook_process import HookServer
from .kube import KubeClient, collection_path
from .stack import REPO_ROOT, HTTPServerProcess, Stack, wait_until
from .verifier_stub import VerifierStub, start_verifier

pytestmark = pytest.mark.e2e

EXAMPLES = REPO_ROOT / "examples"
SHOP = "e2e-shop"
PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"
PAYER_A, PAYER_B, PAYER_C = Buyer(), Buyer(), Buyer()
# Six more buyers for the offer without capacity (each holds one request).
CROWD = [Buyer() for _ in range(6)]
BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
HOLD_TIMEOUT = 25.0

CAPPED: dict[str, Any] = {
    "apiVersion": "obol.org/v1alpha1",
    "kind": "ServiceOffer",
    "metadata": {"name": "capped", "namespace": SHOP},
    "spec": {
        "type": "inference",
        "upstream": {"service": "vllm", "port": 8000},
        "capabilities": {"protocol": "openai-chat", "streaming": False},
        "requestLimits": {"maxBodyBytes": 1024},
        "capacity": {"mode": "external-static", "maxInFlight": 2, "retryAfterSeconds": 3},
        "payment": {
            "network": "base",
            "asset": {  # obol-stack's object form, the one its verifier can decode
                "symbol": "USDC",
                "address": BASE_USDC,
                "decimals": 6,
                "transferMethod": "eip3009",
                "eip712Name": "USD Coin",
                "eip712Version": "2",
            },
            "payTo": PAY_TO,
            "price": {"perRequest": "0.002"},
        },
    },
}
EDITABLE: dict[str, Any] = {
    "apiVersion": "obol.org/v1alpha1",
    "kind": "ServiceOffer",
    "metadata": {"name": "editable", "namespace": SHOP},
    "spec": {
        "type": "http",
        "upstream": {"service": "vllm", "port": 8000},
        "capacity": {"mode": "external-static", "maxInFlight": 4},
        "payment": {"network": "base", "payTo": PAY_TO, "price": {"perRequest": "0.001"}},
    },
}


def _example(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((EXAMPLES / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


QWEN = _example("inference-qwen36-fast.yaml")  # llm-sellers/qwen36-fast, per-buyer limit 2
WEATHER = _example("http-weather-api.yaml")  # tenant-a/weather-api, no capacity envelope
OFFERS = (CAPPED, QWEN, WEATHER, EDITABLE)


def _key(offer: Mapping[str, Any]) -> tuple[str, str]:
    return offer["metadata"]["namespace"], offer["metadata"]["name"]


def _path(offer: Mapping[str, Any]) -> str:
    return f"/services/{offer['metadata']['name']}"


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def verifier(stack: Stack, kube: KubeClient) -> Iterator[VerifierStub]:
    buyers = [PAYER_A, PAYER_B, PAYER_C, *CROWD]
    stub = start_verifier(
        kube.api_url, kube.token, str(kube.ca_file), funded=[b.address for b in buyers]
    )

    def recent() -> str:
        lines = ["---- verifier stub: last calls"]
        lines += [f"  {c.method} {c.uri} -> {c.status} payer={c.payer}" for c in stub.calls()[-10:]]
        lines += [f"  error: {e}" for e in stub.errors[-5:]]
        return "\n".join(lines)

    stack.add_diagnostics(recent)
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def upstream(stack: Stack) -> HTTPServerProcess:
    """One echo upstream in the network namespace, exposed in every offer's namespace under
    the Service name and port its offer names (the way an external vLLM is exposed)."""
    server = stack.start_upstream("upstream", hold_timeout=HOLD_TIMEOUT)
    for offer in OFFERS:
        namespace, _ = _key(offer)
        backend = offer["spec"]["upstream"]
        stack.ensure_namespace(namespace)
        stack.expose_endpoints(
            namespace, backend["service"], server.host, server.port, service_port=backend["port"]
        )
    return server


@pytest.fixture(scope="module")
def shop(stack: Stack, driver: Driver, upstream: HTTPServerProcess, verifier: VerifierStub) -> None:
    """Every offer applied, converged to Ready=True, and served by Traefik (402 on a GET)."""
    stack.apply(*OFFERS)
    for offer in OFFERS:
        namespace, name = _key(offer)
        driver.converge(namespace, name, ready, timeout=60)
    for offer in OFFERS:
        namespace, name = _key(offer)
        stack.wait_for_route(namespace, f"so-{name}", timeout=30)
        path = _path(offer)

        def quoted(path: str = path) -> bool:
            return stack.http("GET", path).status_code == 402

        wait_until(quoted, timeout=30, what=f"402 from {path} through Traefik", interval=0.3)


@pytest.fixture(autouse=True)
def _diagnostics_on_failure(request: pytest.FixtureRequest, stack: Stack) -> Iterator[None]:
    yield
    print_diagnostics_on_failure(request, stack)


# ---------------------------------------------------------------------------------------------
# helpers


# ---------------------------------------------------------------------------------------------
# 402 and paid requests on an idle offer


@pytest.mark.parametrize("offer", [CAPPED, QWEN, WEATHER], ids=lambda o: o["metadata"]["name"])
def test_unpaid_request_to_an_idle_offer_gets_the_402_terms_of_its_status(
    stack: Stack, shop: None, verifier: VerifierStub, upstream: HTTPServerProcess, offer: Any
) -> None:
    namespace, name = _key(offer)
    payment = stack.get("serviceoffer", name, namespace)["status"]["payment"]  # type: ignore[index]
    seen_before, mark = len(upstream.requests()), verifier.mark()

    reply = stack.http("GET", f"{_path(offer)}/v1/models?page=1")

    assert reply.status_code == 402, reply.text
    body = reply.json()
    assert json.loads(base64.b64decode(reply.headers["PAYMENT-REQUIRED"])) == body
    assert body["x402Version"] == 2
    assert body["resource"]["url"].endswith(f"{_path(offer)}/v1/models?page=1")
    [terms] = body["accepts"]
    assert terms == {
        "scheme": "exact",
        "network": payment["caip2"],
        "amount": payment["quote"]["atomic"],
        "asset": payment["asset"]["address"],
        "payTo": PAY_TO,
        "maxTimeoutSeconds": payment["maxTimeoutSeconds"],
        "extra": {
            "name": payment["asset"]["eip712Name"],
            "version": payment["asset"]["eip712Version"],
            "assetTransferMethod": payment["asset"]["transferMethod"],
        },
    }
    assert "Retry-After" not in reply.headers
    # The verifier was asked with the public path (URLRewrite runs after forwardAuth), once.
    [call] = verifier.calls_since(mark)
    assert (call.path, call.status, call.payer) == (f"{_path(offer)}/v1/models", 402, None)
    assert len(upstream.requests()) == seen_before


def test_the_quotes_are_the_configured_amounts(stack: Stack, shop: None) -> None:
    """Independent of status: the amounts a seller configured, in atomic units."""
    capped = quote(stack, _path(CAPPED))["accepts"][0]
    assert (capped["network"], capped["asset"], capped["amount"]) == (
        "eip155:8453",
        BASE_USDC,
        "2000",  # 0.002 USDC, 6 decimals
    )
    # qwen36-fast sets perRequest 0.002 and perMTok 0.50: obol-stack's verifier charges the first
    # price set, perRequest, alone (and the status says so).
    assert quote(stack, _path(QWEN))["accepts"][0]["amount"] == "2000"
    weather = quote(stack, _path(WEATHER))["accepts"][0]
    assert (weather["network"], weather["amount"], weather["extra"]["name"]) == (
        "eip155:84532",
        "100",  # 0.0001 USDC
        "USDC",  # base-sepolia's USDC calls itself "USDC", not "USD Coin"
    )


def test_paid_request_reaches_the_upstream_with_rewritten_path_and_verified_payer(
    stack: Stack, shop: None, verifier: VerifierStub, upstream: HTTPServerProcess
) -> None:
    required = quote(stack, _path(CAPPED))
    mark = verifier.mark()
    spoofed = {"X-Payment-Payer": PAYER_C.address, "X-Obol-Offer-Key": "someone/else"}

    reply = stack.http(
        "POST",
        f"{_path(CAPPED)}/v1/chat/completions?stream=false",
        headers={**paid(required, PAYER_A), **spoofed},
        json={"model": "qwen", "messages": [{"role": "user", "content": "hi"}]},
    )

    assert reply.status_code == 200, reply.text
    seen = reply.json()
    assert (seen["method"], seen["path"], seen["query"]) == (
        "POST",
        "/v1/chat/completions",
        "stream=false",
    )
    assert seen["body_bytes"] > 0
    # forwardAuth replaced the client's payer header with the verifier's; the route set the key.
    assert header(seen["headers"], "X-Payment-Payer") == PAYER_A.address
    assert header(seen["headers"], "X-Obol-Offer-Key") == f"{SHOP}/capped"
    [call] = verifier.calls_since(mark)
    assert (call.path, call.status) == (f"{_path(CAPPED)}/v1/chat/completions", 200)
    assert call.payer == PAYER_A.address


def test_malformed_payment_is_refused_not_the_upstream(
    stack: Stack, shop: None, upstream: HTTPServerProcess
) -> None:
    # obol-stack's verifier answers a payment header it cannot decode with 400 (forwardauth.go),
    # and forwardAuth relays it: the request never reaches the upstream.
    seen_before = len(upstream.requests())
    reply = stack.http("GET", _path(CAPPED), headers={"PAYMENT-SIGNATURE": "bm90IGpzb24="})
    assert reply.status_code == 400
    assert reply.json()["error"].startswith("Invalid payment header")
    assert len(upstream.requests()) == seen_before


# ---------------------------------------------------------------------------------------------
# saturation: 429 before 402


def busy_responses(hook: HookServer, namespace: str) -> float:
    """The busy responder's ``obol_hook_busy_responses_total`` for one namespace."""
    text = requests.get(f"{hook.busy_url}/metrics", timeout=5).text
    prefix = f'obol_hook_busy_responses_total{{namespace="{namespace}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def test_saturated_offer_answers_429_with_retry_after_and_never_quotes_or_verifies(
    stack: Stack, shop: None, verifier: VerifierStub, upstream: HTTPServerProcess
) -> None:
    required = quote(stack, _path(CAPPED))
    base = _path(CAPPED)
    # maxInFlight 2: two paid requests held open at the upstream take both slots.
    holders = [paid(required, PAYER_A), paid(required, PAYER_B)]
    with Held(stack, upstream, f"{base}/v1/chat/completions", "saturate", holders) as held:
        mark, seen_before = verifier.mark(), len(upstream.requests())

        unpaid = stack.http("GET", f"{base}/v1/models")
        paid_too = stack.http(
            "POST",
            f"{base}/v1/chat/completions",
            headers=paid(required, PAYER_C),
            json={"model": "qwen"},
        )
        # The body is read before a slot is taken, so an oversized body gets 413 even here.
        oversized = stack.http("POST", f"{base}/v1/chat/completions", data=b"x" * 4096)
        assert oversized.status_code == 413, oversized.text

        for reply in (unpaid, paid_too):
            assert_busy(reply, 3, f"{SHOP}/capped")
        assert verifier.calls_since(mark) == [], "the verifier was asked for a rejected request"
        assert len(upstream.requests()) == seen_before, "a rejected request reached the upstream"

    assert [(r.status_code, r.json()["released"]) for r in held.responses] == [(200, True)] * 2
    after = stack.http("GET", f"{base}/v1/models")
    assert after.status_code == 402, after.text
    assert "Retry-After" not in after.headers


def test_the_busy_responder_counts_every_429_it_serves(
    stack: Stack, shop: None, hook: HookServer
) -> None:
    """The busy container's own ``/metrics`` counts each concurrent 429 once."""
    namespace = "metrics-check"
    count = 24
    url = f"{hook.busy_url}/busy/{namespace}/offer?retryAfter=2"
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: requests.get(url, timeout=10).status_code, range(count)))
    assert statuses == [429] * count
    assert busy_responses(hook, namespace) == count


def test_per_buyer_limit_rejects_that_buyer_only(
    stack: Stack, shop: None, verifier: VerifierStub, upstream: HTTPServerProcess
) -> None:
    required = quote(stack, _path(QWEN))
    base = _path(QWEN)
    # qwen36-fast: perBuyerMaxInFlight 2 (of maxInFlight 8); payer A holds two.
    holders = [paid(required, PAYER_A), paid(required, PAYER_A)]
    with Held(stack, upstream, f"{base}/v1/chat/completions", "per-buyer", holders) as held:
        mark = verifier.mark()

        third_a = stack.http("POST", f"{base}/v1/chat/completions", headers=paid(required, PAYER_A))
        assert_busy(third_a, 2, "llm-sellers/qwen36-fast", "buyer_limit")
        # The per-buyer limit keys on the verified payer, so it runs after the verify-only
        # /verify (nothing is settled by it): the verifier saw A's third request, once.
        calls = verifier.calls_since(mark)
        assert [(c.payer, c.status) for c in calls] == [(PAYER_A.address, 200)]

        b = stack.http("POST", f"{base}/v1/chat/completions", headers=paid(required, PAYER_B))
        assert b.status_code == 200, b.text
        assert header(b.json()["headers"], "X-Payment-Payer") == PAYER_B.address
        assert stack.http("GET", f"{base}/v1/models").status_code == 402  # not saturated

    assert [r.status_code for r in held.responses] == [200, 200]


# ---------------------------------------------------------------------------------------------
# body limit: 413 before 402


def _trickling_client(stack: Stack, path: str) -> socket.socket:
    """A client that declares a 1000-byte body and sends only its first byte (for now)."""
    sock = socket.create_connection(("127.0.0.1", stack.web_port), timeout=10)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{stack.web_port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    sock.sendall(head.encode())
    return sock


def test_slow_bodies_hold_no_slot_while_paid_buyers_get_through(
    stack: Stack, shop: None, verifier: VerifierStub, upstream: HTTPServerProcess
) -> None:
    required = quote(stack, _path(CAPPED))
    url = f"{_path(CAPPED)}/v1/chat/completions"
    mark, seen_before = verifier.mark(), len(upstream.requests())
    # Twice maxInFlight (2) unpaid clients trickling their bodies. Were the slot taken before the
    # body is read, these four would hold both slots and every buyer would get 429.
    slow = [_trickling_client(stack, url) for _ in range(4)]
    try:
        time.sleep(1.0)  # Traefik has routed them into the chain by now
        for sock in slow:
            sock.sendall(b" ")  # still sending, slowly
        holders = [paid(required, PAYER_A), paid(required, PAYER_B)]
        with Held(stack, upstream, url, "slow-bodies", holders) as held:
            for sock in slow:
                sock.sendall(b" ")
            # Both slots are the paying buyers': the offer is saturated for anyone else.
            assert_busy(stack.http("GET", f"{_path(CAPPED)}/v1/models"), 3, f"{SHOP}/capped")
        assert [r.status_code for r in held.responses] == [200, 200]
        # The slow clients never reached the verifier or the upstream while trickling.
        assert {c.payer for c in verifier.calls_since(mark)} == {PAYER_A.address, PAYER_B.address}
        assert len(upstream.requests()) == seen_before + 2
        # Once a slow body is complete, that request goes on through the chain: a 402 quote.
        last = slow[0]
        last.sendall(b" " * (1000 - 3))
        reply = last.recv(65536).decode(errors="replace")
        assert reply.startswith("HTTP/1.1 402"), reply[:200]
    finally:
        for sock in slow:
            sock.close()


def test_oversized_body_gets_413_before_any_quote(
    stack: Stack, shop: None, verifier: VerifierStub, upstream: HTTPServerProcess
) -> None:
    required = quote(stack, _path(CAPPED))
    url = f"{_path(CAPPED)}/v1/chat/completions"
    mark, seen_before = verifier.mark(), len(upstream.requests())

    # maxBodyBytes 1024 on a non-streaming offer: the buffering step answers 413 before the
    # verifier is asked, for unpaid and paid requests alike (an oversized request is never charged).
    unpaid_big = stack.http("POST", url, data=b"x" * 4096)
    paid_big = stack.http("POST", url, data=b"x" * 4096, headers=paid(required, PAYER_A))
    for reply in (unpaid_big, paid_big):
        assert reply.status_code == 413, reply.text
        assert "PAYMENT-REQUIRED" not in reply.headers
    assert verifier.calls_since(mark) == []
    assert len(upstream.requests()) == seen_before

    small = stack.http("POST", url, data=b"x" * 100)
    assert small.status_code == 402, small.text
    assert [c.status for c in verifier.calls_since(mark)] == [402]
    small_paid = stack.http("POST", url, data=b"x" * 1024, headers=paid(required, PAYER_A))
    assert small_paid.status_code == 200, small_paid.text
    assert small_paid.json()["body_bytes"] == 1024


# ---------------------------------------------------------------------------------------------
# an offer without a capacity envelope behaves as before


def test_offer_without_capacity_is_the_plain_paid_route_it_always_was(
    stack: Stack, shop: None, kube: KubeClient, upstream: HTTPServerProcess
) -> None:
    base = _path(WEATHER)
    required = quote(stack, f"{base}/forecast")
    ok = stack.http("GET", f"{base}/forecast?city=berlin", headers=paid(required, PAYER_A))
    assert ok.status_code == 200, ok.text
    assert (ok.json()["path"], ok.json()["query"]) == ("/forecast", "city=berlin")

    # Six paid requests held at once (a capped offer would have rejected some): all admitted,
    # and meanwhile unpaid requests still get 402 and paid ones still get through.
    with Held(
        stack, upstream, f"{base}/forecast", "no-capacity", [paid(required, p) for p in CROWD]
    ) as held:
        assert stack.http("GET", f"{base}/forecast").status_code == 402
        extra = stack.http("GET", f"{base}/forecast", headers=paid(required, PAYER_B))
        assert extra.status_code == 200, extra.text
    assert [r.status_code for r in held.responses] == [200] * 6

    # No admission children: only the forwardAuth Middleware, no busy Service.
    selector = "obol.org/serviceoffer-name=weather-api"
    middlewares = kube.list("/apis/traefik.io/v1alpha1/namespaces/tenant-a/middlewares", selector)
    assert [m["metadata"]["name"] for m in middlewares] == ["so-weather-api-x402"]
    assert kube.list("/api/v1/namespaces/tenant-a/services", selector) == []
    status = stack.get("serviceoffer", "weather-api", "tenant-a")["status"]  # type: ignore[index]
    assert condition(status, "CapacityEnforced")["reason"] == "NotConfigured"
    assert condition(status, "Ready")["status"] == "True"


# ---------------------------------------------------------------------------------------------
# the CRD's own validation


def test_crd_cel_rule_rejects_per_buyer_above_global_at_kubectl_apply(
    stack: Stack, shop: None
) -> None:
    # The CRD's messages are static (b5d7efa: a messageExpression that quoted the values
    # exceeded the API server's CEL cost budget), so the values are not in the text.
    path = EXAMPLES / "invalid" / "per-buyer-above-global.yaml"
    proc = stack.kubectl("apply", "-f", str(path), check=False)
    assert proc.returncode != 0
    assert (
        "spec.capacity.perBuyerMaxInFlight: Invalid value: "
        "perBuyerMaxInFlight must be <= maxInFlight" in proc.stderr
    ), proc.stderr
    assert stack.get("serviceoffer", "per-buyer-above-global", "tenant-a") is None


INVALID_EXAMPLES = sorted((EXAMPLES / "invalid").glob("*.yaml"))


@pytest.mark.parametrize("path", INVALID_EXAMPLES, ids=lambda p: p.stem)
def test_invalid_example_meets_its_documented_crd_expectation(
    stack: Stack, shop: None, path: Path
) -> None:
    """Each invalid example says what the API server does with it; the real one agrees."""
    expected = yaml.safe_load(path.read_text())["metadata"]["annotations"][
        "examples.obol.org/expected-crd-error"
    ]
    proc = stack.kubectl("apply", "--dry-run=server", "-f", str(path), check=False)
    if expected == "accepted":  # only the hook (asset registry) can tell
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode != 0
        assert expected in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------------------------
# status, convergence and dynamic-apply


def test_status_after_convergence_reports_ready_route_published_and_capacity_enforced(
    stack: Stack, shop: None, driver: Driver, kube: KubeClient
) -> None:
    result = driver.converge(SHOP, "capped", ready, timeout=30)
    status = result.status
    offer = stack.get("serviceoffer", "capped", SHOP)
    assert offer is not None and offer["status"] == status
    generation = offer["metadata"]["generation"]
    assert status["observedGeneration"] == generation
    expected = {
        "Ready": ("True", "Ready"),
        "RoutePublished": ("True", "Accepted"),  # from Traefik's own HTTPRoute status
        "CapacityEnforced": ("True", "Enforced"),
        "PaymentGateReady": ("True", "Published"),
    }
    for ctype, (value, reason) in expected.items():
        found = condition(status, ctype)
        assert (found.get("status"), found.get("reason")) == (value, reason), found
        assert found.get("observedGeneration") == generation
    assert status["capacity"]["state"] == "Unknown"  # in-flight use is not observed here
    assert status["capacity"]["scalingControlled"] is False
    assert status["requestLimits"]["enforced"] == ["maxBodyBytes"]

    route = stack.get("httproute", "so-capped", SHOP)
    assert route is not None
    [parent] = route["status"]["parents"]
    assert parent["controllerName"] == "traefik.io/gateway-controller"

    # Every child carries what Metacontroller adds: controller-uid, the controller ownerRef and
    # the last-applied annotation.
    uid = offer["metadata"]["uid"]
    children: set[tuple[str, str]] = set()
    for version, kind, plural in api.CHILD_TYPES:
        for child in kube.list(collection_path(version, plural, SHOP), f"controller-uid={uid}"):
            meta = child["metadata"]
            assert meta["ownerReferences"] == [
                {
                    "apiVersion": "obol.org/v1alpha1",
                    "kind": "ServiceOffer",
                    "name": "capped",
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
            assert api.LAST_APPLIED_ANNOTATION in meta["annotations"]
            children.add((kind, meta["name"]))
    assert children == {
        ("HTTPRoute", "so-capped"),
        ("Middleware", "so-capped-busy"),
        ("Middleware", "so-capped-inflight"),
        ("Middleware", "so-capped-body-limit"),
        ("Middleware", "so-capped-x402"),
        ("ConfigMap", "so-capped-pricing"),
        ("Service", "so-capped-busy"),
    }

    stored = owned_children(kube, SHOP, "capped")
    again = driver.sync(SHOP, "capped")
    assert again.status == status and not again.status_written
    assert owned_children(kube, SHOP, "capped") == stored


def test_a_second_sync_of_unchanged_offers_writes_nothing(
    stack: Stack, shop: None, driver: Driver
) -> None:
    """Metacontroller's dynamic-apply PUTs a child whenever the three-way merge of (observed,
    last-applied, desired) differs from the observed object; for a converged, unchanged offer
    the hook's children must merge to exactly what the API server stored."""
    for offer in OFFERS:
        driver.converge(*_key(offer), ready, timeout=30)
    route_versions = {
        offer["metadata"]["name"]: _resource_version(stack, offer) for offer in OFFERS
    }
    results = [driver.sync(*_key(offer)) for offer in OFFERS]
    writes = [r.describe() for r in results if r.writes]
    # Whether the PUT was a no-op for the API server (same resourceVersion: no watch event,
    # so no sync loop) is printed with the failure; either way it is a wasted write per sync.
    after = {offer["metadata"]["name"]: _resource_version(stack, offer) for offer in OFFERS}
    assert writes == [], (
        f"unchanged offers caused writes: {writes}; HTTPRoute resourceVersions before"
        f" {route_versions} and after {after}"
    )


def _resource_version(stack: Stack, offer: Mapping[str, Any]) -> str:
    namespace, name = _key(offer)
    route = stack.get("httproute", f"so-{name}", namespace)
    assert route is not None
    return str(route["metadata"]["resourceVersion"])


def test_a_failed_hook_call_changes_nothing(
    stack: Stack, shop: None, kube: KubeClient, hook: HookServer
) -> None:
    """Like Metacontroller, the driver changes nothing when the hook does not answer 200. The
    hook's busy listener refuses /sync (404), which makes a real failed call."""
    wrong = Driver(kube, f"{hook.busy_url}/sync")
    offer = stack.get("serviceoffer", "capped", SHOP)
    children = owned_children(kube, SHOP, "capped")
    with pytest.raises(HookError) as failure:
        wrong.sync(SHOP, "capped")
    assert failure.value.status == 404
    assert owned_children(kube, SHOP, "capped") == children
    assert stack.get("serviceoffer", "capped", SHOP) == offer


def test_invalid_edit_of_a_live_offer_keeps_it_serving_and_reports_invalid_spec(
    stack: Stack, shop: None, driver: Driver, kube: KubeClient
) -> None:
    base = _path(EDITABLE)
    before = quote(stack, base)["accepts"][0]
    children_before = owned_children(kube, SHOP, "editable")
    assert ("HTTPRoute", "so-editable") in children_before
    assert before["network"] == "eip155:8453"

    # The CRD accepts the network name (it matches the pattern); only the hook's asset
    # registry knows there is no "solana".
    stack.kubectl(
        "patch",
        "serviceoffer",
        "editable",
        "-n",
        SHOP,
        "--type=merge",
        "-p",
        '{"spec":{"payment":{"network":"solana"}}}',
    )
    try:
        result = driver.sync(SHOP, "editable")
        invalid = condition(result.status, "Ready")
        assert (invalid["status"], invalid["reason"]) == ("False", "InvalidSpec"), invalid
        assert "spec.payment.network" in invalid["message"] and "solana" in invalid["message"]
        # The children are kept exactly as they were (nothing deleted, nothing changed).
        assert (result.created, result.deleted) == ([], []), result.describe()
        assert owned_children(kube, SHOP, "editable") == children_before
        assert result.status_written

        # The route keeps serving the last valid terms.
        during = stack.http("GET", base)
        assert during.status_code == 402
        assert during.json()["accepts"][0] == before
        required = during.json()
        served = stack.http("GET", f"{base}/ping", headers=paid(required, PAYER_A))
        assert served.status_code == 200, served.text
    finally:
        stack.kubectl(
            "patch",
            "serviceoffer",
            "editable",
            "-n",
            SHOP,
            "--type=merge",
            "-p",
            '{"spec":{"payment":{"network":"base"}}}',
        )
    fixed = driver.converge(SHOP, "editable", ready, timeout=30)
    assert condition(fixed.status, "Ready")["reason"] == "Ready"


# ---------------------------------------------------------------------------------------------
# the seller's CLI against the real API server


def test_obol_sell_creates_an_offer_that_converges_and_shows_in_status_and_list(
    stack: Stack, shop: None, driver: Driver
) -> None:
    created = run_obol(
        stack,
        "sell",
        "inference",
        "cli-qwen",
        "-n",
        SHOP,
        "--upstream",
        "vllm",
        "--port",
        "8000",
        "--runtime",
        "openai",
        "--network",
        "base-sepolia",
        "--pay-to",
        PAY_TO,
        "--price",
        "0.001",
        "--max-inflight",
        "3",
        "--retry-after",
        "4",
    )
    assert created.returncode == 0, created.stderr
    assert "serviceoffer.obol.org/cli-qwen created" in created.stdout, created.stdout

    driver.converge(SHOP, "cli-qwen", ready, timeout=60)
    stack.wait_for_route(SHOP, "so-cli-qwen", timeout=30)
    terms = wait_until(
        lambda: (
            stack.http("GET", "/services/cli-qwen").status_code == 402
            and stack.http("GET", "/services/cli-qwen").json()
        ),
        timeout=30,
        what="402 from /services/cli-qwen",
    )
    assert terms["accepts"][0]["network"] == "eip155:84532"
    assert terms["accepts"][0]["amount"] == "1000"

    status = run_obol(stack, "sell", "status", "cli-qwen", "-n", SHOP)
    assert status.returncode == 0, status.stderr
    lines = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
        for line in status.stdout.splitlines()
        if ":" in line
    }
    assert lines["Price"] == "0.001 USDC/request on base-sepolia"
    assert lines["Capacity mode"] == "external-static"
    assert lines["Scaling"].startswith("scalingControlled=false")
    assert lines["Max in-flight"] == "3"
    assert lines["In flight"] == "Unknown"
    assert lines["Capacity state"] == "Unknown"
    assert lines["Ready"] == "True"
    assert lines["Endpoint"] == "/services/cli-qwen"

    as_json = json.loads(
        run_obol(stack, "sell", "status", "cli-qwen", "-n", SHOP, "-o", "json").stdout
    )
    assert as_json["capacity"] == {
        "mode": "external-static",
        "scalingControlled": False,
        "gpuCount": None,
        "maxInFlight": 3,
        "perBuyerMaxInFlight": None,
        "inFlight": "Unknown",
        "state": "Unknown",
    }

    listing = run_obol(stack, "sell", "list", "-A")
    assert listing.returncode == 0, listing.stderr
    rows = [line.split() for line in listing.stdout.splitlines()]
    assert rows[0] == [
        "NAMESPACE",
        "NAME",
        "TYPE",
        "PRICE",
        "NETWORK",
        "MAX-IN-FLIGHT",
        "CAPACITY",
        "READY",
    ]
    mine = next(row for row in rows if row[:2] == [SHOP, "cli-qwen"])
    assert mine[2:] == [
        "inference",
        "0.001",
        "USDC/request",
        "base-sepolia",
        "3",
        "Unknown",
        "True",
    ]
    names = {(row[0], row[1]) for row in rows[1:]}
    assert {_key(o) for o in OFFERS} <= names


BIG_HEAD = 1_000_000  # bytes of one header: what Traefik's entry point accepts (Go's 1 MiB)
FLOOD = 600


def _raw_get(url: str, path: str, extra: bytes) -> tuple[int, bytes]:
    """One GET with ``extra`` header bytes; (status or 0 if refused, head of the answer)."""
    host, _, port = url.removeprefix("http://").partition(":")
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        try:
            sock.sendall(request + extra + b"\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
                answer += chunk
        except OSError:
            return 0, b""
    head = answer.partition(b"\r\n\r\n")[0]
    return (int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0), head


def test_a_flood_of_1_mb_heads_through_traefik_leaves_the_busy_responder_small(
    stack: Stack, shop: None, hook: HookServer, upstream: HTTPServerProcess
) -> None:
    """600 buyers of a saturated offer send ~1 MB of headers at once: the busy responder grows by
    at most 32 MiB and shrinks back, and every normal-size 429 meanwhile keeps Retry-After."""
    required = quote(stack, _path(CAPPED))
    holders = [paid(required, PAYER_A), paid(required, PAYER_B)]
    busy_pid = hook.busy_proc.pid
    assert busy_pid is not None
    path = f"{_path(CAPPED)}/v1/models"
    big = b"X-Big: " + b"a" * BIG_HEAD + b"\r\n"
    with Held(stack, upstream, f"{_path(CAPPED)}/v1/chat/completions", "big-heads", holders):
        assert_busy(stack.http("GET", path), 3, f"{SHOP}/capped")

        def normal(_: int) -> requests.Response:
            return stack.http("GET", path, timeout=60)

        with (
            peak_rss(busy_pid) as seen,
            concurrent.futures.ThreadPoolExecutor(max_workers=FLOOD + 8) as pool,
        ):
            flood = [pool.submit(_raw_get, stack.web_url, path, big) for _ in range(FLOOD)]
            normals = list(pool.map(normal, range(64)))
            statuses = [future.result(timeout=300)[0] for future in flood]
        time.sleep(2)
        after = rss_bytes(busy_pid)
    answers = sorted(collections.Counter(statuses).items())
    print(
        f"busy responder RSS {seen.before / 2**20:.1f} MiB, peak {seen.peak / 2**20:.1f} MiB, after"
        f" {after / 2**20:.1f} MiB; big-head answers (status, count) {answers}"
    )
    for reply in normals:
        assert_busy(reply, 3, f"{SHOP}/capped")
    assert seen.peak - seen.before <= 32 * 2**20
    assert after - seen.before <= 8 * 2**20
    assert 200 not in statuses and 402 not in statuses  # never let through, never quoted

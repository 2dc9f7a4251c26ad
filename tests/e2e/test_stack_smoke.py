"""Smoke test of the e2e harness itself, with hand-written objects (no hook logic).

It proves that the real stack does what the ServiceOffer tests will rely on: an HTTPRoute with
RequestHeaderModifier -> errors(429) -> inFlightReq -> URLRewrite, in front of an upstream that is
reached through a selectorless Service + EndpointSlice, answers

- 200 from the upstream, with the ``/services/demo`` prefix rewritten away and ``X-Offer-Key`` set;
- 429 with ``Retry-After: 2`` and the responder's JSON body while the one slot is taken (also for a
  client that sends its own ``X-Offer-Key``, because the route overwrites it);
- 200 again once the held request is released.

Skipped (not failed) when ``tests/e2e/build.sh`` has not been run.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import pytest

from .conftest import e2e_stack
from .stack import HTTPServerProcess, Stack, wait_until

pytestmark = pytest.mark.e2e

NS = "default"
ROUTE = "demo"
BUSY_BODY = '{"error":"offer saturated","retryAfterSeconds":2}'


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    with e2e_stack(request) as s:
        yield s


@pytest.fixture(scope="module")
def demo(stack: Stack) -> Iterator[tuple[HTTPServerProcess, HTTPServerProcess]]:
    upstream = stack.start_upstream("demo-upstream")
    stack.expose_endpoints(NS, "demo-upstream", upstream.host, upstream.port, service_port=8080)

    busy = stack.start_responder(
        "busy",
        headers={"Retry-After": "2", "Content-Type": "application/json"},
        body=BUSY_BODY,
    )
    stack.expose_external_name(NS, "busy", "localhost", busy.port)

    mw = {"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware"}
    stack.apply(
        {
            **mw,
            "metadata": {"name": "demo-busy", "namespace": NS},
            "spec": {
                "errors": {
                    "status": ["429"],
                    "query": "/busy",
                    "service": {"name": "busy", "port": busy.port},
                }
            },
        },
        {
            **mw,
            "metadata": {"name": "demo-inflight", "namespace": NS},
            "spec": {
                "inFlightReq": {
                    "amount": 1,
                    "sourceCriterion": {"requestHeaderName": "X-Offer-Key"},
                }
            },
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": ROUTE, "namespace": NS},
            "spec": {
                "parentRefs": [stack.parent_ref()],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/services/demo"}}],
                        "filters": [
                            {
                                "type": "RequestHeaderModifier",
                                "requestHeaderModifier": {
                                    "set": [{"name": "X-Offer-Key", "value": f"{NS}/demo"}]
                                },
                            },
                            {
                                "type": "ExtensionRef",
                                "extensionRef": {
                                    "group": "traefik.io",
                                    "kind": "Middleware",
                                    "name": "demo-busy",
                                },
                            },
                            {
                                "type": "ExtensionRef",
                                "extensionRef": {
                                    "group": "traefik.io",
                                    "kind": "Middleware",
                                    "name": "demo-inflight",
                                },
                            },
                            {
                                "type": "URLRewrite",
                                "urlRewrite": {
                                    "path": {
                                        "type": "ReplacePrefixMatch",
                                        "replacePrefixMatch": "/",
                                    }
                                },
                            },
                        ],
                        "backendRefs": [{"name": "demo-upstream", "port": 8080}],
                    }
                ],
            },
        },
    )
    stack.wait_for_route(NS, ROUTE, timeout=30)
    # The router exists; wait (bounded) until a request really reaches the upstream.
    wait_until(
        lambda: stack.http("GET", "/services/demo/ready").status_code == 200,
        timeout=30,
        what="first 200 through Traefik",
        interval=0.3,
    )
    yield upstream, busy


def test_request_reaches_upstream_with_prefix_rewritten(
    stack: Stack, demo: tuple[HTTPServerProcess, HTTPServerProcess]
) -> None:
    upstream, _ = demo
    r = stack.http("GET", "/services/demo/v1/models?x=1", headers={"X-Offer-Key": "spoofed"})
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["server"] == "demo-upstream"
    assert seen["path"] == "/v1/models"
    assert seen["query"] == "x=1"
    assert seen["headers"]["X-Offer-Key"] == f"{NS}/demo"  # set, not appended to, by the route
    assert upstream.requests()[-1]["path"] == "/v1/models"


def test_saturated_offer_answers_429_with_retry_after(
    stack: Stack, demo: tuple[HTTPServerProcess, HTTPServerProcess]
) -> None:
    upstream, busy = demo
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(stack.http, "GET", "/services/demo/slow?hold=h1", timeout=30)
        try:
            upstream.wait_held("h1", 1, timeout=10)

            r = stack.http("GET", "/services/demo/other")
            assert r.status_code == 429, r.text
            assert r.headers["Retry-After"] == "2"
            assert r.headers["Content-Type"] == "application/json"
            assert r.json() == {"error": "offer saturated", "retryAfterSeconds": 2}
            assert busy.requests()[-1]["path"] == "/busy"

            # One global bucket per offer: a client-chosen X-Offer-Key is overwritten first.
            r2 = stack.http("GET", "/services/demo/other", headers={"X-Offer-Key": "mine"})
            assert r2.status_code == 429
            assert r2.headers["Retry-After"] == "2"
        finally:
            upstream.release("h1")
        first = held.result(timeout=30)
    assert first.status_code == 200
    assert first.json()["path"] == "/slow"
    assert first.json()["released"] is True

    r3 = stack.http("GET", "/services/demo/again")
    assert r3.status_code == 200
    assert "Retry-After" not in r3.headers
    assert r3.json()["path"] == "/again"

"""The live "no free ride" probe catches what the HTTPRoute's own status cannot.

With ``OBOL_OBSERVE=on`` and ``OBOL_PROBE_GATEWAY_URL`` = the stack's Traefik, the hook sends
one unpaid GET of each offer's public path through the gateway (docs/live-capacity.md).

* ``test_a_verifier_that_waves_unknown_routes_through_is_a_free_ride``: the stand-in verifier
  answers 200 for routes it does not know, as obol-stack's /verify does for paths outside its
  known prefixes. An offer whose ``payment.asset`` is the string form is stored: obol-stack's
  verifier cannot decode it, so it stops reloading and never learns the offer created after it.
  That offer is served without payment, and the probe turns it into
  PaymentGateReady=False/FreeRide, Ready=False; an offer the verifier learnt before stays Ready
  (the probe saw 402).
* ``test_traefik_without_external_name_services_does_not_serve_the_route``: a second stack whose
  Traefik runs without ``allowExternalNameServices``: the offer's errors Middleware cannot load
  its ExternalName Service, Traefik drops the router although the HTTPRoute reports Accepted,
  the gateway answers 404, and the probe turns it into RoutePublished=False/NotServedByGateway,
  Ready=False.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import e2e_stack, print_diagnostics_on_failure
from .driver import Driver, condition, condition_is
from .hook_process import HookServer, start_hook
from .kube import KubeClient
from .stack import REPO_ROOT, HTTPServerProcess, Stack, wait_until
from .verifier_stub import VerifierStub, start_verifier

pytestmark = pytest.mark.e2e

NS = "free-ride"
PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"


def _offer(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "obol.org/v1alpha1",
        "kind": "ServiceOffer",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "type": "http",
            "upstream": {"service": "echo", "port": 8000},
            "capacity": {"mode": "external-static", "maxInFlight": 4},
            "payment": {"network": "base", "payTo": PAY_TO, "price": {"perRequest": "0.001"}},
        },
    }


def _hook(stack: Stack, verifier: VerifierStub, upstream: HTTPServerProcess) -> HookServer:
    in_cluster = f"http://echo.{NS}.svc.cluster.local:8000"
    observe = {
        "OBOL_OBSERVE": "on",
        "OBOL_OBSERVE_UPSTREAM_OVERRIDES": json.dumps({in_cluster: upstream.url}),
        "OBOL_PROBE_GATEWAY_URL": stack.web_url,
        "OBOL_PROBE_INTERVAL_SECONDS": "1",
        "OBOL_PROBE_TTL_SECONDS": "3",
        "OBOL_SYNC_PROBE_BUDGET_MS": "1000",
    }
    return start_hook(stack, verifier_url=verifier.verify_url, extra_env=observe)


def _setup(stack: Stack, kube: KubeClient) -> tuple[Driver, VerifierStub]:
    upstream = stack.start_upstream("echo")
    stack.ensure_namespace(NS)
    stack.expose_endpoints(NS, "echo", upstream.host, upstream.port, service_port=8000)
    verifier = start_verifier(kube.api_url, kube.token, str(kube.ca_file))
    hook = _hook(stack, verifier, upstream)
    driver = Driver(kube, hook.sync_endpoint)
    stack.add_diagnostics(driver.diagnostics)
    return driver, verifier


@pytest.fixture(autouse=True)
def _diagnostics_on_failure(request: pytest.FixtureRequest, stack: Stack) -> Iterator[None]:
    yield
    print_diagnostics_on_failure(request, stack)


def test_a_verifier_that_waves_unknown_routes_through_is_a_free_ride(
    stack: Stack, kube: KubeClient
) -> None:
    driver, verifier = _setup(stack, kube)
    try:
        stack.apply(_offer("known"))
        known = driver.converge(NS, "known", condition_is("Ready", "True"), timeout=60)
        assert condition(known.status, "PaymentGateReady")["reason"] == "Published"
        undecodable = _offer("string-asset")
        undecodable["spec"]["payment"]["asset"] = "usdc"
        stack.apply(undecodable)
        wait_until(lambda: verifier.reload_errors, timeout=30, what="the aborted reload")
        stack.apply(_offer("unknown"))

        found = driver.converge(
            NS, "unknown", condition_is("PaymentGateReady", "False", "FreeRide"), timeout=60
        )
        free = stack.http("GET", "/services/unknown/v1/models")
        assert free.status_code == 200, free.text  # served without payment: the hole itself
        gate = condition(found.status, "PaymentGateReady")
        assert "unpaid GET /services/unknown through the gateway answered 200" in gate["message"]
        assert condition(found.status, "Ready")["status"] == "False"
        assert stack.http("GET", "/services/known").status_code == 402
        assert not any(r["offerName"] == "unknown" for r in verifier.routes())
    finally:
        stack.kubectl("delete", "serviceoffer", "string-asset", "-n", NS)
        verifier.stop()


@pytest.fixture
def strict_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    crd = REPO_ROOT / "crds" / "serviceoffer.yaml"
    with e2e_stack(request, extra_crds=[crd], allow_external_name_services=False) as s:
        yield s


def test_traefik_without_external_name_services_does_not_serve_the_route(
    strict_stack: Stack,
) -> None:
    kube = KubeClient(strict_stack.api_url, strict_stack.token, strict_stack.ca_file)
    driver, verifier = _setup(strict_stack, kube)
    try:
        strict_stack.apply(_offer("dropped"))
        found = driver.converge(
            NS,
            "dropped",
            condition_is("RoutePublished", "False", "NotServedByGateway"),
            timeout=60,
        )
        route = condition(found.status, "RoutePublished")
        assert "answered 404" in route["message"]
        assert condition(found.status, "Ready")["status"] == "False"
        assert strict_stack.http("GET", "/services/dropped").status_code == 404
    finally:
        verifier.stop()
        kube.close()

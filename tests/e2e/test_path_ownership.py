"""One public path, one owner: two offers that claim it, on the real API server and Traefik.

The Metacontroller stand-in asks the hook's customize endpoint for the related offers (every
ServiceOffer, hook v2) and sends them with each sync, as Metacontroller does (driver.py).

``test_the_older_offer_keeps_the_path_and_the_next_claimant_takes_it_when_it_goes``: two offers
named ``weather`` in two namespaces (same default path ``/services/weather``), with different
prices and upstreams. The older one converges Ready and buyers get its 402 terms; the younger
one is ``Ready=False/PathConflict`` naming the older, has no HTTPRoute and no pricing ConfigMap,
Traefik has one router for the path, and the stand-in verifier (obol-stack's: rules from
RoutePublished offers) has one rule there. Then the older offer is deleted (its children collected
as Kubernetes' garbage collector would): the stand-in resyncs exactly the parents Metacontroller
would enqueue for that deletion, and the younger offer becomes Ready by itself, with its own
price at the path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import print_diagnostics_on_failure
from .driver import Driver, condition, condition_is
from .hook_process import start_hook
from .kube import KubeClient, object_path
from .stack import Stack, wait_until
from .verifier_stub import VerifierStub, start_verifier

pytestmark = pytest.mark.e2e

OLD_NS, NEW_NS = "paths-old", "paths-new"
PATH = "/services/weather"
PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"


def _offer(namespace: str, price: str) -> dict[str, Any]:
    return {
        "apiVersion": "obol.org/v1alpha1",
        "kind": "ServiceOffer",
        "metadata": {"name": "weather", "namespace": namespace},
        "spec": {
            "type": "http",
            "upstream": {"service": "echo", "port": 8000},
            "payment": {"network": "base", "payTo": PAY_TO, "price": {"perRequest": price}},
        },
    }


@pytest.fixture(autouse=True)
def _diagnostics_on_failure(request: pytest.FixtureRequest, stack: Stack) -> Iterator[None]:
    yield
    print_diagnostics_on_failure(request, stack)


def _amounts(stack: Stack) -> list[str] | None:
    """The amounts a buyer is quoted at the path, None while it is not answered with 402."""
    reply = stack.http("GET", PATH)
    if reply.status_code != 402:
        return None
    return [str(accept["amount"]) for accept in reply.json()["accepts"]]


def _verifier_rules(verifier: VerifierStub) -> list[str]:
    """The offers obol-stack's verifier (the stand-in, reading RoutePublished offers) has a rule
    for at the path."""
    return [
        f"{rule['offerNamespace']}/{rule['offerName']}"
        for rule in verifier.routes()
        if rule["pattern"] == PATH + "/*"
    ]


def _routers_for_path(stack: Stack) -> list[str]:
    return [r["name"] for r in stack.routers() if PATH in str(r.get("rule", ""))]


def test_the_older_offer_keeps_the_path_and_the_next_claimant_takes_it_when_it_goes(
    stack: Stack, kube: KubeClient
) -> None:
    for namespace in (OLD_NS, NEW_NS):
        upstream = stack.start_upstream(f"echo-{namespace}")
        stack.ensure_namespace(namespace)
        stack.expose_endpoints(namespace, "echo", upstream.host, upstream.port, service_port=8000)
    verifier = start_verifier(kube.api_url, kube.token, str(kube.ca_file))
    try:
        hook = start_hook(stack, verifier_url=verifier.verify_url)
        driver = Driver(kube, hook.sync_endpoint)
        stack.add_diagnostics(driver.diagnostics)

        stack.apply(_offer(OLD_NS, "0.001"))
        time.sleep(1.1)  # creationTimestamp has whole seconds: make the order unambiguous
        stack.apply(_offer(NEW_NS, "0.002"))

        older = driver.converge(OLD_NS, "weather", condition_is("Ready", "True"), timeout=60)
        younger = driver.sync(NEW_NS, "weather")
        assert [key for key in younger.request["related"]] == ["ServiceOffer.obol.org/v1alpha1"]
        assert set(younger.request["related"]["ServiceOffer.obol.org/v1alpha1"]) == {
            f"{OLD_NS}/weather",
            f"{NEW_NS}/weather",
        }
        for kind in ("Ready", "RoutePublished", "PaymentGateReady"):
            found = condition(younger.status, kind)
            assert (found["status"], found["reason"]) == ("False", "PathConflict"), kind
        assert (
            f"owned by ServiceOffer {OLD_NS}/weather"
            in condition(younger.status, "Ready")["message"]
        )
        assert kube.get(object_path("gateway.networking.k8s.io/v1", "httproutes", NEW_NS,
                                    "so-weather")) is None  # fmt: skip
        assert kube.get(object_path("v1", "configmaps", NEW_NS, "so-weather-pricing")) is None
        assert condition(older.status, "Ready")["status"] == "True"
        wait_until(lambda: _amounts(stack) == ["1000"], timeout=30, what="the older's terms")
        assert len(_routers_for_path(stack)) == 1, stack.routers()
        wait_until(
            lambda: _verifier_rules(verifier) == [f"{OLD_NS}/weather"],
            timeout=30,
            what="one verifier rule for the path, the older offer's",
        )
        # The related offers arrive with every sync; the customize hook was asked once per
        # offer (uid, generation), not once per sync.
        driver.sync(OLD_NS, "weather")
        assert driver.customize_calls == 2

        # The owner goes away; Kubernetes' garbage collector removes its children.
        gone = driver.get_parent(OLD_NS, "weather")
        kube.delete(object_path("obol.org/v1alpha1", "serviceoffers", OLD_NS, "weather"))
        driver.collect_garbage(gone["metadata"]["uid"], OLD_NS)
        # Metacontroller enqueues every parent whose related rule matches the deleted offer.
        assert driver.related_parents(gone) == [(NEW_NS, "weather")]
        taken = driver.converge(NEW_NS, "weather", condition_is("Ready", "True"), timeout=60)
        assert condition(taken.status, "RoutePublished")["reason"] != "PathConflict"

        def new_terms() -> bool:
            # Traefik answers 404 for a moment between dropping the old route and loading the
            # new one.
            return _amounts(stack) == ["2000"]  # 0.002 USDC: the younger offer's terms

        wait_until(new_terms, timeout=30, what="the younger offer's terms reaching buyers")
        assert len(_routers_for_path(stack)) == 1, stack.routers()
        assert _verifier_rules(verifier) == [f"{NEW_NS}/weather"]
    finally:
        verifier.stop()

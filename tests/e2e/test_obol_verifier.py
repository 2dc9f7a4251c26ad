"""The hook next to obol-stack's verifier, with real Traefik: what that verifier really does.

The stand-in (:mod:`.verifier_stub`) runs in obol-stack's mode: it learns routes from the
ServiceOffers themselves (only RoutePublished=True ones), decodes each one strictly, and one
offer it cannot decode stops its reload for every offer. The hook runs with the default gate,
``forward-auth``, and obol-stack's verifier (``OBOL_VERIFIER=obol-stack``). Offers are written
by ``obol sell`` itself, as a seller would.

* ``test_forward_auth_passes_obol_stacks_headers_to_the_upstream``: the /verify answer's
  ``Authorization`` (LiteLLM's key, from the ``litellm-secrets`` Secret), ``X-Payment-Payer``
  and ``X-Verified-Wallet`` reach the upstream through ``authResponseHeaders``, replacing any
  client-forged value; verify-only, so nothing is settled.
* ``test_one_undecodable_offer_stops_every_route_from_updating``: an offer with the string form
  of ``payment.asset`` is stored. From then on a price change of another offer never reaches
  the buyers, a new offer is served FREE (its path is unknown to /verify, which answers 200
  there: the window docs/verifier-contract.md describes), and a verifier that restarts stays
  not ready. Fixing the one offer (the object form ``obol sell`` writes) loads everything.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from .buyer import Buyer, header, run_obol
from .conftest import print_diagnostics_on_failure
from .driver import Driver, condition, ready
from .hook_process import HookServer, start_hook
from .kube import KubeClient
from .stack import HTTPServerProcess, Stack, wait_until
from .verifier_stub import VerifierStub, start_verifier

pytestmark = pytest.mark.e2e

NS = "obol-verifier"
PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"
BUYER = Buyer()
LITELLM_KEY = "sk-litellm-e2e"


@pytest.fixture(scope="module")
def upstream(stack: Stack) -> HTTPServerProcess:
    stack.ensure_namespace(NS)
    echo = stack.start_upstream("obol-echo")
    for service in ("echo", "litellm"):
        stack.expose_endpoints(NS, service, echo.host, echo.port, service_port=8000)
    key = base64.b64encode(LITELLM_KEY.encode()).decode()
    stack.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "litellm-secrets", "namespace": NS},
            "data": {"LITELLM_MASTER_KEY": key},
        }
    )
    return echo


@pytest.fixture(scope="module")
def verifier(kube: KubeClient, upstream: HTTPServerProcess) -> Iterator[VerifierStub]:
    table = {
        f"http://{svc}.{NS}.svc.cluster.local:8000": upstream.url for svc in ("echo", "litellm")
    }
    stub = start_verifier(
        kube.api_url, kube.token, str(kube.ca_file), funded=[BUYER.address],
        upstream_resolver=lambda url: table[url],
    )  # fmt: skip
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def driver(stack: Stack, kube: KubeClient, verifier: VerifierStub) -> Driver:
    hook: HookServer = start_hook(stack, verifier_url=verifier.verify_url)
    driver = Driver(kube, hook.sync_endpoint)
    stack.add_diagnostics(driver.diagnostics)

    def recent() -> str:
        lines = ["---- obol-mode verifier: reload errors and last calls"]
        lines += [f"  reload error: {e}" for e in verifier.reload_errors[-3:]]
        lines += [f"  {c.kind} {c.uri} -> {c.status}" for c in verifier.calls()[-8:]]
        return "\n".join(lines)

    stack.add_diagnostics(recent)
    return driver


@pytest.fixture(autouse=True)
def _diagnostics_on_failure(request: pytest.FixtureRequest, stack: Stack) -> Iterator[None]:
    yield
    print_diagnostics_on_failure(request, stack)


def sell(stack: Stack, name: str, service: str = "echo", price: str = "0.002") -> None:
    """``obol sell http`` against the stack, as a seller would (it writes the asset object)."""
    done = run_obol(
        stack, "sell", "http", name, "-n", NS, "--upstream", service, "--port", "8000",
        "--pay-to", PAY_TO, "--price", price,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def published(stack: Stack, driver: Driver, name: str) -> None:
    driver.converge(NS, name, ready, timeout=60)
    stack.wait_for_route(NS, f"so-{name}", timeout=30)


def amount(stack: Stack, path: str) -> str | None:
    reply = stack.http("GET", path)
    return str(reply.json()["accepts"][0]["amount"]) if reply.status_code == 402 else None


def test_forward_auth_passes_obol_stacks_headers_to_the_upstream(
    stack: Stack, driver: Driver, verifier: VerifierStub
) -> None:
    sell(stack, "llm", service="litellm")
    published(stack, driver, "llm")
    wait_until(
        lambda: amount(stack, "/services/llm/v1/models") == "2000", timeout=30, what="the quote"
    )
    unpaid = stack.http("GET", "/services/llm/v1/models")
    mark = verifier.mark()
    forged = {"X-Payment-Payer": "0x" + "1" * 40, "X-Verified-Wallet": "0x" + "2" * 40}
    reply = stack.http("GET", "/services/llm/v1/models", headers={**BUYER.pay(unpaid), **forged})
    assert reply.status_code == 200, reply.text
    seen = reply.json()["headers"]
    assert header(seen, "Authorization") == f"Bearer {LITELLM_KEY}"
    assert header(seen, "X-Payment-Payer") == BUYER.address
    assert header(seen, "X-Verified-Wallet") in (None, "")
    [call] = verifier.calls_since(mark)
    assert (call.kind, call.status, call.payer) == ("verify", 200, BUYER.address)
    assert verifier.settlements_since(mark) == []  # obol-stack's /verify only verifies


def test_one_undecodable_offer_stops_every_route_from_updating(
    stack: Stack, kube: KubeClient, driver: Driver, verifier: VerifierStub
) -> None:
    sell(stack, "steady")
    published(stack, driver, "steady")
    wait_until(
        lambda: amount(stack, "/services/steady/x") == "2000", timeout=30, what="steady's quote"
    )
    broken: dict[str, Any] = {
        "apiVersion": "obol.org/v1alpha1",
        "kind": "ServiceOffer",
        "metadata": {"name": "string-asset", "namespace": NS},
        "spec": {
            "type": "http",
            "upstream": {"service": "echo", "port": 8000},
            "payment": {
                "network": "base", "asset": "usdc", "payTo": PAY_TO,
                "price": {"perRequest": "0.001"},
            },
        },
    }  # fmt: skip
    stack.apply(broken)
    restarted: VerifierStub | None = None
    try:
        wait_until(
            lambda: any("string-asset" in e for e in verifier.reload_errors),
            timeout=30,
            what="the aborted reload",
        )
        assert "cannot restore struct from: string" in verifier.reload_errors[-1]
        loaded = verifier.reloads
        status = driver.converge(NS, "string-asset", ready, timeout=60).status
        assert any("obol-stack's verifier" in w for w in status["warnings"])  # the hook said so

        # A price change never reaches the buyers.
        sell(stack, "steady", price="0.005")
        changed = driver.converge(NS, "steady", ready, timeout=60).status
        assert changed["payment"]["perRequest"]["atomic"] == "5000"
        for _ in range(5):
            assert amount(stack, "/services/steady/x") == "2000"
        # A new offer is published by the hook and routed by Traefik, but the verifier never
        # learns it: /verify answers 200 for a path it does not know, so it is served free.
        sell(stack, "newcomer")
        published(stack, driver, "newcomer")
        free = stack.http("GET", "/services/newcomer/v1/models")
        assert free.status_code == 200, free.text
        assert not any(r["offerName"] == "newcomer" for r in verifier.routes())
        assert verifier.reloads == loaded
        # A verifier that restarts now never becomes ready.
        restarted = start_verifier(kube.api_url, kube.token, str(kube.ca_file))
        assert not restarted.ready.is_set()
        readyz = requests.get(f"http://127.0.0.1:{restarted.port}/readyz", timeout=5)
        assert readyz.status_code == 503
    finally:
        # The object form, as obol sell writes it, decodes: every route loads again.
        sell(stack, "string-asset", price="0.001")
    wait_until(
        lambda: amount(stack, "/services/steady/x") == "5000", timeout=30, what="the new price"
    )
    assert amount(stack, "/services/newcomer/v1/models") == "2000"
    assert restarted is not None
    wait_until(restarted.ready.is_set, timeout=30, what="the restarted verifier ready")
    restarted.stop()
    status = driver.converge(NS, "string-asset", ready, timeout=60).status
    assert not any("obol-stack's verifier" in w for w in status.get("warnings", []))
    assert condition(status, "RoutePublished")["status"] == "True"

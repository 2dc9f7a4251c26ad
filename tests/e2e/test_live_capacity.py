"""Live capacity in status: the hook's observation layer reads the engine's in-flight count.

With ``OBOL_OBSERVE=on`` the hook probes each inference offer's upstream (``/health`` and
vLLM's ``/metrics``) and reports ``status.capacity.inFlight`` and ``state``. Here the upstream
stand-in plays vLLM: ``vllm:num_requests_running`` is the number of requests it holds open right
now. Holding ``maxInFlight`` paid requests through Traefik makes the offer Saturated (and the
gateway answers 429 meanwhile); releasing them makes it Available again, and ``obol sell
status`` / ``obol sell list`` show both, after a re-sync.

Design notes
    * Its own stack and hook (observation on, probes every second, the hook's in-cluster upstream
      URL ``http://vllm.e2e-live.svc.cluster.local:8000`` mapped to the namespace address with
      ``OBOL_OBSERVE_UPSTREAM_OVERRIDES``), one gunicorn worker so that consecutive syncs read
      one observer cache.
    * Status only changes on a sync (Metacontroller would resync after ``resyncAfterSeconds``);
      the driver's ``converge`` re-syncs until the expected state is reported, bounded.
    * The same stand-ins as ``test_admission_chain.py``: :mod:`.driver` for Metacontroller,
      :mod:`.verifier_stub` for the x402 verifier.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from .buyer import Buyer, Held, assert_busy, paid, quote, run_obol
from .conftest import print_diagnostics_on_failure
from .driver import Driver, condition, ready
from .hook_process import HookServer, start_hook
from .kube import KubeClient
from .stack import HTTPServerProcess, Stack, wait_until
from .verifier_stub import VerifierStub, start_verifier

pytestmark = pytest.mark.e2e

NS = "e2e-live"
NAME = "live-qwen"
PATH = f"/services/{NAME}"
IN_CLUSTER_URL = f"http://vllm.{NS}.svc.cluster.local:8000"
PAYER_A, PAYER_B = Buyer(), Buyer()
OFFER: dict[str, Any] = {
    "apiVersion": "obol.org/v1alpha1",
    "kind": "ServiceOffer",
    "metadata": {"name": NAME, "namespace": NS},
    "spec": {
        "type": "inference",
        "upstream": {"service": "vllm", "port": 8000, "healthPath": "/health"},
        "capabilities": {"protocol": "openai-chat", "streaming": True},
        "capacity": {"mode": "external-static", "maxInFlight": 2, "retryAfterSeconds": 2},
        "payment": {
            "network": "base",
            "payTo": "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31",
            "price": {"perRequest": "0.001"},
        },
    },
}


@pytest.fixture(scope="module")
def verifier(kube: KubeClient) -> Iterator[VerifierStub]:
    stub = start_verifier(
        kube.api_url, kube.token, str(kube.ca_file), funded=[PAYER_A.address, PAYER_B.address]
    )
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def upstream(stack: Stack) -> HTTPServerProcess:
    server = stack.start_upstream("vllm", hold_timeout=25.0, vllm_metrics=True)
    stack.ensure_namespace(NS)
    stack.expose_endpoints(NS, "vllm", server.host, server.port, service_port=8000)
    return server


@pytest.fixture(scope="module")
def hook(stack: Stack, verifier: VerifierStub, upstream: HTTPServerProcess) -> HookServer:
    observe = {
        "OBOL_OBSERVE": "on",
        "OBOL_OBSERVE_UPSTREAM_OVERRIDES": json.dumps({IN_CLUSTER_URL: upstream.url}),
        "OBOL_PROBE_INTERVAL_SECONDS": "1",
        "OBOL_PROBE_TTL_SECONDS": "3",
        "OBOL_SYNC_PROBE_BUDGET_MS": "1000",
    }
    return start_hook(stack, verifier_url=verifier.verify_url, extra_env=observe)


@pytest.fixture(scope="module")
def offer(stack: Stack, driver: Driver) -> None:
    stack.apply(OFFER)
    driver.converge(NS, NAME, ready, timeout=60)
    stack.wait_for_route(NS, f"so-{NAME}", timeout=30)
    wait_until(
        lambda: stack.http("GET", PATH).status_code == 402,
        timeout=30,
        what=f"402 from {PATH}",
        interval=0.3,
    )


@pytest.fixture(autouse=True)
def _diagnostics_on_failure(request: pytest.FixtureRequest, stack: Stack) -> Iterator[None]:
    yield
    print_diagnostics_on_failure(request, stack)


def capacity_is(state: str, in_flight: int) -> Any:
    def check(status: Mapping[str, Any]) -> bool:
        capacity = status.get("capacity") or {}
        return bool(capacity.get("state") == state and capacity.get("inFlight") == in_flight)

    return check


def status_facts(stack: Stack) -> dict[str, str]:
    """``obol sell status`` as label -> value."""
    shown = run_obol(stack, "sell", "status", NAME, "-n", NS)
    assert shown.returncode == 0, shown.stderr
    return {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
        for line in shown.stdout.splitlines()
        if ":" in line
    }


def list_row(stack: Stack) -> list[str]:
    listing = run_obol(stack, "sell", "list", "-n", NS)
    assert listing.returncode == 0, listing.stderr
    return next(line.split() for line in listing.stdout.splitlines() if f" {NAME} " in line)


def test_idle_offer_is_observed_available_and_healthy(
    stack: Stack, offer: None, driver: Driver
) -> None:
    result = driver.converge(NS, NAME, capacity_is("Available", 0), timeout=30)
    capacity = result.status["capacity"]
    assert capacity["source"]
    assert condition(result.status, "UpstreamHealthy")["status"] == "True"
    assert condition(result.status, "Ready")["status"] == "True"
    facts = status_facts(stack)
    assert (facts["In flight"], facts["Capacity state"]) == ("0", "Available")


def test_holding_max_in_flight_shows_saturated_then_available_after_release(
    stack: Stack, offer: None, driver: Driver, upstream: HTTPServerProcess
) -> None:
    required = quote(stack, PATH)
    holders = [paid(required, PAYER_A), paid(required, PAYER_B)]
    with Held(stack, upstream, f"{PATH}/v1/chat/completions", "live", holders):
        # The gateway enforces the envelope meanwhile...
        assert_busy(stack.http("GET", f"{PATH}/v1/models"), 2, f"{NS}/{NAME}")
        # ...and the status, after a re-sync, reports what the engine says.
        saturated = driver.converge(NS, NAME, capacity_is("Saturated", 2), timeout=30)
        assert "2 of 2 in flight" in saturated.status["capacity"]["message"]
        facts = status_facts(stack)
        assert (facts["In flight"], facts["Capacity state"]) == ("2", "Saturated")
        assert facts["Max in-flight"] == "2"
        assert list_row(stack)[-2:] == ["Saturated", "True"]

    available = driver.converge(NS, NAME, capacity_is("Available", 0), timeout=30)
    assert available.status["capacity"]["state"] == "Available"
    facts = status_facts(stack)
    assert (facts["In flight"], facts["Capacity state"]) == ("0", "Available")
    assert list_row(stack)[-2:] == ["Available", "True"]
    assert stack.http("GET", f"{PATH}/v1/models").status_code == 402

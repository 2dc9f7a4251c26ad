"""Migrating a cluster from obol-stack's ServiceOffer CRD to ours loses nothing (real API server).

The platform team's path, on a real kube-apiserver + etcd with Traefik:

1. The cluster has obol-stack's ``serviceoffers.obol.org`` (``obol_stack/serviceoffers-crd.yaml``,
   written by hand from the description of obol-stack's CRD, not copied) and offers it stored:
   the hand-written line-A and line-B fixtures of ``tests/fixtures/obol``, one carrying
   obol-stack's finalizer and status, plus legacy objects that only obol-stack's looser schema
   admits (an http offer without an upstream, a zero price).
2. ``crds/serviceoffer.yaml`` is applied over it. Every object reads back unchanged (spec,
   status, finalizers), and none is blocked from a later update: unchanged fields that break a
   new rule are ratcheted, and "upstream is required" is a transition rule. Offers in the shapes
   obol-stack's newest CRD accepts are created and edited under ours, and obol-stack's
   controller's bare conditions (type and status only) are written.
3. The hook (``obol hook serve``, driven by the Metacontroller stand-in) converges them: the
   rendered ones get their children and a 402 through Traefik with the right path, port, price
   and asset (OBOL test token, permit2); the others are kept with ``Ready=False/NotRendered``.
4. The seed's two ``obol sell`` commands work verbatim with ``X402_WALLET`` set, and
   ``obol sell status`` shows the capacity fields.
5. obol-stack's controller running too is detected (its field manager on ``so-<name>``), and
   the finalizer it leaves is removed with exactly the command the status gives.
"""

from __future__ import annotations

import concurrent.futures
import copy
import shlex
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.sell_helpers import SEED_COMMANDS
from tests.support.obol_shapes import OBOL_SHAPES, obol_shaped

from .buyer import quote
from .conftest import e2e_stack, print_diagnostics_on_failure
from .driver import Driver, condition, condition_is, ready
from .hook_process import obol_command
from .kube import ApiError, KubeClient, collection_path, object_path
from .stack import REPO_ROOT, HTTPServerProcess, Stack, wait_until
from .verifier_stub import VerifierStub, start_verifier

pytestmark = pytest.mark.e2e

OBOL_CRD = Path(__file__).parent / "obol_stack" / "serviceoffers-crd.yaml"
OUR_CRD = REPO_ROOT / "crds" / "serviceoffer.yaml"
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "obol"
API = "obol.org/v1alpha1"
PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"
FINALIZER = "monetize.obol.org/finalizer"
OBOL_TEST_TOKEN = "0x0a09371a8b011d5110656ceBCc70603e53FD2c78"


def _fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((FIXTURES / name).read_text())
    return loaded


def _legacy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "ServiceOffer", "metadata": {"name": name}, "spec": spec}


QWEN = _fixture("line-b-inference-obol.yaml")
QWEN["metadata"]["finalizers"] = [FINALIZER]
WEATHER = _fixture("line-a-http-limits.yaml")
TRANSLATE = _fixture("line-a-unregistered-token.yaml")
AGENT = _fixture("line-b-agent.yaml")
CORPUS = _fixture("line-b-dataset-card.yaml")
# Objects obol-stack's schema admits and ours would refuse on create.
NO_UPSTREAM = _legacy(
    "no-upstream",
    {"type": "http", "payment": {"network": "base", "payTo": PAY_TO, "price": {"perRequest": "1"}}},
)
NO_UPSTREAM["metadata"]["namespace"] = "legacy"
ZERO_PRICE = _legacy(
    "zero-price",
    {
        "type": "http",
        "upstream": {"service": "api", "namespace": "legacy", "port": 8080},
        "payment": {"network": "base", "payTo": PAY_TO, "price": {"perRequest": "0"}},
    },
)
ZERO_PRICE["metadata"]["namespace"] = "legacy"
# obol-stack's path pattern admits dot segments; Gateway API (and our CRD) refuse them.
DOT_PATH = _legacy(
    "dot-path",
    {
        "type": "http",
        "path": "/x/../api",
        "upstream": {"service": "api", "namespace": "legacy", "port": 8080},
        "payment": {"network": "base", "payTo": PAY_TO, "price": {"perRequest": "1"}},
    },
)
DOT_PATH["metadata"]["namespace"] = "legacy"
STORED = [QWEN, WEATHER, TRANSLATE, AGENT, CORPUS, NO_UPSTREAM, ZERO_PRICE, DOT_PATH]
RENDERED = [QWEN, WEATHER, TRANSLATE]
# What obol-stack's controller had written into one offer's status.
OBOL_STATUS = {
    "observedGeneration": 1,
    "endpoint": "/services/qwen",
    "agentId": "42",
    "registrationTxHash": "0x" + "ab" * 32,
    "conditions": [
        {
            "type": "ModelReady",
            "status": "True",
            "reason": "Declared",
            "message": "Model qwen3.5:35b declared",
            "lastTransitionTime": "2026-11-30T10:00:00Z",
        }
    ],
}


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def _path(obj: Mapping[str, Any]) -> str:
    namespace, name = _key(obj)
    return object_path(API, "serviceoffers", namespace, name)


def _kept(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What must survive the CRD swap: spec, status, finalizers, labels, annotations."""
    meta = obj["metadata"]
    return {
        "spec": obj.get("spec"),
        "status": obj.get("status"),
        "finalizers": meta.get("finalizers"),
        "labels": meta.get("labels"),
        "annotations": meta.get("annotations"),
    }


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A Stack with obol-stack's CRD (not ours) installed."""
    with e2e_stack(request, extra_crds=[OBOL_CRD]) as s:
        yield s


@pytest.fixture(autouse=True)
def _diagnostics_on_failure(request: pytest.FixtureRequest, stack: Stack) -> Iterator[None]:
    yield
    print_diagnostics_on_failure(request, stack)


@pytest.fixture(scope="module")
def stored(stack: Stack, kube: KubeClient) -> dict[tuple[str, str], dict[str, Any]]:
    """obol-stack's offers as its CRD stores them, with its status on one; then our CRD."""
    for obj in STORED:
        stack.ensure_namespace(obj["metadata"]["namespace"])
        kube.create(collection_path(API, "serviceoffers", obj["metadata"]["namespace"]), obj)
    qwen = kube.get(_path(QWEN))
    assert qwen is not None
    kube.update(_path(QWEN) + "/status", {**qwen, "status": OBOL_STATUS})
    before = {_key(obj): kube.get(_path(obj)) for obj in STORED}
    stack.install_crds([OUR_CRD])

    def ours_is_served() -> bool:
        # Only our schema knows spec.capacity (obol-stack's would prune it).
        probe = copy.deepcopy(WEATHER)
        probe["metadata"] = {"name": "probe", "namespace": "tenant-a"}
        probe["spec"]["capacity"] = {"mode": "external-static", "maxInFlight": 8}
        try:
            created = kube.create(
                collection_path(API, "serviceoffers", "tenant-a"), probe, dry_run=True
            )
        except ApiError:
            return False  # obol-stack's schema: strict validation refuses spec.capacity
        return "capacity" in created["spec"]

    wait_until(ours_is_served, timeout=30, what="our CRD's schema in effect")
    return {key: value for key, value in before.items() if value is not None}


def test_every_stored_offer_reads_back_unchanged_under_our_crd(
    kube: KubeClient, stored: dict[tuple[str, str], dict[str, Any]]
) -> None:
    assert len(stored) == len(STORED)
    for key, before in stored.items():
        after = kube.get(object_path(API, "serviceoffers", *key))
        assert after is not None, key
        assert _kept(after) == _kept(before), key
    assert stored[_key(QWEN)]["status"]["agentId"] == "42"


def test_stored_offers_stay_updatable_even_where_they_break_a_new_rule(
    kube: KubeClient, stored: dict[tuple[str, str], dict[str, Any]]
) -> None:
    for obj in STORED:
        patched = kube.merge_patch(
            _path(obj), {"metadata": {"annotations": {"example.com/migrated": "yes"}}}
        )
        assert patched["metadata"]["annotations"]["example.com/migrated"] == "yes"
    # A spec edit elsewhere: the unchanged zero price is ratcheted, the missing upstream is let
    # through by the transition rule because the old object had none either.
    kube.merge_patch(_path(ZERO_PRICE), {"spec": {"drainGracePeriod": "1h"}})
    kube.merge_patch(_path(NO_UPSTREAM), {"spec": {"drainGracePeriod": "1h"}})
    # The unchanged dot-segment path is ratcheted too.
    kube.merge_patch(_path(DOT_PATH), {"spec": {"drainGracePeriod": "1h"}})


def test_a_new_offer_must_meet_the_new_rules(
    kube: KubeClient, stored: dict[tuple[str, str], dict[str, Any]]
) -> None:
    fresh = copy.deepcopy(NO_UPSTREAM)
    fresh["metadata"]["name"] = "fresh"
    with pytest.raises(ApiError) as refused:
        kube.create(collection_path(API, "serviceoffers", "legacy"), fresh)
    assert "upstream is required for inference and http offers" in refused.value.message
    with pytest.raises(ApiError) as zero:
        kube.merge_patch(_path(ZERO_PRICE), {"spec": {"payment": {"price": {"perRequest": "0.0"}}}})
    assert "price.perRequest must be greater than zero" in zero.value.message
    dotted = copy.deepcopy(DOT_PATH)
    dotted["metadata"]["name"] = "fresh-dot-path"
    with pytest.raises(ApiError) as refused_path:
        kube.create(collection_path(API, "serviceoffers", "legacy"), dotted)
    assert "spec.path" in refused_path.value.message


@pytest.mark.parametrize("shape", sorted(OBOL_SHAPES))
def test_offers_in_obol_stacks_newest_shapes_are_created_and_edited_under_our_crd(
    stack: Stack, kube: KubeClient, stored: dict[tuple[str, str], dict[str, Any]], shape: str
) -> None:
    # What obol-stack's newest CRD accepts (tests/support/obol_shapes.py), written while ours is
    # installed: stored as written, editable, and obol-stack's controller's bare conditions too.
    offer = obol_shaped(WEATHER, shape)
    offer["metadata"] = {"name": f"shape-{sorted(OBOL_SHAPES).index(shape)}", "namespace": "shapes"}
    stack.ensure_namespace("shapes")
    created = kube.create(collection_path(API, "serviceoffers", "shapes"), offer)
    try:
        assert created["spec"] == {**created["spec"], **offer["spec"]}
        edited = kube.merge_patch(_path(offer), {"spec": {"drainGracePeriod": "1h"}})
        bare = {"conditions": [{"type": "RoutePublished", "status": "False"}]}
        written = kube.update(_path(offer) + "/status", {**edited, "status": bare})
        assert written["status"] == bare
    finally:
        kube.delete(_path(offer))


@pytest.fixture(scope="module")
def verifier(stack: Stack, kube: KubeClient) -> Iterator[VerifierStub]:
    stub = start_verifier(kube.api_url, kube.token, str(kube.ca_file))
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def upstream(stack: Stack) -> HTTPServerProcess:
    """One echo upstream, exposed under each rendered offer's Service name and port."""
    server = stack.start_upstream("upstream")
    backends = [(o["spec"]["upstream"], o["metadata"]["namespace"]) for o in RENDERED]
    backends.append(({"service": "vllm-qwen36", "port": 8000}, "llm"))
    for backend, namespace in backends:
        stack.ensure_namespace(namespace)
        stack.expose_endpoints(
            namespace, backend["service"], server.host, server.port, service_port=backend["port"]
        )
    return server


@pytest.fixture(scope="module")
def converged(
    stored: dict[tuple[str, str], dict[str, Any]],
    driver: Driver,
    upstream: HTTPServerProcess,
    verifier: VerifierStub,
) -> None:
    for obj in RENDERED:
        driver.converge(*_key(obj), ready, timeout=60)
    for obj in (AGENT, CORPUS):
        driver.converge(*_key(obj), condition_is("Ready", "False", "NotRendered"), timeout=30)


def test_a_stored_path_gateway_api_refuses_gets_invalid_spec_and_a_status_write(
    kube: KubeClient, driver: Driver, converged: None
) -> None:
    # The hook's status write goes through the API server's validation of the whole object,
    # with the dot-segment path unchanged (ratcheted): the offer is told, never locked.
    driver.converge(*_key(DOT_PATH), condition_is("Ready", "False", "InvalidSpec"), timeout=30)
    offer = kube.get(_path(DOT_PATH))
    assert offer is not None
    (ready_condition,) = [c for c in offer["status"]["conditions"] if c["type"] == "Ready"]
    assert "spec.path" in ready_condition["message"]


def test_the_hook_converges_obol_offers_with_path_port_price_and_asset(
    stack: Stack, kube: KubeClient, driver: Driver, converged: None
) -> None:
    stack.wait_for_route("llm", "so-qwen-obol", timeout=30)
    terms = wait_until(
        lambda: (
            stack.http("GET", "/services/qwen/v1/models").status_code == 402
            and quote(stack, "/services/qwen/v1/models")
        ),
        timeout=30,
        what="402 from /services/qwen",
    )
    accepted = terms["accepts"][0]
    # perMTok 1.25 OBOL, quoted for the verifier's 1,000 tokens: 0.00125 OBOL in 18 decimals.
    assert (accepted["network"], accepted["asset"], accepted["amount"]) == (
        "eip155:84532",
        OBOL_TEST_TOKEN,
        "1250000000000000",
    )
    assert accepted["extra"]["assetTransferMethod"] == "permit2"
    route = kube.get(
        object_path("gateway.networking.k8s.io/v1", "httproutes", "llm", "so-qwen-obol")
    )
    assert route is not None
    rule = route["spec"]["rules"][0]
    assert rule["matches"][0]["path"]["value"] == "/services/qwen"
    assert rule["backendRefs"][0]["port"] == 11434
    status = driver.get_parent("llm", "qwen-obol")["status"]
    assert status["model"] == {"name": "qwen3.5:35b", "runtime": "ollama"}
    assert status["agentId"] == "42"  # obol-stack's registration result survives the hook
    assert status["payment"]["asset"]["canonical"] is False
    assert "spec.registration" in status["notActedUpon"]
    # obol-stack's finalizer is still there: status says how to remove it.
    assert any(FINALIZER in w and "kubectl patch" in w for w in status["warnings"])

    weather = driver.get_parent("tenant-a", "weather")["status"]
    assert weather["capacity"]["maxInFlight"] == 8
    assert weather["payment"]["quote"]["atomic"] == "50000"
    assert kube.get(
        object_path("traefik.io/v1alpha1", "middlewares", "tenant-a", "so-weather-ratelimit")
    )


def test_a_rate_limited_request_is_never_quoted_and_gets_traefiks_retry_after(
    stack: Stack, verifier: VerifierStub, converged: None
) -> None:
    """limits.rps 20 (burst 40) on /weather: a burst of unpaid requests is partly refused by
    the rateLimit before the payment gate, so only the admitted ones reach the verifier."""
    stack.wait_for_route("tenant-a", "so-weather", timeout=30)
    wait_until(
        lambda: stack.http("GET", "/weather/v1/now").status_code == 402,
        timeout=30,
        what="402 from /weather",
    )
    time.sleep(3)  # let the token bucket refill after the probes above
    before = len(verifier.calls())
    # At most 8 at once: the offer's maxInFlight is 8, so every 429 here is the rateLimit's.
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda _: stack.http("GET", "/weather/v1/now"), range(160)))
    limited = [r for r in replies if r.status_code == 429]
    quoted = [r for r in replies if r.status_code == 402]
    assert limited and quoted and len(limited) + len(quoted) == len(replies)
    for reply in limited:
        assert int(reply.headers["Retry-After"]) >= 1  # Traefik's own, not the busy responder's
        assert "PAYMENT-REQUIRED" not in reply.headers
        assert "offer_saturated" not in reply.text
    assert len(verifier.calls()) - before == len(quoted)


def test_unrendered_offers_are_kept_with_ready_false(driver: Driver, converged: None) -> None:
    for obj in (AGENT, CORPUS):
        status = driver.get_parent(*_key(obj))["status"]
        assert condition(status, "Ready")["reason"] == "NotRendered"


def _sell(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**stack.kubectl_env(), "X402_WALLET": PAY_TO}
    argv = [*obol_command(), *args, "--kubectl", str(stack.binaries.kubectl), "--context", "e2e"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)


def test_the_seed_commands_work_verbatim_against_the_api_server(
    stack: Stack, driver: Driver, upstream: HTTPServerProcess, converged: None
) -> None:
    explicit, preset = SEED_COMMANDS
    created = _sell(stack, *explicit)
    assert created.returncode == 0, created.stderr
    assert "serviceoffer.obol.org/qwen36-fast created" in created.stdout
    assert "Note: --pay-to not given: using X402_WALLET" in created.stderr
    configured = _sell(stack, *preset)
    assert configured.returncode == 0, configured.stderr
    driver.converge("llm", "qwen36-fast", ready, timeout=60)
    shown = _sell(stack, "sell", "status", "qwen36-fast", "-n", "llm")
    assert shown.returncode == 0, shown.stderr
    lines = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
        for line in shown.stdout.splitlines()
        if ":" in line
    }
    assert lines["Capacity mode"] == "external-static"
    assert lines["Scaling"].startswith("scalingControlled=false")
    assert lines["GPU count"] == "1"
    assert lines["Max in-flight"] == "16"
    assert lines["Per-buyer max in-flight"].startswith("4")
    assert lines["In flight"] == "Unknown"
    assert lines["Capacity state"] == "Unknown"
    assert lines["Ready"] == "True"
    assert lines["Price"] == "0.002 USDC/request on base"
    print(shown.stdout)


def test_obols_controller_writing_the_same_route_is_detected(
    stack: Stack, driver: Driver, converged: None
) -> None:
    # What obol-stack's Go controller does to so-<name>: server-side apply, its field manager,
    # force, the verifier as backend and no filters.
    theirs = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "so-translate", "namespace": "tenant-a"},
        "spec": {
            "parentRefs": [
                {"name": "traefik-gateway", "namespace": "traefik", "sectionName": "web"}
            ],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/services/translate"}}],
                    "backendRefs": [{"name": "x402-verifier", "namespace": "x402", "port": 8080}],
                }
            ],
        },
    }
    stack.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=serviceoffer-controller",
        "-f",
        "-",
        input=yaml.safe_dump(theirs),
    )
    result = driver.sync("tenant-a", "translate")
    ready_now = condition(result.status, "Ready")
    assert (ready_now["status"], ready_now["reason"]) == ("False", "ControllerConflict")
    assert "HTTPRoute so-translate (field manager serviceoffer-controller)" in ready_now["message"]
    assert "scale deployment serviceoffer-controller --replicas=0" in ready_now["message"]


def test_the_leftover_finalizer_is_removed_with_the_command_status_gives(
    stack: Stack, kube: KubeClient, driver: Driver, converged: None
) -> None:
    status = driver.get_parent("llm", "qwen-obol")["status"]
    warning = next(w for w in status["warnings"] if FINALIZER in w)
    command = shlex.split(warning.split("remove it with: ", 1)[1])
    assert command[:2] == ["kubectl", "patch"]
    stack.kubectl("delete", "serviceoffers.obol.org", "qwen-obol", "-n", "llm", "--wait=false")
    stuck = kube.get(_path(QWEN))
    assert stuck is not None and stuck["metadata"].get("deletionTimestamp")
    stack.kubectl(*command[1:])
    wait_until(lambda: kube.get(_path(QWEN)) is None, timeout=30, what="qwen-obol deleted")

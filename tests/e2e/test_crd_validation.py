"""The real kube-apiserver, not a model of it, judges our CRD, the examples and the hook's output.

What it proves, with strict server-side dry runs (``dryRun=All``, ``fieldValidation=Strict``:
nothing is stored, an unknown field is an error rather than a silent prune):

- the parent and the observed children written into every sync fixture are objects the API
  server would hold (three parents stand for an offer stored under an older, looser CRD);
- every child the hook renders for every sync fixture (HTTPRoute, Middleware, Service,
  ConfigMap) is accepted by the upstream CRDs the stack installs (Gateway API v1.5.1, Traefik)
  and by the core API, and is stored exactly as sent (defaults may only add fields): a child the
  server would prune or rewrite makes Metacontroller update it on every sync;
- every status the hook writes is accepted by the status subresource and stored as sent;
- the examples: valid ones accepted; invalid ones refused with the API server message their
  ``examples.obol.org/expected-crd-error`` annotation documents; the CRD's defaults;
- crds/serviceoffer.yaml's bounds and CEL rules, with the API server's own messages.

The offline check (tests/support/crd_validation.py) only gives fast feedback; this is the
authority. Skipped (not failed) when ``tests/e2e/build.sh`` has not been run.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks.core.models import eip55_checksum_ok
from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from tests.support.obol_shapes import OBOL_SHAPES, obol_shaped
from tests.support.one_validation import (
    args_for,
    cli_accepts,
    crd_accepts,
    hook_accepts,
    manifest_for,
    outside_stored_as_obol,
    sell_flags,
)

from .conftest import e2e_stack
from .kube import ApiError, KubeClient, collection_path, object_path
from .stack import REPO_ROOT, Stack

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
FIXTURES = sorted((REPO_ROOT / "tests/fixtures/sync").glob("*.json"))
VALID = sorted((REPO_ROOT / "examples").glob("*.yaml"))
INVALID = sorted((REPO_ROOT / "examples/invalid").glob("*.yaml"))
PLURALS = {
    "HTTPRoute": "httproutes",
    "Middleware": "middlewares",
    "Service": "services",
    "ConfigMap": "configmaps",
    "ServiceOffer": "serviceoffers",
}
PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"
OFFER: Obj = {
    "apiVersion": "obol.org/v1alpha1",
    "kind": "ServiceOffer",
    "metadata": {"name": "qwen", "namespace": "default"},
    "spec": {
        "upstream": {"service": "vllm", "port": 8000},
        "payment": {"network": "base", "payTo": PAY_TO, "price": {"perRequest": "0.001"}},
    },
}


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The API server with the upstream CRDs and ours; no upstream servers, so no netns."""
    extra = [REPO_ROOT / "crds" / "serviceoffer.yaml"]
    with e2e_stack(request, extra_crds=extra, use_netns=False) as s:
        yield s


def load_json(path: Path) -> Obj:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def ensure_namespace(kube: KubeClient, name: str) -> None:
    try:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        kube.create("/api/v1/namespaces", namespace)
    except ApiError as exc:
        if not exc.already_exists:
            raise


def dry_run_create(kube: KubeClient, obj: Obj) -> Obj:
    namespace = obj["metadata"].get("namespace", "default")
    ensure_namespace(kube, namespace)
    path = collection_path(obj["apiVersion"], PLURALS[obj["kind"]], namespace)
    return kube.create(path, obj, dry_run=True)


def changes(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Where ``stored`` lost or changed something of ``sent`` (fields it adds are fine)."""
    if isinstance(sent, dict) and isinstance(stored, dict):
        return [
            line
            for key, value in sent.items()
            for line in (
                changes(value, stored[key], f"{path}.{key}")
                if key in stored
                else [f"{path}.{key}: dropped"]
            )
        ]
    if isinstance(sent, list) and isinstance(stored, list) and len(sent) == len(stored):
        return [
            line
            for i, pair in enumerate(zip(sent, stored, strict=True))
            for line in changes(*pair, f"{path}[{i}]")
        ]
    return [] if sent == stored else [f"{path}: sent {sent!r}, stored {stored!r}"]


def refusal(kube: KubeClient, obj: Obj) -> str | None:
    """The API server's message refusing ``obj``, or None when it accepts it."""
    try:
        dry_run_create(kube, obj)
    except ApiError as exc:
        assert exc.status in (400, 422), exc
        return exc.message
    return None


# --------------------------------------------------------------------------------------------
# the hook's output
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_every_child_is_accepted_and_stored_as_sent(kube: KubeClient, fixture: Path) -> None:
    response = sync(parse_request(load_json(fixture)), Settings()).response
    for child in response["children"]:
        stored = dry_run_create(kube, child)
        assert not changes(child, stored), (child["kind"], changes(child, stored))


# Set by the API server on every stored object; a create must not carry them.
SERVER_OWNED = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_every_observed_child_in_a_fixture_is_an_object_the_api_server_stores(
    kube: KubeClient, fixture: Path
) -> None:
    # Fixtures are hand-written inputs: their observed children must be objects a real API
    # server would hold (their spec as written), or the goldens pin answers to impossible input.
    for group in load_json(fixture)["children"].values():
        for observed in group.values():
            child = copy.deepcopy(observed)
            for key in SERVER_OWNED:
                child["metadata"].pop(key, None)
            child.pop("status", None)
            stored = dry_run_create(kube, child)
            assert not changes(child, stored), (child["kind"], changes(child, stored))


# These stand for an offer stored under an older, looser CRD: the CRD of today refuses their
# spec (perBuyerMaxInFlight 16 > maxInFlight 8), so only the hook's own check catches it.
PARENT_REFUSED_TODAY = {
    "07-invalid-spec-new-offer",
    "08-invalid-spec-keeps-children",
    "13-invalid-spec-without-last-applied",
    "17-invalid-spec-forged-children",
}


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_every_fixture_parent_is_an_offer_the_api_server_stores(
    kube: KubeClient, fixture: Path
) -> None:
    parent = copy.deepcopy(load_json(fixture)["parent"])
    for key in SERVER_OWNED:
        parent["metadata"].pop(key, None)
    parent.pop("status", None)
    message = refusal(kube, parent)
    if fixture.stem in PARENT_REFUSED_TODAY:
        assert message is not None and "perBuyerMaxInFlight must be <= maxInFlight" in message
    else:
        assert message is None, message


@pytest.fixture(scope="module")
def holder(kube: KubeClient) -> Obj:
    """A stored ServiceOffer whose status subresource the status tests write (dry run)."""
    offer = yaml.safe_load((REPO_ROOT / "examples/inference-qwen36-fast.yaml").read_text())
    offer["metadata"] = {"name": "status-holder", "namespace": "status-check"}
    ensure_namespace(kube, "status-check")
    return kube.create(collection_path(offer["apiVersion"], "serviceoffers", "status-check"), offer)


def write_status(kube: KubeClient, holder: Obj, status: Obj) -> Obj:
    path = object_path(holder["apiVersion"], "serviceoffers", "status-check", "status-holder")
    return kube.update(f"{path}/status", {**holder, "status": status}, dry_run=True)


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_every_status_is_accepted_and_stored_as_sent(
    kube: KubeClient, holder: Obj, fixture: Path
) -> None:
    status = sync(parse_request(load_json(fixture)), Settings()).response["status"]
    stored = write_status(kube, holder, status)["status"]
    assert not changes(status, stored, "status")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda s: s["capacity"].update(queueDepth=0),
            'unknown field "status.capacity.queueDepth"',
            id="a field the schema does not declare",
        ),
        pytest.param(
            lambda s: s["conditions"].insert(1, copy.deepcopy(s["conditions"][0])),
            'status.conditions[1]: Duplicate value: {"type":',
            id="two conditions of one type (list-type map)",
        ),
        pytest.param(
            lambda s: s["conditions"][0].update(lastTransitionTime="yesterday"),
            'status.conditions[0].lastTransitionTime: Invalid value: "yesterday"',
            id="lastTransitionTime that is not a date-time",
        ),
        pytest.param(
            lambda s: s["conditions"][0].pop("status"),
            "status.conditions[0].status: Required value",
            id="a condition without a status",
        ),
    ],
)
def test_status_mistakes_are_refused(
    kube: KubeClient, holder: Obj, mutate: Callable[[Obj], None], expected: str
) -> None:
    status = sync(parse_request(load_json(FIXTURES[0])), Settings()).response["status"]
    mutate(status)
    with pytest.raises(ApiError) as caught:
        write_status(kube, holder, status)
    assert expected in caught.value.message


# --------------------------------------------------------------------------------------------
# examples and crds/serviceoffer.yaml
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_examples_are_accepted_as_written(kube: KubeClient, path: Path) -> None:
    offer = yaml.safe_load(path.read_text())
    stored = dry_run_create(kube, offer)
    assert not changes(offer["spec"], stored["spec"], "spec")


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_examples_are_refused_as_annotated(kube: KubeClient, path: Path) -> None:
    offer = yaml.safe_load(path.read_text())
    expected = offer["metadata"]["annotations"]["examples.obol.org/expected-crd-error"]
    message = refusal(kube, offer)
    if expected == "accepted":
        assert message is None
    else:
        assert message is not None and expected in message, message


def test_a_bare_offer_gets_the_crds_defaults(kube: KubeClient) -> None:
    # No default asset: obol-stack's CRD has none, so its stored offers read back unchanged
    # under ours (the model's default is usdc).
    assert dry_run_create(kube, OFFER)["spec"] == {
        "type": "http",
        "upstream": {"service": "vllm", "port": 8000, "healthPath": "/health"},
        "payment": {
            "network": "base",
            "payTo": PAY_TO,
            "scheme": "exact",
            "maxTimeoutSeconds": 300,
            "price": {"perRequest": "0.001"},
        },
    }


def _offer(**spec: Any) -> Obj:
    offer = copy.deepcopy(OFFER)
    for key, value in spec.items():
        if key in ("asset", "network"):
            offer["spec"]["payment"][key] = value
        elif key == "price":
            offer["spec"]["payment"]["price"] = value
        else:
            offer["spec"][key] = value
    return offer


def _capacity(**fields: Any) -> Obj:
    return _offer(capacity={"mode": "external-static", "maxInFlight": 4, **fields})


@pytest.mark.parametrize(
    ("offer", "expected"),
    [
        pytest.param(
            _capacity(perBuyerMaxInFlight=8),
            "spec.capacity.perBuyerMaxInFlight: Invalid value: "
            "perBuyerMaxInFlight must be <= maxInFlight",
            id="perBuyerMaxInFlight above maxInFlight",
        ),
        pytest.param(
            _capacity(perBuyerMaxInFlight=4), None, id="perBuyerMaxInFlight = maxInFlight"
        ),
        pytest.param(
            _capacity(maxQueueDepth=1),
            "spec.capacity.maxQueueDepth: Invalid value: maxQueueDepth must be 0",
            id="a queue depth",
        ),
        pytest.param(
            _capacity(retryAfterSeconds=600),
            "capacity.retryAfterSeconds must be < payment.maxTimeoutSeconds",
            id="retryAfterSeconds reaching the defaulted maxTimeoutSeconds",
        ),
        # CEL cannot see payment.asset (a string or an object has no structural type), so
        # whether a token exists on a network is the hook's and obol sell's to say.
        pytest.param(_offer(asset="obol"), None, id="obol on base (the registry refuses it)"),
        pytest.param(
            _offer(asset="junk"),
            'spec.payment.asset: Invalid value: "junk": spec.payment.asset in body should'
            " match '^(usdc|obol|0x[0-9a-fA-F]{40})$'",
            id="a junk asset symbol",
        ),
        pytest.param(_offer(asset=7), "spec.payment.asset: Invalid value: 7", id="a numeric asset"),
        pytest.param(_offer(asset=["usdc"]), "spec.payment.asset: Too many", id="a list asset"),
        pytest.param(_offer(asset=True), '"spec.payment.asset" must not', id="a boolean asset"),
        pytest.param(
            _offer(asset={"address": "0x12", "decimals": 6}),
            'spec.payment.asset.address: Invalid value: "0x12"',
            id="an asset object with a short address",
        ),
        pytest.param(
            _offer(asset={"address": "0x0a09371a8b011d5110656ceBCc70603e53FD2c78", "decimals": 18}),
            None,
            id="obol-stack's asset object",
        ),
        pytest.param(
            _offer(path="/.well-known/x"),
            'spec.path: Invalid value: "/.well-known/x": path is reserved',
            id="a reserved path",
        ),
        pytest.param(_offer(path="/apis-weather"), None, id="a path that only looks reserved"),
        pytest.param(
            _offer(
                limits={"maxInFlight": 8}, capacity={"mode": "external-static", "maxInFlight": 4}
            ),
            "spec.limits.maxInFlight: Invalid value: limits.maxInFlight must equal"
            " capacity.maxInFlight",
            id="two different ceilings",
        ),
        pytest.param(_offer(asset="obol", network="ethereum"), None, id="obol on ethereum"),
        # Stored as obol-stack's CRD stores it; the hook reports InvalidSpec (no price).
        pytest.param(_offer(price={}), None, id="an empty price table"),
        pytest.param(_offer(price={"perMTok": "0.50"}), None, id="a perMTok price alone"),
        pytest.param(
            _offer(price={"perRequest": "0.0000001"}),
            None,
            id="7 decimals (only the registry knows the token's decimals)",
        ),
        pytest.param(
            _offer(price={"perRequest": "0.0010000"}), None, id="trailing zeros beyond 6 decimals"
        ),
        pytest.param(
            _offer(price={"perRequest": "0.000"}),
            "price.perRequest must be greater than zero",
            id="a zero price",
        ),
        pytest.param(
            _offer(
                capabilities={"contextWindowTokens": 4096},
                requestLimits={"maxInputTokens": 8192},
            ),
            "spec.requestLimits.maxInputTokens: Invalid value: "
            "requestLimits.maxInputTokens must be <= capabilities.contextWindowTokens",
            id="maxInputTokens beyond the context window",
        ),
        pytest.param(
            _capacity(maxInFlight=0),
            "spec.capacity.maxInFlight: Invalid value: 0: spec.capacity.maxInFlight in body "
            "should be greater than or equal to 1",
            id="maxInFlight 0",
        ),
        pytest.param(
            _offer(upstream={"service": "vllm", "port": 8000, "weight": 1}),
            'unknown field "spec.upstream.weight"',
            id="an upstream field the schema does not declare",
        ),
    ],
)
def test_serviceoffer_crd_bounds_and_rules(
    kube: KubeClient, offer: Obj, expected: str | None
) -> None:
    message = refusal(kube, offer)
    if expected is None:
        assert message is None
    else:
        assert message is not None and expected in message, message


@pytest.mark.parametrize("shape", sorted(OBOL_SHAPES))
def test_offers_in_obol_stacks_newest_shapes_are_stored_as_written(
    kube: KubeClient, shape: str
) -> None:
    """What obol-stack's newest CRD accepts, ours accepts too (tests/support/obol_shapes.py)."""
    offer = obol_shaped(OFFER, shape)
    stored = dry_run_create(kube, offer)
    assert not changes(offer["spec"], stored["spec"], "spec")


def test_a_condition_with_only_type_and_status_is_stored(kube: KubeClient, holder: Obj) -> None:
    # As obol-stack's controller may write it while both run during a migration.
    status = {"conditions": [{"type": "Ready", "status": "False"}]}
    assert write_status(kube, holder, status)["status"] == status


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(max_in_flight=st.integers(1, 10_000), per_buyer=st.integers(1, 10_000))
def test_the_per_buyer_rule_holds_exactly_when_per_buyer_is_at_most_the_ceiling(
    kube: KubeClient, max_in_flight: int, per_buyer: int
) -> None:
    message = refusal(kube, _capacity(maxInFlight=max_in_flight, perBuyerMaxInFlight=per_buyer))
    assert (message is None) == (per_buyer <= max_in_flight), message


@pytest.fixture(scope="module")
def compiled_rules() -> None:
    # Compiling the CEL rules raises the recursion limit; Hypothesis objects inside a test.
    crd_accepts(OFFER)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(flags=sell_flags())
def test_the_api_server_judges_specs_like_the_offline_check_the_cli_and_the_hook(
    kube: KubeClient, compiled_rules: None, flags: dict[str, Any]
) -> None:
    """Values around every integer bound and unsafe payTo values (tests/support/one_validation)."""
    manifest = manifest_for(flags)
    served = refusal(kube, manifest) is None
    assert served == crd_accepts(manifest), manifest
    if outside_stored_as_obol(flags):
        # Stored as obol-stack's CRD stores it; the hook and the CLI refuse to render it.
        assert not hook_accepts(manifest) and not cli_accepts(args_for(flags))[0]
    elif eip55_checksum_ok(flags["pay_to"]):
        assert served == hook_accepts(manifest) == cli_accepts(args_for(flags))[0], manifest
    else:
        # CEL cannot hash, so the CRD stores it; the hook and the CLI refuse it.
        assert not hook_accepts(manifest)


# --------------------------------------------------------------------------------------------
# spec.path: our CRD refuses exactly what Gateway API's HTTPRoute CRD would refuse
# --------------------------------------------------------------------------------------------
ROUTE_PATHS = ["/x/../api", "/a/../b", "/x/..", "/./x", "/x/.", "//api", "/a//b"]
ROUTE_PATHS_OK = ["/services/qwen", "/v1.2/chat", "/x/..y", "/.x/y", "/x/y/"]


@pytest.mark.parametrize("path", ROUTE_PATHS + ROUTE_PATHS_OK)
def test_a_path_gateway_api_refuses_is_refused_by_our_crd_first(
    kube: KubeClient, path: str
) -> None:
    # The HTTPRoute the hook renders for this offer, with the path as written: Gateway API's
    # own CRD judges it; ours must judge the offer the same way, before anything is rendered.
    route = sync(parse_request(render_request_for(_offer())), Settings()).response["children"][0]
    assert route["kind"] == "HTTPRoute"
    route["spec"]["rules"][0]["matches"][0]["path"]["value"] = path
    route_refused = refusal(kube, route)
    offer_refused = refusal(kube, _offer(path=path))
    if path in ROUTE_PATHS_OK:
        assert (route_refused, offer_refused) == (None, None)
        return
    assert route_refused is not None and "must not" in route_refused, route_refused
    reason = "'//'" if "//" in path else "a '.' or '..' segment"
    assert offer_refused is not None, path
    assert f'spec.path: Invalid value: "{path}": path must not contain {reason}' in (
        offer_refused
    ), offer_refused


def render_request_for(offer: Obj) -> Obj:
    parent = copy.deepcopy(offer)
    parent["metadata"].setdefault("namespace", "path-check")
    return {"parent": parent, "children": {}}

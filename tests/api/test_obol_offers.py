"""obol-stack-shaped offers (tests/fixtures/obol, hand-written) through the model, the CRD and sync.

Design notes:
- The fixtures are offers as obol-stack's own CRD stores them; they must parse unchanged, pass
  this project's CRD, and render (or, for the types this controller does not render, be kept
  with Ready=False/NotRendered). The real API server half, including the CRD swap, is
  tests/e2e/test_obol_migration.py.
- Goldens (tests/golden/obol) pin the whole sync response; the named assertions below say which
  parts of it carry the compatibility promises, so a golden update cannot quietly drop one.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.core.models import parse_offer
from hooks.core.request import SyncRequest, parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from tests.support.crd_validation import format_violations, load_crd
from tests.support.goldens import assert_matches_golden, assert_response_schema_valid
from tests.support.obol_shapes import OBOL_SHAPES, obol_shaped

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted((ROOT / "tests/fixtures/obol").glob("*.yaml"))
GOLDEN = ROOT / "tests/golden/obol"
CRD = load_crd(ROOT / "crds/serviceoffer.yaml")


def offer(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "tests/fixtures/obol" / name).read_text())
    return loaded


def request_for(obj: dict[str, Any], children: dict[str, Any] | None = None) -> SyncRequest:
    parent = copy.deepcopy(obj)
    parent["metadata"].update(
        uid="0b0b0b0b-0000-4000-8000-000000000001",
        generation=3,
        creationTimestamp="2026-11-30T10:00:00Z",
    )
    return parse_request({"controller": {}, "parent": parent, "children": children or {}})


def children_by_name(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {child["metadata"]["name"]: child for child in response["children"]}


def condition(response: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in response["status"]["conditions"] if c["type"] == kind)
    return found


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_obol_offer_parses_and_passes_the_crd(path: Path) -> None:
    obj = yaml.safe_load(path.read_text())
    parse_offer(obj)
    violations = CRD.validate(obj)
    assert not violations, format_violations(violations)


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_obol_offer_sync_matches_golden(path: Path, update_goldens: bool) -> None:
    response = sync(request_for(yaml.safe_load(path.read_text())), Settings()).response
    assert_matches_golden(response, GOLDEN / f"{path.stem}.yaml", update=update_goldens)


def test_every_obol_golden_has_a_fixture() -> None:
    stems = {p.stem for p in FIXTURES}
    assert not [g.name for g in GOLDEN.glob("*.yaml") if g.stem not in stems]


def test_line_b_path_model_and_obol_test_token_render() -> None:
    response = sync(request_for(offer("line-b-inference-obol.yaml")), Settings()).response
    children = children_by_name(response)
    rule = children["so-qwen-obol"]["spec"]["rules"][0]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/services/qwen"}}]
    assert rule["backendRefs"][0]["port"] == 11434
    route = json.loads(children["so-qwen-obol-pricing"]["data"]["routes.json"])["routes"][0]
    assert route["pattern"] == "/services/qwen/*"
    assert route["model"] == "qwen3.5:35b"
    # perMTok 1.25 OBOL without token limits: the verifier's 1,000 tokens, in 18 decimals.
    assert route["price"] == "0.00125"
    assert route["assetAddress"] == "0x0a09371a8b011d5110656ceBCc70603e53FD2c78"
    assert route["assetTransferMethod"] == "permit2"
    status = response["status"]
    assert status["endpoint"] == "/services/qwen"
    assert status["model"] == {"name": "qwen3.5:35b", "runtime": "ollama"}
    assert status["payment"]["quote"]["atomic"] == "1250000000000000"
    assert status["payment"]["asset"]["canonical"] is False
    assert "OBOL on base-sepolia is a test token, not a canonical one" in status["warnings"]
    assert status["notActedUpon"] == ["spec.provenance", "spec.registration"]


def test_line_a_limits_port_and_per_hour_render() -> None:
    response = sync(request_for(offer("line-a-http-limits.yaml")), Settings()).response
    children = children_by_name(response)
    filters = [
        f.get("extensionRef", {}).get("name", f["type"])
        for f in children["so-weather"]["spec"]["rules"][0]["filters"]
    ]
    assert filters == [
        "RequestHeaderModifier",
        "so-weather-ratelimit",
        "so-weather-busy",
        "so-weather-inflight",
        "so-weather-x402",
        "URLRewrite",
    ]
    assert children["so-weather-ratelimit"]["spec"]["rateLimit"]["average"] == 20
    assert children["so-weather-ratelimit"]["spec"]["rateLimit"]["burst"] == 40
    assert children["so-weather-inflight"]["spec"]["inFlightReq"]["amount"] == 8
    status = response["status"]
    assert status["capacity"]["maxInFlight"] == 8
    assert status["payment"]["quote"] == {
        "amount": "0.05",
        "atomic": "50000",
        "basis": "perHour charged as a flat price per request, as obol-stack's verifier does"
        " (time is not metered)",
    }
    assert status["notActedUpon"] == [
        "spec.payments",
        "spec.routes",
        "spec.hostname",
        "spec.branding",
        "spec.listing",
        "spec.async",
        "spec.registration",
        "spec.drainAt",
        "spec.drainGracePeriod",
    ]


def test_limits_and_capacity_ceilings_must_agree() -> None:
    obj = offer("line-a-http-limits.yaml")
    obj["spec"]["capacity"] = {"mode": "external-static", "maxInFlight": 4}
    response = sync(request_for(obj), Settings()).response
    assert condition(response, "Ready")["message"] == (
        "spec.limits.maxInFlight: must equal capacity.maxInFlight when both are set: they are"
        " the same ceiling (8 != 4)"
    )


def test_unregistered_token_is_used_as_declared_and_flagged() -> None:
    response = sync(request_for(offer("line-a-unregistered-token.yaml")), Settings()).response
    asset = response["status"]["payment"]["asset"]
    assert asset["registered"] is False
    assert (asset["decimals"], asset["eip712Name"], asset["transferMethod"]) == (
        8,
        "Example Token",
        "permit2",
    )
    assert response["status"]["payment"]["quote"]["atomic"] == "25000000"
    assert any("not in the asset registry" in w for w in response["status"]["warnings"])


def test_a_registered_token_must_match_the_registry() -> None:
    obj = offer("line-b-inference-obol.yaml")
    obj["spec"]["payment"]["asset"]["decimals"] = 6
    response = sync(request_for(obj), Settings()).response
    assert condition(response, "Ready")["message"] == (
        "spec.payment.asset.decimals: does not match the registered OBOL on base-sepolia (18)"
        " (got 6)"
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param(
            "line-b-agent.yaml",
            "spec.type: is kept but not rendered by this controller, which renders inference and"
            " http offers; the offer and any children it has are left as they are (got 'agent')",
            id="agent",
        ),
        pytest.param(
            "line-b-dataset-card.yaml",
            "spec.type: is kept but not rendered by this controller, which renders inference and"
            " http offers; the offer and any children it has are left as they are"
            " (got 'dataset')",
            id="dataset paid by card",
        ),
    ],
)
def test_unrendered_types_are_kept_with_ready_false(name: str, message: str) -> None:
    response = sync(request_for(offer(name)), Settings()).response
    ready = condition(response, "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", "NotRendered", message)
    assert response["children"] == []


def test_an_unrendered_type_keeps_existing_children() -> None:
    rendered = sync(request_for(offer("line-a-http-limits.yaml")), Settings()).response
    observed: dict[str, dict[str, Any]] = {}
    for child in rendered["children"]:
        key = f"{child['kind']}.{child['apiVersion']}"
        observed.setdefault(key, {})[child["metadata"]["name"]] = child
    obj = offer("line-a-http-limits.yaml")
    obj["spec"]["type"] = "agent"
    obj["status"] = rendered["status"]
    response = sync(request_for(obj, observed), Settings()).response
    assert condition(response, "Ready")["reason"] == "NotRendered"
    assert response["children"] == rendered["children"]


def test_a_card_payment_is_not_rendered() -> None:
    obj = offer("line-b-dataset-card.yaml")
    obj["spec"]["type"] = "http"
    response = sync(request_for(obj), Settings()).response
    ready = condition(response, "Ready")
    assert (ready["reason"], ready["message"]) == (
        "NotRendered",
        "spec.payment.method: is kept but not rendered: this controller's gate takes x402 crypto"
        " payments only; the offer and any children it has are left as they are (got 'card')",
    )


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/", "is reserved (the gateway's root and /services itself cannot be sold)"),
        ("/services", "is reserved (the gateway's root and /services itself cannot be sold)"),
        ("/api/v1", "is reserved: nothing may be published at or under /api"),
        ("/.well-known", "is reserved: nothing may be published at or under /.well-known"),
    ],
)
def test_reserved_paths_are_refused_by_model_and_crd(path: str, reason: str) -> None:
    obj = offer("line-a-http-limits.yaml")
    obj["spec"]["path"] = path
    response = sync(request_for(obj), Settings()).response
    assert condition(response, "Ready")["message"] == f"spec.path: {reason} (got {path!r})"
    assert [v.path for v in CRD.validate(obj)] == ["spec.path"]


def test_paths_that_only_start_like_a_reserved_one_are_free() -> None:
    obj = offer("line-a-http-limits.yaml")
    obj["spec"]["path"] = "/apis-weather"
    response = sync(request_for(obj), Settings()).response
    assert condition(response, "Ready")["reason"] != "InvalidSpec"
    assert not CRD.validate(obj)


@pytest.mark.parametrize(
    ("asset", "crd_path"),
    [
        pytest.param("junk", "spec.payment.asset", id="an unknown symbol"),
        pytest.param(7, "spec.payment.asset", id="a number"),
        pytest.param([1], "spec.payment.asset", id="a list"),
        pytest.param(True, "spec.payment.asset", id="a boolean"),
        pytest.param({"address": "0x12"}, "spec.payment.asset.address", id="a short address"),
        pytest.param({"decimals": "18"}, "spec.payment.asset.decimals", id="decimals as text"),
    ],
)
def test_junk_assets_are_refused_with_their_path(asset: Any, crd_path: str) -> None:
    obj = offer("line-b-inference-obol.yaml")
    obj["spec"]["payment"]["asset"] = asset
    assert crd_path in [v.path for v in CRD.validate(obj)]
    response = sync(request_for(obj), Settings()).response
    assert condition(response, "Ready")["message"].startswith(crd_path + ":")


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_obol_offer_children_and_status_are_schema_valid(path: Path) -> None:
    assert_response_schema_valid(
        sync(request_for(yaml.safe_load(path.read_text())), Settings()).response
    )


@pytest.mark.parametrize("name", ["line-b-inference-obol.yaml", "line-b-agent.yaml"])
def test_obols_registration_results_in_status_are_kept(name: str) -> None:
    obj = offer(name)
    registration = {
        "agentId": "42",
        "registrationTxHash": "0x" + "ab" * 32,
        "agentResolution": {"model": "qwen", "skills": ["chat"], "endpoint": "http://a"},
    }
    obj["status"] = {"endpoint": "/services/x", **registration}
    status = sync(request_for(obj), Settings()).response["status"]
    assert {key: status[key] for key in registration} == registration


# --- the shapes obol-stack's newest CRD accepts ------------------------------------------------

# What the hook answers for each shape of tests/support/obol_shapes.py: the InvalidSpec message
# (the field path and why), or None when it renders the offer.
SHAPE_ANSWERS = {
    "upstream.service not a DNS label": "spec.upstream.service: must be a DNS-1123 label",
    "upstream.namespace not a DNS label": "spec.upstream.namespace: must be a DNS-1123 label",
    "empty upstream.healthPath": None,  # obol-stack's EffectiveHealthPath: "/"
    "maxTimeoutSeconds 0": "spec.payment.maxTimeoutSeconds: must be >= 1 (got 0)",
    "maxTimeoutSeconds above 86400": "spec.payment.maxTimeoutSeconds: must be <= 86400",
    "an empty price table": "spec.payment.price: must set perRequest, perMTok or both",
}


def test_every_obol_shape_has_its_expected_answer() -> None:
    assert set(SHAPE_ANSWERS) == set(OBOL_SHAPES)


@pytest.mark.parametrize("shape", sorted(OBOL_SHAPES))
def test_obol_shapes_are_stored_and_answered_never_refused(shape: str) -> None:
    base = offer("line-a-http-limits.yaml")
    shaped = obol_shaped(base, shape)
    violations = CRD.validate(shaped)
    assert not violations, format_violations(violations)
    response = sync(request_for(shaped), Settings()).response
    ready = condition(response, "Ready")
    expected = SHAPE_ANSWERS[shape]
    if expected is None:
        assert ready["reason"] != "InvalidSpec", ready
        assert any(c["kind"] == "HTTPRoute" for c in response["children"])
    else:
        assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
        assert expected in ready["message"], ready["message"]
        assert response["children"] == []  # a new offer: nothing to keep, nothing rendered

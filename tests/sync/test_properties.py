"""Property tests: arbitrary *valid* offers always give deterministic, schema-valid children in
the documented filter order, and a status our own CRD accepts.

Design notes:
- ``valid_offers()`` is an explicit Hypothesis strategy (pydantic v2 has no Hypothesis plugin)
  that only produces specs the CRD and the model both accept; every generated offer is first
  checked against ``crds/serviceoffer.yaml`` so the strategy itself cannot drift.
- Children are checked offline against the upstream CRDs (exported by tests/e2e/build.sh) with
  real JSON Schema and real CEL (tests/support/crd_validation.py): a field the API server would
  prune would make Metacontroller update the child forever. tests/e2e/test_crd_validation.py
  sends the golden children to the real API server.
- The fuzzing of arbitrary (mostly invalid) input lives in tests/robustness.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from tests.support.crd_validation import load_crd, validate_object, validate_status
from tests.support.observed import observed_children, parent_object, sync_request

PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"
SERVICEOFFER_CRD = "crds/serviceoffer.yaml"
DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
DNS_SUBDOMAIN = rf"{DNS_LABEL}(\.{DNS_LABEL})*"
LABEL_VALUE = r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]"

dns_label = st.from_regex(r"\A[a-z]([a-z0-9-]{0,20}[a-z0-9])?\Z")
subdomain = st.lists(dns_label, min_size=1, max_size=4).map(".".join)


def price(decimals: int, min_whole: int = 0) -> st.SearchStrategy[str]:
    whole = st.integers(min_whole, 10**6)
    fraction = st.integers(0, 10**decimals - 1)
    return (
        st.tuples(whole, fraction)
        .filter(lambda p: p != (0, 0))
        .map(lambda p: f"{p[0]}.{str(p[1]).rjust(decimals, '0')}" if p[1] else str(p[0]))
    )


@st.composite
def payments(draw: st.DrawFn) -> dict[str, Any]:
    network, asset, decimals = draw(
        st.sampled_from(
            [
                ("base", "usdc", 6),
                ("base-sepolia", "usdc", 6),
                ("eip155:8453", "usdc", 6),
                ("ethereum", "usdc", 6),
                ("ethereum", "obol", 18),
                ("arbitrum-one", "usdc", 6),
            ]
        )
    )
    prices: dict[str, str] = {}
    if draw(st.booleans()):
        prices["perRequest"] = draw(price(decimals))
    if not prices or draw(st.booleans()):
        # Alone, perMTok is quoted for 1000 tokens, rounded half up: a whole token per MTok or
        # more never rounds to a zero quote (which the hook refuses).
        prices["perMTok"] = draw(price(decimals, min_whole=0 if prices else 1))
    payment: dict[str, Any] = {"network": network, "payTo": PAY_TO, "price": prices}
    if asset != "usdc" or draw(st.booleans()):
        payment["asset"] = asset
    payment["maxTimeoutSeconds"] = draw(st.integers(2, 86400))
    return payment


@st.composite
def valid_offers(draw: st.DrawFn) -> dict[str, Any]:
    payment = draw(payments())
    spec: dict[str, Any] = {
        "type": draw(st.sampled_from(["inference", "http"])),
        "upstream": {"service": draw(dns_label), "port": draw(st.integers(1, 65535))},
        "payment": payment,
    }
    if draw(st.booleans()):
        spec["upstream"]["namespace"] = draw(dns_label)
    window = None
    if draw(st.booleans()):
        window = draw(st.integers(1, 10**6))
        spec["capabilities"] = {
            "protocol": draw(
                st.sampled_from(["openai-chat", "openai-completions", "openai-embeddings", "http"])
            ),
            "streaming": draw(st.booleans()),
            "contextWindowTokens": window,
        }
    if draw(st.booleans()):
        top = window or 10**6
        limits = {
            "maxInputTokens": draw(st.integers(1, top)),
            "maxOutputTokens": draw(st.integers(1, top)),
            "maxBodyBytes": draw(st.integers(1, 2**30)),
        }
        spec["requestLimits"] = {k: v for k, v in limits.items() if draw(st.booleans())}
    if draw(st.booleans()):
        max_in_flight = draw(st.integers(1, 10000))
        capacity: dict[str, Any] = {"mode": "external-static", "maxInFlight": max_in_flight}
        if draw(st.booleans()):
            capacity["perBuyerMaxInFlight"] = draw(st.integers(1, max_in_flight))
        if draw(st.booleans()):
            capacity["gpuCount"] = draw(st.integers(0, 64))
        capacity["retryAfterSeconds"] = draw(
            st.integers(1, min(3600, payment["maxTimeoutSeconds"] - 1))
        )
        spec["capacity"] = capacity
    return {
        "apiVersion": "obol.org/v1alpha1",
        "kind": "ServiceOffer",
        "metadata": {"name": draw(subdomain), "namespace": draw(dns_label)},
        "spec": spec,
    }


def expected_order(spec: dict[str, Any], streams: bool) -> list[str]:
    capacity = spec.get("capacity")
    body = (spec.get("requestLimits") or {}).get("maxBodyBytes")
    order = []
    if capacity:
        order.append("RequestHeaderModifier")
    # The body is read before a slot is taken: a slow body holds no slot.
    if body is not None and not streams:
        order.append("body-limit")
    if capacity:
        order += ["busy", "inflight"]
        if "perBuyerMaxInFlight" in capacity:
            order.append("admitted")  # marks requests the global limit let through
    order.append("x402")
    if capacity and "perBuyerMaxInFlight" in capacity:
        order.append("buyer-inflight")
    order.append("URLRewrite")
    return order


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_offers())
def test_valid_offers_give_deterministic_schema_valid_children(offer: dict[str, Any]) -> None:
    assert not load_crd(SERVICEOFFER_CRD).validate(offer), "strategy produced an invalid offer"
    request = sync_request(parent_object(offer))
    response = sync(parse_request(request), Settings()).response
    again = sync(parse_request(copy.deepcopy(request)), Settings()).response
    assert orjson.dumps(response, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        again, option=orjson.OPT_SORT_KEYS
    )
    conditions = {c["type"]: c for c in response["status"]["conditions"]}
    assert conditions["Ready"]["reason"] != "InvalidSpec", conditions["Ready"]["message"]

    for child in response["children"]:
        name = child["metadata"]["name"]
        if child["kind"] in ("ConfigMap", "Service"):
            # Core kinds have no CRD here; the end-to-end suite applies them to a real API server.
            pattern = DNS_LABEL if child["kind"] == "Service" else DNS_SUBDOMAIN
            assert re.fullmatch(pattern, name) and len(name) <= 253, name
            assert all(re.fullmatch(LABEL_VALUE, v) for v in child["metadata"]["labels"].values())
            continue
        violations = validate_object(child)
        assert not violations, (child["kind"], name, violations)
    assert not validate_status(response["status"], SERVICEOFFER_CRD)

    spec = offer["spec"]
    streams = bool((spec.get("capabilities") or {}).get("streaming"))
    route = next(c for c in response["children"] if c["kind"] == "HTTPRoute")
    filters = route["spec"]["rules"][0]["filters"]
    kinds = [
        f["type"] if f["type"] != "ExtensionRef" else f["extensionRef"]["name"] for f in filters
    ]
    wanted = expected_order(spec, streams)
    assert len(kinds) == len(wanted)
    for got, want in zip(kinds, wanted, strict=True):
        assert got == want or got.endswith("-" + want), (kinds, wanted)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_offers())
def test_second_sync_over_its_own_children_changes_nothing(offer: dict[str, Any]) -> None:
    first = sync(parse_request(sync_request(parent_object(offer))), Settings()).response
    live = observed_children(first["children"])
    second = sync(
        parse_request(sync_request(parent_object(offer, status=first["status"]), live)), Settings()
    ).response
    third = sync(
        parse_request(sync_request(parent_object(offer, status=second["status"]), live)), Settings()
    ).response
    assert second["children"] == first["children"]
    assert third == second

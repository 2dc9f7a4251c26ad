"""Field rules of the ServiceOffer model (hooks.core.models + hooks.core.payment).

Design notes:
- Table tests: each case mutates one field of a known-good spec and names itself
  "valid because ..." or "invalid because ...".
- Invalid cases assert the whole message (path, reason, value), because that text is what a
  seller reads in `obol sell` output and in status; the CRD side is covered in
  tests/api/test_examples.py and, by the real API server, tests/e2e/test_crd_validation.py.
- The model's defaults are compared with the CRD's ``default`` values read from the CRD itself.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.core.assets import BUILTIN_REGISTRY
from hooks.core.errors import SpecError
from hooks.core.models import parse_offer, parse_spec
from hooks.core.payment import resolve_payment

PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"
BASE: dict[str, Any] = {
    "upstream": {"service": "vllm", "port": 8000},
    "payment": {"network": "base", "payTo": PAY_TO, "price": {"perRequest": "0.001"}},
}
ENVELOPE = {"mode": "external-static", "maxInFlight": 4}
ROOT = Path(__file__).resolve().parents[2]


def spec_with(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    spec = copy.deepcopy(BASE)
    change(spec)
    return spec


def check(spec: dict[str, Any]) -> None:
    parsed = parse_spec(spec)
    resolve_payment(parsed.payment, BUILTIN_REGISTRY)


VALID = [
    pytest.param(lambda s: None, id="valid because capacity, limits and capabilities are omitted"),
    pytest.param(lambda s: s.update(type="inference"), id="valid because type inference"),
    pytest.param(lambda s: s.update(capacity=dict(ENVELOPE)), id="valid because minimal envelope"),
    pytest.param(
        lambda s: s.update(capacity={**ENVELOPE, "perBuyerMaxInFlight": 4, "gpuCount": 0}),
        id="valid because perBuyerMaxInFlight equals maxInFlight and gpuCount may be 0",
    ),
    pytest.param(
        lambda s: (
            s.update(capacity={**ENVELOPE, "retryAfterSeconds": 3600})
            or s["payment"].update(maxTimeoutSeconds=3601)
        ),
        id="valid because retryAfterSeconds 3600 is below maxTimeoutSeconds",
    ),
    pytest.param(
        lambda s: s["payment"]["price"].update(perRequest="0.0010000"),
        id="valid because trailing zeros beyond USDC decimals are exact",
    ),
    pytest.param(
        lambda s: s["payment"].update(price={"perMTok": "0.5"}),
        id="valid because perMTok alone is a price",
    ),
    pytest.param(
        lambda s: s["payment"].update(network="eip155:84532"), id="valid because CAIP-2 network"
    ),
    pytest.param(
        lambda s: s["payment"].update(network="ethereum", asset="obol"),
        id="valid because OBOL on ethereum",
    ),
    pytest.param(
        lambda s: s["payment"].update(asset="0x833589fcd6edb6e08f4c7c32d4f71b54bda02913"),
        id="valid because a lower-case USDC address resolves to the known token",
    ),
    pytest.param(
        lambda s: s.update(
            capabilities={"protocol": "openai-chat", "streaming": True, "contextWindowTokens": 100},
            requestLimits={"maxInputTokens": 100, "maxOutputTokens": 100, "maxBodyBytes": 1},
        ),
        id="valid because token limits equal the context window",
    ),
    pytest.param(
        lambda s: s["upstream"].update(namespace="backends", healthPath="/v1/models"),
        id="valid because upstream namespace and health path are set",
    ),
]


@pytest.mark.parametrize("change", VALID)
def test_valid_specs(change: Callable[[dict[str, Any]], None]) -> None:
    check(spec_with(change))


INVALID = [
    pytest.param(
        lambda s: s.update(capacity={**ENVELOPE, "perBuyerMaxInFlight": 8}),
        "spec.capacity.perBuyerMaxInFlight: must be <= maxInFlight (8 > 4)",
        id="invalid because perBuyerMaxInFlight exceeds maxInFlight",
    ),
    pytest.param(
        lambda s: s.update(capacity={**ENVELOPE, "maxQueueDepth": 1}),
        "spec.capacity.maxQueueDepth: must be 0: queueing is not supported for external-static"
        " capacity (a saturated offer answers 429 at once) (got 1)",
        id="invalid because queueing is not supported",
    ),
    pytest.param(
        lambda s: s.update(capacity={"mode": "external-static"}),
        "spec.capacity.maxInFlight: required field is missing",
        id="invalid because maxInFlight is required",
    ),
    pytest.param(
        lambda s: s.update(capacity={"maxInFlight": 4}),
        "spec.capacity.mode: required field is missing",
        id="invalid because mode is required when capacity is present",
    ),
    pytest.param(
        lambda s: s.update(capacity={**ENVELOPE, "mode": "autoscaled"}),
        "spec.capacity.mode: must be one of external-static (got 'autoscaled')",
        id="invalid because only external-static exists",
    ),
    pytest.param(
        lambda s: s.update(capacity={**ENVELOPE, "maxInFlight": 0}),
        "spec.capacity.maxInFlight: must be >= 1 (got 0)",
        id="invalid because maxInFlight 0 would reject everything",
    ),
    pytest.param(
        lambda s: s.update(capacity={**ENVELOPE, "gpuCount": -1}),
        "spec.capacity.gpuCount: must be >= 0 (got -1)",
        id="invalid because gpuCount is negative",
    ),
    pytest.param(
        lambda s: s.update(capacity={**ENVELOPE, "retryAfterSeconds": 0}),
        "spec.capacity.retryAfterSeconds: must be >= 1 (got 0)",
        id="invalid because retryAfterSeconds is 0",
    ),
    pytest.param(
        lambda s: s.update(capacity={**ENVELOPE, "retryAfterSeconds": 300}),
        "spec.capacity.retryAfterSeconds: must be < payment.maxTimeoutSeconds (300 >= 300):"
        " a buyer told to wait must still be able to use its signed payment",
        id="invalid because Retry-After outlives the signed payment",
    ),
    pytest.param(
        lambda s: s["upstream"].update(port=0),
        "spec.upstream.port: must be >= 1 (got 0)",
        id="invalid because port 0",
    ),
    pytest.param(
        lambda s: s["upstream"].update(port="8000"),
        "spec.upstream.port: must be an integer (got '8000')",
        id="invalid because port is a string",
    ),
    pytest.param(
        lambda s: s["upstream"].update(service="Vllm_1"),
        "spec.upstream.service: must be a DNS-1123 label (lower-case letters, digits and '-')"
        " (got 'Vllm_1')",
        id="invalid because service is not a DNS label",
    ),
    pytest.param(
        lambda s: s["upstream"].update(healthPath="health"),
        "spec.upstream.healthPath: must be empty (meaning /) or an absolute path starting with /"
        " (no spaces, query or fragment) (got 'health')",
        id="invalid because healthPath is relative",
    ),
    pytest.param(
        lambda s: s.update(type="grpc"),
        "spec.type: must be one of inference, http, agent, fine-tuning, dataset or skill"
        " (got 'grpc')",
        id="invalid because type is unknown",
    ),
    pytest.param(
        lambda s: s.update(replicas=3),
        "spec.replicas: unknown field (got 3)",
        id="invalid because unknown fields are refused",
    ),
    pytest.param(
        lambda s: s.update(capabilities={"protocol": "grpc"}),
        "spec.capabilities.protocol: must be one of openai-chat, openai-completions,"
        " openai-embeddings or http (got 'grpc')",
        id="invalid because protocol is unknown",
    ),
    pytest.param(
        lambda s: s.update(
            capabilities={"contextWindowTokens": 10}, requestLimits={"maxOutputTokens": 11}
        ),
        "spec.requestLimits.maxOutputTokens: must be <= capabilities.contextWindowTokens (11 > 10)",
        id="invalid because maxOutputTokens exceeds the context window",
    ),
    pytest.param(
        lambda s: s.update(requestLimits={"maxBodyBytes": 0}),
        "spec.requestLimits.maxBodyBytes: must be >= 1 (got 0)",
        id="invalid because maxBodyBytes is 0",
    ),
    pytest.param(
        lambda s: s["payment"].update(price={}),
        "spec.payment.price: must set perRequest, perMTok or both",
        id="invalid because no price is set",
    ),
    pytest.param(
        lambda s: s["payment"]["price"].update(perRequest="1e-3"),
        'spec.payment.price.perRequest: must be a plain decimal string such as "0.001"'
        " (no sign, no exponent) (got '1e-3')",
        id="invalid because exponents are refused",
    ),
    pytest.param(
        lambda s: s["payment"]["price"].update(perRequest="-1"),
        'spec.payment.price.perRequest: must be a plain decimal string such as "0.001"'
        " (no sign, no exponent) (got '-1')",
        id="invalid because negative prices are refused",
    ),
    pytest.param(
        lambda s: s["payment"]["price"].update(perRequest=0.001),
        "spec.payment.price.perRequest: must be a string (got 0.001)",
        id="invalid because a float price is refused",
    ),
    pytest.param(
        lambda s: s["payment"]["price"].update(perRequest="0.0000001"),
        "spec.payment.price.perRequest: has 7 fractional digits but USDC has only 6"
        " (got '0.0000001')",
        id="invalid because the price is finer than USDC's decimals",
    ),
    pytest.param(
        lambda s: s["payment"].update(payTo="0x123"),
        "spec.payment.payTo: must be an EVM address: 0x followed by 40 hex digits (got '0x123')",
        id="invalid because payTo is not an address",
    ),
    pytest.param(
        lambda s: s["payment"].update(asset="obol"),
        "spec.payment.asset: OBOL is not deployed on base; OBOL is available on ethereum"
        " (got 'obol')",
        id="invalid because OBOL does not exist on base",
    ),
    pytest.param(
        lambda s: s["payment"].update(scheme="upto"),
        "spec.payment.scheme: must be one of exact (got 'upto')",
        id="invalid because only the exact scheme is supported",
    ),
    pytest.param(
        lambda s: s["payment"].update(maxTimeoutSeconds=0),
        "spec.payment.maxTimeoutSeconds: must be >= 1 (got 0)",
        id="invalid because maxTimeoutSeconds is 0",
    ),
    pytest.param(
        lambda s: s.pop("payment"),
        "spec.payment: required field is missing",
        id="invalid because payment is required",
    ),
]


@pytest.mark.parametrize(("change", "message"), INVALID)
def test_invalid_specs(change: Callable[[dict[str, Any]], None], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        check(spec_with(change))
    assert str(caught.value) == message


def test_every_problem_is_reported_at_once() -> None:
    spec = spec_with(lambda s: s["upstream"].update(port=0, service="BAD") or s.update(x=1))
    with pytest.raises(SpecError) as caught:
        parse_spec(spec)
    paths = sorted(problem.path for problem in caught.value.problems)
    assert paths == ["spec.upstream.port", "spec.upstream.service", "spec.x"]


def crd_defaults(
    node: dict[str, Any], path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], Any]]:
    """Every (property path, default) under an openAPIV3Schema node."""
    found = []
    for name, sub in (node.get("properties") or {}).items():
        if "default" in sub:
            found.append(((*path, name), sub["default"]))
        found += crd_defaults(sub, (*path, name))
    return found


# obol-stack's spec blocks the model keeps as plain JSON (listed in status.notActedUpon).
KEPT_AS_JSON = ("routes", "async", "registration")


def test_defaults_match_the_crd() -> None:
    crd = yaml.safe_load((ROOT / "crds/serviceoffer.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["storage"])
    defaults = crd_defaults(version["schema"]["openAPIV3Schema"]["properties"]["spec"])
    # Every optional block present, so that each default of the CRD has a place to show; the
    # upstream port left out, so that its default (obol-stack's 11434) shows too.
    blocks = {"capacity": dict(ENVELOPE), "capabilities": {}}
    spec = spec_with(lambda s: s.update(blocks))
    del spec["upstream"]["port"]
    dumped = parse_spec(spec).model_dump(by_alias=True, exclude_none=True)
    checked = []
    for path, default in defaults:
        if path[0] in KEPT_AS_JSON or path[:2] == ("payment", "card"):
            continue  # obol-stack's blocks this project keeps as plain JSON, unmodelled
        parent = dumped
        for name in path[:-1]:
            parent = parent[name]
        assert parent.get(path[-1]) == default, (".".join(path), parent.get(path[-1]), default)
        checked.append(".".join(path))
    assert len(checked) >= 8, checked


def test_dump_round_trips_in_camel_case_without_nulls() -> None:
    spec = parse_spec(spec_with(lambda s: s.update(capacity=dict(ENVELOPE))))
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert "maxInFlight" in dumped["capacity"]
    assert "perBuyerMaxInFlight" not in dumped["capacity"]
    assert parse_spec(dumped) == spec


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        pytest.param({"spec": BASE}, "metadata.name: required field is missing", id="no name"),
        pytest.param(
            {"metadata": {"name": "Bad_Name"}, "spec": BASE},
            "metadata.name: must be a DNS-1123 subdomain (lower-case) (got 'Bad_Name')",
            id="bad name",
        ),
        pytest.param(  # Python's "$" also matches before a final newline
            {"metadata": {"name": "qwen\n"}, "spec": BASE},
            "metadata.name: must be a DNS-1123 subdomain (lower-case) (got 'qwen\\n')",
            id="name with a trailing newline",
        ),
        pytest.param(
            {"apiVersion": "obol.org/v2", "metadata": {"name": "x"}, "spec": BASE},
            "apiVersion: must be obol.org/v1alpha1 (got 'obol.org/v2')",
            id="wrong apiVersion",
        ),
        pytest.param({"metadata": {"name": "x"}}, "spec: must be an object", id="no spec"),
    ],
)
def test_parse_offer_errors(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_offer(obj)
    assert str(caught.value) == message


def test_metadata_is_lenient() -> None:
    offer = parse_offer(
        {
            "metadata": {"name": "x", "namespace": "n", "managedFields": [{}], "uid": "u"},
            "spec": BASE,
            "status": {"anything": True},
        }
    )
    assert (offer.metadata.name, offer.metadata.namespace) == ("x", "n")

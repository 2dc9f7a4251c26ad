"""The offline CRD validator in ``tests/support/crd_validation.py``: it must catch real mistakes.

Test design notes:

* Every check runs against the real, unmodified upstream CRDs (Gateway API v1.5.1 HTTPRoute,
  Traefik v3.7.9 Middleware) and our ``crds/serviceoffer.yaml``: a validator that passes
  everything would pass a "valid" test, so each rule family also has an "invalid because…" row
  that asserts the exact violation list (path, message, kind), not just "some error".
* Objects are built from one valid base per kind and changed by a small mutation per row, so a
  row fails for exactly the reason its id gives.
* HTTPRoute rows exercise the CEL machinery that is easy to get wrong: ``has()`` on absent
  fields, ``exists_one``/``filter`` macros, ``__namespace__`` escaping, ``duration()``.
* The ServiceOffer rows mirror ``examples/invalid/*.yaml``, whose ``expected-crd-error``
  annotations are also checked directly, so the examples, the CRD and this validator agree.
* Validator semantics that Kubernetes defines (``no such key`` errors, transition rules skipped,
  unsupported functions never passing silently, message fallbacks, fieldPath, property-name
  escaping, number-to-double conversion) use small inline CRDs.
* The Kubernetes CEL extension functions are tested against cel-go's documented results.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from celpy import celtypes
from celpy.evaluation import CELEvalError
from hypothesis import given, settings
from hypothesis import strategies as st

# tests/ is not a package on sys.path (pytest puts only this directory there).
_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from tests.support.crd_validation import (  # noqa: E402
    NOT_CHECKED_MESSAGE,
    SERVICEOFFER_CRD,
    Crd,
    CrdProblem,
    SkippedRule,
    Violation,
    assert_valid,
    crd_for,
    evaluate_cel,
    load_crd,
    validate_object,
    validate_status,
)
from tests.support.upstream_crds import UpstreamCrdsMissing, find_upstream_crds  # noqa: E402

Obj = dict[str, Any]
Mutation = Callable[[Obj], None]

PAY_TO = "0x4A6f2b3D9e2B8f1C0a7E5d3B1c9F8e7D6c5B4a31"


def _mutated(base: Obj, mutate: Mutation) -> Obj:
    obj = copy.deepcopy(base)
    mutate(obj)
    return obj


def _cel(path: str, message: str) -> Violation:
    return Violation(path, message, "cel")


def _schema(path: str, message: str) -> Violation:
    return Violation(path, message, "schema")


def _unknown(path: str) -> Violation:
    return Violation(
        path, "unknown field (not in the schema; the API server would prune it)", "unknown-field"
    )


NOT_CHECKED = _cel("", NOT_CHECKED_MESSAGE)

# --------------------------------------------------------------------------------------------
# HTTPRoute (Gateway API v1.5.1, with its CEL rules)
# --------------------------------------------------------------------------------------------


def _extension_ref(name: str) -> Obj:
    return {
        "type": "ExtensionRef",
        "extensionRef": {"group": "traefik.io", "kind": "Middleware", "name": name},
    }


HEADER_FILTER: Obj = {
    "type": "RequestHeaderModifier",
    "requestHeaderModifier": {"set": [{"name": "X-Obol-Offer", "value": "tenant-a/qwen"}]},
}

ROUTE: Obj = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {
        "name": "so-qwen",
        "namespace": "tenant-a",
        "labels": {"app.kubernetes.io/managed-by": "serviceoffer-hook"},
    },
    "spec": {
        "parentRefs": [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": "traefik-gateway",
                "namespace": "traefik",
                "sectionName": "web",
            }
        ],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/services/qwen"}}],
                "filters": [
                    HEADER_FILTER,
                    _extension_ref("so-qwen-inflight"),
                    _extension_ref("so-qwen-busy"),
                    _extension_ref("so-qwen-x402"),
                    {
                        "type": "URLRewrite",
                        "urlRewrite": {
                            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}
                        },
                    },
                ],
                "backendRefs": [{"kind": "Service", "name": "vllm", "port": 8000, "weight": 1}],
            }
        ],
    },
}


def _rule(route: Obj) -> Obj:
    return route["spec"]["rules"][0]  # type: ignore[no-any-return]


def test_valid_because_a_hook_shaped_httproute_satisfies_schema_and_every_cel_rule() -> None:
    assert validate_object(ROUTE) == []
    assert_valid(ROUTE)


def test_valid_because_the_route_gets_the_api_servers_defaults() -> None:
    route = copy.deepcopy(ROUTE)
    del _rule(route)["backendRefs"][0]["weight"]
    defaulted = crd_for("gateway.networking.k8s.io/v1", "HTTPRoute").defaulted(route)
    backend = _rule(defaulted)["backendRefs"][0]
    assert backend == {"group": "", "kind": "Service", "name": "vllm", "port": 8000, "weight": 1}
    assert route == _mutated(ROUTE, lambda r: _rule(r)["backendRefs"][0].pop("weight"))


def _two_header_filters(route: Obj) -> None:
    _rule(route)["filters"].insert(1, copy.deepcopy(HEADER_FILTER))


def _exact_match(route: Obj) -> None:
    _rule(route)["matches"][0]["path"]["type"] = "Exact"


def _two_matches(route: Obj) -> None:
    _rule(route)["matches"].append({"path": {"type": "PathPrefix", "value": "/other"}})


def _backend_without_port(route: Obj) -> None:
    del _rule(route)["backendRefs"][0]["port"]


def _seventeen_filters(route: Obj) -> None:
    _rule(route)["filters"] = [_extension_ref(f"m{i}") for i in range(17)]


def _relative_path(route: Obj) -> None:
    _rule(route)["matches"][0]["path"]["value"] = "services/qwen"


def _path_value(value: str) -> Mutation:
    def mutate(route: Obj) -> None:
        _rule(route)["matches"][0]["path"]["value"] = value

    return mutate


def _same_gateway_twice_without_section(route: Obj) -> None:
    for ref in route["spec"]["parentRefs"]:
        del ref["sectionName"]
    route["spec"]["parentRefs"].append(copy.deepcopy(route["spec"]["parentRefs"][0]))


def _same_gateway_name_in_two_namespaces(route: Obj) -> None:
    _same_gateway_twice_without_section(route)
    route["spec"]["parentRefs"][1]["namespace"] = "other-gateways"


def _backend_timeout_longer(route: Obj) -> None:
    _rule(route)["timeouts"] = {"request": "5s", "backendRequest": "1m"}


def _backend_timeout_shorter(route: Obj) -> None:
    _rule(route)["timeouts"] = {"request": "1s", "backendRequest": "500ms"}


def _redirect_with_backend(route: Obj) -> None:
    _rule(route)["filters"].append(
        {"type": "RequestRedirect", "requestRedirect": {"statusCode": 302}}
    )


REWRITE_NEEDS_ONE_PREFIX = (
    "When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match "
    "must be specified"
)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            _two_header_filters,
            [_cel("spec.rules[0].filters", "RequestHeaderModifier filter cannot be repeated")],
            id="invalid because one rule has two RequestHeaderModifier filters",
        ),
        pytest.param(
            _exact_match,
            [_cel("spec.rules[0]", REWRITE_NEEDS_ONE_PREFIX)],
            id="invalid because ReplacePrefixMatch is used with an Exact match",
        ),
        pytest.param(
            _two_matches,
            [_cel("spec.rules[0]", REWRITE_NEEDS_ONE_PREFIX)],
            id="invalid because ReplacePrefixMatch is used with two matches",
        ),
        pytest.param(
            _backend_without_port,
            [_cel("spec.rules[0].backendRefs[0]", "Must have port for Service reference")],
            id="invalid because a Service backendRef has no port",
        ),
        pytest.param(
            _seventeen_filters,
            [
                _schema("spec.rules[0].filters", "Too many: 17: must have at most 16 items"),
                NOT_CHECKED,
            ],
            id="invalid because a rule has 17 filters (maxItems, which blocks CEL)",
        ),
        pytest.param(
            _relative_path,
            [
                _cel(
                    "spec.rules[0].matches[0].path",
                    "value must be an absolute path and start with '/' when type one of "
                    "['Exact', 'PathPrefix']",
                )
            ],
            id="invalid because a PathPrefix value does not start with '/'",
        ),
        pytest.param(
            _path_value("/services//qwen"),
            [
                _cel(
                    "spec.rules[0].matches[0].path",
                    "must not contain '//' when type one of ['Exact', 'PathPrefix']",
                )
            ],
            id="invalid because a PathPrefix value contains '//' (contains())",
        ),
        pytest.param(
            _path_value("/services/.."),
            [
                _cel(
                    "spec.rules[0].matches[0].path",
                    "must not end with '/..' when type one of ['Exact', 'PathPrefix']",
                )
            ],
            id="invalid because a PathPrefix value ends with '/..' (endsWith())",
        ),
        pytest.param(
            _path_value("/services/qwen?x=1"),
            [
                _cel(
                    "spec.rules[0].matches[0].path",
                    "must only contain valid characters (matching "
                    "^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$) for types "
                    "['Exact', 'PathPrefix']",
                )
            ],
            id="invalid because a PathPrefix value has a query (matches() with a raw string)",
        ),
        pytest.param(
            _same_gateway_twice_without_section,
            [
                _cel(
                    "spec.parentRefs",
                    "sectionName must be unique when parentRefs includes 2 or more references "
                    "to the same parent",
                )
            ],
            id="invalid because the same Gateway is referenced twice without sectionName",
        ),
        pytest.param(
            _same_gateway_name_in_two_namespaces,
            [],
            id="valid because the two Gateways differ by namespace (__namespace__ escaping)",
        ),
        pytest.param(
            _backend_timeout_longer,
            [
                _cel(
                    "spec.rules[0].timeouts",
                    "backendRequest timeout cannot be longer than request timeout",
                )
            ],
            id="invalid because backendRequest 1m is longer than request 5s (duration())",
        ),
        pytest.param(
            _backend_timeout_shorter,
            [],
            id="valid because backendRequest 500ms is shorter than request 1s",
        ),
        pytest.param(
            _redirect_with_backend,
            [
                _cel(
                    "spec.rules[0].filters",
                    "May specify either httpRouteFilterRequestRedirect or "
                    "httpRouteFilterRequestRewrite, but not both",
                ),
                _cel(
                    "spec.rules[0]",
                    "RequestRedirect filter must not be used together with backendRefs",
                ),
            ],
            id="invalid because a RequestRedirect is combined with a URLRewrite and backends",
        ),
    ],
)
def test_httproute_cel_rules(mutate: Mutation, expected: list[Violation]) -> None:
    assert sorted(validate_object(_mutated(ROUTE, mutate)), key=str) == sorted(expected, key=str)


def _port_as_string(route: Obj) -> None:
    _rule(route)["backendRefs"][0]["port"] = "8000"


def _bad_section_name(route: Obj) -> None:
    route["spec"]["parentRefs"][0]["sectionName"] = "Web_1"


def _bad_filter_type(route: Obj) -> None:
    _rule(route)["filters"][1]["type"] = "Middleware"


def _unknown_backend_field(route: Obj) -> None:
    _rule(route)["backendRefs"][0]["servicePort"] = 8000


def _unknown_spec_field(route: Obj) -> None:
    route["spec"]["middlewares"] = ["so-qwen-x402"]


def _bad_label_value(route: Obj) -> None:
    route["metadata"]["labels"]["obol.org/offer"] = "tenant-a/qwen"


def _unknown_metadata_field(route: Obj) -> None:
    route["metadata"]["owner"] = "hook"


def _no_name(route: Obj) -> None:
    del route["metadata"]["name"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            _port_as_string,
            [
                _schema(
                    "spec.rules[0].backendRefs[0].port",
                    'Invalid value: "string": spec.rules[0].backendRefs[0].port in body must be '
                    'of type integer: "string"',
                ),
                NOT_CHECKED,
            ],
            id="invalid because a port is a string (wrong type)",
        ),
        pytest.param(
            _bad_section_name,
            [
                _schema(
                    "spec.parentRefs[0].sectionName",
                    'Invalid value: "Web_1": spec.parentRefs[0].sectionName in body should match '
                    "'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'",
                )
            ],
            id="invalid because a sectionName violates its pattern",
        ),
        pytest.param(
            _bad_filter_type,
            [
                _schema(
                    "spec.rules[0].filters[1].type",
                    'Unsupported value: "Middleware": supported values: "RequestHeaderModifier", '
                    '"ResponseHeaderModifier", "RequestMirror", "RequestRedirect", "URLRewrite", '
                    '"ExtensionRef", "CORS"',
                ),
                NOT_CHECKED,
            ],
            id="invalid because a filter type is not in the enum",
        ),
        pytest.param(
            _unknown_backend_field,
            [_unknown("spec.rules[0].backendRefs[0].servicePort")],
            id="invalid because a backendRef has a field the API server would prune",
        ),
        pytest.param(
            _unknown_spec_field,
            [_unknown("spec.middlewares")],
            id="invalid because spec has a field the API server would prune",
        ),
        pytest.param(
            _bad_label_value,
            [
                _schema(
                    "metadata.labels[obol.org/offer]",
                    "Invalid value: 'tenant-a/qwen': a label value must be empty or at most 63 "
                    "alphanumeric characters, '-', '_' or '.', starting and ending with an "
                    "alphanumeric character",
                )
            ],
            id="invalid because a label value contains '/'",
        ),
        pytest.param(
            _unknown_metadata_field,
            [
                Violation(
                    "metadata.owner",
                    "unknown field (the API server would prune it from ObjectMeta)",
                    "unknown-field",
                )
            ],
            id="invalid because metadata has a field ObjectMeta does not have",
        ),
        pytest.param(
            _no_name,
            [_schema("metadata.name", "name or generateName is required"), NOT_CHECKED],
            id="invalid because the object has no name",
        ),
    ],
)
def test_httproute_schema_errors(mutate: Mutation, expected: list[Violation]) -> None:
    assert validate_object(_mutated(ROUTE, mutate)) == expected


def test_invalid_because_the_apiversion_is_not_served() -> None:
    route = _mutated(ROUTE, lambda r: r.update(apiVersion="gateway.networking.k8s.io/v2"))
    assert validate_object(route) == [
        _schema(
            "apiVersion",
            "Invalid value: 'gateway.networking.k8s.io/v2': "
            "httproutes.gateway.networking.k8s.io does not serve 'v2'",
        )
    ]


def test_valid_because_v1beta1_is_still_served_and_validated_with_its_own_schema() -> None:
    route = _mutated(ROUTE, lambda r: r.update(apiVersion="gateway.networking.k8s.io/v1beta1"))
    assert validate_object(route) == []
    assert validate_object(_mutated(route, _backend_without_port)) == [
        _cel("spec.rules[0].backendRefs[0]", "Must have port for Service reference")
    ]


# --------------------------------------------------------------------------------------------
# Traefik Middleware (v3.7.9)
# --------------------------------------------------------------------------------------------


def _middleware(spec: Obj) -> Obj:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": {"name": "so-qwen-x", "namespace": "tenant-a"},
        "spec": spec,
    }


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(
            {"inFlightReq": {"amount": 4, "sourceCriterion": {"requestHeaderName": "X-Payer"}}},
            id="valid because inFlightReq has amount and a request-header source criterion",
        ),
        pytest.param(
            {
                "errors": {
                    "status": ["429"],
                    "service": {"name": "so-qwen-busy", "port": 8080},
                    "query": "/busy?status={status}",
                }
            },
            id="valid because errors maps 429 to a service with a port and a query",
        ),
        pytest.param(
            {
                "forwardAuth": {
                    "address": "http://x402-verifier.obol.svc:8080/verify",
                    "trustForwardHeader": False,
                    "authResponseHeaders": ["X-Payment-Response"],
                    "maxResponseBodySize": 65536,
                }
            },
            id="valid because forwardAuth has an address, headers and a body size limit",
        ),
        pytest.param(
            {"buffering": {"maxRequestBodyBytes": 1048576}},
            id="valid because buffering limits the request body",
        ),
        pytest.param(
            {"errors": {"status": ["429"], "service": {"name": "busy", "port": "http"}}},
            id="valid because an int-or-string port may be a port name",
        ),
    ],
)
def test_traefik_middlewares_that_the_hook_builds_are_valid(spec: Obj) -> None:
    assert validate_object(_middleware(spec)) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"inFlightReq": {"amount": 4, "perHost": True}},
            [_unknown("spec.inFlightReq.perHost")],
            id="invalid because inFlightReq has no perHost field",
        ),
        pytest.param(
            {"inFlightReq": {"amount": -1}},
            [
                _schema(
                    "spec.inFlightReq.amount",
                    "Invalid value: -1: spec.inFlightReq.amount in body should be greater than "
                    "or equal to 0",
                )
            ],
            id="invalid because inFlightReq amount is negative",
        ),
        pytest.param(
            {"errors": {"status": ["4xx"], "service": {"name": "busy", "port": 8080}}},
            [
                _schema(
                    "spec.errors.status[0]",
                    'Invalid value: "4xx": spec.errors.status[0] in body should match '
                    "'^([1-5][0-9]{2}[,-]?)+$'",
                )
            ],
            id="invalid because an errors status is not a code or range",
        ),
        pytest.param(
            {"errors": {"status": ["429"], "service": {"name": "busy", "port": 80.5}}},
            [
                _schema(
                    "spec.errors.service.port",
                    'Invalid value: "number": spec.errors.service.port in body must be of type '
                    'integer,string: "number"',
                ),
                NOT_CHECKED,
            ],
            id="invalid because an int-or-string port is a fraction",
        ),
        pytest.param(
            {"addPrefix": {"prefix": "api"}},
            [_cel("spec.addPrefix.prefix", "must start with a '/'")],
            id="invalid because an addPrefix prefix does not start with '/' (CEL)",
        ),
    ],
)
def test_traefik_middleware_mistakes_are_caught(spec: Obj, expected: list[Violation]) -> None:
    assert validate_object(_middleware(spec)) == expected


# --------------------------------------------------------------------------------------------
# ServiceOffer (crds/serviceoffer.yaml)
# --------------------------------------------------------------------------------------------

OFFER: Obj = {
    "apiVersion": "obol.org/v1alpha1",
    "kind": "ServiceOffer",
    "metadata": {"name": "qwen", "namespace": "tenant-a"},
    "spec": {
        "upstream": {"service": "vllm", "port": 8000},
        "payment": {"network": "base", "payTo": PAY_TO, "price": {"perRequest": "0.001"}},
    },
}


def test_valid_because_a_minimal_offer_passes_and_gets_the_crd_defaults() -> None:
    assert validate_object(OFFER) == []
    spec = load_crd(SERVICEOFFER_CRD).defaulted(OFFER)["spec"]
    assert spec == {
        "type": "http",
        "upstream": {"service": "vllm", "port": 8000, "healthPath": "/health"},
        "payment": {
            "network": "base",
            "asset": "usdc",
            "payTo": PAY_TO,
            "scheme": "exact",
            "maxTimeoutSeconds": 300,
            "price": {"perRequest": "0.001"},
        },
    }


def _capacity(**fields: Any) -> Mutation:
    def mutate(offer: Obj) -> None:
        offer["spec"]["capacity"] = {"mode": "external-static", "maxInFlight": 4, **fields}

    return mutate


def _payment(**fields: Any) -> Mutation:
    def mutate(offer: Obj) -> None:
        offer["spec"]["payment"].update(fields)

    return mutate


def _price(**fields: Any) -> Mutation:
    def mutate(offer: Obj) -> None:
        offer["spec"]["payment"]["price"] = fields

    return mutate


def _limits(context: int, max_input: int) -> Mutation:
    def mutate(offer: Obj) -> None:
        offer["spec"]["capabilities"] = {"contextWindowTokens": context}
        offer["spec"]["requestLimits"] = {"maxInputTokens": max_input}

    return mutate


USDC_TOO_PRECISE = "price.perRequest has more fractional digits than USDC's 6 decimals"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            _capacity(perBuyerMaxInFlight=8),
            [
                _cel(
                    "spec.capacity.perBuyerMaxInFlight",
                    "perBuyerMaxInFlight must be <= maxInFlight",
                )
            ],
            id="invalid because perBuyerMaxInFlight 8 exceeds maxInFlight 4 (messageExpression)",
        ),
        pytest.param(
            _capacity(perBuyerMaxInFlight=4),
            [],
            id="valid because perBuyerMaxInFlight may equal maxInFlight",
        ),
        pytest.param(
            _capacity(maxQueueDepth=1),
            [
                _cel(
                    "spec.capacity.maxQueueDepth",
                    "maxQueueDepth must be 0: queueing is not supported for external-static "
                    "capacity (a saturated offer answers 429 at once)",
                )
            ],
            id="invalid because maxQueueDepth is 1",
        ),
        pytest.param(
            _capacity(retryAfterSeconds=600),
            [
                _cel(
                    "spec.capacity.retryAfterSeconds",
                    "capacity.retryAfterSeconds must be < payment.maxTimeoutSeconds: "
                    "a buyer told to wait must still be able to use its signed payment",
                )
            ],
            id="invalid because retryAfterSeconds 600 reaches the defaulted maxTimeoutSeconds",
        ),
        pytest.param(
            _payment(asset="obol"),
            [
                _cel(
                    "spec.payment.asset",
                    "OBOL is not deployed on base; OBOL is available on ethereum",
                )
            ],
            id="invalid because the asset is obol on network base",
        ),
        pytest.param(
            _payment(asset="obol", network="ethereum"),
            [],
            id="valid because obol is on ethereum",
        ),
        pytest.param(
            _price(),
            [_cel("spec.payment.price", "price must set perRequest, perMTok or both")],
            id="invalid because the price has neither perRequest nor perMTok",
        ),
        pytest.param(
            _price(perMTok="0.50"),
            [],
            id="valid because a perMTok price alone is enough",
        ),
        pytest.param(
            _price(perRequest="0.0000001"),
            [_cel("spec.payment.price.perRequest", USDC_TOO_PRECISE)],
            id="invalid because 0.0000001 has 7 significant decimals for USDC",
        ),
        pytest.param(
            _price(perRequest="0.0010000"),
            [],
            id="valid because 0.0010000 has only trailing zeros beyond 6 decimals",
        ),
        pytest.param(
            _price(perRequest="0.000"),
            [_cel("spec.payment.price.perRequest", "price.perRequest must be greater than zero")],
            id="invalid because the price is zero",
        ),
        pytest.param(
            _limits(context=4096, max_input=8192),
            [
                _cel(
                    "spec.requestLimits.maxInputTokens",
                    "requestLimits.maxInputTokens must be <= capabilities.contextWindowTokens",
                )
            ],
            id="invalid because maxInputTokens exceeds the context window",
        ),
        pytest.param(
            _capacity(maxInFlight=0),
            [
                _schema(
                    "spec.capacity.maxInFlight",
                    "Invalid value: 0: spec.capacity.maxInFlight in body should be greater than "
                    "or equal to 1",
                )
            ],
            id="invalid because maxInFlight is 0 (minimum, which does not block CEL)",
        ),
        pytest.param(
            lambda offer: offer["spec"]["upstream"].update(weight=1),
            [_unknown("spec.upstream.weight")],
            id="invalid because upstream has a field the API server would prune",
        ),
    ],
)
def test_serviceoffer_crd(mutate: Mutation, expected: list[Violation]) -> None:
    assert validate_object(_mutated(OFFER, mutate)) == expected


def _example_paths(folder: str) -> list[Path]:
    return sorted((_REPO / "examples" / folder).glob("*.yaml"))


@pytest.mark.parametrize("path", _example_paths(""), ids=lambda p: f"valid because {p.name}")
def test_shipped_examples_are_valid(path: Path) -> None:
    assert_valid(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("path", _example_paths("invalid"), ids=lambda p: f"as annotated: {p.name}")
def test_invalid_examples_fail_with_their_annotated_crd_error(path: Path) -> None:
    offer = yaml.safe_load(path.read_text())
    expected = offer["metadata"]["annotations"]["examples.obol.org/expected-crd-error"]
    found = [f"{v.path}: {v.message}" for v in validate_object(offer)]
    if expected == "accepted":
        assert found == []
    else:
        assert any(expected in line for line in found), found


STATUS: Obj = {
    "observedGeneration": 3,
    "endpoint": "https://gw.example.com/services/qwen",
    "capacity": {
        "mode": "external-static",
        "scalingControlled": False,
        "maxInFlight": 8,
        "gatewayReplicas": 2,
        "perReplicaMaxInFlight": 4,
        "retryAfterSeconds": 2,
        "state": "Unknown",
    },
    "payment": {
        "network": "base",
        "caip2": "eip155:8453",
        "chainId": 8453,
        "scheme": "exact",
        "payTo": PAY_TO,
        "maxTimeoutSeconds": 300,
        "asset": {"symbol": "USDC", "decimals": 6, "transferMethod": "eip3009"},
        "perRequest": {"amount": "0.001", "atomic": "1000"},
        "quote": {"amount": "0.001", "atomic": "1000", "basis": "perRequest"},
        "summary": "0.001 USDC/request",
    },
    "requestLimits": {"enforced": [], "advertised": []},
    "warnings": [],
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "observedGeneration": 3,
            "lastTransitionTime": "2026-01-02T03:04:05Z",
            "reason": "Synced",
            "message": "all children are ready",
        }
    ],
}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(lambda s: None, [], id="valid because every field is in the status schema"),
        pytest.param(
            lambda s: s["capacity"].update(queueDepth=0),
            [_unknown("status.capacity.queueDepth")],
            id="invalid because status.capacity has a field the API server would prune",
        ),
        pytest.param(
            lambda s: s.update(phase="Ready"),
            [_unknown("status.phase")],
            id="invalid because status has a field the API server would prune",
        ),
        pytest.param(
            lambda s: s["conditions"].append(copy.deepcopy(s["conditions"][0])),
            [_schema("status.conditions[1]", 'Duplicate value: {"type":"Ready"}')],
            id="invalid because two conditions have the same type (list-type map)",
        ),
        pytest.param(
            lambda s: s["conditions"][0].update(lastTransitionTime="yesterday"),
            [
                _schema(
                    "status.conditions[0].lastTransitionTime",
                    'Invalid value: "yesterday": status.conditions[0].lastTransitionTime in body '
                    'must be of type date-time: "yesterday"',
                )
            ],
            id="invalid because lastTransitionTime is not a date-time",
        ),
        pytest.param(
            lambda s: s["conditions"][0].pop("reason"),
            [_schema("status.conditions[0].reason", "Required value")],
            id="invalid because a condition has no reason",
        ),
    ],
)
def test_status_fits_the_serviceoffer_status_schema(
    mutate: Mutation, expected: list[Violation]
) -> None:
    assert validate_status(_mutated(STATUS, mutate)) == expected


@settings(max_examples=60, deadline=None)
@given(
    max_in_flight=st.integers(min_value=1, max_value=10_000),
    per_buyer=st.integers(min_value=1, max_value=10_000),
)
def test_per_buyer_rule_holds_exactly_when_per_buyer_is_at_most_the_ceiling(
    max_in_flight: int, per_buyer: int
) -> None:
    offer = _mutated(OFFER, _capacity(maxInFlight=max_in_flight, perBuyerMaxInFlight=per_buyer))
    expected = (
        []
        if per_buyer <= max_in_flight
        else [
            _cel(
                "spec.capacity.perBuyerMaxInFlight",
                "perBuyerMaxInFlight must be <= maxInFlight",
            )
        ]
    )
    assert validate_object(offer) == expected


# --------------------------------------------------------------------------------------------
# Every rule compiles; API conveniences
# --------------------------------------------------------------------------------------------


def _upstream_crd_paths() -> list[Path]:
    """The upstream CRDs the hook's children are validated against (none if not exported)."""
    try:
        crds = find_upstream_crds()
    except UpstreamCrdsMissing:
        return []
    return [*sorted(crds.gateway_api.glob("*.yaml")), crds.traefik / "traefik.io_middlewares.yaml"]


def _all_crd_paths() -> list[Path]:
    return [*_upstream_crd_paths(), SERVICEOFFER_CRD]


@pytest.mark.parametrize("path", _all_crd_paths(), ids=lambda p: p.name)
def test_every_cel_rule_of_every_crd_is_evaluable(path: Path) -> None:
    crd = load_crd(path)
    assert crd.unsupported_rules() == []
    assert (
        sum(v.rule_count() for v in crd.versions.values())
        == {
            "gateway.networking.k8s.io_gatewayclasses.yaml": 0,
            "gateway.networking.k8s.io_gateways.yaml": 32,
            "gateway.networking.k8s.io_httproutes.yaml": 178,
            "gateway.networking.k8s.io_referencegrants.yaml": 0,
            "traefik.io_middlewares.yaml": 1,
            "serviceoffer.yaml": 11,
        }[path.name]
    )


UNSUPPORTED_REASON = (
    'x-kubernetes-validations[1].reason: Unsupported value: "FieldValueNotSupported": '
    'supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", '
    '"FieldValueRequired"'
)


@pytest.mark.parametrize(
    "path",
    [
        *[pytest.param(p, id=p.name) for p in _upstream_crd_paths()],
        pytest.param(SERVICEOFFER_CRD, id=SERVICEOFFER_CRD.name),
    ],
)
def test_the_api_server_would_accept_every_crd_definition(path: Path) -> None:
    assert load_crd(path).definition_problems() == []


def test_the_serviceoffer_crd_definition_problem_is_only_the_unsupported_reason() -> None:
    problems = load_crd(SERVICEOFFER_CRD).definition_problems()
    assert problems in ([], [CrdProblem("v1alpha1", "spec.capacity", UNSUPPORTED_REASON)])


def test_definition_problems_the_api_server_would_reject() -> None:
    crd = _inline_crd(
        {
            "type": "object",
            "properties": {
                "a": {"type": "string", "default": 5},
                "untyped": {"description": "no type"},
                "pairs": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                },
            },
            "x-kubernetes-validations": [
                {"rule": "true", "reason": "FieldValueNotSupported"},
                {"rule": "true", "message": "two\nlines"},
                {"rule": "true", "fieldPath": ".missing"},
            ],
        }
    )
    assert [(p.path, p.message) for p in crd.definition_problems()] == [
        ("spec", UNSUPPORTED_REASON.replace("[1]", "[0]")),
        (
            "spec",
            "x-kubernetes-validations[1].message: Invalid value: message must not contain "
            "line breaks",
        ),
        (
            "spec",
            "x-kubernetes-validations[2].fieldPath: Invalid value: '.missing': does not name a "
            "field of this schema node",
        ),
        ("spec.untyped", "type: Required value: must not be empty for specified object fields"),
        (
            "spec.pairs",
            "x-kubernetes-list-map-keys: Invalid value: 'name': a map key must be a required or "
            "defaulted scalar property of the items",
        ),
        (
            "spec.a.default",
            'Invalid value: "integer": spec.a.default in body must be of type string: "integer"',
        ),
    ]


def test_only_the_gatewayclass_immutability_transition_rule_is_skipped() -> None:
    skipped = [rule for path in _all_crd_paths() for rule in load_crd(path).skipped_rules()]
    assert skipped == [
        SkippedRule("v1", "spec.controllerName", "self == oldSelf"),
        SkippedRule("v1beta1", "spec.controllerName", "self == oldSelf"),
    ]


def test_load_crd_caches_per_path_and_resolves_relative_paths_from_the_repo() -> None:
    assert load_crd("crds/serviceoffer.yaml") is load_crd(SERVICEOFFER_CRD)
    crd = load_crd(SERVICEOFFER_CRD)
    assert crd.version().name == "v1alpha1"
    with pytest.raises(LookupError, match="does not serve 'v1'"):
        crd.version("v1")
    assert crd_for("gateway.networking.k8s.io/v1", "HTTPRoute").version().name == "v1"


def test_assert_valid_lists_every_violation() -> None:
    route = _mutated(ROUTE, _backend_without_port)
    _unknown_spec_field(route)
    with pytest.raises(AssertionError) as raised:
        assert_valid(route)
    assert str(raised.value) == (
        "HTTPRoute tenant-a/so-qwen (gateway.networking.k8s.io/v1) is not valid, 2 violation(s):\n"
        "  - spec.middlewares: [unknown-field] unknown field (not in the schema; the API server "
        "would prune it)\n"
        "  - spec.rules[0].backendRefs[0]: [cel] Must have port for Service reference"
    )


def test_validate_object_refuses_kinds_without_a_known_crd() -> None:
    with pytest.raises(LookupError, match="no CRD for v1 Service"):
        validate_object({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}})


# --------------------------------------------------------------------------------------------
# Kubernetes CEL semantics, on small inline CRDs
# --------------------------------------------------------------------------------------------


def _inline_crd(spec_schema: Obj) -> Crd:
    raw = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": spec_schema},
                        }
                    },
                }
            ],
        },
    }
    return Crd(Path("inline-widgets.yaml"), raw)


def _widget(spec: Obj) -> Obj:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": spec,
    }


def _object_with_rule(properties: Obj, **rule: Any) -> Obj:
    return {"type": "object", "properties": properties, "x-kubernetes-validations": [rule]}


STRINGS = {"a": {"type": "string"}, "b": {"type": "string"}}


def test_reading_an_absent_field_without_has_is_a_no_such_key_error() -> None:
    crd = _inline_crd(_object_with_rule(STRINGS, rule="self.a == 'x'", message="a must be x"))
    assert crd.validate(_widget({"a": "x"})) == []
    assert crd.validate(_widget({"a": "y"})) == [_cel("spec", "a must be x")]
    [violation] = crd.validate(_widget({"b": "x"}))
    assert (violation.path, violation.kind) == ("spec", "cel")
    assert "no such key: a" in violation.message


def test_has_means_present_and_is_an_error_on_an_absent_parent() -> None:
    present = evaluate_cel("has(self.a)", {"a": ""})
    absent = evaluate_cel("has(self.a)", {"b": 1})
    assert (type(present), bool(present)) == (celtypes.BoolType, True)
    assert (type(absent), bool(absent)) == (celtypes.BoolType, False)
    with pytest.raises(CELEvalError, match="no such key: a"):
        evaluate_cel("has(self.a.b)", {})
    with pytest.raises(CELEvalError, match="no such key: a"):
        evaluate_cel("[1].all(x, has(self.a.b))", {})


def test_property_names_are_escaped_like_kubernetes() -> None:
    properties = {
        "namespace": {"type": "string"},
        "x-y": {"type": "string"},
        "a.b": {"type": "string"},
    }
    rule = "self.__namespace__ == 'ns' && self.x__dash__y == 'd' && self.a__dot__b == 'p'"
    crd = _inline_crd(_object_with_rule(properties, rule=rule, message="escaping"))
    assert crd.validate(_widget({"namespace": "ns", "x-y": "d", "a.b": "p"})) == []
    assert crd.validate(_widget({"namespace": "ns", "x-y": "d", "a.b": "q"})) == [
        _cel("spec", "escaping")
    ]


def test_number_fields_are_doubles_and_integers_are_ints() -> None:
    properties = {"ratio": {"type": "number"}, "count": {"type": "integer"}}
    crd = _inline_crd(
        _object_with_rule(properties, rule="self.ratio > 0.5 && self.count > 1", message="small")
    )
    assert crd.validate(_widget({"ratio": 1, "count": 2})) == []
    assert crd.validate(_widget({"ratio": 0.25, "count": 2})) == [_cel("spec", "small")]


def test_message_expression_falls_back_to_message_then_to_the_rule() -> None:
    failing = "self.a == 'x'"
    crd = _inline_crd(
        {
            "type": "object",
            "properties": STRINGS,
            "x-kubernetes-validations": [
                {"rule": failing, "messageExpression": "'got ' + self.b", "message": "fallback"},
                {"rule": failing, "messageExpression": "''", "message": "empty fallback"},
                {"rule": failing},
                {"rule": failing, "messageExpression": "'a is ' + self.a"},
            ],
        }
    )
    assert crd.validate(_widget({"a": "y"})) == [
        _cel("spec", "fallback"),
        _cel("spec", "empty fallback"),
        _cel("spec", f"failed rule: {failing}"),
        _cel("spec", "a is y"),
    ]


def test_field_path_with_bracket_notation_and_map_values() -> None:
    crd = _inline_crd(
        {
            "type": "object",
            "properties": {
                "labels": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "string",
                        "x-kubernetes-validations": [{"rule": "self != ''", "message": "empty"}],
                    },
                },
                "a.b": {"type": "string"},
            },
            "x-kubernetes-validations": [
                {"rule": "has(self.a__dot__b)", "message": "need a.b", "fieldPath": "['a.b']"}
            ],
        }
    )
    assert crd.validate(_widget({"labels": {"k1": "v", "k2": ""}})) == [
        _cel("spec.a.b", "need a.b"),
        _cel("spec.labels[k2]", "empty"),
    ]


def test_transition_rules_are_skipped_and_unprovided_functions_never_pass_silently() -> None:
    crd = _inline_crd(
        {
            "type": "object",
            "properties": STRINGS,
            "x-kubernetes-validations": [
                {"rule": "self.a == oldSelf.a", "message": "immutable"},
                {"rule": "isURL(self.b)", "message": "b must be a URL"},
                {"rule": "self.b.matches(", "message": "does not parse"},
            ],
        }
    )
    assert crd.skipped_rules() == [SkippedRule("v1", "spec", "self.a == oldSelf.a")]
    unsupported = crd.unsupported_rules()
    assert [(u.rule, u.reason) for u in unsupported[:1]] == [
        ("isURL(self.b)", "function isURL() is not provided")
    ]
    assert unsupported[1].reason.startswith("cel-python cannot parse it")
    violations = crd.validate(_widget({"a": "x", "b": "https://example.com"}))
    assert [(v.path, v.kind) for v in violations] == [("spec", "cel"), ("spec", "cel")]
    assert all(v.message.startswith("validator limitation: rule not evaluated") for v in violations)


def test_defaults_fill_missing_fields_of_present_objects_only_and_replace_nulls() -> None:
    crd = _inline_crd(
        {
            "type": "object",
            "properties": {
                "mode": {"type": "string", "default": "fast"},
                "inner": {
                    "type": "object",
                    "default": {},
                    "properties": {"n": {"type": "integer", "default": 3}},
                },
                "opt": {"type": "object", "properties": {"m": {"type": "integer", "default": 1}}},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"w": {"type": "integer", "default": 1}},
                    },
                },
            },
        }
    )
    defaulted = crd.defaulted(_widget({"mode": None, "items": [{}, {"w": 5}]}))
    assert defaulted["spec"] == {
        "mode": "fast",
        "inner": {"n": 3},
        "items": [{"w": 1}, {"w": 5}],
    }


# --------------------------------------------------------------------------------------------
# Kubernetes CEL library functions provided on top of cel-python
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "self_value", "expected"),
    [
        pytest.param("self.split('/')", "a/b/c", ["a", "b", "c"], id="split"),
        pytest.param("self.split('/', 2)", "a/b/c", ["a", "b/c"], id="split with a limit"),
        pytest.param("self.split('/', 0)", "a/b", [], id="split with limit 0"),
        pytest.param("self.split('')", "abc", ["a", "b", "c"], id="split on empty separator"),
        pytest.param("self.split(',')", "", [""], id="split of an empty string"),
        pytest.param("self.split('/')[0].size() < 253", "a.b/c", True, id="gateway key rule"),
        pytest.param("self.join('-')", ["a", "b"], "a-b", id="join with separator"),
        pytest.param("self.join()", ["a", "b"], "ab", id="join"),
        pytest.param("self.lowerAscii()", "ÀBc", "Àbc", id="lowerAscii only ASCII"),
        pytest.param("self.upperAscii()", "àbC", "àBC", id="upperAscii only ASCII"),
        pytest.param("self.trim()", " \t x \u3000\n", "x", id="trim Unicode whitespace"),
        pytest.param("self.trim()", "\u200bx", "\u200bx", id="trim keeps zero-width space"),
        pytest.param("self.replace('a', 'b')", "aaa", "bbb", id="replace"),
        pytest.param("self.replace('a', 'b', 2)", "aaa", "bba", id="replace with a limit"),
        pytest.param("self.substring(1)", "tacocat", "acocat", id="substring"),
        pytest.param("self.substring(1, 3)", "ñandú", "an", id="substring on code points"),
        pytest.param("self.charAt(1)", "héllo", "é", id="charAt"),
        pytest.param("self.charAt(5)", "hello", "", id="charAt at the end"),
        pytest.param("self.indexOf('l')", "hello", 2, id="indexOf"),
        pytest.param("self.indexOf('l', 3)", "hello", 3, id="indexOf from offset"),
        pytest.param("self.indexOf('')", "hello", 0, id="indexOf empty"),
        pytest.param("self.indexOf('z')", "hello", -1, id="indexOf missing"),
        pytest.param("self.lastIndexOf('l')", "hello", 3, id="lastIndexOf"),
        pytest.param("self.lastIndexOf('l', 2)", "hello", 2, id="lastIndexOf before offset"),
        pytest.param("self.lastIndexOf('')", "hello", 5, id="lastIndexOf empty"),
        pytest.param("self.indexOf(2)", [1, 2, 2], 1, id="list indexOf"),
        pytest.param("self.lastIndexOf(2)", [1, 2, 2], 2, id="list lastIndexOf"),
        pytest.param("self.isSorted()", [1, 2, 2, 5], True, id="isSorted"),
        pytest.param("self.isSorted()", ["b", "a"], False, id="isSorted false"),
        pytest.param("self.sum()", [1, 2, 3], 6, id="sum"),
        pytest.param("self.sum()", [], 0, id="sum of nothing"),
        pytest.param("self.min()", [3, 1, 2], 1, id="min"),
        pytest.param("self.max()", [3, 1, 2], 3, id="max"),
        pytest.param("self.find('[0-9]+')", "abc 123 456", "123", id="find"),
        pytest.param("self.find('[0-9]+')", "abc", "", id="find nothing"),
        pytest.param("self.findAll('[0-9]+')", "1 23 456", ["1", "23", "456"], id="findAll"),
        pytest.param("self.findAll('[0-9]+', 2)", "1 23 456", ["1", "23"], id="findAll limit"),
        pytest.param("self.matches('^a.c$')", "abc", True, id="matches (RE2)"),
        pytest.param("self.matches('b')", "abc", True, id="matches is unanchored"),
        pytest.param("duration(self) == duration('90m')", "1h30m", True, id="duration h+m"),
        pytest.param("duration(self) < duration('1s')", "500ms", True, id="duration ms"),
        pytest.param("duration(self) == duration('0s')", "0", True, id="duration bare zero"),
        pytest.param("string(self)", True, "true", id="string of bool"),
        pytest.param("string(self)", 1e6, "1e+06", id="string of a large double"),
        pytest.param("string(self)", 0.5, "0.5", id="string of a double"),
        pytest.param("string(self)", 42, "42", id="string of int"),
        pytest.param("self.exists_one(x, x > 1)", [1, 2], True, id="exists_one"),
        pytest.param("self.filter(x, x > 1).size()", [1, 2, 3], 2, id="filter then size"),
        pytest.param("'*' in self && self.size() > 1", ["*", "a"], True, id="in on a list"),
    ],
)
def test_extension_functions(expression: str, self_value: Any, expected: Any) -> None:
    result = evaluate_cel(expression, self_value)
    assert result == expected
    cel_type = {bool: celtypes.BoolType, int: celtypes.IntType, str: celtypes.StringType}
    assert type(result) is cel_type.get(type(expected), celtypes.ListType)


@pytest.mark.parametrize(
    ("expression", "self_value", "error"),
    [
        pytest.param("self.substring(4)", "abc", "index out of range: 4", id="substring past end"),
        pytest.param(
            "self.substring(2, 1)", "abc", "invalid substring range", id="substring reversed"
        ),
        pytest.param("self.charAt(4)", "abc", "index out of range: 4", id="charAt past end"),
        pytest.param("self.indexOf('a', 9)", "abc", "index out of range: 9", id="indexOf offset"),
        pytest.param("self.min()", [], "min called on empty list", id="min of nothing"),
        pytest.param("duration(self) > duration('0s')", "1d", "invalid duration", id="Go units"),
        pytest.param("self.join()", ["a", 1], "no such overload", id="join of non-strings"),
    ],
)
def test_extension_function_errors(expression: str, self_value: Any, error: str) -> None:
    with pytest.raises(CELEvalError, match=error):
        evaluate_cel(expression, self_value)

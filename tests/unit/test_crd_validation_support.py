"""The thin offline check in ``tests/support/crd_validation.py`` catches real mistakes.

Design notes:
- The check is only trusted as far as these tests show it fails: unknown (pruned) fields, schema
  bounds, CEL rules with Kubernetes' property escaping, defaults that rules read, and rules it
  cannot evaluate (reported, never passed). The real API server's own wording, defaulting and
  pruning are tested in tests/e2e/test_crd_validation.py.
- Upstream cases use the hook's own HTTPRoute and Middleware as the valid starting point and
  are skipped (saying how to get them) when the upstream CRDs are not exported.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from tests.support.crd_validation import (
    SERVICEOFFER_CRD,
    Crd,
    Violation,
    assert_valid,
    load_crd,
    validate_object,
    validate_status,
)

Obj = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"


def _child(kind: str) -> Obj:
    request = json.loads((ROOT / "tests/fixtures/sync/01-full-envelope-new-offer.json").read_text())
    children = sync(parse_request(request), Settings()).response["children"]
    return next(c for c in children if c["kind"] == kind)


def _kinds(violations: list[Violation]) -> list[tuple[str, str]]:
    return [(v.path, v.kind) for v in violations]


# --------------------------------------------------------------------------------------------
# upstream CRDs: the hook's HTTPRoute and Middleware, and mistakes in them
# --------------------------------------------------------------------------------------------


def test_the_hooks_route_and_middlewares_pass() -> None:
    assert_valid(_child("HTTPRoute"))
    assert_valid(_child("Middleware"))


def test_a_field_the_api_server_would_prune_is_reported() -> None:
    route = _child("HTTPRoute")
    route["spec"]["rules"][0]["backendRefs"][0]["priority"] = 1
    assert _kinds(validate_object(route)) == [
        ("spec.rules[0].backendRefs[0].priority", "unknown-field")
    ]


def test_a_schema_bound_is_reported_and_blocks_cel() -> None:
    route = _child("HTTPRoute")
    filters = route["spec"]["rules"][0]["filters"]
    filters.extend(copy.deepcopy(filters[-1]) for _ in range(17 - len(filters)))
    assert _kinds(validate_object(route)) == [("spec.rules[0].filters", "schema")]


def test_a_false_cel_rule_gives_its_message() -> None:
    route = _child("HTTPRoute")
    filters = route["spec"]["rules"][0]["filters"]
    filters.append(copy.deepcopy(next(f for f in filters if f["type"] == "RequestHeaderModifier")))
    violations = validate_object(route)
    assert [(v.path, v.message) for v in violations] == [
        ("spec.rules[0].filters", "RequestHeaderModifier filter cannot be repeated")
    ]


def test_escaped_property_names_reach_the_rules() -> None:
    # The parentRefs rules read p.__namespace__: two refs to one Gateway without sectionName.
    route = _child("HTTPRoute")
    ref = route["spec"]["parentRefs"][0]
    del ref["sectionName"]
    route["spec"]["parentRefs"].append(copy.deepcopy(ref))
    assert [v.kind for v in validate_object(route)] == ["cel"]
    route["spec"]["parentRefs"][1]["namespace"] = "elsewhere"
    assert validate_object(route) == []


def test_a_middleware_mistake_is_reported() -> None:
    middleware = _child("Middleware")
    middleware["spec"]["notAMiddleware"] = {}
    assert _kinds(validate_object(middleware)) == [("spec.notAMiddleware", "unknown-field")]


def test_core_kinds_have_no_crd_here() -> None:
    with pytest.raises(LookupError, match="no CRD for v1 Service"):
        validate_object({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}})


# --------------------------------------------------------------------------------------------
# crds/serviceoffer.yaml
# --------------------------------------------------------------------------------------------

OFFER: Obj = {
    "apiVersion": "obol.org/v1alpha1",
    "kind": "ServiceOffer",
    "metadata": {"name": "qwen", "namespace": "default"},
    "spec": {
        "upstream": {"service": "vllm", "port": 8000},
        "payment": {"network": "base", "payTo": PAY_TO, "price": {"perRequest": "0.001"}},
    },
}


ENVELOPE: Obj = {"mode": "external-static", "maxInFlight": 4}


def _offer(mutate: Callable[[Obj], None]) -> Obj:
    offer = copy.deepcopy(OFFER)
    mutate(offer)
    return offer


def test_every_rule_of_our_crd_compiles_and_evaluates_offline() -> None:
    capacity = {"mode": "external-static", "maxInFlight": 4, "perBuyerMaxInFlight": 2}
    full = _offer(lambda o: o["spec"].update(capacity=capacity))
    full["spec"]["capabilities"] = {"contextWindowTokens": 8192}
    full["spec"]["requestLimits"] = {"maxInputTokens": 4096, "maxOutputTokens": 1024}
    full["spec"]["payment"]["price"]["perMTok"] = "0.5"
    assert validate_object(OFFER) == []
    assert validate_object(full) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda o: o["spec"].update(
                capacity={"mode": "external-static", "maxInFlight": 4, "perBuyerMaxInFlight": 8}
            ),
            ("spec.capacity.perBuyerMaxInFlight", "perBuyerMaxInFlight must be <= maxInFlight"),
            id="per-buyer above the ceiling",
        ),
        pytest.param(
            lambda o: o["spec"].update(
                capacity={"mode": "external-static", "maxInFlight": 4, "retryAfterSeconds": 300}
            ),
            (
                "spec.capacity.retryAfterSeconds",
                "capacity.retryAfterSeconds must be < payment.maxTimeoutSeconds: a buyer told to "
                "wait must still be able to use its signed payment",
            ),
            id="retryAfterSeconds reaches the DEFAULTED maxTimeoutSeconds",
        ),
        pytest.param(
            lambda o: o["spec"].update(path="/api/v1"),
            (
                "spec.path",
                "path is reserved: /, /services, and anything at or under /api, /openapi.json,"
                " /skill.md, /rpc and /.well-known",
            ),
            id="a reserved path",
        ),
        pytest.param(
            lambda o: o["spec"].update(limits={"maxInFlight": 8}, capacity=dict(ENVELOPE)),
            (
                "spec.limits.maxInFlight",
                "limits.maxInFlight must equal capacity.maxInFlight when both are set: they are"
                " the same ceiling",
            ),
            id="two different ceilings",
        ),
    ],
)
def test_our_rules_refuse_with_their_messages(
    mutate: Callable[[Obj], None], expected: tuple[str, str]
) -> None:
    assert [(v.path, v.message) for v in validate_object(_offer(mutate))] == [expected]


def test_a_bound_and_an_unknown_field_of_our_crd_are_reported() -> None:
    offer = _offer(lambda o: o["spec"]["upstream"].update(port=70000, weight=1))
    assert sorted(_kinds(validate_object(offer))) == [
        ("spec.upstream.port", "schema"),
        ("spec.upstream.weight", "unknown-field"),
    ]


def test_status_fields_outside_the_status_schema_are_reported() -> None:
    request = json.loads((ROOT / "tests/fixtures/sync/01-full-envelope-new-offer.json").read_text())
    status = sync(parse_request(request), Settings()).response["status"]
    assert validate_status(status) == []
    status["phase"] = "Ready"
    status["conditions"][0].pop("status")
    assert sorted(_kinds(validate_status(status))) == [
        ("status.conditions[0]", "schema"),
        ("status.phase", "unknown-field"),
    ]


def test_a_condition_needs_only_type_and_status_as_in_obol_stacks_crd() -> None:
    # obol-stack's controller may write such conditions while both controllers run.
    bare = {"conditions": [{"type": "Ready", "status": "False"}]}
    assert validate_status(bare) == []


def test_the_served_version_and_kind_are_checked() -> None:
    crd = load_crd(SERVICEOFFER_CRD)
    assert _kinds(crd.validate({**OFFER, "apiVersion": "obol.org/v9"})) == [
        ("apiVersion", "schema")
    ]
    assert _kinds(crd.validate({**OFFER, "kind": "Offer"})) == [("kind", "schema")]


# --------------------------------------------------------------------------------------------
# the translation itself, on a small inline CRD
# --------------------------------------------------------------------------------------------


def _widget_crd(spec_schema: Obj) -> Crd:
    raw = yaml.safe_load(
        """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: widgets.example.com}
        spec:
          group: example.com
          names: {kind: Widget, plural: widgets}
          scope: Namespaced
          versions:
          - name: v1
            served: true
            storage: true
            schema:
              openAPIV3Schema:
                type: object
                properties: {}
        """
    )
    raw["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] = spec_schema
    return Crd(Path("widgets.yaml"), raw)


def _widget(spec: Obj) -> Obj:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": spec,
    }


def _with_rule(properties: Obj, rule: str, **extra: Any) -> Obj:
    return {
        "type": "object",
        "properties": properties,
        "x-kubernetes-validations": [{"rule": rule, **extra}],
    }


def test_nullable_int_or_string_and_preserved_fields() -> None:
    crd = _widget_crd(
        {
            "type": "object",
            "properties": {
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    )
    assert crd.validate(_widget({"port": "http", "note": None, "free": {"any": 1}})) == []
    assert crd.validate(_widget({"port": 80})) == []
    assert _kinds(crd.validate(_widget({"port": 1.5}))) == [("spec.port", "schema")]


def test_rules_see_escaped_names_and_doubles_and_field_paths() -> None:
    crd = _widget_crd(
        _with_rule(
            {"namespace": {"type": "string"}, "a-b": {"type": "number"}},
            "self.__namespace__ == 'x' && self.a__dash__b > 0.5",
            message="bad widget",
            fieldPath=".namespace",
        )
    )
    assert crd.validate(_widget({"namespace": "x", "a-b": 1})) == []
    assert [(v.path, v.message) for v in crd.validate(_widget({"namespace": "y", "a-b": 1}))] == [
        ("spec.namespace", "bad widget")
    ]


def test_a_rule_cel_python_cannot_run_is_reported_never_passed() -> None:
    unknown_function = _widget_crd(_with_rule({"a": {"type": "string"}}, "self.a.noSuchFn()"))
    absent_field = _widget_crd(_with_rule({"a": {"type": "string"}}, "self.a == 'x'"))
    for crd in (unknown_function, absent_field):
        (violation,) = crd.validate(_widget({}))
        assert violation.kind == "cel" and "not checked offline" in violation.message


def test_transition_rules_are_skipped_and_a_wrong_shape_blocks_cel() -> None:
    crd = _widget_crd(_with_rule({"a": {"type": "integer"}}, "self.a == oldSelf.a"))
    assert crd.validate(_widget({"a": 1})) == []
    strict = _widget_crd(_with_rule({"a": {"type": "integer"}}, "self.a > 0"))
    assert _kinds(strict.validate(_widget({"a": "one"}))) == [("spec.a", "schema")]

"""Every file in examples/ behaves as documented, through the hook's model and the offline check.

Design notes:
- Valid examples must pass the pydantic model, the payment resolution against the built-in
  asset registry, and the offline check of crds/serviceoffer.yaml (JSON Schema + its CEL rules).
- Invalid examples carry their expected messages as annotations:
  ``examples.obol.org/expected-error`` is the exact hook/CLI message, and
  ``examples.obol.org/expected-crd-error`` a substring of what the API server says, or
  ``accepted`` when only the asset registry can tell (the CRD cannot know the registry) or the
  CRD stores the shape as obol-stack's CRD does (an empty price table). The API
  server's own wording and its defaults are checked against the real kube-apiserver in
  tests/e2e/test_crd_validation.py; offline, an invalid example must be refused, by the very
  rule message when the annotation is one of the CRD's CEL messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.core.assets import BUILTIN_REGISTRY
from hooks.core.errors import SpecError
from hooks.core.models import parse_offer
from hooks.core.payment import resolve_payment
from tests.support.crd_validation import format_violations, load_crd

ROOT = Path(__file__).resolve().parents[2]
VALID = sorted((ROOT / "examples").glob("*.yaml"))
INVALID = sorted((ROOT / "examples/invalid").glob("*.yaml"))
CRD = load_crd(ROOT / "crds/serviceoffer.yaml")


def rule_messages(node: Any) -> list[str]:
    """Every CEL rule message in a CRD (or part of one)."""
    if isinstance(node, list):
        return [m for item in node for m in rule_messages(item)]
    if not isinstance(node, dict):
        return []
    own = [r.get("message", "") for r in node.get("x-kubernetes-validations", [])]
    return own + [m for value in node.values() for m in rule_messages(value)]


RULE_MESSAGES = rule_messages(yaml.safe_load((ROOT / "crds/serviceoffer.yaml").read_text()))


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def hook_validate(obj: dict[str, Any]) -> None:
    offer = parse_offer(obj)
    resolve_payment(offer.spec.payment, BUILTIN_REGISTRY)


def test_there_are_examples_of_each_kind() -> None:
    assert len(VALID) >= 3 and len(INVALID) >= 8


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_example_passes_model_and_crd(path: Path) -> None:
    obj = load(path)
    hook_validate(obj)
    violations = CRD.validate(obj)
    assert not violations, format_violations(violations)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_example_gives_its_documented_message(path: Path) -> None:
    obj = load(path)
    annotations = obj["metadata"]["annotations"]
    with pytest.raises(SpecError) as caught:
        hook_validate(obj)
    assert str(caught.value) == annotations["examples.obol.org/expected-error"]

    expected_crd = annotations["examples.obol.org/expected-crd-error"]
    violations = CRD.validate(obj)
    if expected_crd == "accepted":
        assert not violations, format_violations(violations)
        return
    assert violations, "the CRD accepts an example documented as refused"
    if any(expected_crd in message for message in RULE_MESSAGES):
        assert any(expected_crd in v.message for v in violations), format_violations(violations)


def test_omitting_every_optional_block_is_valid() -> None:
    obj = {
        "apiVersion": "obol.org/v1alpha1",
        "kind": "ServiceOffer",
        "metadata": {"name": "bare", "namespace": "default"},
        "spec": {
            "upstream": {"service": "api", "port": 80},
            "payment": {
                "network": "base",
                "payTo": "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31",
                "price": {"perRequest": "1"},
            },
        },
    }
    hook_validate(obj)
    assert not CRD.validate(obj)

"""Every file in examples/ behaves as documented, through both validators.

Design notes:
- Valid examples must pass the pydantic model, the payment resolution against the built-in
  asset registry, and crds/serviceoffer.yaml (OpenAPI schema + CEL rules evaluated for real).
- Invalid examples carry their expected messages as annotations:
  ``examples.obol.org/expected-error`` is the exact hook/CLI message, and
  ``examples.obol.org/expected-crd-error`` a substring of what the API server says, or
  ``accepted`` when only the asset registry can tell (the CRD cannot know the registry).
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


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def hook_validate(obj: dict[str, Any]) -> None:
    offer = parse_offer(obj)
    resolve_payment(offer.spec.payment, offer.spec.request_limits, BUILTIN_REGISTRY)


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
    else:
        text = "\n".join(f"{v.path}: {v.message}" for v in violations)
        assert expected_crd in text, text


def test_omitting_every_optional_block_is_valid() -> None:
    obj = {
        "apiVersion": "obol.org/v1alpha1",
        "kind": "ServiceOffer",
        "metadata": {"name": "bare", "namespace": "default"},
        "spec": {
            "upstream": {"service": "api", "port": 80},
            "payment": {
                "network": "base",
                "payTo": "0x4A6f2b3D9e2B8f1C0a7E5d3B1c9F8e7D6c5B4a31",
                "price": {"perRequest": "1"},
            },
        },
    }
    hook_validate(obj)
    assert not CRD.validate(obj)
    defaulted = CRD.defaulted(obj)["spec"]
    assert "capacity" not in defaulted and "requestLimits" not in defaulted
    assert defaulted["payment"]["asset"] == "usdc"


def test_crd_definition_is_acceptable_and_every_rule_is_evaluated() -> None:
    assert not CRD.definition_problems()
    assert not CRD.unsupported_rules()

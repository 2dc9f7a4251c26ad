"""One validation for the CLI, the CRD and the hook: integer bounds and payTo safety.

Test-design notes:

* The CRD is read as data and every integer of ``spec`` must carry a minimum and a maximum equal
  to the model's bounds, so a new field without bounds fails here (a value beyond 64 bits once
  passed the CLI and was refused by the hook); the exceptions are obol-stack's fields its CRD
  stores with any value (``STORED_AS_OBOL``): ours stores them too, the hook reports InvalidSpec.
* The property test builds ``obol sell`` flags with values around every bound and payTo values
  that are fine, zero, mis-checksummed or a token contract, then asks three judges
  (tests/support/one_validation.py): the CLI itself (``--dry-run``: exit 0 or 3), the CRD (the
  offline JSON Schema + CEL check; the real API server judges the same strategy in
  tests/e2e/test_crd_validation.py) and the hook (a sync answer without InvalidSpec). The CLI and
  the hook agree on every spec; the CRD agrees too, except where CEL cannot compute (EIP-55
  checksums), where it is only more lenient, never stricter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import annotated_types
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel

from hooks.core.assets import BUILTIN_REGISTRY
from hooks.core.models import ServiceOfferSpec, eip55_checksum_ok
from tests.support.crd_validation import load_crd
from tests.support.one_validation import (
    BAD_CHECKSUM,
    GOOD,
    USDC_BASE_SEPOLIA,
    ZERO,
    args_for,
    cli_accepts,
    crd_accepts,
    fits_int64,
    hook_accepts,
    manifest_for,
    outside_stored_as_obol,
    sell_flags,
    within_stored_as_obol,
)

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds/serviceoffer.yaml").read_text())
BASE_FLAGS = {"upstream": "vllm", "port": 8000, "network": "base-sepolia", "price": "0.001"}
BASE_FLAGS["pay_to"] = GOOD
SPEC_SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def integer_schemas(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, prop in schema.get("properties", {}).items():
        child = f"{path}.{name}" if path else name
        if prop.get("type") == "integer":
            yield child, prop
        yield from integer_schemas(prop, child)
        yield from integer_schemas(prop.get("items", {}), f"{child}[]")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def model_field(path: str) -> Any:
    """The pydantic field behind a CRD path, or None when the model keeps that part as data."""
    models: list[type[BaseModel]] = [ServiceOfferSpec]
    info: Any = None
    for part in path.split("."):
        found = [f for m in models for f in m.model_fields.values() if f.alias == part]
        if not found:
            return None
        info = found[0]
        models = _models_in(info.annotation)
    return info


def bounds(info: Any) -> tuple[int | None, int | None]:
    low = next((m.ge for m in info.metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in info.metadata if isinstance(m, annotated_types.Le)), None)
    return low, high


INTEGERS = dict(integer_schemas(SPEC_SCHEMA))
# Stored with any value, as obol-stack's CRD does (its stored offers must stay updatable); the
# hook renders only the model's range and reports InvalidSpec otherwise.
STORED_AS_OBOL = {"payment.maxTimeoutSeconds"}
# obol-stack's fields this controller keeps without acting on them (the model holds them as
# plain data): bounded only by the API server's int64, like obol-stack's own CRD.
KEPT = {"routes[].freeQuota", "listing.weight", "dataset.sizeBytes"}


def test_the_spec_has_integers_to_check() -> None:
    assert {"upstream.port", "capacity.maxInFlight", "requestLimits.maxBodyBytes"} <= set(INTEGERS)
    assert KEPT <= set(INTEGERS)


@pytest.mark.parametrize("path", sorted(STORED_AS_OBOL))
def test_integers_stored_as_obol_stack_does_are_bounded_only_by_the_model(path: str) -> None:
    schema = INTEGERS[path]
    assert "minimum" not in schema and "maximum" not in schema
    field = model_field(path)
    assert field is not None and None not in bounds(field)


@pytest.mark.parametrize("path", sorted(set(INTEGERS) - KEPT - STORED_AS_OBOL))
def test_every_crd_integer_is_bounded_like_the_model(path: str) -> None:
    schema = INTEGERS[path]
    assert "minimum" in schema and "maximum" in schema, f"spec.{path} needs minimum and maximum"
    assert schema["maximum"] < 2**63
    field = model_field(path)
    assert field is not None, f"spec.{path} is not in the model"
    assert bounds(field) == (schema["minimum"], schema["maximum"])


@pytest.mark.parametrize("path", sorted(KEPT))
def test_kept_integers_are_data_the_hook_never_reads(path: str) -> None:
    top = path.split(".")[0].removesuffix("[]")
    assert model_field(top) is not None and model_field(path) is None


def test_the_crd_refuses_the_builtin_token_contracts_as_pay_to() -> None:
    rules = SPEC_SCHEMA["properties"]["payment"]["x-kubernetes-validations"]
    listed = next(r["rule"] for r in rules if "token contract" in r["message"])
    alternation = re.search(r"\^0x\(([0-9a-f|]+)\)\$", listed)
    assert alternation, listed
    addresses = {asset.address.lower() for asset in BUILTIN_REGISTRY.assets()}
    assert {"0x" + digits for digits in alternation.group(1).split("|")} == addresses


@pytest.fixture(scope="module", autouse=True)
def compiled_rules() -> None:
    # Compile the CRD's CEL rules before Hypothesis runs: compiling raises the recursion limit,
    # which Hypothesis reports as an error when it happens inside a test.
    crd_accepts(manifest_for(BASE_FLAGS))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sell_flags())
def test_cli_crd_and_hook_accept_the_same_specs(flags: dict[str, Any]) -> None:
    cli, message = cli_accepts(args_for(flags))
    manifest = manifest_for(flags)
    hook = hook_accepts(manifest)
    crd = crd_accepts(manifest)
    assert cli == hook, message
    if outside_stored_as_obol(flags):
        # Stored like obol-stack's CRD stores it (within int64), not rendered: the CRD judges
        # the rest alone (with a capacity envelope, its retryAfterSeconds < maxTimeoutSeconds
        # rule still compares the two).
        assert not hook
        if fits_int64(flags) and "max_inflight" not in flags:
            assert crd == crd_accepts(manifest_for(within_stored_as_obol(flags)))
    elif eip55_checksum_ok(flags["pay_to"]):
        assert crd == hook, (message, manifest)
    else:
        # CEL cannot hash: the CRD stores it, the hook reports InvalidSpec, the CLI refuses.
        assert not hook
        assert crd == (
            crd_accepts(
                {
                    **manifest,
                    "spec": {
                        **manifest["spec"],
                        "payment": {**manifest["spec"]["payment"], "payTo": GOOD},
                    },
                }
            )
        )


# --- what each judge says -----------------------------------------------------------------


BASE = ["sell", "inference", "qwen", "-n", "llm", "--upstream", "vllm", "--port", "8000",
        "--network", "base-sepolia", "--price", "0.001"]  # fmt: skip


def test_a_huge_max_inflight_is_refused_by_the_cli_before_printing() -> None:
    ok, message = cli_accepts([*BASE, "--pay-to", GOOD, "--max-inflight", "99999999999999999999"])
    assert not ok
    assert (
        "spec.capacity.maxInFlight: must be <= 1000000 (got 99999999999999999999) [--max-inflight]"
        in message
    )


def plain_offer(pay_to: str) -> dict[str, Any]:
    return manifest_for({**BASE_FLAGS, "pay_to": pay_to})


@pytest.mark.parametrize(
    ("pay_to", "reason"),
    [
        (ZERO, "must not be the zero address: payments sent there are lost"),
        (BAD_CHECKSUM, "mixes upper and lower case but its EIP-55 checksum is wrong"),
        (USDC_BASE_SEPOLIA, "is the USDC token contract on base-sepolia, not a wallet"),
        ("0x833589fcd6edb6e08f4c7c32d4f71b54bda02913", "is the USDC token contract on base"),
    ],
)
def test_a_pay_to_that_would_lose_the_money_is_refused_at_the_field(
    pay_to: str, reason: str
) -> None:
    ok, message = cli_accepts([*BASE, "--pay-to", pay_to])
    assert not ok
    assert f"spec.payment.payTo: {reason}" in message and "[--pay-to]" in message
    manifest = plain_offer(pay_to)
    assert not hook_accepts(manifest)


@pytest.mark.parametrize("pay_to", [GOOD, GOOD.lower(), GOOD.upper().replace("0X", "0x")])
def test_a_wallet_address_in_any_valid_form_is_accepted(pay_to: str) -> None:
    assert cli_accepts([*BASE, "--pay-to", pay_to])[0]


def test_the_crd_refuses_zero_and_builtin_token_pay_to_with_its_messages() -> None:
    crd = load_crd(ROOT / "crds/serviceoffer.yaml")
    manifest = plain_offer(GOOD)
    assert not crd.validate(manifest)
    for pay_to, message in [
        (ZERO, "zero address"),
        (USDC_BASE_SEPOLIA.upper().replace("0X", "0x"), "token contract"),
    ]:
        manifest["spec"]["payment"]["payTo"] = pay_to
        violations = crd.validate(manifest)
        assert any(message in str(v) and "payTo" in str(v) for v in violations), violations


# EIP-55's own examples (all caps, all lower, and mixed case).
EIP55_EXAMPLES = [
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("address", EIP55_EXAMPLES)
def test_eip55_examples_pass_and_any_one_flipped_letter_fails(address: str) -> None:
    assert eip55_checksum_ok(address)
    digits = address[2:]
    if digits in (digits.lower(), digits.upper()):
        return
    index = next(i for i, c in enumerate(digits) if c.isalpha())
    flipped = digits[:index] + digits[index].swapcase() + digits[index + 1 :]
    assert not eip55_checksum_ok("0x" + flipped)

"""One validation for the CLI, the CRD and the hook: integer bounds and payTo safety.

Test-design notes:

* The CRD is read as data and every integer of ``spec`` must carry a minimum and a maximum equal
  to the model's bounds, so a new field without bounds fails here (a value beyond 64 bits once
  passed the CLI and was refused by the hook).
* The property test builds ``obol sell`` flags with values around every bound and payTo values
  that are fine, zero, mis-checksummed or a token contract, then asks three judges: the CLI
  itself (``--dry-run``: exit 0 or 3), the CRD (the offline JSON Schema + CEL check; the real API
  server judges the same boundary cases in tests/e2e/test_crd_validation.py) and the hook
  (``obol hook render``'s path, a sync answer without InvalidSpec). The CLI and the hook agree on
  every spec; the CRD agrees too, except where CEL cannot compute (EIP-55 checksums), where it is
  only more lenient, never stricter.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import annotated_types
import orjson
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from hooks.cli.hook import render_request
from hooks.cli.main import obol
from hooks.cli.sell import offer_manifest
from hooks.core.assets import BUILTIN_REGISTRY
from hooks.core.models import ServiceOfferSpec, eip55_checksum_ok
from hooks.core.settings import Settings
from hooks.server.app import handle_sync_body, invalid_spec_message
from tests.support.crd_validation import load_crd

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds/serviceoffer.yaml").read_text())
SPEC_SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]

GOOD = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"
BAD_CHECKSUM = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"  # the same digits, cases garbled
ZERO = "0x" + "0" * 40
USDC_BASE_SEPOLIA = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"


def integer_schemas(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, prop in schema.get("properties", {}).items():
        child = f"{path}.{name}" if path else name
        if prop.get("type") == "integer":
            yield child, prop
        yield from integer_schemas(prop, child)


def model_field(path: str) -> Any:
    model: type[BaseModel] = ServiceOfferSpec
    info: Any = None
    for part in path.split("."):
        info = next(f for f in model.model_fields.values() if f.alias == part)
        nested = [
            arg
            for arg in getattr(info.annotation, "__args__", (info.annotation,))
            if isinstance(arg, type) and issubclass(arg, BaseModel)
        ]
        if nested:
            model = nested[0]
    return info


def bounds(info: Any) -> tuple[int | None, int | None]:
    low = next((m.ge for m in info.metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in info.metadata if isinstance(m, annotated_types.Le)), None)
    return low, high


INTEGERS = dict(integer_schemas(SPEC_SCHEMA))


def test_the_spec_has_integers_to_check() -> None:
    assert {"upstream.port", "capacity.maxInFlight", "requestLimits.maxBodyBytes"} <= set(INTEGERS)


@pytest.mark.parametrize("path", sorted(INTEGERS))
def test_every_crd_integer_is_bounded_like_the_model(path: str) -> None:
    schema = INTEGERS[path]
    assert "minimum" in schema and "maximum" in schema, f"spec.{path} needs minimum and maximum"
    assert schema["maximum"] < 2**63
    assert bounds(model_field(path)) == (schema["minimum"], schema["maximum"])


def test_the_crd_refuses_the_builtin_token_contracts_as_pay_to() -> None:
    rules = SPEC_SCHEMA["properties"]["payment"]["x-kubernetes-validations"]
    listed = next(r["rule"] for r in rules if "token contract" in r["message"])
    addresses = {asset.address.lower() for asset in BUILTIN_REGISTRY.assets()}
    assert {a for a in addresses if f"'{a}'" in listed} == addresses
    assert listed.count("'0x") == len(addresses)


# --- the three judges ---------------------------------------------------------------------


def cli_accepts(args: list[str]) -> tuple[bool, str]:
    result = CliRunner().invoke(
        obol,
        [*args, "--dry-run", "-o", "json"],
        env={"OBOL_KUBECTL": None, "OBOL_ASSET_REGISTRY_FILE": None},
    )
    assert result.exit_code in (0, 3), result.output
    assert "Traceback" not in result.output
    return result.exit_code == 0, result.stderr


def fits_int64(value: Any) -> bool:
    if isinstance(value, dict):
        return all(fits_int64(v) for v in value.values())
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return True


def crd_accepts(manifest: dict[str, Any]) -> bool:
    if not fits_int64(manifest):
        # The API server cannot even decode it (Kubernetes integers are int64).
        return False
    return not load_crd(ROOT / "crds/serviceoffer.yaml").validate(manifest)


def hook_accepts(manifest: dict[str, Any]) -> bool:
    if not fits_int64(manifest):
        # No API server stores it, so no sync request can carry it.
        return False
    answer = handle_sync_body(orjson.dumps(render_request(manifest)), Settings())
    assert answer.status == 200
    return invalid_spec_message(orjson.loads(answer.body)) is None


FLAGS = {
    "max_inflight": ("--max-inflight", 1, 1_000_000),
    "per_buyer_max_inflight": ("--per-buyer-max-inflight", 1, 1_000_000),
    "gpu_count": ("--gpu-count", 0, 65_536),
    "max_body_bytes": ("--max-body-bytes", 1, 1 << 30),
    "max_input_tokens": ("--max-input-tokens", 1, 1_000_000_000),
    "max_output_tokens": ("--max-output-tokens", 1, 1_000_000_000),
    "context_window": ("--context-window", 1, 1_000_000_000),
    "port": ("--port", 1, 65_535),
    "retry_after": ("--retry-after", 1, 3600),
    "max_timeout": ("--max-timeout", 1, 86_400),
}


def around(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [low - 1, low, low + 1, high - 1, high, high + 1, 10**20, -(10**20)]
    return st.sampled_from(edges) | st.integers(low, high)


@st.composite
def sell_flags(draw: st.DrawFn) -> dict[str, Any]:
    flags: dict[str, Any] = {"upstream": "vllm", "network": "base-sepolia", "price": "0.001"}
    flags["port"] = draw(around(1, 65_535))
    for param, (_, low, high) in FLAGS.items():
        if param != "port" and draw(st.booleans()):
            flags[param] = draw(around(low, high))
    if any(p in flags for p in ("per_buyer_max_inflight", "gpu_count", "retry_after")):
        flags.setdefault("max_inflight", draw(around(1, 1_000_000)))
    flags["pay_to"] = draw(
        st.sampled_from([GOOD, GOOD.lower(), BAD_CHECKSUM, ZERO, USDC_BASE_SEPOLIA])
    )
    return flags


def args_for(flags: dict[str, Any]) -> list[str]:
    args = ["sell", "inference", "qwen", "-n", "llm", "--upstream", flags["upstream"]]
    args += ["--network", flags["network"], "--price", flags["price"], "--pay-to", flags["pay_to"]]
    for param, (flag, _, _) in FLAGS.items():
        if param in flags:
            args += [flag, str(flags[param])]
    return args


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sell_flags())
def test_cli_crd_and_hook_accept_the_same_specs(flags: dict[str, Any]) -> None:
    cli, message = cli_accepts(args_for(flags))
    manifest = offer_manifest("qwen", "llm", "inference", flags, None)
    hook = hook_accepts(manifest)
    crd = crd_accepts(manifest)
    assert cli == hook, message
    if eip55_checksum_ok(flags["pay_to"]):
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
    flags = {"upstream": "vllm", "port": 8000, "network": "base-sepolia", "price": "0.001"}
    return offer_manifest("qwen", "llm", "inference", {**flags, "pay_to": pay_to}, None)


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

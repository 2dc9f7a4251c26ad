"""Flag-to-spec mapping of ``obol sell inference`` and ``obol sell http``, and preset expansion.

Design notes:
- Every case runs the real command with ``--dry-run -o json`` and compares the WHOLE spec with
  the minimal spec plus the fields the case expects, so a case proves both that its flag lands
  in the right field and that nothing else (no CRD default) sneaks in.
- One table per command; the ids read "<flags> sets <field>".
- Preset cases check expansion (all seven static limits), override by explicit flags (flags
  win, the rest stays from the preset) and that request-limit flags alone never create a
  capacity envelope.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from hooks.cli.presets import load_presets
from tests.cli.sell_helpers import (
    OBOL_ETHEREUM,
    PAY_TO,
    USDC_BASE,
    Runner,
    dry_run_spec,
    offer_args,
)

MINIMAL_SPEC: dict[str, Any] = {
    "type": "inference",
    "upstream": {"service": "vllm", "port": 8000},
    "payment": {
        "network": "base",
        "asset": USDC_BASE,  # always written resolved, in obol-stack's object form
        "payTo": PAY_TO,
        "price": {"perRequest": "0.001"},
    },
}


def expected(
    changes: dict[str, Any], *, offer_type: str = "inference", price: dict[str, str] | None = None
) -> dict[str, Any]:
    """MINIMAL_SPEC with dotted-path ``changes`` applied (sections created in CRD order)."""
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["type"] = offer_type
    if price is not None:
        spec["payment"]["price"] = price
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return spec


SHARED_CASES = [
    pytest.param(
        ["--upstream-namespace", "backends"],
        {"upstream.namespace": "backends"},
        id="--upstream-namespace sets upstream.namespace",
    ),
    pytest.param(
        ["--health-path", "/v1/models"],
        {"upstream.healthPath": "/v1/models"},
        id="--health-path sets upstream.healthPath",
    ),
    pytest.param(
        ["--payment-asset", "usdc"],
        {"payment.asset": USDC_BASE},
        id="--payment-asset usdc sets payment.asset to the USDC object",
    ),
    pytest.param(
        ["--max-timeout", "600"],
        {"payment.maxTimeoutSeconds": 600},
        id="--max-timeout sets payment.maxTimeoutSeconds",
    ),
    pytest.param(
        ["--per-mtok", "0.50"],
        {"payment.price.perMTok": "0.50"},
        id="--per-mtok with --price sets both prices",
    ),
    pytest.param(
        ["--max-input-tokens", "4096"],
        {"requestLimits.maxInputTokens": 4096},
        id="--max-input-tokens sets requestLimits only, no capacity",
    ),
    pytest.param(
        ["--max-output-tokens", "1024"],
        {"requestLimits.maxOutputTokens": 1024},
        id="--max-output-tokens sets requestLimits.maxOutputTokens",
    ),
    pytest.param(
        ["--max-body-bytes", "65536"],
        {"requestLimits.maxBodyBytes": 65536},
        id="--max-body-bytes sets requestLimits.maxBodyBytes",
    ),
    pytest.param(
        ["--max-inflight", "8"],
        {"capacity.mode": "external-static", "capacity.maxInFlight": 8},
        id="--max-inflight alone creates an external-static envelope",
    ),
    pytest.param(
        ["--max-inflight", "8", "--gpu-count", "2"],
        {"capacity.mode": "external-static", "capacity.gpuCount": 2, "capacity.maxInFlight": 8},
        id="--gpu-count sets capacity.gpuCount",
    ),
    pytest.param(
        ["--max-inflight", "8", "--per-buyer-max-inflight", "2"],
        {
            "capacity.mode": "external-static",
            "capacity.maxInFlight": 8,
            "capacity.perBuyerMaxInFlight": 2,
        },
        id="--per-buyer-max-inflight sets capacity.perBuyerMaxInFlight",
    ),
    pytest.param(
        ["--max-inflight", "8", "--retry-after", "5"],
        {
            "capacity.mode": "external-static",
            "capacity.maxInFlight": 8,
            "capacity.retryAfterSeconds": 5,
        },
        id="--retry-after sets capacity.retryAfterSeconds",
    ),
]

INFERENCE_ONLY_CASES = [
    pytest.param(
        ["--runtime", "openai"],
        {"capabilities.protocol": "openai-chat"},
        id="--runtime openai sets protocol openai-chat",
    ),
    pytest.param(
        ["--protocol", "openai-embeddings"],
        {"capabilities.protocol": "openai-embeddings"},
        id="--protocol sets capabilities.protocol",
    ),
    pytest.param(
        ["--runtime", "openai", "--protocol", "openai-completions"],
        {"capabilities.protocol": "openai-completions"},
        id="--protocol overrides the --runtime default",
    ),
    pytest.param(
        ["--streaming"],
        {"capabilities.streaming": True},
        id="--streaming sets capabilities.streaming true",
    ),
    pytest.param(
        ["--no-streaming"],
        {"capabilities.streaming": False},
        id="--no-streaming is kept as an explicit false",
    ),
    pytest.param(
        ["--context-window", "8192"],
        {"capabilities.contextWindowTokens": 8192},
        id="--context-window sets capabilities.contextWindowTokens",
    ),
]


@pytest.mark.parametrize(("flags", "changes"), [*SHARED_CASES, *INFERENCE_ONLY_CASES])
def test_inference_flag_sets_exactly_its_field(
    run: Runner, flags: list[str], changes: dict[str, Any]
) -> None:
    assert dry_run_spec(run, *flags) == expected(changes)


@pytest.mark.parametrize(("flags", "changes"), SHARED_CASES)
def test_http_flag_sets_exactly_its_field(
    run: Runner, flags: list[str], changes: dict[str, Any]
) -> None:
    assert dry_run_spec(run, *flags, kind="http") == expected(changes, offer_type="http")


def test_minimal_flags_give_the_minimal_spec_and_no_capacity(run: Runner) -> None:
    spec = dry_run_spec(run)
    assert spec == MINIMAL_SPEC
    assert "capacity" not in spec


def test_per_mtok_alone_makes_price_optional(run: Runner) -> None:
    spec = dry_run_spec(
        run,
        "--per-mtok",
        "0.5",
        "--max-input-tokens",
        "1000",
        "--max-output-tokens",
        "1000",
        price=None,
    )
    assert spec["payment"]["price"] == {"perMTok": "0.5"}


def test_obol_on_ethereum_sets_asset_and_network(run: Runner) -> None:
    result = run(
        [
            "sell",
            "http",
            "api",
            "--upstream",
            "api",
            "--port",
            "80",
            "--network",
            "ethereum",
            "--payment-asset",
            "obol",
            "--pay-to",
            PAY_TO,
            "--price",
            "0.25",
            "--dry-run",
            "-o",
            "json",
        ]
    )
    assert result.exit_code == 0, result.output
    payment = json.loads(result.stdout)["spec"]["payment"]
    assert payment == {
        "network": "ethereum",
        "asset": OBOL_ETHEREUM,
        "payTo": PAY_TO,
        "price": {"perRequest": "0.25"},
    }


def test_namespace_goes_to_metadata_only_when_given(run: Runner) -> None:
    with_ns = run(offer_args("-n", "llm", "--dry-run", "-o", "json"))
    without = run(offer_args("--dry-run", "-o", "json"))
    assert json.loads(with_ns.stdout)["metadata"] == {"name": "qwen", "namespace": "llm"}
    assert json.loads(without.stdout)["metadata"] == {"name": "qwen"}


@pytest.mark.parametrize(
    "flag",
    ["--runtime", "--protocol", "--streaming", "--no-streaming", "--context-window"],
    ids=lambda flag: f"http has no {flag}",
)
def test_http_has_no_capabilities_flags(run: Runner, flag: str) -> None:
    value = [] if "streaming" in flag else ["x"]
    result = run(offer_args(flag, *value, "--dry-run", kind="http"))
    assert result.exit_code == 2
    assert "No such option" in result.stderr


# --- presets -----------------------------------------------------------------------------------

BALANCED = "external-vllm-1gpu-balanced"


def test_preset_expands_into_static_limits_only(run: Runner) -> None:
    spec = dry_run_spec(run, "--capacity-preset", BALANCED)
    preset = load_presets()[BALANCED]
    assert spec["capacity"] == {"mode": "external-static", **preset.capacity}
    assert spec["requestLimits"] == dict(preset.request_limits)
    assert set(spec) == {"type", "upstream", "requestLimits", "capacity", "payment"}


@pytest.mark.parametrize(
    ("flags", "section", "field", "value"),
    [
        pytest.param(
            ["--max-inflight", "10"],
            "capacity",
            "maxInFlight",
            10,
            id="--max-inflight overrides the preset",
        ),
        pytest.param(
            ["--per-buyer-max-inflight", "1"],
            "capacity",
            "perBuyerMaxInFlight",
            1,
            id="--per-buyer-max-inflight overrides the preset",
        ),
        pytest.param(
            ["--gpu-count", "3"], "capacity", "gpuCount", 3, id="--gpu-count overrides the preset"
        ),
        pytest.param(
            ["--retry-after", "9"],
            "capacity",
            "retryAfterSeconds",
            9,
            id="--retry-after overrides the preset",
        ),
        pytest.param(
            ["--max-input-tokens", "1000"],
            "requestLimits",
            "maxInputTokens",
            1000,
            id="--max-input-tokens overrides the preset",
        ),
        pytest.param(
            ["--max-output-tokens", "500"],
            "requestLimits",
            "maxOutputTokens",
            500,
            id="--max-output-tokens overrides the preset",
        ),
        pytest.param(
            ["--max-body-bytes", "100000"],
            "requestLimits",
            "maxBodyBytes",
            100000,
            id="--max-body-bytes overrides the preset",
        ),
    ],
)
def test_explicit_flag_overrides_one_preset_value(
    run: Runner, flags: list[str], section: str, field: str, value: int
) -> None:
    preset = load_presets()[BALANCED]
    spec = dry_run_spec(run, "--capacity-preset", BALANCED, *flags)
    declared = {
        "capacity": {"mode": "external-static", **preset.capacity},
        "requestLimits": dict(preset.request_limits),
    }
    declared[section][field] = value
    assert spec["capacity"] == declared["capacity"]
    assert spec["requestLimits"] == declared["requestLimits"]


def test_preset_works_for_http_offers_too(run: Runner) -> None:
    spec = dry_run_spec(run, "--capacity-preset", "external-llamacpp-cpu-small", kind="http")
    assert spec["type"] == "http"
    assert spec["capacity"]["gpuCount"] == 0


def test_request_limit_flags_alone_create_no_capacity(run: Runner) -> None:
    spec = dry_run_spec(
        run, "--max-input-tokens", "10", "--max-output-tokens", "10", "--max-body-bytes", "10"
    )
    assert "capacity" not in spec
    assert spec["requestLimits"] == {
        "maxInputTokens": 10,
        "maxOutputTokens": 10,
        "maxBodyBytes": 10,
    }


# --- flag combinations refused before the model sees them ---------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            offer_args(price=None),
            "missing required options: a price: --price/--per-request, --per-mtok or --per-hour",
            id="no price at all",
        ),
        pytest.param(
            offer_args("--gpu-count", "1"),
            "--max-inflight is required with --gpu-count",
            id="capacity flag without --max-inflight",
        ),
        pytest.param(
            offer_args("--retry-after", "3", "--per-buyer-max-inflight", "1"),
            "--max-inflight is required with --per-buyer-max-inflight, --retry-after",
            id="two capacity flags without --max-inflight",
        ),
        pytest.param(
            offer_args("-o", "json"),
            "-o/--output only applies with --dry-run",
            id="output format without --dry-run",
        ),
        pytest.param(
            offer_args("--capacity-preset", "external-tpu-9000"),
            "unknown preset 'external-tpu-9000'; known: external-vllm-1gpu-balanced",
            id="unknown preset",
        ),
    ],
)
def test_usage_errors_exit_2(run: Runner, args: list[str], message: str) -> None:
    result = run([*args, "--dry-run"] if "-o" not in args else args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr

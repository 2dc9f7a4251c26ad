"""Capacity presets: the packaged data file, its validation, its invariants and ``sell presets``.

Design notes:
- Every packaged preset is loaded through the hook's own model: merged into a real spec and
  parsed with ``parse_spec`` + ``resolve_payment``, so a preset can never expand into an offer
  the hook refuses. Ids are the preset names.
- The numeric invariants (per-buyer <= half the global limit, tokens within a 32k window, the
  body fits the largest prompt, Retry-After below the default payment timeout, "<N>gpu" in the
  name equals gpuCount) are asserted per preset, so a new preset is checked without new code.
- ``parse_presets`` is table-tested with broken documents; each case names what is wrong and
  asserts the whole field-path message.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import yaml

from hooks.cli.presets import (
    CAPACITY_KEYS,
    NO_AUTOSCALING_NOTE,
    REQUEST_LIMIT_KEYS,
    Preset,
    expand_limits,
    load_presets,
    parse_presets,
)
from hooks.core.assets import BUILTIN_REGISTRY
from hooks.core.errors import SpecError
from hooks.core.models import parse_spec
from hooks.core.payment import resolve_payment
from tests.cli.sell_helpers import PAY_TO, Runner

PRESETS = load_presets()
REQUIRED_NAMES = {
    "external-vllm-1gpu-balanced",
    "external-vllm-1gpu-latency",
    "external-vllm-1gpu-throughput",
    "external-vllm-2gpu-balanced",
    "external-vllm-4gpu-balanced",
    "external-vllm-8gpu-balanced",
}
TYPICAL_CONTEXT_WINDOW = 32768
DEFAULT_MAX_TIMEOUT_SECONDS = 300
MIN_BYTES_PER_TOKEN = 4

each_preset = pytest.mark.parametrize("preset", PRESETS.values(), ids=list(PRESETS))


def test_the_required_presets_exist() -> None:
    assert REQUIRED_NAMES <= set(PRESETS)


@each_preset
def test_preset_expands_into_a_spec_the_hook_accepts(preset: Preset) -> None:
    capacity, limits = expand_limits(preset, {}, {})
    spec = parse_spec(
        {
            "type": "inference",
            "upstream": {"service": "vllm", "port": 8000},
            "capacity": capacity,
            "requestLimits": limits,
            "payment": {
                "network": "base",
                "payTo": PAY_TO,
                "price": {"perRequest": "0.001", "perMTok": "0.5"},
            },
        }
    )
    resolve_payment(spec.payment, BUILTIN_REGISTRY)
    assert spec.capacity is not None and spec.capacity.mode == "external-static"


@each_preset
def test_preset_sets_every_static_limit_and_nothing_else(preset: Preset) -> None:
    assert tuple(preset.capacity) == CAPACITY_KEYS
    assert tuple(preset.request_limits) == REQUEST_LIMIT_KEYS


@each_preset
def test_preset_numbers_are_mutually_consistent(preset: Preset) -> None:
    capacity, limits = preset.capacity, preset.request_limits
    assert 1 <= capacity["perBuyerMaxInFlight"] <= capacity["maxInFlight"] // 2
    assert limits["maxInputTokens"] + limits["maxOutputTokens"] <= TYPICAL_CONTEXT_WINDOW
    assert limits["maxBodyBytes"] >= MIN_BYTES_PER_TOKEN * limits["maxInputTokens"]
    assert 1 <= capacity["retryAfterSeconds"] < DEFAULT_MAX_TIMEOUT_SECONDS


@each_preset
def test_preset_name_states_its_gpu_count(preset: Preset) -> None:
    match = re.search(r"-(\d+)gpu-|-cpu-", preset.name)
    assert match is not None, "a preset name says <N>gpu or cpu"
    assert preset.capacity["gpuCount"] == (int(match.group(1)) if match.group(1) else 0)


@each_preset
def test_preset_description_is_one_short_line(preset: Preset) -> None:
    assert "\n" not in preset.description
    assert 10 <= len(preset.description) <= 120


def test_vllm_balanced_concurrency_grows_with_gpus() -> None:
    balanced = sorted(
        (
            p
            for p in PRESETS.values()
            if p.name.startswith("external-vllm-") and p.name.endswith("-balanced")
        ),
        key=lambda p: p.capacity["gpuCount"],
    )
    in_flight = [p.capacity["maxInFlight"] for p in balanced]
    assert [p.capacity["gpuCount"] for p in balanced] == [1, 2, 4, 8]
    assert in_flight == sorted(in_flight) and len(set(in_flight)) == len(in_flight)


def test_one_gpu_variants_order_latency_balanced_throughput() -> None:
    def limit(variant: str) -> int:
        return PRESETS[f"external-vllm-1gpu-{variant}"].capacity["maxInFlight"]

    assert limit("latency") < limit("balanced") < limit("throughput")


# --- parse_presets on broken documents ---------------------------------------------------------

GOOD_ENTRY: dict[str, Any] = {
    "name": "tiny",
    "description": "a tiny preset",
    "capacity": {"gpuCount": 1, "maxInFlight": 4, "perBuyerMaxInFlight": 2, "retryAfterSeconds": 2},
    "requestLimits": {"maxInputTokens": 100, "maxOutputTokens": 100, "maxBodyBytes": 1000},
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    entry = copy.deepcopy(GOOD_ENTRY)
    *parents, leaf = path.split(".")
    node = entry
    for key in parents:
        node = node[key]
    if value is None:
        del node[leaf]
    else:
        node[leaf] = value
    return {"presets": [entry]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(
            {"presets": []},
            "presets: List should have at least 1 item",
            id="invalid because the list is empty",
        ),
        pytest.param(
            with_change("capacity.maxInFlight", None),
            "presets[0].capacity.maxInFlight: required field is missing",
            id="invalid because maxInFlight is missing",
        ),
        pytest.param(
            with_change("capacity.mode", "external-static"),
            "presets[0].capacity.mode: unknown field",
            id="invalid because a preset may not set the mode",
        ),
        pytest.param(
            with_change("capacity.maxQueueDepth", 0),
            "presets[0].capacity.maxQueueDepth: unknown field",
            id="invalid because a preset may not set a queue",
        ),
        pytest.param(
            with_change("capacity.perBuyerMaxInFlight", 8),
            "presets[0].capacity.perBuyerMaxInFlight: must be <= maxInFlight (8 > 4)",
            id="invalid because per-buyer exceeds the global limit",
        ),
        pytest.param(
            with_change("capacity.maxInFlight", 0),
            "presets[0].capacity.maxInFlight: must be >= 1 (got 0)",
            id="invalid because maxInFlight is zero",
        ),
        pytest.param(
            with_change("capacity.retryAfterSeconds", 7200),
            "presets[0].capacity.retryAfterSeconds: must be <= 3600 (got 7200)",
            id="invalid because Retry-After is over an hour",
        ),
        pytest.param(
            with_change("requestLimits.maxBodyBytes", "1MiB"),
            "presets[0].requestLimits.maxBodyBytes: must be an integer (got '1MiB')",
            id="invalid because a limit is not a number",
        ),
        pytest.param(
            with_change("name", "Big_GPU"),
            "presets[0].name: must be a DNS-1123 label",
            id="invalid because the name is not a DNS label",
        ),
        pytest.param(
            with_change("description", "two\nlines"),
            "presets[0].description: must match",
            id="invalid because the description spans two lines",
        ),
        pytest.param(
            {"presets": [GOOD_ENTRY, GOOD_ENTRY]},
            "presets[1].name: is used by an earlier preset (got 'tiny')",
            id="invalid because a name is used twice",
        ),
        pytest.param(
            {"presets": [GOOD_ENTRY], "extra": 1},
            "extra: unknown field",
            id="invalid because of an unknown top-level key",
        ),
    ],
)
def test_broken_presets_document_is_refused(document: Any, message: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_presets(document)
    assert message in str(raised.value)


def test_good_document_parses() -> None:
    parsed = parse_presets({"presets": [GOOD_ENTRY]})
    assert parsed["tiny"].as_document() == GOOD_ENTRY


# --- expand_limits -----------------------------------------------------------------------------


def test_no_preset_and_no_flags_expand_to_nothing() -> None:
    none = dict.fromkeys(CAPACITY_KEYS)
    assert expand_limits(None, none, dict.fromkeys(REQUEST_LIMIT_KEYS)) == (None, None)


def test_expand_refuses_a_field_presets_do_not_supply() -> None:
    with pytest.raises(ValueError, match="not a preset field: maxQueueDepth"):
        expand_limits(None, {"maxQueueDepth": 3}, {})


# --- obol sell presets -------------------------------------------------------------------------


def test_presets_table_lists_every_preset_and_says_nothing_autoscales(run: Runner) -> None:
    result = run(["sell", "presets"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "GPUS", "MAX-IN-FLIGHT"]
    for name, preset in PRESETS.items():
        row = next(line for line in lines if line.startswith(name + " "))
        assert preset.description in row
    assert NO_AUTOSCALING_NOTE in result.stdout
    assert "Nothing is autoscaled" in result.stdout


@pytest.mark.parametrize("output", ["yaml", "json"])
def test_presets_machine_output_round_trips(run: Runner, output: str) -> None:
    result = run(["sell", "presets", "-o", output])
    assert result.exit_code == 0
    loaded = json.loads(result.stdout) if output == "json" else yaml.safe_load(result.stdout)
    assert loaded == [preset.as_document() for preset in PRESETS.values()]

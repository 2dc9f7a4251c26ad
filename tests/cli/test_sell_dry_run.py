"""``--dry-run`` output: golden files, CRD validity, hook acceptance, minimality, stability.

Design notes:
- Goldens: each scenario's exact ``--dry-run`` YAML lives in ``tests/cli/golden/<id>.yaml``.
  Regenerate them after an intended change with ``pytest tests/cli --update-goldens`` (the
  repository-wide flag from ``tests/conftest.py``) and review the diff like code.
- Every golden is validated against ``crds/serviceoffer.yaml`` with the thin offline check in
  ``tests/support/crd_validation.py`` (JSON Schema, undeclared fields, CEL rules), and fed to
  the pure ``sync`` hook, which must not answer ``InvalidSpec``.
- "Only what the seller set": the minimal offer must carry none of the fields the CRD defaults;
  key order must follow the CRD's property order, so output is stable across runs and releases.
- Dry-run never runs kubectl: a fake kubectl records no call, and a missing one does not matter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.status import READY, REASON_INVALID_SPEC
from hooks.core.sync import sync
from tests.cli.sell_helpers import PAY_TO, FakeKubectl, Runner, offer_args
from tests.support.crd_validation import SERVICEOFFER_CRD, load_crd
from tests.support.observed import parent_object, sync_request

GOLDEN_DIR = Path(__file__).parent / "golden"
ROOT = Path(__file__).resolve().parents[2]

SCENARIOS: dict[str, list[str]] = {
    "inference-vllm-preset": [
        "sell",
        "inference",
        "qwen36-fast",
        "-n",
        "llm-sellers",
        "--upstream",
        "vllm-qwen36",
        "--port",
        "8000",
        "--runtime",
        "openai",
        "--context-window",
        "131072",
        "--network",
        "base",
        "--pay-to",
        PAY_TO,
        "--price",
        "0.002",
        "--per-mtok",
        "0.50",
        "--capacity-preset",
        "external-vllm-1gpu-balanced",
        "--per-buyer-max-inflight",
        "2",
    ],
    "inference-llamacpp-every-flag": [
        "sell",
        "inference",
        "llama-obol",
        "-n",
        "llm-sellers",
        "--upstream",
        "llamacpp",
        "--upstream-namespace",
        "llm-backends",
        "--port",
        "8080",
        "--health-path",
        "/health",
        "--protocol",
        "openai-completions",
        "--no-streaming",
        "--context-window",
        "8192",
        "--network",
        "ethereum",
        "--payment-asset",
        "obol",
        "--pay-to",
        PAY_TO,
        "--price",
        "0.25",
        "--max-timeout",
        "600",
        "--gpu-count",
        "2",
        "--max-inflight",
        "4",
        "--per-buyer-max-inflight",
        "2",
        "--retry-after",
        "5",
        "--max-input-tokens",
        "4096",
        "--max-output-tokens",
        "1024",
        "--max-body-bytes",
        "65536",
    ],
    "http-weather-no-capacity": [
        "sell",
        "http",
        "weather-api",
        "-n",
        "tenant-a",
        "--upstream",
        "weather",
        "--port",
        "8080",
        "--network",
        "base-sepolia",
        "--pay-to",
        PAY_TO,
        "--price",
        "0.0001",
    ],
}
each_scenario = pytest.mark.parametrize("scenario", list(SCENARIOS))


def dry_run(run: Runner, args: list[str], output: str = "yaml") -> str:
    result = run([*args, "--dry-run", "-o", output])
    assert result.exit_code == 0, result.output
    return result.stdout


@each_scenario
def test_dry_run_matches_golden(run: Runner, scenario: str, update_goldens: bool) -> None:
    golden = GOLDEN_DIR / f"{scenario}.yaml"
    produced = dry_run(run, SCENARIOS[scenario])
    if update_goldens:
        golden.write_text(produced)
    assert golden.exists(), f"missing golden {golden.name}; run pytest --update-goldens"
    assert produced == golden.read_text()


@each_scenario
def test_json_output_is_the_same_object_as_yaml(run: Runner, scenario: str) -> None:
    as_yaml = yaml.safe_load(dry_run(run, SCENARIOS[scenario], "yaml"))
    as_json = json.loads(dry_run(run, SCENARIOS[scenario], "json"))
    assert as_json == as_yaml
    assert list(as_json) == ["apiVersion", "kind", "metadata", "spec"]


@each_scenario
@pytest.mark.parametrize("output", ["yaml", "json"])
def test_dry_run_validates_against_the_crd(run: Runner, scenario: str, output: str) -> None:
    text = dry_run(run, SCENARIOS[scenario], output)
    offer = json.loads(text) if output == "json" else yaml.safe_load(text)
    violations = load_crd(SERVICEOFFER_CRD).validate(offer)
    assert violations == [], "\n".join(str(v) for v in violations)


@each_scenario
def test_the_hook_accepts_what_the_cli_prints(run: Runner, scenario: str) -> None:
    offer = yaml.safe_load(dry_run(run, SCENARIOS[scenario]))
    response = sync(parse_request(sync_request(parent_object(offer))), Settings()).response
    ready = next(c for c in response["status"]["conditions"] if c["type"] == READY)
    assert ready["reason"] != REASON_INVALID_SPEC, ready["message"]
    assert response["children"], "a valid offer yields children"


def test_http_offer_equals_the_committed_example(run: Runner) -> None:
    produced = yaml.safe_load(dry_run(run, SCENARIOS["http-weather-no-capacity"]))
    example = yaml.safe_load((ROOT / "examples" / "http-weather-api.yaml").read_text())
    assert produced == example


# --- only what was set, in a stable order --------------------------------------------------------


def defaulted_fields(schema: Mapping[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of every property the CRD gives a ``default``."""
    found = set()
    for name, prop in (schema.get("properties") or {}).items():
        path = f"{prefix}{name}"
        if "default" in prop:
            found.add(path)
        found |= defaulted_fields(prop, path + ".")
    return found


def present_fields(node: Any, prefix: str = "") -> set[str]:
    if not isinstance(node, Mapping):
        return set()
    found = set()
    for key, value in node.items():
        found.add(f"{prefix}{key}")
        found |= present_fields(value, f"{prefix}{key}.")
    return found


def crd_spec_schema() -> Mapping[str, Any]:
    crd = yaml.safe_load(SERVICEOFFER_CRD.read_text())
    schema: Mapping[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema["properties"]["spec"]


def test_minimal_dry_run_has_no_crd_defaults_except_the_chosen_type(run: Runner) -> None:
    spec = yaml.safe_load(dry_run(run, offer_args("--max-inflight", "4")))["spec"]
    defaults = defaulted_fields(crd_spec_schema())
    assert {"upstream.healthPath", "payment.scheme", "capacity.maxQueueDepth"} <= defaults
    # upstream.port has a CRD default (obol-stack's 11434) but this seller chose --port.
    assert present_fields(spec) & defaults == {"type", "upstream.port"}


def assert_crd_key_order(node: Any, schema: Mapping[str, Any], path: str = "spec") -> None:
    if not isinstance(node, Mapping):
        return
    order = list(schema.get("properties") or {})
    keys = list(node)
    assert keys == sorted(keys, key=order.index), f"{path}: {keys} is not in CRD order"
    for key, value in node.items():
        assert_crd_key_order(value, schema["properties"][key], f"{path}.{key}")


@each_scenario
def test_spec_keys_follow_the_crd_order(run: Runner, scenario: str) -> None:
    spec = yaml.safe_load(dry_run(run, SCENARIOS[scenario]))["spec"]
    assert_crd_key_order(spec, crd_spec_schema())


def test_dry_run_is_byte_for_byte_repeatable(run: Runner) -> None:
    args = SCENARIOS["inference-llamacpp-every-flag"]
    assert dry_run(run, args) == dry_run(run, args)


# --- dry-run never touches the cluster -----------------------------------------------------------


def test_dry_run_never_invokes_kubectl(run: Runner, fake_kubectl: FakeKubectl) -> None:
    result = run(offer_args("--dry-run", "--kubectl", str(fake_kubectl.path)))
    assert result.exit_code == 0
    assert fake_kubectl.calls() == []


@pytest.mark.parametrize(
    ("flags", "warning"),
    [
        pytest.param(
            ["--streaming", "--max-body-bytes", "1000"],
            "Warning: maxBodyBytes is advertised only",
            id="streaming offer with a body limit",
        ),
        pytest.param(
            ["--per-mtok", "0.5"],
            "Warning: perMTok is not charged: obol-stack's verifier quotes the first price set",
            id="perMTok beside --price (the first price set is charged)",
        ),
    ],
)
def test_hook_warnings_go_to_stderr_and_stdout_stays_yaml(
    run: Runner, flags: list[str], warning: str
) -> None:
    result = run(offer_args(*flags, "--dry-run"))
    assert result.exit_code == 0
    assert warning in result.stderr
    assert yaml.safe_load(result.stdout)["kind"] == "ServiceOffer"

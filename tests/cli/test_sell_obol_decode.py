"""Every offer ``obol sell`` writes is one obol-stack's verifier can decode, and ``obol sell`` says
when the platform's verifier will not enforce a limit it writes.

Design notes:
- obol-stack's verifier decodes every ServiceOffer with k8s.io/apimachinery's converter into its
  Go types, where ``payment.asset`` is an object; one offer it cannot decode stops its route
  reload for every seller. ``obol sell`` therefore writes the token resolved, in that object form.
- Each case runs the real command (``--dry-run -o json``) and hands the manifest to the real
  converter (:mod:`tests.support.obol_decode`); the committed dry-run goldens are checked too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.sell_helpers import PAY_TO, Runner
from tests.support.obol_decode import decode

GOLDEN_DIR = Path(__file__).parent / "golden"

CASES = {
    "usdc on base (default)": ["--network", "base"],
    "usdc on base-sepolia": ["--chain", "base-sepolia", "--token", "USDC"],
    "usdc on ethereum by address": [
        "--network", "ethereum", "--token", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
    ],
    "obol on ethereum": ["--network", "ethereum", "--payment-asset", "obol"],
    "obol on base-sepolia": ["--chain", "base-sepolia", "--token", "OBOL"],
    "per-token price with a capacity envelope": [
        "--per-mtok", "0.5", "--max-inflight", "8", "--per-buyer-max-inflight", "2",
    ],
}  # fmt: skip


def _manifest(run: Runner, kind: str, extra: list[str]) -> dict[str, Any]:
    args = ["sell", kind, "offer", "--upstream", "vllm", "--pay-to", PAY_TO, "--price", "0.002"]
    result = run([*args, *extra, "--dry-run", "-o", "json"])
    assert result.exit_code == 0, result.output
    manifest: dict[str, Any] = json.loads(result.stdout)
    return manifest


@pytest.mark.parametrize("kind", ["inference", "http"])
def test_every_offer_obol_sell_writes_decodes(run: Runner, kind: str) -> None:
    manifests = [_manifest(run, kind, extra) for extra in CASES.values()]
    assert all(isinstance(m["spec"]["payment"]["asset"], dict) for m in manifests)
    failed = {
        case: verdict.error
        for case, verdict in zip(CASES, decode(manifests), strict=True)
        if not verdict.ok
    }
    assert not failed, failed


def test_the_dry_run_goldens_decode() -> None:
    goldens = sorted(GOLDEN_DIR.glob("*.yaml"))
    verdicts = decode([yaml.safe_load(p.read_text()) for p in goldens])
    assert [(p.name, v.ok) for p, v in zip(goldens, verdicts, strict=True)] == [
        (p.name, True) for p in goldens
    ]


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        pytest.param({}, False, id="forward-auth: the gateway enforces it"),
        pytest.param({"OBOL_PAYMENT_GATE": "seller-proxy"}, True, id="seller-proxy, obol-stack"),
        pytest.param(
            {"OBOL_PAYMENT_GATE": "seller-proxy", "OBOL_VERIFIER": "obol-stack-per-buyer"},
            False,
            id="seller-proxy, a verifier that limits buyers",
        ),
    ],
)
def test_obol_sell_warns_when_the_per_buyer_limit_will_not_be_enforced(
    run: Runner, env: dict[str, str], warned: bool
) -> None:
    args = ["sell", "inference", "q", "--upstream", "vllm", "--pay-to", PAY_TO, "--price", "0.01"]
    limits = ["--max-inflight", "4", "--per-buyer-max-inflight", "1"]
    result = run([*args, *limits, "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    warning = "Warning: perBuyerMaxInFlight 1 is not enforced: with OBOL_PAYMENT_GATE=seller-proxy"
    assert (warning in result.stderr) is warned, result.stderr


def test_a_string_asset_from_json_is_written_in_the_object_form(run: Runner) -> None:
    spec = {
        "upstream": {"service": "v", "port": 80},
        "payment": {"network": "ethereum", "asset": "obol", "payTo": PAY_TO,
                    "price": {"perRequest": "0.1"}},
    }  # fmt: skip
    result = run(["sell", "http", "x", "-n", "n", "--from-json", "-", "--dry-run", "-o", "json"],
                 stdin=json.dumps(spec))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Note: payment.asset 'obol' written as OBOL's object form" in result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["spec"]["payment"]["asset"]["symbol"] == "OBOL"
    [verdict] = decode([manifest])
    assert verdict.ok, verdict.error

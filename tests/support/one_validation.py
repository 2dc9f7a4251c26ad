"""The three judges of a ServiceOffer spec (the CLI, the CRD offline, the hook) and a strategy
of ``obol sell`` flags around every bound, shared by tests/api/test_one_validation.py and the
real API server's check in tests/e2e/test_crd_validation.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner
from hypothesis import strategies as st

from hooks.cli.hook import render_request
from hooks.cli.main import obol
from hooks.cli.sell import offer_manifest
from hooks.core.settings import Settings
from hooks.core.sync import Outcome
from hooks.server.app import handle_sync_body
from tests.support.crd_validation import load_crd

ROOT = Path(__file__).resolve().parents[2]
GOOD = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"
BAD_CHECKSUM = "0x4A6f2b3D9e2B8f1C0a7E5d3B1c9F8e7D6c5B4a31"  # the same digits, cases garbled
ZERO = "0x" + "0" * 40
USDC_BASE_SEPOLIA = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"


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
    assert answer.result is not None
    return answer.result.outcome is not Outcome.INVALID


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


def outside_stored_as_obol(flags: dict[str, Any]) -> bool:
    """The flags set a value the CRD stores (as obol-stack's CRD does) but the hook does not
    render: a maxTimeoutSeconds outside 1..86400."""
    _, low, high = FLAGS["max_timeout"]
    timeout = flags.get("max_timeout")
    return timeout is not None and not low <= timeout <= high


def within_stored_as_obol(flags: dict[str, Any]) -> dict[str, Any]:
    """The same flags with such a value replaced by the CRD's default."""
    return {**flags, "max_timeout": 300} if outside_stored_as_obol(flags) else flags


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


def manifest_for(flags: dict[str, Any]) -> dict[str, Any]:
    """The ServiceOffer the CLI builds from ``flags`` (before it validates anything)."""
    return offer_manifest("qwen", "llm", "inference", flags, None)

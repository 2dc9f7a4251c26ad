"""Helpers shared by the ``obol sell`` tests (the fixtures live in ``conftest.py``).

Design notes:
- :class:`FakeKubectl` wraps the fake kubectl script: set its answer, read the calls it logged.
- :func:`offer_args` gives the required flags once, so each table case lists only what it varies.
- :func:`synced` gives an example offer with the status the real pure hook writes for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from click.testing import Result

from hooks.core.observation import Observation, Observed
from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from tests.support.observed import observed_children, parent_object, sync_request

PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"
# payment.asset as obol sell writes it (obol-stack's object form), written out by hand from the
# tokens' published contracts: USDC on base and base-sepolia, OBOL on ethereum and base-sepolia.
USDC_BASE: dict[str, Any] = {
    "symbol": "USDC",
    "address": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
    "decimals": 6,
    "transferMethod": "eip3009",
    "eip712Name": "USD Coin",
    "eip712Version": "2",
}
OBOL_ETHEREUM: dict[str, Any] = {
    "symbol": "OBOL",
    "address": "0x0B010000b7624eb9B3DfBC279673C76E9D29D5F7",
    "decimals": 18,
    "transferMethod": "permit2",
    "eip712Name": "Obol Network",
    "eip712Version": "1",
}
OBOL_BASE_SEPOLIA: dict[str, Any] = {
    **OBOL_ETHEREUM,
    "address": "0x0a09371a8b011d5110656ceBCc70603e53FD2c78",
}

FAKE_KUBECTL_SCRIPT = """#!{python}
import json, sys, time
from pathlib import Path
here = Path(__file__).resolve().parent
answer = json.loads((here / "answer.json").read_text())
if "config" in sys.argv[1:4]:  # the CLI's check that a cluster is configured (not logged)
    config = answer.get("config", {{"clusters": [{{"name": "c", "cluster": {{"server": "https://k8s:6443"}}}}]}})
    if config is None:
        sys.stderr.write("error: current-context must exist in order to minify\\n")
        sys.exit(1)
    sys.stdout.write(json.dumps(config))
    sys.exit(0)
stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
with open(here / "calls.jsonl", "a", encoding="utf-8") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "stdin": stdin}}) + "\\n")
time.sleep(answer["sleep"])
sys.stdout.write(answer["stdout"])
sys.stderr.write(answer["stderr"])
sys.exit(answer["exit_code"])
"""


@dataclass
class FakeKubectl:
    """A kubectl stand-in: where it is, and what it was asked."""

    path: Path

    def answer(
        self, stdout: str = "", stderr: str = "", exit_code: int = 0, sleep: float = 0
    ) -> FakeKubectl:
        """Set what every following call prints and returns (after ``sleep`` seconds)."""
        answer = {"stdout": stdout, "stderr": stderr, "exit_code": exit_code, "sleep": sleep}
        (self.path.parent / "answer.json").write_text(json.dumps(answer))
        return self

    def without_cluster(self) -> FakeKubectl:
        """From now on kubectl has no current context (no kubeconfig)."""
        path = self.path.parent / "answer.json"
        answer = json.loads(path.read_text())
        path.write_text(json.dumps({**answer, "config": None}))
        return self

    def answer_json(self, document: Any) -> FakeKubectl:
        """Answer with a JSON document on stdout and exit 0."""
        return self.answer(stdout=json.dumps(document))

    def calls(self) -> list[dict[str, Any]]:
        """Every call so far: ``{"argv": [...], "stdin": "..."}``."""
        log = self.path.parent / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]


Runner = Callable[..., Result]


def offer_args(
    *extra: str, kind: str = "inference", name: str = "qwen", price: str | None = "0.001"
) -> list[str]:
    """``sell <kind> NAME`` with the required flags (``--price`` unless None) plus ``extra``."""
    price_args = ["--price", price] if price is not None else []
    return [
        "sell",
        kind,
        name,
        "--upstream",
        "vllm",
        "--port",
        "8000",
        "--network",
        "base",
        "--pay-to",
        PAY_TO,
        *price_args,
        *extra,
    ]


def dry_run_spec(
    run: Runner, *extra: str, kind: str = "inference", price: str | None = "0.001"
) -> dict[str, Any]:
    """The spec a ``--dry-run -o json`` prints for the required flags plus ``extra``."""
    result = run(offer_args(*extra, "--dry-run", "-o", "json", kind=kind, price=price))
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    spec: dict[str, Any] = document["spec"]
    return spec


ROOT = Path(__file__).resolve().parents[2]
SETTINGS = Settings(public_base_url="https://obol.example")
QWEN = "inference-qwen36-fast.yaml"
LLAMA = "inference-obol-ethereum.yaml"
WEATHER = "http-weather-api.yaml"


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    return document


def synced(
    name: str,
    *,
    in_flight: int | None = None,
    route_accepted: bool | None = True,
    children_observed: bool = True,
    settings: Settings = SETTINGS,
) -> dict[str, Any]:
    """The example with the status the hook writes after its children were observed."""
    offer = example(name)
    first = sync(parse_request(sync_request(parent_object(offer))), settings).response
    if not children_observed:
        return {**offer, "status": first["status"]}
    children = observed_children(first["children"], route_accepted=route_accepted)
    seen = Observed()
    if in_flight is not None:
        seen = Observed(Observation(True, "GET /health answered 200", 200, in_flight, "vllm"))
    parent = parent_object(offer, status=first["status"])
    second = sync(parse_request(sync_request(parent, children)), settings, lambda _: seen)
    return {**offer, "status": second.response["status"]}


# The seed's "CLI UX" commands, verbatim (they must also appear in the README): the explicit
# envelope and the preset. Neither names a network, a wallet or a port: obol-stack's defaults
# (base, X402_WALLET, the runtime's port) fill them in.
_SEED_OFFER = [
    "sell",
    "inference",
    "qwen36-fast",
    "-n",
    "llm",
    "--upstream",
    "vllm-qwen36",
    "--runtime",
    "openai",
]
SEED_COMMANDS: list[list[str]] = [
    [
        *_SEED_OFFER,
        "--streaming",
        "--context-window",
        "131072",
        "--price",
        "0.002",
        "--per-mtok",
        "0.50",
        "--gpu-count",
        "1",
        "--max-inflight",
        "16",
        "--per-buyer-max-inflight",
        "4",
        "--max-input-tokens",
        "16384",
        "--max-output-tokens",
        "4096",
    ],
    [*_SEED_OFFER, "--price", "0.002", "--capacity-preset", "external-vllm-1gpu-balanced"],
]

"""obol-stack's CLI habits in ``obol sell``: aliases, defaults said on stderr, one message for
everything missing, X402_WALLET, and the seed's two command lines verbatim.

Design notes:
- Each alias is checked by giving the same offer once with the primary flag and once with the
  alias: the printed specs must be identical.
- Defaults are never silent: every defaulted value has its ``Note:`` line on stderr, and the
  spec carries the value (so the CRD's own default never decides behind the seller's back).
- The seed's commands (``SEED_COMMANDS`` in sell_helpers) must appear verbatim in the docs
  and work with ``X402_WALLET`` set; tests/e2e/test_obol_migration.py runs them against a real
  API server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.sell_helpers import (
    OBOL_BASE_SEPOLIA,
    PAY_TO,
    SEED_COMMANDS,
    USDC_BASE,
    FakeKubectl,
    Runner,
    offer_args,
)

ROOT = Path(__file__).resolve().parents[2]
WALLET = {"X402_WALLET": PAY_TO}


def spec_of(run: Runner, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run([*args, "--dry-run", "-o", "json"], env=env)
    assert result.exit_code == 0, result.output
    spec: dict[str, Any] = json.loads(result.stdout)["spec"]
    return spec


def bare(*extra: str, kind: str = "inference") -> list[str]:
    """``sell <kind> qwen --upstream vllm`` plus ``extra``: no network, port, wallet or price."""
    return ["sell", kind, "qwen", "--upstream", "vllm", *extra]


@pytest.mark.parametrize(
    ("primary", "alias"),
    [
        pytest.param(["--network", "base-sepolia"], ["--chain", "base-sepolia"], id="--chain"),
        pytest.param(["--payment-asset", "usdc"], ["--token", "usdc"], id="--token"),
        pytest.param(["--pay-to", PAY_TO], ["--wallet", PAY_TO], id="--wallet"),
        pytest.param(["--pay-to", PAY_TO], ["--recipient", PAY_TO], id="--recipient"),
        pytest.param(["--pay-to", PAY_TO], ["-w", PAY_TO], id="-w"),
        pytest.param(["--price", "0.002"], ["--per-request", "0.002"], id="--per-request"),
    ],
)
def test_obol_aliases_give_the_same_offer(
    run: Runner, primary: list[str], alias: list[str]
) -> None:
    common = bare("--port", "8000", "--price", "0.001", "--network", "base", "--pay-to", PAY_TO)
    assert spec_of(run, [*common, *primary]) == spec_of(run, [*common, *alias])


@pytest.mark.parametrize(
    ("args", "path", "value"),
    [
        pytest.param(["--chain", "Base"], ("payment", "network"), "base", id="network Base"),
        pytest.param(
            ["--chain", "BASE-SEPOLIA"], ("payment", "network"), "base-sepolia", id="BASE-SEPOLIA"
        ),
        pytest.param(["--token", "USDC"], ("payment", "asset"), USDC_BASE, id="token USDC"),
        pytest.param(
            ["--chain", "base-sepolia", "--token", "Obol"],
            ("payment", "asset"),
            OBOL_BASE_SEPOLIA,
            id="Obol",
        ),
        pytest.param(["--runtime", "vLLM"], ("upstream", "port"), 8000, id="runtime vLLM"),
        pytest.param(
            ["--token", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"],
            ("payment", "asset"),
            USDC_BASE,
            id="an address resolves to its token",
        ),
    ],
)
def test_values_are_case_insensitive_where_obols_are(
    run: Runner, args: list[str], path: tuple[str, str], value: Any
) -> None:
    spec = spec_of(run, bare("--price", "0.001", *args), env=WALLET)
    assert spec[path[0]][path[1]] == value


@pytest.mark.parametrize(
    ("runtime", "port"),
    [("openai", 8000), ("vllm", 8000), ("llama.cpp", 8080), ("ollama", 11434)],
)
def test_runtime_implies_its_usual_port_and_says_so(run: Runner, runtime: str, port: int) -> None:
    result = run([*bare("--price", "0.001", "--runtime", runtime), "--dry-run"], env=WALLET)
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(result.stdout)["spec"]
    assert spec["upstream"]["port"] == port
    assert spec["capabilities"]["protocol"] == "openai-chat"
    assert f"Note: --port not given: using {port} (the usual port of --runtime {runtime})" in (
        result.stderr
    )


def test_an_explicit_port_wins_over_the_runtime(run: Runner) -> None:
    spec = spec_of(run, bare("--price", "0.001", "--runtime", "ollama", "--port", "9000"), WALLET)
    assert spec["upstream"]["port"] == 9000


def test_defaults_are_said_on_stderr(run: Runner) -> None:
    result = run([*bare("--price", "0.001", kind="http"), "--dry-run"], env=WALLET)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "Note: --network not given: using base (obol-stack's default)",
        "Note: --port not given: using 8080 (obol-stack's default for sell http)",
        f"Note: --pay-to not given: using X402_WALLET ({PAY_TO})",
        f"Quote: buyers pay 0.001 USDC per request on base (eip155:8453) to {PAY_TO}:"
        " 0.001 USDC/request, quoted as perRequest",
    ]
    spec = yaml.safe_load(result.stdout)["spec"]
    assert (spec["payment"]["network"], spec["upstream"]["port"]) == ("base", 8080)
    assert spec["payment"]["payTo"] == PAY_TO


def test_an_inference_offer_without_runtime_or_port_gets_obols_upstream_port(run: Runner) -> None:
    result = run([*bare("--price", "0.001"), "--dry-run"], env=WALLET)
    assert "Note: --port not given: using 11434 (obol-stack's default upstream port)" in (
        result.stderr
    )


def test_an_explicit_wallet_wins_over_x402_wallet(run: Runner) -> None:
    other = "0x" + "ab" * 20
    spec = spec_of(run, bare("--price", "0.001", "-w", other, "--port", "1"), WALLET)
    assert spec["payment"]["payTo"] == other


def test_a_bad_x402_wallet_is_refused_like_a_bad_flag(run: Runner) -> None:
    result = run(
        [*bare("--price", "0.001", "--port", "1"), "--dry-run"], env={"X402_WALLET": "0x1"}
    )
    assert result.exit_code == 3
    assert "Note: --pay-to not given: using X402_WALLET (0x1)" in result.stderr
    assert "spec.payment.payTo: must be an EVM address" in result.stderr


def test_every_missing_option_is_reported_in_one_message(run: Runner) -> None:
    result = run(["sell", "inference", "qwen", "--dry-run"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: missing required options: --upstream; --pay-to (or set X402_WALLET); a price:"
        " --price/--per-request, --per-mtok or --per-hour"
    )


def test_path_and_per_hour_set_obols_fields(run: Runner) -> None:
    spec = spec_of(
        run, offer_args("--path", "/weather", "--per-hour", "0.05", kind="http", price=None)
    )
    assert spec["path"] == "/weather"
    assert spec["payment"]["price"] == {"perHour": "0.05"}


def test_a_reserved_path_is_refused_with_its_flag(run: Runner) -> None:
    result = run([*offer_args("--path", "/api/x"), "--dry-run"])
    assert result.exit_code == 3
    assert result.stderr.strip().endswith(
        "spec.path: is reserved: nothing may be published at or under /api (got '/api/x') [--path]"
    )


# --- the seed's commands -------------------------------------------------------------------------


def _joined(command: list[str]) -> str:
    return " ".join(command)


def _readme_commands() -> set[str]:
    """Every ``$ obol ...`` command line of the README and docs/, continuation lines joined."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(page.read_text() for page in pages)
    commands, current = set(), ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("$ obol ") or current:
            current += " " + stripped.removeprefix("$ ").rstrip("\\").strip()
            if not stripped.endswith("\\"):
                commands.add(" ".join(current.split()))
                current = ""
    return commands


@pytest.mark.parametrize("command", SEED_COMMANDS, ids=["explicit", "preset"])
def test_seed_command_is_in_the_readme_verbatim(command: list[str]) -> None:
    assert _joined(["obol", *command]) in _readme_commands()


@pytest.mark.parametrize("command", SEED_COMMANDS, ids=["explicit", "preset"])
def test_seed_command_dry_run_shows_the_offer(run: Runner, command: list[str]) -> None:
    result = run([*command, "--dry-run"], env=WALLET)
    assert result.exit_code == 0, result.output
    offer = yaml.safe_load(result.stdout)
    assert offer["metadata"] == {"name": "qwen36-fast", "namespace": "llm"}
    spec = offer["spec"]
    assert spec["upstream"] == {"service": "vllm-qwen36", "port": 8000}
    assert spec["payment"]["network"] == "base"
    assert spec["payment"]["payTo"] == PAY_TO
    assert spec["capacity"]["mode"] == "external-static"
    assert spec["capacity"]["maxInFlight"] == 16


@pytest.mark.parametrize("command", SEED_COMMANDS, ids=["explicit", "preset"])
def test_seed_command_applies_the_offer(
    run: Runner, fake_kubectl: FakeKubectl, command: list[str]
) -> None:
    fake_kubectl.answer(stdout="serviceoffer.obol.org/qwen36-fast created\n")
    result = run([*command, "--kubectl", str(fake_kubectl.path)], env=WALLET)
    assert result.exit_code == 0, result.output
    assert "serviceoffer.obol.org/qwen36-fast created" in result.stdout
    applied = yaml.safe_load(fake_kubectl.calls()[-1]["stdin"])
    assert applied["spec"]["payment"]["payTo"] == PAY_TO

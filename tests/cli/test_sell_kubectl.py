"""``obol sell`` against a FAKE kubectl: what it runs, what it sends, what it shows.

Design notes:
- The fake kubectl (see ``conftest.py``) records argv and stdin, so these tests pin the exact
  kubectl command lines (``apply -f -``; ``get serviceoffers.obol.org ... -o json``), that
  ``--context`` is passed through, and that the applied manifest is the dry-run document.
- Reading: the fake answers with offers whose status comes from the real pure hook, wrapped in a
  ``List`` as ``kubectl get -o json`` prints it.
- The asset-registry file is exercised through the flag and the environment variable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.sell_helpers import (
    LLAMA,
    PAY_TO,
    QWEN,
    WEATHER,
    FakeKubectl,
    Runner,
    offer_args,
    synced,
)

GET = ["get", "serviceoffers.obol.org"]


def as_list(*offers: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": list(offers),
    }


# --- apply -------------------------------------------------------------------------------------


def test_apply_pipes_the_dry_run_document_to_kubectl(
    run: Runner, fake_kubectl: FakeKubectl
) -> None:
    fake_kubectl.answer(stdout="serviceoffer.obol.org/qwen created\n")
    args = offer_args("-n", "llm", "--max-inflight", "8")
    result = run([*args, "--kubectl", str(fake_kubectl.path)])
    assert result.exit_code == 0, result.output
    [call] = fake_kubectl.calls()
    assert call["argv"] == ["apply", "-f", "-"]
    preview = run([*args, "--dry-run", "-o", "json"])
    assert json.loads(call["stdin"]) == json.loads(preview.stdout)
    assert result.stdout.splitlines() == [
        "serviceoffer.obol.org/qwen created",
        "Check status: obol sell status qwen -n llm",
    ]


def test_context_is_passed_to_kubectl(run: Runner, fake_kubectl: FakeKubectl) -> None:
    result = run(offer_args("--kubectl", str(fake_kubectl.path), "--context", "kind-obol"))
    assert result.exit_code == 0, result.output
    assert fake_kubectl.calls()[0]["argv"] == ["--context", "kind-obol", "apply", "-f", "-"]


def test_obol_kubectl_environment_variable_names_the_binary(
    run: Runner, fake_kubectl: FakeKubectl
) -> None:
    result = run(offer_args(), env={"OBOL_KUBECTL": str(fake_kubectl.path)})
    assert result.exit_code == 0, result.output
    assert len(fake_kubectl.calls()) == 1


def test_invalid_offer_never_reaches_kubectl(run: Runner, fake_kubectl: FakeKubectl) -> None:
    result = run(offer_args("--kubectl", str(fake_kubectl.path), "--max-inflight", "0"))
    assert result.exit_code == 3
    assert fake_kubectl.calls() == []


# --- the asset registry file -------------------------------------------------------------------

OPTIMISM_REGISTRY = {
    "networks": [{"name": "optimism", "chainId": 10}],
    "assets": [
        {
            "symbol": "USDC",
            "network": "optimism",
            "address": "0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85",
            "decimals": 6,
            "transferMethod": "eip3009",
            "eip712Name": "USD Coin",
            "eip712Version": "2",
        }
    ],
}


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(OPTIMISM_REGISTRY))
    return path


def optimism_offer(*extra: str) -> list[str]:
    args = offer_args("--dry-run", *extra)
    args[args.index("base")] = "optimism"
    return args


def test_unknown_network_without_registry_file(run: Runner) -> None:
    result = run(optimism_offer())
    assert result.exit_code == 3
    assert "spec.payment.network: unknown network; known: base" in result.stderr
    assert "(got 'optimism') [--network]" in result.stderr


@pytest.mark.parametrize("by_flag", [True, False], ids=["--asset-registry-file", "environment"])
def test_registry_file_extends_the_networks(
    run: Runner, registry_file: Path, by_flag: bool
) -> None:
    if by_flag:
        result = run(optimism_offer("--asset-registry-file", str(registry_file)))
    else:
        result = run(optimism_offer(), env={"OBOL_ASSET_REGISTRY_FILE": str(registry_file)})
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["spec"]["payment"]["network"] == "optimism"


# --- status ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "argv"),
    [
        pytest.param(
            ["qwen36-fast", "-n", "llm-sellers"],
            [*GET, "--namespace", "llm-sellers", "qwen36-fast", "--output", "json"],
            id="named offer in a namespace",
        ),
        pytest.param(
            ["qwen36-fast"],
            [*GET, "qwen36-fast", "--output", "json"],
            id="named offer in the current namespace",
        ),
        pytest.param(["-A"], [*GET, "--all-namespaces", "--output", "json"], id="every namespace"),
        pytest.param(
            ["-n", "llm-sellers"],
            [*GET, "--namespace", "llm-sellers", "--output", "json"],
            id="one namespace",
        ),
        pytest.param(
            ["--context", "prod", "-A"],
            ["--context", "prod", *GET, "--all-namespaces", "--output", "json"],
            id="with a context",
        ),
    ],
)
def test_status_reads_offers_with_kubectl_get(
    run: Runner, fake_kubectl: FakeKubectl, args: list[str], argv: list[str]
) -> None:
    fake_kubectl.answer_json(as_list())
    result = run(["sell", "status", *args, "--kubectl", str(fake_kubectl.path)])
    assert result.exit_code == 0, result.output
    assert [call["argv"] for call in fake_kubectl.calls()] == [argv]


def test_status_of_one_offer(run: Runner, fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer_json(synced(QWEN, in_flight=8))
    result = run(
        ["sell", "status", "qwen36-fast", "-n", "llm-sellers", "--kubectl", str(fake_kubectl.path)]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "ServiceOffer llm-sellers/qwen36-fast"
    assert "  Capacity state:          Saturated" in lines
    assert (
        "  Scaling:                 scalingControlled=false"
        " (capacity is declared by the seller; nothing is autoscaled)" in lines
    )


def test_status_of_every_offer(run: Runner, fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer_json(as_list(synced(QWEN), synced(WEATHER)))
    result = run(["sell", "status", "-A", "--kubectl", str(fake_kubectl.path)])
    assert result.exit_code == 0
    headers = [line for line in result.stdout.splitlines() if line.startswith("ServiceOffer ")]
    assert headers == ["ServiceOffer llm-sellers/qwen36-fast", "ServiceOffer tenant-a/weather-api"]


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_status_machine_output(run: Runner, fake_kubectl: FakeKubectl, output: str) -> None:
    fake_kubectl.answer_json(synced(LLAMA))
    named = run(
        [
            "sell",
            "status",
            "llama-obol",
            "-n",
            "llm-sellers",
            "-o",
            output,
            "--kubectl",
            str(fake_kubectl.path),
        ]
    )
    fake_kubectl.answer_json(as_list(synced(LLAMA)))
    listed = run(["sell", "status", "-A", "-o", output, "--kubectl", str(fake_kubectl.path)])
    load = json.loads if output == "json" else yaml.safe_load
    one, many = load(named.stdout), load(listed.stdout)
    assert one["capacity"]["inFlight"] == "Unknown"
    assert one["capacity"]["scalingControlled"] is False
    assert many == [one]


def test_no_offers_found_is_not_an_error(run: Runner, fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer_json(as_list())
    result = run(["sell", "status", "-n", "empty", "--kubectl", str(fake_kubectl.path)])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "No ServiceOffers found in namespace empty.\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["-n", "a", "-A"],
            "give -n/--namespace or -A/--all-namespaces, not both",
            id="namespace and all namespaces",
        ),
        pytest.param(
            ["qwen", "-A"],
            "a named offer needs -n/--namespace, not -A",
            id="a name across all namespaces",
        ),
    ],
)
def test_status_usage_errors(
    run: Runner, fake_kubectl: FakeKubectl, args: list[str], message: str
) -> None:
    result = run(["sell", "status", *args, "--kubectl", str(fake_kubectl.path)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert fake_kubectl.calls() == []


# --- list --------------------------------------------------------------------------------------


def test_list_prints_one_line_per_offer(run: Runner, fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer_json(as_list(synced(QWEN, in_flight=1), synced(WEATHER)))
    result = run(["sell", "list", "-A", "--kubectl", str(fake_kubectl.path)])
    assert result.exit_code == 0, result.output
    assert fake_kubectl.calls()[0]["argv"] == [*GET, "--all-namespaces", "--output", "json"]
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == [
        "NAMESPACE",
        "NAME",
        "TYPE",
        "PRICE",
        "NETWORK",
        "MAX-IN-FLIGHT",
        "CAPACITY",
        "READY",
    ]
    assert rows[1][:3] == ["llm-sellers", "qwen36-fast", "inference"]
    assert rows[1][-4:] == ["base", "8", "Available", "True"]
    assert rows[2] == [
        "tenant-a",
        "weather-api",
        "http",
        "0.0001",
        "USDC/request",
        "base-sepolia",
        "-",
        "Unknown",
        "True",
    ]


def test_list_yaml(run: Runner, fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer_json(as_list(synced(WEATHER)))
    result = run(
        ["sell", "list", "-n", "tenant-a", "-o", "yaml", "--kubectl", str(fake_kubectl.path)]
    )
    assert yaml.safe_load(result.stdout) == [
        {
            "namespace": "tenant-a",
            "name": "weather-api",
            "type": "http",
            "price": "0.0001 USDC/request",
            "network": "base-sepolia",
            "maxInFlight": None,
            "capacity": "Unknown",
            "ready": "True",
        }
    ]


# --- kubectl's --dry-run spellings and the quote ---------------------------------------------


def test_dry_run_client_is_dry_run_and_none_applies(run: Runner, fake_kubectl: FakeKubectl) -> None:
    args = [*offer_args("-n", "llm"), "--kubectl", str(fake_kubectl.path)]
    plain, client = run([*args, "--dry-run"]), run([*args, "--dry-run=client"])
    assert client.exit_code == 0, client.output
    assert (client.stdout, client.stderr) == (plain.stdout, plain.stderr)
    assert fake_kubectl.calls() == []
    fake_kubectl.answer(stdout="serviceoffer.obol.org/qwen created\n")
    applied = run([*args, "--dry-run=none"])
    assert applied.exit_code == 0, applied.output
    assert [call["argv"] for call in fake_kubectl.calls()] == [["apply", "-f", "-"]]


def test_a_bare_dry_run_never_takes_the_next_argument(run: Runner) -> None:
    args = offer_args("-n", "llm")
    moved = [*args[:2], "--dry-run", *args[2:]]  # sell inference --dry-run qwen ...
    result = run(moved)
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["metadata"]["name"] == "qwen"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("server", "--dry-run=server is not supported: pipe the client dry run"),
        ("all", "--dry-run must be client or none (got 'all')"),
    ],
)
def test_other_dry_run_values_are_usage_errors(run: Runner, value: str, fragment: str) -> None:
    result = run([*offer_args("-n", "llm"), f"--dry-run={value}"])
    assert result.exit_code == 2
    assert fragment in result.stderr and result.stdout == ""


def test_dry_run_says_on_stderr_what_buyers_will_be_quoted(run: Runner) -> None:
    # The seed's example: 0.002 per request + 0.50 per MTok. obol-stack's verifier charges the
    # first price set, perRequest; a lone perMTok is charged for 1,000 tokens (0.0005 USDC).
    both = offer_args("-n", "llm", "--per-mtok", "0.50", price="0.002")
    result = run([*both, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-1] == (
        f"Quote: buyers pay 0.002 USDC per request on base (eip155:8453) to {PAY_TO}:"
        " 0.002 USDC/request + 0.5 USDC/MTok, quoted as perRequest"
    )
    assert "Quote" not in result.stdout  # the manifest stays clean for kubectl apply -f -
    alone = run([*offer_args("-n", "llm", "--per-mtok", "0.50", price=None), "--dry-run"])
    assert alone.exit_code == 0, alone.output
    assert alone.stderr.splitlines()[-1].startswith(
        f"Quote: buyers pay 0.0005 USDC per request on base (eip155:8453) to {PAY_TO}"
    )


def test_an_applied_offer_says_its_quote_after_kubectl_succeeded(
    run: Runner, fake_kubectl: FakeKubectl
) -> None:
    fake_kubectl.answer(stdout="serviceoffer.obol.org/qwen created\n")
    result = run([*offer_args("-n", "llm"), "--kubectl", str(fake_kubectl.path)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"Quote: buyers pay 0.001 USDC per request on base (eip155:8453) to {PAY_TO}:"
        " 0.001 USDC/request, quoted as perRequest"
    ]

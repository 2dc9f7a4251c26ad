"""obol-stack's CLI spellings in ``obol sell``: --max-in-flight, --rps, --from-json, --no-register,
the flags whose meaning this project does not implement, and a preset on an existing offer.

Design notes:
- obol-stack's ``cmd/obol/sell.go`` is the reference: ``--from-json FILE|-`` takes a raw spec or
  a whole ServiceOffer (NAME and -n win over its metadata), ``--max-in-flight``/``--rps`` write
  ``spec.limits``, registration is on by default there and ``--no-register`` turns it off.
- A refused flag is one line on stderr and exit 2, naming the flag and what to use instead.
- The existing offer of a limits-only change comes from the fake kubectl, as the API server
  would return it (status and server metadata included).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.sell_helpers import PAY_TO, FakeKubectl, Runner, offer_args

WALLET = {"X402_WALLET": PAY_TO}
RAW_SPEC = {
    "upstream": {"service": "weather", "port": 8080},
    "payment": {"network": "base", "payTo": PAY_TO, "price": {"perRequest": "0.001"}},
    "limits": {"maxInFlight": 4, "rps": 10},
}


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


# --- --max-in-flight and --rps -------------------------------------------------------------------


def test_max_in_flight_and_rps_write_obols_limits_and_the_capacity_ceiling(run: Runner) -> None:
    args = ["sell", "http", "weather", "--upstream", "svc", "--max-in-flight", "8", "--rps", "20"]
    result = run([*args, "--price", "0.001", "--dry-run", "-o", "yaml"], env=WALLET)
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(result.stdout)["spec"]
    assert spec["limits"] == {"maxInFlight": 8, "rps": 20}
    assert spec["capacity"] == {"mode": "external-static", "maxInFlight": 8}
    # Without a price there is no offer to show, as with obol-stack's own CLI: the line names it.
    missing = run([*args, "--dry-run", "-o", "yaml"], env=WALLET)
    assert missing.exit_code == 2
    assert missing.stderr.splitlines()[-1] == (
        "Error: missing required options: a price: --price/--per-request, --per-mtok or --per-hour"
    )


def test_max_in_flight_is_the_same_ceiling_as_max_inflight(run: Runner) -> None:
    def spec(*flags: str) -> dict[str, Any]:
        result = run([*offer_args(*flags), "--dry-run", "-o", "json"])
        assert result.exit_code == 0, result.output
        loaded: dict[str, Any] = json.loads(result.stdout)["spec"]
        return loaded

    ours, obols = spec("--max-inflight", "6"), spec("--max-in-flight", "6")
    assert obols["capacity"] == ours["capacity"]
    assert obols.pop("limits") == {"maxInFlight": 6}
    assert obols == ours
    assert spec("--max-inflight", "6", "--max-in-flight", "6")["capacity"] == ours["capacity"]
    clash = run([*offer_args("--max-inflight", "6", "--max-in-flight", "7"), "--dry-run"])
    assert clash.exit_code == 2
    assert "--max-in-flight 7 and --max-inflight 6 disagree" in clash.stderr


def test_rps_is_checked_with_its_flag(run: Runner) -> None:
    result = run([*offer_args("--rps", "-1"), "--dry-run"])
    assert result.exit_code == 3
    assert "spec.limits.rps" in result.stderr and "[--rps]" in result.stderr


# --- --from-json ---------------------------------------------------------------------------------


def test_from_json_stdin_takes_a_raw_spec(run: Runner) -> None:
    result = run(
        ["sell", "http", "weather", "-n", "shop", "--from-json", "-", "--dry-run", "-o", "json"],
        stdin=json.dumps(RAW_SPEC),
    )
    assert result.exit_code == 0, result.output
    offer = json.loads(result.stdout)
    assert offer["metadata"] == {"name": "weather", "namespace": "shop"}
    assert offer["spec"]["type"] == "http"
    assert offer["spec"]["limits"] == {"maxInFlight": 4, "rps": 10}
    assert offer["spec"]["capacity"]["maxInFlight"] == 4  # the same ceiling, as the hook reads it


def test_from_json_file_takes_a_whole_offer_and_name_and_namespace_win(
    run: Runner, tmp_path: Path
) -> None:
    manifest = {
        "apiVersion": "obol.org/v1alpha1",
        "kind": "ServiceOffer",
        "metadata": {"name": "from-file", "namespace": "files"},
        "spec": {**RAW_SPEC, "type": "inference"},
    }
    path = tmp_path / "offer.json"
    path.write_text(json.dumps(manifest))
    taken = run(["sell", "http", "--from-json", str(path), "--dry-run", "-o", "json"])
    assert taken.exit_code == 0, taken.output
    offer = json.loads(taken.stdout)
    assert offer["metadata"] == {"name": "from-file", "namespace": "files"}
    assert offer["spec"]["type"] == "inference"  # applied as written, as obol-stack does
    named = run(["sell", "http", "other", "-n", "elsewhere", "--from-json", str(path), "--dry-run"])
    assert yaml.safe_load(named.stdout)["metadata"] == {"name": "other", "namespace": "elsewhere"}


def test_from_json_applies_with_kubectl(run: Runner, fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer(stdout="serviceoffer.obol.org/weather created\n")
    result = run(
        ["sell", "http", "weather", "--from-json", "-", "--kubectl", str(fake_kubectl.path)],
        stdin=json.dumps(RAW_SPEC),
    )
    assert result.exit_code == 0, result.output
    applied = json.loads(fake_kubectl.calls()[-1]["stdin"])
    assert applied["spec"]["payment"]["payTo"] == PAY_TO


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("{not json", "--from-json -: not valid JSON"),
        ("[1, 2]", "must be a JSON object (a spec or a whole ServiceOffer), got list"),
        ('{"spec": 3}', "--from-json -: spec must be a JSON object"),
        (json.dumps({**RAW_SPEC, "upstream": {"port": 8080}}), "spec.upstream.service"),
        ("[" + " " * (1024 * 1024) + "]", "--from-json -: larger than 1048576 bytes"),
    ],
    ids=["not-json", "not-an-object", "spec-not-an-object", "invalid-spec", "too-large"],
)
def test_bad_from_json_input_is_one_line_and_exit_3(run: Runner, stdin: str, message: str) -> None:
    result = run(["sell", "http", "weather", "--from-json", "-", "--dry-run"], stdin=stdin)
    assert result.exit_code == 3
    assert message in one_line_error(result.stderr)


def test_from_json_takes_no_spec_flags_and_needs_a_name(run: Runner) -> None:
    mixed = run(
        ["sell", "http", "weather", "--from-json", "-", "--price", "1", "--rps", "2", "--dry-run"],
        stdin=json.dumps(RAW_SPEC),
    )
    assert mixed.exit_code == 2
    assert "--from-json takes the whole spec; drop --price, --rps" in mixed.stderr
    nameless = run(["sell", "http", "--from-json", "-", "--dry-run"], stdin=json.dumps(RAW_SPEC))
    assert nameless.exit_code == 2
    assert "missing argument NAME (or metadata.name in the --from-json input)" in nameless.stderr


# --- registration and the host gateway -----------------------------------------------------------


def test_no_register_is_accepted_and_changes_nothing(run: Runner) -> None:
    plain = run([*offer_args(), "--dry-run"])
    quiet = run([*offer_args("--no-register"), "--dry-run"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stdout == plain.stdout


@pytest.mark.parametrize(
    "flag",
    [
        ["--register"],
        ["--register-name", "x"],
        ["--register-description", "x"],
        ["--description", "x"],
        ["--register-image", "https://x/y.png"],
        ["--register-skills", "a/b"],
        ["--register-domains", "a/b"],
        ["--register-metadata", "gpu=A100"],
    ],
    ids=lambda flag: flag[0],
)
@pytest.mark.parametrize("kind", ["http", "inference"])
def test_registration_flags_are_refused_in_one_line(
    run: Runner, flag: list[str], kind: str
) -> None:
    result = run([*offer_args(*flag, kind=kind), "--dry-run"])
    assert result.exit_code == 2
    line = one_line_error(result.stderr)
    assert f"{flag[0]} is obol-stack's ERC-8004 registration" in line
    assert "which this project does not do" in line
    assert "'obol sell register'" in line and "--no-register is accepted" in line


@pytest.mark.parametrize(
    "flag",
    [["--model", "qwen3.5:4b"], ["--listen", ":8402"], ["--facilitator", "https://f"], ["--vm"]],
    ids=lambda flag: flag[0],
)
def test_host_gateway_flags_are_refused_in_one_line(run: Runner, flag: list[str]) -> None:
    result = run([*offer_args(*flag), "--dry-run"])
    assert result.exit_code == 2
    line = one_line_error(result.stderr)
    assert f"{flag[0]} belongs to obol-stack's host-side inference gateway" in line
    assert "pass --upstream SVC" in line


def test_refused_flags_stay_out_of_help(run: Runner) -> None:
    shown = run(["sell", "inference", "--help"]).stdout
    assert "--no-register" in shown and "--max-in-flight" in shown and "--from-json" in shown
    assert "--register-name" not in shown and "--model " not in shown


# --- a preset on an existing offer ---------------------------------------------------------------

STORED = {
    "apiVersion": "obol.org/v1alpha1",
    "kind": "ServiceOffer",
    "metadata": {
        "name": "qwen",
        "namespace": "llm",
        "uid": "5b1c0e9e-3d5a-4c53-9a57-1f0c2d7e8a11",
        "resourceVersion": "4242",
        "generation": 3,
        "creationTimestamp": "2026-11-20T10:00:00Z",
    },
    "spec": {
        "type": "inference",
        "upstream": {"service": "vllm", "port": 8000, "healthPath": "/health"},
        "payment": {
            "scheme": "exact",
            "network": "base",
            "payTo": PAY_TO,
            "maxTimeoutSeconds": 300,
            "price": {"perRequest": "0.002", "perMTok": "0.5"},
        },
        "capacity": {"mode": "external-static", "maxInFlight": 4, "retryAfterSeconds": 2},
        "limits": {"maxInFlight": 4, "rps": 10},
    },
    "status": {"conditions": [{"type": "Ready", "status": "True"}]},
}


def test_a_preset_on_an_existing_offer_changes_only_its_limits(
    run: Runner, fake_kubectl: FakeKubectl
) -> None:
    fake_kubectl.answer_json(STORED)
    result = run(
        [
            *["sell", "inference", "qwen", "-n", "llm"],
            *["--capacity-preset", "external-vllm-1gpu-latency", "--retry-after", "3"],
            *["--kubectl", str(fake_kubectl.path)],
        ]
    )
    assert result.exit_code == 0, result.output
    assert "Note: changing only the limits of ServiceOffer llm/qwen" in result.stderr
    get, apply = fake_kubectl.calls()
    assert get["argv"][:2] == ["get", "serviceoffers.obol.org"]
    applied = json.loads(apply["stdin"])
    assert applied["metadata"] == {"name": "qwen", "namespace": "llm"}
    spec = applied["spec"]
    assert spec["payment"] == STORED["spec"]["payment"]  # price and payTo kept
    assert spec["upstream"] == STORED["spec"]["upstream"]
    assert spec["capacity"] == {
        "mode": "external-static",
        "gpuCount": 1,
        "maxInFlight": 8,
        "perBuyerMaxInFlight": 2,
        "retryAfterSeconds": 3,
    }
    assert spec["requestLimits"]["maxInputTokens"] == 8192
    assert spec["limits"] == {"maxInFlight": 8, "rps": 10}  # the mirror follows the ceiling


def test_a_limits_flag_alone_changes_only_that_field(
    run: Runner, fake_kubectl: FakeKubectl
) -> None:
    fake_kubectl.answer_json(STORED)
    kubectl = ["--kubectl", str(fake_kubectl.path)]
    result = run(["sell", "inference", "qwen", "-n", "llm", "--rps", "50", "--dry-run", *kubectl])
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(result.stdout)["spec"]
    assert spec["limits"] == {"maxInFlight": 4, "rps": 50}
    assert spec["capacity"] == STORED["spec"]["capacity"]
    assert [call["argv"][0] for call in fake_kubectl.calls()] == ["get"]  # a dry run writes nothing


def test_a_preset_for_an_offer_that_does_not_exist_names_the_price_flag(
    run: Runner, fake_kubectl: FakeKubectl
) -> None:
    fake_kubectl.answer(
        stderr='Error from server (NotFound): serviceoffers.obol.org "qwen" not found\n',
        exit_code=1,
    )
    result = run(
        [
            *["sell", "inference", "qwen", "-n", "llm"],
            *["--capacity-preset", "external-vllm-1gpu-latency"],
            *["--kubectl", str(fake_kubectl.path)],
        ],
        env=WALLET,
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: missing required options: --upstream; a price: --price/--per-request, --per-mtok"
        " or --per-hour (no ServiceOffer qwen exists in namespace llm whose capacity this could"
        " change)"
    )


def test_a_limits_change_writes_a_stored_string_asset_in_the_object_form(
    run: Runner, fake_kubectl: FakeKubectl
) -> None:
    """A stored offer whose asset is the string form (which obol-stack's verifier cannot
    decode) is written back with the object form; its terms are otherwise kept."""
    stored = json.loads(json.dumps(STORED))
    stored["spec"]["payment"]["asset"] = "usdc"
    fake_kubectl.answer_json(stored)
    result = run(
        ["sell", "inference", "qwen", "-n", "llm", "--max-inflight", "6",
         "--kubectl", str(fake_kubectl.path)]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Note: payment.asset 'usdc' written as USDC's object form" in result.stderr
    _, apply = fake_kubectl.calls()
    payment = json.loads(apply["stdin"])["spec"]["payment"]
    assert payment["asset"]["address"] == "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
    assert {k: v for k, v in payment.items() if k != "asset"} == STORED["spec"]["payment"]

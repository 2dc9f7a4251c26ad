"""Every failure of ``obol sell``: one stderr line, a distinct documented exit code, no traceback.

Design notes:
- kubectl failures use the fake kubectl with the stderr real kubectl prints in each situation
  (including klog noise before "connection refused") and are crossed with the three commands
  that call kubectl, because each must explain the failure the same way.
- ``assert_one_line_failure`` is the single definition of "a clear error": exit code as
  documented, exactly one ``Error: ...`` line on stderr, nothing on stdout, and the exception
  seen by the runner is click's ``SystemExit`` (a crash would surface as anything else).
- Validation failures are table tests; each case asserts the field path, the reason, the value
  and the flag the seller should change.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import Result

from hooks.cli import errors as cli_errors
from hooks.cli.errors import (
    EXIT_CONFIG,
    EXIT_INTERNAL,
    EXIT_INVALID,
    EXIT_KUBECTL_FAILED,
    EXIT_NO_CRD,
    EXIT_NO_KUBECTL,
    EXIT_NOT_FOUND,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from hooks.cli.kubectl import ClusterUnreachable, Kubectl
from tests.cli.sell_helpers import FakeKubectl, Runner, offer_args


def assert_one_line_failure(result: Result, exit_code: int, message: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert message in lines[0], lines[0]
    assert "--validate=false" not in lines[0]


def test_the_documented_exit_codes_are_distinct() -> None:
    codes = [
        EXIT_KUBECTL_FAILED,
        EXIT_USAGE,
        EXIT_INVALID,
        EXIT_NO_KUBECTL,
        EXIT_UNREACHABLE,
        EXIT_NO_CRD,
        EXIT_NOT_FOUND,
        EXIT_CONFIG,
        EXIT_INTERNAL,
    ]
    assert len(set(codes)) == len(codes)
    assert 0 not in codes
    doc = cli_errors.__doc__ or ""
    for code in codes:
        assert re.search(rf"^{code}\s+\S", doc, re.MULTILINE), f"exit {code} is not documented"


# --- kubectl failures --------------------------------------------------------------------------

KLOG_1_37 = (
    "E1126 19:06:34.996635   25209 memcache.go:381] \"Couldn't get current server API group"
    ' list" err="Get \\"https://127.0.0.1:1/api?timeout=32s\\": dial tcp 127.0.0.1:1: connect:'
    ' connection refused"\n'
)
KLOG = (
    "E1126 10:00:00.000000   4242 memcache.go:265] couldn't get current server API group"
    ' list: Get "https://127.0.0.1:6443/api?timeout=32s": dial tcp 127.0.0.1:6443:'
    " connect: connection refused\n"
)
COMMANDS = {
    "apply": offer_args("-n", "llm"),
    "status": ["sell", "status", "qwen", "-n", "llm"],
    "list": ["sell", "list", "-A"],
}
each_command = pytest.mark.parametrize("command", list(COMMANDS))

KUBECTL_FAILURES = [
    pytest.param(
        KLOG * 3 + "The connection to the server 127.0.0.1:6443 was refused - did you specify"
        " the right host or port?\n",
        EXIT_UNREACHABLE,
        "Error: cannot reach the cluster: The connection to the server 127.0.0.1:6443 was"
        " refused - did you specify the right host or port?",
        id="connection refused (after klog noise)",
    ),
    pytest.param(
        KLOG_1_37 * 2 + 'error: error validating "STDIN": error validating data: failed to'
        ' download openapi: Get "https://127.0.0.1:1/openapi/v2?timeout=32s": dial tcp'
        " 127.0.0.1:1: connect: connection refused; if you choose to ignore these errors, turn"
        " validation off with --validate=false\n",
        EXIT_UNREACHABLE,
        'Error: cannot reach the cluster: error validating "STDIN": error validating data:'
        ' failed to download openapi: Get "https://127.0.0.1:1/openapi/v2?timeout=32s": dial tcp'
        " 127.0.0.1:1: connect: connection refused",
        id="connection refused while apply validates (kubectl 1.37 klog format)",
    ),
    pytest.param(
        "Unable to connect to the server: dial tcp: lookup api.nowhere: no such host\n",
        EXIT_UNREACHABLE,
        "cannot reach the cluster: Unable to connect to the server: dial tcp: lookup",
        id="unable to connect",
    ),
    pytest.param(
        'error: the server doesn\'t have a resource type "serviceoffers"\n',
        EXIT_NO_CRD,
        "the ServiceOffer CRD (serviceoffers.obol.org) is not installed in this cluster;"
        " install the one this package ships with: obol crd apply",
        id="no resource type (get)",
    ),
    pytest.param(
        'error: resource mapping not found for name: "qwen" namespace: "llm" from "STDIN":'
        ' no matches for kind "ServiceOffer" in version "obol.org/v1alpha1"\n'
        "ensure CRDs are installed first\n",
        EXIT_NO_CRD,
        "the ServiceOffer CRD (serviceoffers.obol.org) is not installed",
        id="no matches for kind (apply)",
    ),
    pytest.param(
        'The ServiceOffer "qwen" is invalid: spec.payment.payTo: Invalid value: "0x1":'
        " spec.payment.payTo in body should match '^0x[0-9a-fA-F]{40}$'\n",
        EXIT_INVALID,
        'the API server rejected the offer: The ServiceOffer "qwen" is invalid:',
        id="rejected by the API server",
    ),
    pytest.param(
        'Error from server (Forbidden): serviceoffers.obol.org is forbidden: User "bob"'
        ' cannot list resource "serviceoffers" in API group "obol.org"\n',
        EXIT_KUBECTL_FAILED,
        "kubectl failed (exit 1): Error from server (Forbidden): serviceoffers.obol.org is"
        " forbidden",
        id="forbidden",
    ),
]


@each_command
@pytest.mark.parametrize(("stderr", "exit_code", "message"), KUBECTL_FAILURES)
def test_kubectl_failure_is_one_clear_line(
    run: Runner,
    fake_kubectl: FakeKubectl,
    command: str,
    stderr: str,
    exit_code: int,
    message: str,
) -> None:
    fake_kubectl.answer(stderr=stderr, exit_code=1)
    result = run([*COMMANDS[command], "--kubectl", str(fake_kubectl.path)])
    assert_one_line_failure(result, exit_code, message)


def test_named_offer_not_found(run: Runner, fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer(
        stderr='Error from server (NotFound): serviceoffers.obol.org "qwen" not found\n',
        exit_code=1,
    )
    result = run([*COMMANDS["status"], "--kubectl", str(fake_kubectl.path)])
    assert_one_line_failure(
        result,
        EXIT_NOT_FOUND,
        "Error: ServiceOffer 'qwen' not found in namespace 'llm';"
        " list offers with: obol sell list --all-namespaces",
    )


def test_missing_namespace_on_apply_is_not_an_offer_not_found(
    run: Runner, fake_kubectl: FakeKubectl
) -> None:
    fake_kubectl.answer(
        stderr='Error from server (NotFound): error when creating "STDIN": namespaces "llm"'
        " not found\n",
        exit_code=1,
    )
    result = run([*COMMANDS["apply"], "--kubectl", str(fake_kubectl.path)])
    assert_one_line_failure(result, EXIT_KUBECTL_FAILED, 'namespaces "llm" not found')


@each_command
def test_kubectl_missing_from_path(run: Runner, command: str, tmp_path: Path) -> None:
    result = run(COMMANDS[command], env={"PATH": str(tmp_path)})
    assert_one_line_failure(
        result,
        EXIT_NO_KUBECTL,
        "Error: kubectl not found: 'kubectl' is not on PATH"
        " (install kubectl, or point --kubectl or OBOL_KUBECTL at it)",
    )


def test_kubectl_flag_pointing_nowhere(run: Runner, tmp_path: Path) -> None:
    missing = tmp_path / "bin" / "kubectl"
    result = run([*COMMANDS["list"], "--kubectl", str(missing)])
    assert_one_line_failure(result, EXIT_NO_KUBECTL, f"kubectl not found at '{missing}'")


def test_kubectl_that_is_not_executable(run: Runner, tmp_path: Path) -> None:
    plain = tmp_path / "kubectl"
    plain.write_text("not a program")
    result = run([*COMMANDS["list"]], env={"OBOL_KUBECTL": str(plain)})
    assert_one_line_failure(result, EXIT_NO_KUBECTL, "is not executable")


def test_kubectl_printing_something_other_than_json(run: Runner, fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer(stdout="No resources found\n")
    result = run([*COMMANDS["list"], "--kubectl", str(fake_kubectl.path)])
    assert_one_line_failure(result, EXIT_KUBECTL_FAILED, "kubectl printed something that is not")


def test_kubectl_that_hangs_counts_as_unreachable(fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer(sleep=5)
    with pytest.raises(ClusterUnreachable, match=re.escape("did not answer within 0.3s")):
        Kubectl(str(fake_kubectl.path), timeout_seconds=0.3).get_offers()


# --- validation failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            offer_args("--port", "70000"),
            "invalid offer: spec.upstream.port: must be <= 65535 (got 70000) [--port]",
            id="invalid because the port is out of range",
        ),
        pytest.param(
            offer_args(name="Qwen_3"),
            "metadata.name: must be a DNS-1123 subdomain (lower-case) (got 'Qwen_3') [NAME]",
            id="invalid because the name is not a DNS name",
        ),
        pytest.param(
            offer_args("-n", "LLM"),
            "metadata.namespace: must be a DNS-1123 label (lower-case letters, digits"
            " and '-') (got 'LLM') [-n/--namespace]",
            id="invalid because the namespace is not a DNS label",
        ),
        pytest.param(
            offer_args("-n", "llm\n"),
            "metadata.namespace: must be a DNS-1123 label (lower-case letters, digits"
            " and '-') (got 'llm\\n') [-n/--namespace]",
            id="invalid because the namespace ends in a newline",
        ),
        pytest.param(
            offer_args("--pay-to", "0x1"),
            "spec.payment.payTo: must be an EVM address: 0x followed by 40 hex digits"
            " (got '0x1') [--pay-to]",
            id="invalid because payTo is not an address",
        ),
        pytest.param(
            offer_args(price="0.0000001"),
            "spec.payment.price.perRequest: has 7 fractional digits but USDC has only"
            " 6 (got '0.0000001') [--price]",
            id="invalid because the price is finer than USDC",
        ),
        pytest.param(
            offer_args(price="0"),
            "spec.payment.price.perRequest: must be greater than 0 (got '0') [--price]",
            id="invalid because the price is zero",
        ),
        pytest.param(
            offer_args("--payment-asset", "obol"),
            "spec.payment.asset: OBOL is not deployed on base; OBOL is available on"
            " ethereum (got 'obol') [--payment-asset]",
            id="invalid because OBOL is not on base",
        ),
        pytest.param(
            offer_args("--max-inflight", "2", "--per-buyer-max-inflight", "4"),
            "spec.capacity.perBuyerMaxInFlight: must be <= maxInFlight (4 > 2)"
            " [--per-buyer-max-inflight]",
            id="invalid because per-buyer exceeds the global limit",
        ),
        pytest.param(
            offer_args("--capacity-preset", "external-vllm-1gpu-balanced", "--max-inflight", "2"),
            "spec.capacity.perBuyerMaxInFlight: must be <= maxInFlight (4 > 2)"
            " [from preset external-vllm-1gpu-balanced; override with"
            " --per-buyer-max-inflight]",
            id="invalid because an override conflicts with a preset value",
        ),
        pytest.param(
            offer_args("--max-inflight", "2", "--retry-after", "30", "--max-timeout", "30"),
            "spec.capacity.retryAfterSeconds: must be < payment.maxTimeoutSeconds (30 >= 30)",
            id="invalid because Retry-After outlives the payment",
        ),
        pytest.param(
            offer_args("--context-window", "4096", "--max-input-tokens", "8192"),
            "spec.requestLimits.maxInputTokens: must be <="
            " capabilities.contextWindowTokens (8192 > 4096) [--max-input-tokens]",
            id="invalid because the prompt limit exceeds the context window",
        ),
        pytest.param(
            offer_args("--network", "solana"),
            "spec.payment.network: unknown network; known: base",
            id="invalid because the network is unknown",
        ),
        pytest.param(
            offer_args("--port", "0", "--health-path", "health"),
            "spec.upstream.port: must be >= 1 (got 0) [--port]; spec.upstream.healthPath:",
            id="invalid because of two problems, both reported",
        ),
    ],
)
def test_validation_failure_names_path_value_reason_and_flag(
    run: Runner, args: list[str], message: str
) -> None:
    result = run([*args, "--dry-run"])
    assert_one_line_failure(result, EXIT_INVALID, message)


# --- asset registry file failures --------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            None, "OBOL_ASSET_REGISTRY_FILE: cannot read the file: No such file", id="missing file"
        ),
        pytest.param(
            "networks: [unclosed", "OBOL_ASSET_REGISTRY_FILE: line 2: not valid YAML", id="not YAML"
        ),
        pytest.param(
            "- just\n- a list\n",
            "OBOL_ASSET_REGISTRY_FILE: must hold a YAML mapping",
            id="not a mapping",
        ),
        pytest.param("networks:\n  - name: optimism\n", "networks[0].chainId", id="invalid entry"),
    ],
)
def test_bad_registry_file(run: Runner, tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "registry.yaml"
    if content is not None:
        path.write_text(content)
    result = run(offer_args("--dry-run", "--asset-registry-file", str(path)))
    assert_one_line_failure(result, EXIT_INVALID, "Error: invalid asset registry file: ")
    assert message in result.stderr

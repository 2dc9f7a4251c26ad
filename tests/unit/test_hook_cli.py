"""``obol hook sync``, ``render``, ``serve`` and ``busy`` through click's CliRunner.

Test-design notes:

* ``sync`` must give exactly the bytes POST /sync gives (one shared function), with exit codes
  0 (200), 3 (400: invalid input) and 9 (500: internal error); errors are one line on stderr,
  never a traceback.
* ``render`` runs every offer in ``examples/``: valid ones print stable multi-document YAML (or
  a JSON v1 List) of children; each invalid one exits 3 (invalid input) with the field-path
  message its ``examples.obol.org/expected-error`` annotation promises.
* ``serve`` and ``busy`` would run a server in the test process, so the servers' ``serve`` are
  stubbed after the command has read its configuration and opened its port; the real servers
  are exercised in tests/http.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner, Result

from hooks.cli import hook as hook_cli
from hooks.cli.errors import EXIT_CONFIG, EXIT_INTERNAL, EXIT_INVALID
from hooks.cli.main import obol
from hooks.config import ShellConfig
from hooks.core import api
from hooks.core.settings import Settings
from hooks.core.user_yaml import MAX_BYTES
from hooks.server import app as app_module
from hooks.server import busy, sync_server
from hooks.server.app import handle_sync_body
from tests.http.http_harness import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
VALID = sorted(EXAMPLES.glob("*.yaml"))
INVALID = sorted((EXAMPLES / "invalid").glob("*.yaml"))
CHILD_KINDS = {(version, kind) for version, kind, _ in api.CHILD_TYPES}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded defaults, whatever the developer's shell exports."""
    for name in list(os.environ):
        if name.startswith("OBOL_"):
            monkeypatch.delenv(name)


def run(*args: str, stdin: bytes | str | None = None) -> Result:
    return CliRunner().invoke(obol, ["hook", *args], input=stdin)


def assert_one_line_error(result: Result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def request_for(path: Path) -> bytes:
    return orjson.dumps(hook_cli.render_request(yaml.safe_load(path.read_text())))


# --- obol hook sync --------------------------------------------------------------------------


def test_sync_prints_what_post_sync_answers() -> None:
    body = request_for(EXAMPLES / "inference-qwen36-fast.yaml")
    result = run("sync", stdin=body)
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == handle_sync_body(body, Settings()).body + b"\n"
    assert set(orjson.loads(result.stdout_bytes)) <= {"status", "children", "resyncAfterSeconds"}


def test_sync_of_an_invalid_spec_is_still_exit_0() -> None:
    result = run("sync", stdin=request_for(EXAMPLES / "invalid" / "no-price.yaml"))
    assert result.exit_code == 0
    conditions = orjson.loads(result.stdout_bytes)["status"]["conditions"]
    ready = next(c for c in conditions if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")


@pytest.mark.parametrize(
    ("stdin", "fragment"),
    [(b"{oops", "not valid JSON"), (b"[]", "<request>: must be a JSON object"), (b"", "JSON")],
)
def test_sync_of_a_malformed_request_is_invalid_input(stdin: bytes, fragment: str) -> None:
    assert_one_line_error(run("sync", stdin=stdin), EXIT_INVALID, fragment)


def test_sync_of_a_crashing_core_is_an_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(request: Any, settings: Settings, observations: Any = None) -> Any:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(app_module, "sync", crash)
    result = run("sync", stdin=request_for(EXAMPLES / "inference-qwen36-fast.yaml"))
    assert_one_line_error(result, EXIT_INTERNAL, "internal error: RuntimeError: boom second line")


def test_sync_with_a_bad_setting_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBOL_GATEWAY_REPLICAS", "zero")
    result = run("sync", stdin=b"{}")
    assert_one_line_error(result, EXIT_CONFIG, "OBOL_GATEWAY_REPLICAS: must be a whole number")


# --- obol hook render ------------------------------------------------------------------------


def test_render_of_an_obol_offer_it_does_not_render_says_so() -> None:
    path = Path(__file__).resolve().parents[1] / "fixtures/obol/line-b-agent.yaml"
    result = run("render", "-f", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == (
        f"Note: {path}: not rendered: spec.type: is kept but not rendered by this controller,"
        " which renders inference and http offers; the offer and any children it has are left"
        " as they are (got 'agent')\n"
    )


def test_render_of_an_obol_offer_object_asset_prints_no_serializer_warning() -> None:
    path = Path(__file__).resolve().parents[1] / "fixtures/obol/line-b-inference-obol.yaml"
    result = run("render", "-f", str(path))
    assert result.exit_code == 0, result.stderr
    assert "serializer" not in result.stderr
    assert "OBOL on base-sepolia is a test token" in result.stderr


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_render_prints_the_children_as_sorted_multi_document_yaml(path: Path) -> None:
    result = run("render", "-f", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("---\n")
    children = list(yaml.safe_load_all(result.stdout))
    assert children and {(c["apiVersion"], c["kind"]) for c in children} <= CHILD_KINDS
    offer = yaml.safe_load(path.read_text())
    assert {c["metadata"]["namespace"] for c in children} == {offer["metadata"]["namespace"]}
    for child in children:
        assert list(child) == sorted(child)
    assert run("render", "-f", str(path)).stdout == result.stdout  # stable


def test_render_shows_the_pricing_json_as_a_literal_block() -> None:
    result = run("render", "-f", str(EXAMPLES / "inference-qwen36-fast.yaml"))
    assert "routes.json: |" in result.stdout


def test_render_json_is_a_v1_list_of_the_same_children() -> None:
    path = str(EXAMPLES / "inference-qwen36-fast.yaml")
    listing = orjson.loads(run("render", "-f", path, "-o", "json").stdout_bytes)
    assert (listing["apiVersion"], listing["kind"]) == ("v1", "List")
    assert listing["items"] == list(yaml.safe_load_all(run("render", "-f", path).stdout))


def test_render_reads_stdin() -> None:
    path = EXAMPLES / "http-weather-api.yaml"
    from_stdin = run("render", "-f", "-", stdin=path.read_text())
    assert from_stdin.exit_code == 0
    assert from_stdin.stdout == run("render", "-f", str(path)).stdout


def test_render_of_an_offer_without_a_namespace_renders_it_in_default() -> None:
    # kubectl's habit without a context; the sync request itself always names the namespace.
    text = (EXAMPLES / "http-weather-api.yaml").read_text()
    offer = yaml.safe_load(text)
    namespace = offer["metadata"].pop("namespace")
    result = run("render", "-f", "-", stdin=yaml.safe_dump(offer))
    assert result.exit_code == 0, result.output
    children = list(yaml.safe_load_all(result.stdout))
    assert {child["metadata"]["namespace"] for child in children} == {"default"}
    expected = run("render", "-f", "-", stdin=text).stdout.replace(namespace, "default")
    assert result.stdout == expected


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_render_of_an_invalid_offer_prints_the_field_path_message(path: Path) -> None:
    offer = yaml.safe_load(path.read_text())
    expected = offer["metadata"]["annotations"]["examples.obol.org/expected-error"]
    assert_one_line_error(run("render", "-f", str(path)), EXIT_INVALID, expected)


HEAD = "apiVersion: obol.org/v1alpha1\nkind: ServiceOffer\n"
PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("kind: Deployment\nmetadata: {name: x}\n", "kind: must be ServiceOffer"),
        (
            "apiVersion: foo\nkind: ServiceOffer\n",
            "apiVersion: must be obol.org/v1alpha1 (got 'foo')",
        ),
        ("kind: ServiceOffer\nmetadata: {name: x}\n", "apiVersion: required field is missing"),
        ("a: [", "not valid YAML"),
        ("- 1\n", "expected a ServiceOffer mapping"),
        ("", "offer.yaml: no document in it"),
        (HEAD + "spec: {}\n", "invalid offer: metadata.name: required field is missing"),
        (HEAD + "metadata: {name: x, namespace: 7}\n", "metadata.namespace: must be a string"),
        (HEAD + "metadata: {name: x}\nkind: ServiceOffer\n", "kind: is given twice"),
    ],
)
def test_render_of_a_bad_file_is_invalid_input(tmp_path: Path, content: str, fragment: str) -> None:
    offer = tmp_path / "offer.yaml"
    offer.write_text(content)
    result = run("render", "-f", str(offer))
    assert_one_line_error(result, EXIT_INVALID, fragment)
    # A file's problems are named by the file's own paths, never the sync request's.
    assert "parent." not in result.stderr


def _offer_text(pay_to: str) -> str:
    return HEAD + (
        "metadata: {name: weather, namespace: shop}\n"
        "spec:\n"
        "  type: http\n"
        "  upstream: {service: weather, port: 8080}\n"
        "  payment:\n"
        "    network: base-sepolia\n"
        f"    payTo: {pay_to}\n"
        "    price: {perRequest: '0.001'}\n"
    )


def test_render_of_an_unquoted_address_names_the_field_and_says_quote_it(tmp_path: Path) -> None:
    # YAML 1.1 reads an unquoted 0x... as a (160-bit) hex integer.
    offer = tmp_path / "offer.yaml"
    offer.write_text(_offer_text(PAY_TO))
    result = run("render", "-f", str(offer))
    assert_one_line_error(result, EXIT_INVALID, f"{offer}: line 9: spec.payment.payTo: YAML reads")
    assert f'quote it ("{PAY_TO}")' in result.stderr
    offer.write_text(_offer_text(f'"{PAY_TO}"'))
    assert run("render", "-f", str(offer)).exit_code == 0


def test_render_refuses_a_billion_laughs_at_once_naming_the_file(tmp_path: Path) -> None:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        prev, name = chr(96 + level), chr(97 + level)
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    offer = tmp_path / "laughs.yaml"
    offer.write_text(HEAD + "\n".join(lines) + "\n")
    started = time.process_time()
    result = run("render", "-f", str(offer))
    assert time.process_time() - started < 1.0
    assert_one_line_error(
        result, EXIT_INVALID, f"{offer}: line 4: YAML aliases (*name) are not accepted"
    )


def test_render_refuses_an_oversized_file(tmp_path: Path) -> None:
    offer = tmp_path / "big.yaml"
    offer.write_text(HEAD + "x: " + "a" * (MAX_BYTES) + "\n")
    assert_one_line_error(
        run("render", "-f", str(offer)), EXIT_INVALID, f"is larger than {MAX_BYTES} bytes"
    )
    assert_one_line_error(
        run("render", "-f", "-", stdin=offer.read_bytes()), EXIT_INVALID, "stdin: is larger than"
    )


def test_render_prints_the_warnings_sell_dry_run_prints(tmp_path: Path) -> None:
    # A streaming offer with a body limit: the limit is advertised only (sell warns the same).
    offer = tmp_path / "offer.yaml"
    offer.write_text(
        _offer_text(f'"{PAY_TO}"').replace("type: http", "type: inference")
        + "  capabilities: {streaming: true}\n  requestLimits: {maxBodyBytes: 1000}\n"
    )
    result = run("render", "-f", str(offer))
    assert result.exit_code == 0, result.stderr
    expected = "Warning: maxBodyBytes is advertised only"
    assert expected in result.stderr
    sell = CliRunner().invoke(
        obol,
        [
            "sell", "inference", "weather", "-n", "shop", "--upstream", "weather", "--port", "8080",
            "--network", "base-sepolia", "--pay-to", PAY_TO, "--price", "0.001",
            "--streaming", "--max-body-bytes", "1000", "--dry-run",
        ],
    )  # fmt: skip
    assert sell.exit_code == 0, sell.stderr
    # The same warnings; sell also says what buyers will be quoted.
    lines = sell.stderr.splitlines()
    assert [line for line in lines if not line.startswith("Quote:")] == result.stderr.splitlines()
    assert [line for line in lines if line.startswith("Quote:")] == [
        f"Quote: buyers pay 0.001 USDC per request on base-sepolia (eip155:84532) to {PAY_TO}:"
        " 0.001 USDC/request, quoted as perRequest"
    ]


def test_render_of_a_missing_file_is_invalid_input(tmp_path: Path) -> None:
    assert_one_line_error(
        run("render", "-f", str(tmp_path / "absent.yaml")), EXIT_INVALID, "cannot read"
    )


def test_render_follows_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBOL_GATEWAY_NAME", "edge")
    result = run("render", "-f", str(EXAMPLES / "http-weather-api.yaml"))
    route = next(c for c in yaml.safe_load_all(result.stdout) if c["kind"] == "HTTPRoute")
    assert route["spec"]["parentRefs"][0]["name"] == "edge"


def test_render_in_the_seller_proxy_gate_names_the_gate_and_has_no_forward_auth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OBOL_PAYMENT_GATE", "seller-proxy")
    monkeypatch.setenv("OBOL_VERIFIER", "obol-stack-per-buyer")  # a proxy that limits buyers
    result = run("render", "-f", str(EXAMPLES / "inference-qwen36-fast.yaml"))
    assert result.exit_code == 0, result.stderr
    head = result.stdout.split("---\n", 1)[0]
    assert "# status.paymentGate.mode: seller-proxy\n" in head
    assert "# status.paymentGate.perBuyerLimit: verifier\n" in head
    children = list(yaml.safe_load_all(result.stdout))
    kinds = [(c["kind"], c["metadata"]["name"]) for c in children]
    assert ("Middleware", "so-qwen36-fast-x402") not in kinds
    route = children[0]["spec"]["rules"][0]
    assert route["backendRefs"] == [
        {"group": "traefik.io", "kind": "TraefikService", "name": "so-qwen36-fast-verifier",
         "weight": 1}
    ]  # fmt: skip
    # offer key, errors (429), global inFlightReq, admitted marker (the verifier's per-buyer
    # 429 is then named buyer_limit); nothing after: the backend is the verifier.
    assert [f.get("extensionRef", {}).get("name", f["type"]) for f in route["filters"]] == [
        "RequestHeaderModifier", "so-qwen36-fast-busy", "so-qwen36-fast-inflight",
        "so-qwen36-fast-admitted",
    ]  # fmt: skip
    service = next(
        c for c in children if c["kind"] == "Service" and "verifier" in c["metadata"]["name"]
    )
    assert service["spec"]["type"] == "ExternalName"
    assert service["spec"]["externalName"] == "x402-verifier.x402.svc.cluster.local"


def test_render_in_the_default_gate_prints_no_gate_comment() -> None:
    result = run("render", "-f", str(EXAMPLES / "inference-qwen36-fast.yaml"))
    assert result.stdout.startswith("---\n")


# --- obol hook serve -------------------------------------------------------------------------


class ServeRecorder:
    """Stands in for a server's ``serve``: records what it would serve, starts nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[ShellConfig, tuple[str, int]]] = []

    def __call__(self, config: ShellConfig, listener: socket.socket) -> None:
        with listener:
            self.calls.append((config, listener.getsockname()))


@pytest.fixture
def serve_recorder(monkeypatch: pytest.MonkeyPatch) -> ServeRecorder:
    recorder = ServeRecorder()
    monkeypatch.setattr(sync_server, "serve", recorder)
    monkeypatch.setattr(busy, "serve", recorder)
    return recorder


def test_serve_and_busy_pass_their_flags_to_their_server(serve_recorder: ServeRecorder) -> None:
    sync_bind, busy_bind = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    assert run("serve", "--bind", sync_bind, "--threads", "3").exit_code == 0
    assert run("busy", "--bind", busy_bind).exit_code == 0
    (sync_config, sync_address), (busy_config, busy_address) = serve_recorder.calls
    assert (sync_config.bind, sync_config.threads, busy_config.busy_bind) == (
        sync_bind,
        3,
        busy_bind,
    )
    assert (f"127.0.0.1:{sync_address[1]}", f"127.0.0.1:{busy_address[1]}") == (
        sync_bind,
        busy_bind,
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["serve", "--bind", "nonsense"], "OBOL_BIND: must be HOST:PORT"),
        (["busy", "--bind", "0.0.0.0:99999"], "OBOL_BUSY_BIND: port must be between 1 and 65535"),
        (
            ["busy", "--bind", "0.0.0.0:8080"],
            "OBOL_BUSY_BIND: must use another port than OBOL_BIND",
        ),
        (["serve", "--threads", "0"], "0 is not in the range 1<=x<=64"),
    ],
)
def test_serve_and_busy_refuse_a_bad_configuration(
    serve_recorder: ServeRecorder, args: list[str], fragment: str
) -> None:
    result = run(*args)
    assert result.exit_code in (EXIT_CONFIG, 2), result.stderr
    assert fragment in result.stderr
    assert not serve_recorder.calls


@pytest.mark.parametrize(
    "command",
    [["--help"], ["serve", "--help"], ["busy", "--help"], ["sync", "--help"], ["render", "--help"]],
)
def test_every_help_shows_an_example(command: list[str]) -> None:
    result = run(*command)
    assert result.exit_code == 0
    assert "Example" in result.stdout
    assert "obol hook" in result.stdout.split("Example", 1)[1]


def test_the_exit_codes_in_the_help_are_the_ones_used() -> None:
    sync_help = " ".join(run("sync", "--help").stdout.split())
    assert f"{EXIT_INVALID} malformed request" in sync_help
    assert f"{EXIT_CONFIG} configuration" in sync_help
    assert f"{EXIT_INTERNAL} internal error" in sync_help
    assert_one_line_error(run("sync", stdin=b"{broken"), EXIT_INVALID, "bad request")
    render_help = " ".join(run("render", "--help").stdout.split())
    assert f"exits {EXIT_INVALID}" in render_help
    invalid = EXAMPLES / "invalid" / "zero-price.yaml"
    assert run("render", "-f", str(invalid)).exit_code == EXIT_INVALID


def test_sync_reads_stdin_only_up_to_the_request_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBOL_MAX_REQUEST_BYTES", "1024")
    result = run("sync", stdin=b" " * 2048)
    assert_one_line_error(result, 3, "bad request: the request is larger than 1024 bytes")


# --- obol hook render: kubectl's -f habits ---------------------------------------------------


def rendered(path: Path) -> str:
    result = run("render", "-f", str(path))
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_render_of_a_directory_renders_every_example() -> None:
    result = run("render", "-f", str(EXAMPLES))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "".join(rendered(path) for path in VALID)
    assert len(VALID) >= 3  # invalid/ is a subdirectory: not read without -R


def test_render_of_two_files_renders_both_in_order() -> None:
    first, second = EXAMPLES / "http-weather-api.yaml", EXAMPLES / "inference-qwen36-fast.yaml"
    result = run("render", "-f", str(first), "-f", str(second))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == rendered(first) + rendered(second)
    names = {doc["metadata"]["name"] for doc in yaml.safe_load_all(result.stdout)}
    assert {"so-weather-api", "so-qwen36-fast"} <= names


def test_render_json_of_two_files_is_one_list_of_both() -> None:
    first, second = EXAMPLES / "http-weather-api.yaml", EXAMPLES / "inference-qwen36-fast.yaml"
    listing = orjson.loads(run("render", "-f", str(first), "-f", str(second), "-o", "json").stdout)
    items = [*yaml.safe_load_all(rendered(first)), *yaml.safe_load_all(rendered(second))]
    assert listing == {"apiVersion": "v1", "kind": "List", "items": items}


def test_render_of_a_multi_document_file_renders_each_offer(tmp_path: Path) -> None:
    both = tmp_path / "both.yaml"
    paths = [EXAMPLES / "http-weather-api.yaml", EXAMPLES / "inference-obol-ethereum.yaml"]
    both.write_text("---\n".join(path.read_text() for path in paths))
    result = run("render", "-f", str(both))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "".join(rendered(path) for path in paths)


def test_a_document_of_another_kind_is_reported_and_skipped(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.yaml"
    namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: llm-sellers}\n"
    mixed.write_text(namespace + "---\n" + (EXAMPLES / "http-weather-api.yaml").read_text())
    result = run("render", "-f", str(mixed))
    assert result.exit_code == EXIT_INVALID
    assert result.stdout == rendered(EXAMPLES / "http-weather-api.yaml")
    assert result.stderr.splitlines() == [
        f"Error: {mixed} (document 1): kind: must be ServiceOffer (got 'Namespace') (skipped)",
        "Error: 1 of 2 inputs not rendered (see above)",
    ]


def test_render_recursive_reports_each_invalid_example_and_renders_the_rest() -> None:
    result = run("render", "-R", "-f", str(EXAMPLES))
    assert result.exit_code == EXIT_INVALID
    assert result.stdout == "".join(rendered(path) for path in VALID)
    errors = result.stderr.splitlines()
    assert (
        errors[-1]
        == f"Error: {len(INVALID)} of {len(VALID) + len(INVALID)} inputs not rendered (see above)"
    )
    for path in INVALID:
        assert any(line.startswith(f"Error: {path}: invalid") for line in errors), path


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["-f", "-", "-f", "-"], "-f -: stdin can be read only once", id="stdin-twice"),
        pytest.param(
            ["-f", "EMPTY"], "no .yaml, .yml, .json files in this directory", id="no-files"
        ),
    ],
)
def test_render_input_lists_that_cannot_work(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    args = [str(tmp_path) if arg == "EMPTY" else arg for arg in args]
    assert_one_line_error(run("render", *args), EXIT_INVALID, fragment)

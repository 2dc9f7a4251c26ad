"""Reading the configuration from the environment (hooks.config): the one home of this topic.

Test-design notes:

* ``load_config`` takes the environment as a mapping, so every case is a plain dict: defaults,
  each variable (the core's, the shell's and the observation layer's), the asset-registry file
  and the token file (with the trailing newline a mounted Secret often has).
* Errors must name the variable, report every bad variable at once, and never contain a token.
* The documented defaults are checked against docs/settings.md in tests/unit/test_docs.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hooks.config import (
    DEFAULT_MAX_REQUEST_BYTES,
    OBSERVE_ENVIRONMENT,
    ConfigError,
    ShellConfig,
    bind_port,
    load_config,
    parse_overrides,
)
from hooks.core.observation import ObserveSettings, resync_after_seconds
from hooks.core.settings import Settings

REGISTRY = """\
networks:
  - name: optimism
    chainId: 10
assets:
  - symbol: USDC
    network: optimism
    address: "0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85"
    decimals: 6
    transferMethod: eip3009
    eip712Name: USD Coin
    eip712Version: "2"
"""


def problem_text(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    return str(caught.value)


def test_the_defaults_need_no_environment() -> None:
    config = load_config({})
    assert config == ShellConfig(Settings())
    assert (config.bind, config.busy_bind) == ("0.0.0.0:8080", "0.0.0.0:8081")
    assert (bind_port(config.bind), bind_port(config.busy_bind)) == (8080, 8081)
    assert (config.threads, config.max_request_bytes) == (4, DEFAULT_MAX_REQUEST_BYTES)
    assert config.hook_token is None and config.log_level == "info"


def test_the_busy_port_default_matches_the_settings() -> None:
    assert bind_port(load_config({}).busy_bind) == Settings().busy_port


def test_core_settings_come_through() -> None:
    config = load_config({"OBOL_GATEWAY_NAME": "gw", "OBOL_BUSY_JITTER_SECONDS": "3"})
    assert (config.settings.gateway_name, config.settings.busy_jitter_seconds) == ("gw", 3)


def test_a_blank_variable_keeps_its_default() -> None:
    blank = {"OBOL_GATEWAY_NAME": "  ", "OBOL_THREADS": " ", "OBOL_OBSERVE": "\t"}
    assert load_config(blank) == load_config({})


@pytest.mark.parametrize(
    ("bind", "port"),
    [("0.0.0.0:8080", 8080), ("[::]:8081", 8081), ("localhost:1", 1), ("unix:/tmp/s", None)],
)
def test_bind_port(bind: str, port: int | None) -> None:
    assert bind_port(bind) == port


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"OBOL_BIND": "8080"}, "OBOL_BIND: must be HOST:PORT"),
        ({"OBOL_BIND": "0.0.0.0:0"}, "OBOL_BIND: port must be between 1 and 65535"),
        ({"OBOL_BUSY_BIND": "host:http"}, "OBOL_BUSY_BIND: must be HOST:PORT"),
        (
            {"OBOL_BIND": "127.0.0.1:9000", "OBOL_BUSY_BIND": "0.0.0.0:9000"},
            "OBOL_BUSY_BIND: must use another port than OBOL_BIND",
        ),
        (  # two servers: gunicorn and the busy responder
            {"OBOL_BIND": "127.0.0.1:9000", "OBOL_BUSY_BIND": "127.0.0.1:9000"},
            "OBOL_BUSY_BIND: must use another port than OBOL_BIND",
        ),
        ({"OBOL_THREADS": "0"}, "OBOL_THREADS: must be between 1 and 64"),
        ({"OBOL_THREADS": "two"}, "OBOL_THREADS: must be a whole number"),
        ({"OBOL_MAX_REQUEST_BYTES": "10"}, "OBOL_MAX_REQUEST_BYTES: must be between 1024"),
        ({"OBOL_LOG_LEVEL": "chatty"}, "OBOL_LOG_LEVEL: must be one of debug, info"),
        ({"OBOL_GATEWAY_REPLICAS": "0"}, "OBOL_GATEWAY_REPLICAS: must be between 1 and 1000"),
        ({"OBOL_ASSET_REGISTRY_FILE": "/no/such/file"}, "OBOL_ASSET_REGISTRY_FILE: cannot read"),
        (
            {"OBOL_PAYMENT_GATE": "proxy"},
            "OBOL_PAYMENT_GATE: must be one of forward-auth, seller-proxy (got 'proxy')",
        ),
        (
            {"OBOL_VERIFIER_SETTLEMENT": "later"},
            "OBOL_VERIFIER_SETTLEMENT: must be one of deferred, on-verify",
        ),
        (
            {"OBOL_PAYMENT_GATE": "seller-proxy", "OBOL_VERIFIER_SETTLEMENT": "on-verify"},
            "OBOL_VERIFIER_SETTLEMENT: must be deferred with OBOL_PAYMENT_GATE=seller-proxy",
        ),
        ({"OBOL_VERIFIER_PROXY_URL": "http://v:8080/verify"}, "OBOL_VERIFIER_PROXY_URL: must be"),
        ({"OBOL_VERIFIER_PROXY_URL": "ftp://v"}, "OBOL_VERIFIER_PROXY_URL: must be an http://"),
        (
            {"OBOL_PROBE_GATEWAY_URL": "http://traefik/services"},
            "OBOL_PROBE_GATEWAY_URL: must be an http(s) base URL without a path",
        ),
        ({"OBOL_VERIFIER_PROXY_URL": "http://v:99999"}, "OBOL_VERIFIER_PROXY_URL: must name"),
    ],
)
def test_a_bad_variable_is_named(env: dict[str, str], fragment: str) -> None:
    assert fragment in problem_text(env)


@pytest.mark.parametrize(
    ("url", "split"),
    [
        ("http://x402-verifier.x402:8080", ("http", "x402-verifier.x402", 8080)),
        ("https://verifier.example/", ("https", "verifier.example", 443)),
        ("http://localhost", ("http", "localhost", 80)),
    ],
)  # fmt: skip
def test_the_verifier_proxy_url_gives_the_external_name_and_port(
    url: str, split: tuple[str, str, int]
) -> None:
    settings = load_config({"OBOL_VERIFIER_PROXY_URL": url}).settings
    assert settings.verifier_proxy == split


def test_every_bad_variable_is_reported_at_once() -> None:
    text = problem_text({"OBOL_THREADS": "0", "OBOL_LOG_LEVEL": "x", "OBOL_GATEWAY_REPLICAS": "0"})
    assert "OBOL_THREADS" in text and "OBOL_LOG_LEVEL" in text and "OBOL_GATEWAY_REPLICAS" in text


def test_the_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("abc.DEF-123\n")
    assert load_config({"OBOL_HOOK_TOKEN_FILE": str(token_file)}).hook_token == "abc.DEF-123"
    assert load_config({"OBOL_HOOK_TOKEN": " inline "}).hook_token == "inline"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("\n", "the token is empty"), ("two words", "printable ASCII without spaces")],
)
def test_a_bad_token_is_refused_without_echoing_it(
    tmp_path: Path, content: str, fragment: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(content)
    text = problem_text({"OBOL_HOOK_TOKEN_FILE": str(token_file)})
    assert fragment in text
    if content.strip():
        assert content.strip() not in text


def test_token_and_token_file_are_exclusive(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token")
    env = {"OBOL_HOOK_TOKEN": "inline-token", "OBOL_HOOK_TOKEN_FILE": str(token_file)}
    text = problem_text(env)
    assert "set either OBOL_HOOK_TOKEN or OBOL_HOOK_TOKEN_FILE" in text
    assert "inline-token" not in text and "file-token" not in text


def test_a_missing_token_file_is_named(tmp_path: Path) -> None:
    text = problem_text({"OBOL_HOOK_TOKEN_FILE": str(tmp_path / "absent")})
    assert "OBOL_HOOK_TOKEN_FILE: cannot read the token file" in text


def test_the_asset_registry_file_extends_the_builtin_table(tmp_path: Path) -> None:
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text(REGISTRY)
    config = load_config({"OBOL_ASSET_REGISTRY_FILE": str(registry_file)})
    assert config.settings.asset_registry.network("optimism").caip2 == "eip155:10"
    assert config.settings.asset_registry.network("base").caip2 == "eip155:8453"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("networks: [", "OBOL_ASSET_REGISTRY_FILE: line 2: not valid YAML"),
        ("networks: &n [a]\nassets: *n\n", "line 2: YAML aliases (*name) are not accepted"),
        ("networks:\n  - {name: optimism, chainId: 0xa}\n", "networks[0].chainId: YAML reads"),
        ("- a\n- b\n", "must hold a YAML mapping"),
        ("networks:\n  - name: optimism\n", "chainId"),
    ],
)
def test_a_bad_asset_registry_file_is_refused(tmp_path: Path, content: str, fragment: str) -> None:
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text(content)
    assert fragment in problem_text({"OBOL_ASSET_REGISTRY_FILE": str(registry_file)})


def test_an_empty_asset_registry_file_means_the_builtin_table(tmp_path: Path) -> None:
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text("")
    config = load_config({"OBOL_ASSET_REGISTRY_FILE": str(registry_file)})
    assert config.settings.asset_registry.network("base").caip2 == "eip155:8453"


# --- the observation layer's variables ---------------------------------------------------------


def test_every_observation_variable_is_read() -> None:
    env = {
        "OBOL_OBSERVE": "ON",
        "OBOL_PROBE_TIMEOUT_MS": "500",
        "OBOL_PROBE_TTL_SECONDS": "40",
        "OBOL_PROBE_INTERVAL_SECONDS": "20",
        "OBOL_PROBE_CONCURRENCY": "8",
        "OBOL_SYNC_PROBE_BUDGET_MS": "0",
        "OBOL_OBSERVE_FORGET_SECONDS": "900",
        "OBOL_OBSERVE_UPSTREAM_OVERRIDES": '{"http://vllm.llm.svc.cluster.local:8000/": "http://10.203.0.2:8000"}',
        "OBOL_PROBE_GATEWAY_URL": "http://traefik.traefik.svc.cluster.local/",
    }
    settings = load_config(env).observe
    assert settings == ObserveSettings(
        enabled=True,
        probe_timeout_ms=500,
        ttl_seconds=40,
        interval_seconds=20,
        concurrency=8,
        sync_budget_ms=0,
        forget_seconds=900,
        upstream_overrides={"http://vllm.llm.svc.cluster.local:8000": "http://10.203.0.2:8000"},
        gateway_url="http://traefik.traefik.svc.cluster.local",
    )
    assert settings.probe_base("http://vllm.llm.svc.cluster.local:8000") == "http://10.203.0.2:8000"
    assert settings.probe_base("http://other.llm.svc.cluster.local:80") == (
        "http://other.llm.svc.cluster.local:80"
    )
    assert (settings.probe_timeout, settings.sync_budget) == (0.5, 0.0)


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("OBOL_OBSERVE", "yes", "must be on or off"),
        ("OBOL_PROBE_TIMEOUT_MS", "fast", "must be a whole number"),
        ("OBOL_PROBE_TIMEOUT_MS", "5", "must be between 10 and 60000"),
        ("OBOL_PROBE_TTL_SECONDS", "0", "must be between 1 and 86400"),
        ("OBOL_PROBE_TTL_SECONDS", "10", "must exceed OBOL_PROBE_INTERVAL_SECONDS"),
        ("OBOL_PROBE_INTERVAL_SECONDS", "1.5", "must be a whole number"),
        ("OBOL_PROBE_INTERVAL_SECONDS", "30", "must exceed OBOL_PROBE_INTERVAL_SECONDS"),
        ("OBOL_PROBE_CONCURRENCY", "0", "must be between 1 and 64"),
        ("OBOL_SYNC_PROBE_BUDGET_MS", "5000", "must be between 0 and 2000"),
        ("OBOL_SYNC_PROBE_BUDGET_MS", "-1", "must be between 0 and 2000"),
        ("OBOL_OBSERVE_FORGET_SECONDS", "15", "must exceed OBOL_PROBE_TTL_SECONDS"),
        ("OBOL_OBSERVE_UPSTREAM_OVERRIDES", "not json", "must be a JSON object"),
        ("OBOL_OBSERVE_UPSTREAM_OVERRIDES", '["http://a:1"]', "must be a JSON object"),
        ("OBOL_OBSERVE_UPSTREAM_OVERRIDES", '{"http://a:1": 5}', "http(s) base URL"),
        ("OBOL_OBSERVE_UPSTREAM_OVERRIDES", '{"http://a:1": "http://b:2/x"}', "without a path"),
        ("OBOL_OBSERVE_UPSTREAM_OVERRIDES", '{"file:///etc": "http://b:2"}', "http(s) base URL"),
    ],
)
def test_a_bad_observation_value_names_the_variable(variable: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({variable: value})
    paths = [problem.path for problem in caught.value.problems]
    expected = "OBOL_PROBE_TTL_SECONDS" if "exceed OBOL_PROBE_INTERVAL" in reason else variable
    assert paths == [expected]
    assert reason in str(caught.value)


def test_overrides_are_read_only_and_trailing_slashes_dropped() -> None:
    settings = ObserveSettings(upstream_overrides={"http://a:1": "http://b:2"})
    with pytest.raises(TypeError):
        settings.upstream_overrides["http://c:3"] = "http://d:4"  # type: ignore[index]
    assert parse_overrides('{"http://a:1/": "https://b:2/"}') == {"http://a:1": "https://b:2"}
    hash(settings)  # frozen and hashable despite the mapping


def test_the_table_sets_every_observe_setting() -> None:
    attributes = {entry.attribute for entry in OBSERVE_ENVIRONMENT}
    assert attributes == {f.name for f in dataclasses.fields(ObserveSettings)}


@pytest.mark.parametrize(
    ("enabled", "configured", "interval", "expected"),
    [
        pytest.param(False, 0, 10, 0, id="off-keeps-zero"),
        pytest.param(False, 45, 10, 45, id="off-keeps-configured"),
        pytest.param(True, 0, 10, 30, id="on-default-three-intervals"),
        pytest.param(True, 300, 10, 300, id="on-keeps-a-longer-configured"),
        pytest.param(True, 5, 10, 10, id="on-never-below-the-interval"),
        pytest.param(True, 0, 2.5, 9, id="fractional-interval-rounds-up"),
    ],
)
def test_resync_after_seconds(
    enabled: bool, configured: int, interval: float, expected: int
) -> None:
    observe = ObserveSettings(enabled=enabled, interval_seconds=interval, ttl_seconds=60)
    assert resync_after_seconds(configured, observe) == expected


@pytest.mark.parametrize(("resync", "expected"), [(None, 30), ("5", 10), ("120", 120)])
def test_observation_on_resyncs_at_least_once_per_probe_interval(
    resync: str | None, expected: int
) -> None:
    env = (
        {"OBOL_OBSERVE": "on"}
        if resync is None
        else {"OBOL_OBSERVE": "on", "OBOL_RESYNC_SECONDS": resync}
    )
    config = load_config(env)
    assert config.observe.enabled is True
    assert config.settings.resync_seconds == expected


def test_bad_observation_settings_are_reported_with_the_others() -> None:
    text = problem_text({"OBOL_OBSERVE": "maybe", "OBOL_THREADS": "0"})
    assert "OBOL_OBSERVE: must be on or off" in text and "OBOL_THREADS" in text

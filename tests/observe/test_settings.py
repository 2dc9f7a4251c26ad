"""The observation settings read by ``load_config`` (hooks.config), and the resync recommendation.

Test design notes:
- Every variable is read from a plain mapping (no ``os.environ``); unset or empty keeps the
  default, and the defaults equal the dataclass's own.
- Bad values raise ``ConfigError`` whose problem path is the variable's name; several bad
  variables are all reported at once.
- ``OBSERVE_ENVIRONMENT`` sets every field of ``ObserveSettings``.
"""

from __future__ import annotations

import dataclasses

import pytest

from hooks.config import (
    OBSERVE_ENVIRONMENT,
    ConfigError,
    load_config,
    parse_overrides,
)
from hooks.core.observation import ObserveSettings, resync_after_seconds

DEFAULTS = ObserveSettings()


def observe_settings_from_env(env: dict[str, str]) -> ObserveSettings:
    return load_config(env).observe


def test_defaults_are_pure_mode() -> None:
    # The documented defaults are checked against docs/settings.md in tests/unit/test_docs.py.
    settings = observe_settings_from_env({})
    assert settings == DEFAULTS and not settings.enabled


def test_every_variable_is_read() -> None:
    env = {
        "OBOL_OBSERVE": "ON",
        "OBOL_PROBE_TIMEOUT_MS": "500",
        "OBOL_PROBE_TTL_SECONDS": "40",
        "OBOL_PROBE_INTERVAL_SECONDS": "20",
        "OBOL_PROBE_CONCURRENCY": "8",
        "OBOL_SYNC_PROBE_BUDGET_MS": "0",
        "OBOL_OBSERVE_FORGET_SECONDS": "900",
        "OBOL_OBSERVE_UPSTREAM_OVERRIDES": '{"http://vllm.llm.svc.cluster.local:8000/": "http://10.203.0.2:8000"}',
    }
    settings = observe_settings_from_env(env)
    assert settings == ObserveSettings(
        enabled=True,
        probe_timeout_ms=500,
        ttl_seconds=40,
        interval_seconds=20,
        concurrency=8,
        sync_budget_ms=0,
        forget_seconds=900,
        upstream_overrides={"http://vllm.llm.svc.cluster.local:8000": "http://10.203.0.2:8000"},
    )
    assert settings.probe_base("http://vllm.llm.svc.cluster.local:8000") == "http://10.203.0.2:8000"
    assert settings.probe_base("http://other.llm.svc.cluster.local:80") == (
        "http://other.llm.svc.cluster.local:80"
    )
    assert (settings.probe_timeout, settings.sync_budget) == (0.5, 0.0)


def test_empty_values_keep_defaults() -> None:
    assert observe_settings_from_env({t.variable: "" for t in OBSERVE_ENVIRONMENT}) == DEFAULTS


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
def test_bad_values_name_the_variable(variable: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        observe_settings_from_env({variable: value})
    paths = [problem.path for problem in caught.value.problems]
    expected = "OBOL_PROBE_TTL_SECONDS" if "exceed OBOL_PROBE_INTERVAL" in reason else variable
    assert paths == [expected]
    assert reason in str(caught.value)


def test_all_bad_variables_are_reported_together() -> None:
    with pytest.raises(ConfigError) as caught:
        observe_settings_from_env({"OBOL_OBSERVE": "1", "OBOL_PROBE_CONCURRENCY": "x"})
    assert [p.path for p in caught.value.problems] == ["OBOL_OBSERVE", "OBOL_PROBE_CONCURRENCY"]


def test_overrides_are_read_only_and_trailing_slashes_dropped() -> None:
    settings = ObserveSettings(upstream_overrides={"http://a:1": "http://b:2"})
    with pytest.raises(TypeError):
        settings.upstream_overrides["http://c:3"] = "http://d:4"  # type: ignore[index]
    assert parse_overrides('{"http://a:1/": "https://b:2/"}') == {"http://a:1": "https://b:2"}
    hash(settings)  # frozen and hashable despite the mapping


def test_the_table_sets_every_observe_setting() -> None:
    # docs/settings.md's table and its defaults are checked in tests/unit/test_docs.py.
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

"""The only module that reads the process environment: every ``OBOL_*`` variable, read once.

:func:`load_config` turns ``os.environ`` (or any mapping) into a :class:`ShellConfig`: the
core's :class:`~hooks.core.settings.Settings` (:data:`ENVIRONMENT`, plus the optional
asset-registry YAML file named by ``OBOL_ASSET_REGISTRY_FILE``), the observation layer's
:class:`~hooks.core.observation.ObserveSettings` (:data:`OBSERVE_ENVIRONMENT`; with observation
on, ``resyncAfterSeconds`` is lifted to the probe interval) and the shell's own settings
(:data:`SHELL_ENVIRONMENT` and the bearer token). Every table row is one parser; docs/settings.md
documents them (a test checks it lists each one with the default it really has).
An unset or blank variable keeps its default.

Bad values raise :class:`ConfigError` listing every variable that is wrong: a configuration
problem, never an offer's (that is :class:`~hooks.core.errors.SpecError`). This module must never
put a token's value into an error message or a log, and never reads anything after start-up.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from hooks.core.assets import BUILTIN_REGISTRY, AssetRegistry
from hooks.core.errors import FieldProblem, ProblemsError, SpecError
from hooks.core.observation import ObserveSettings, resync_after_seconds
from hooks.core.settings import (
    GATE_SELLER_PROXY,
    PAYMENT_GATES,
    SETTLEMENT_DEFERRED,
    SETTLEMENT_ON_VERIFY,
    SETTLEMENTS,
    VERIFIERS,
    Settings,
    split_base_url,
)
from hooks.core.user_yaml import MAX_BYTES, UserYamlError, parse_user_yaml

DEFAULT_BIND = "0.0.0.0:8080"
DEFAULT_BUSY_BIND = "0.0.0.0:8081"
DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024
LOG_LEVELS = ("debug", "info", "warning", "error")

ASSET_REGISTRY_FILE = "OBOL_ASSET_REGISTRY_FILE"
BIND = "OBOL_BIND"
BUSY_BIND = "OBOL_BUSY_BIND"
THREADS = "OBOL_THREADS"
HOOK_TOKEN = "OBOL_HOOK_TOKEN"
HOOK_TOKEN_FILE = "OBOL_HOOK_TOKEN_FILE"
PROBE_TTL_SECONDS: Final = "OBOL_PROBE_TTL_SECONDS"
PROBE_INTERVAL_SECONDS: Final = "OBOL_PROBE_INTERVAL_SECONDS"
OBSERVE_FORGET_SECONDS: Final = "OBOL_OBSERVE_FORGET_SECONDS"


class ConfigError(ProblemsError):
    """The configuration is wrong: one or more environment variables (or the files they name),
    each with the variable, the reason and, except for secrets, the value."""


# --- parsers: each takes the stripped, non-empty text and raises ValueError(reason) ----------


def _whole(low: int, high: int = 2**31 - 1) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text, 10)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return parse


def _one_of(choices: tuple[str, ...], *, fold_case: bool = False) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.lower() if fold_case else text
        if value not in choices:
            raise ValueError("must be one of " + ", ".join(choices))
        return value

    return parse


def _text(text: str) -> str:
    return text


def _header(text: str) -> str:
    if not re.fullmatch(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", text):
        raise ValueError("must be an HTTP header name")
    return text


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return text


def _host(text: str) -> str:
    if "/" in text or ":" in text or " " in text:
        raise ValueError("must be a bare host name (no scheme, port or path)")
    return text


def _base_url(text: str) -> str:
    split_base_url(text)
    return text


def _on_off(text: str) -> bool:
    if text.lower() not in ("on", "off"):
        raise ValueError("must be on or off")
    return text.lower() == "on"


def _gateway_url(text: str) -> str:
    if not re.fullmatch(r"^https?://[^/\s?#@]+/?$", text):
        raise ValueError("must be an http(s) base URL without a path")
    return text.rstrip("/")


def parse_overrides(text: str) -> dict[str, str]:
    """Parse ``OBOL_OBSERVE_UPSTREAM_OVERRIDES``: a JSON object of base URL -> probed base URL."""
    shape = "must be a JSON object of in-cluster base URL to probed base URL"
    try:
        loaded = json.loads(text)
    except ValueError:
        raise ValueError(shape) from None
    if not isinstance(loaded, dict):
        raise ValueError(shape)
    overrides: dict[str, str] = {}
    for key, value in loaded.items():
        for url in (key, value):
            if not isinstance(url, str) or not re.fullmatch(r"^https?://[^/\s?#]+/?$", url):
                raise ValueError(
                    f"every key and value must be an http(s) base URL without a path (got {url!r})"
                )
        overrides[key.rstrip("/")] = value.rstrip("/")
    return overrides


def _bind(text: str) -> str:
    if text.startswith("unix:"):
        if text == "unix:":
            raise ValueError("a unix socket needs a path")
        return text
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isascii() or not port.isdigit():
        raise ValueError("must be HOST:PORT (e.g. 0.0.0.0:8080) or unix:PATH")
    if not 1 <= int(port) <= 65535:
        raise ValueError("port must be between 1 and 65535")
    return text


@dataclass(frozen=True, slots=True)
class EnvSetting:
    """One environment variable: the settings field it sets and how its text is checked."""

    variable: str
    attribute: str
    parse: Callable[[str], Any]


# The core's settings (hooks.core.settings.Settings).
ENVIRONMENT: Final = (
    EnvSetting("OBOL_GATEWAY_NAME", "gateway_name", _text),
    EnvSetting("OBOL_GATEWAY_NAMESPACE", "gateway_namespace", _text),
    EnvSetting("OBOL_GATEWAY_LISTENER", "gateway_listener", _text),
    EnvSetting("OBOL_GATEWAY_REPLICAS", "gateway_replicas", _whole(1, 1000)),
    EnvSetting("OBOL_PUBLIC_BASE_URL", "public_base_url", _url),
    EnvSetting("OBOL_ADMISSION_KEY_HEADER", "admission_key_header", _header),
    EnvSetting("OBOL_PAYER_HEADER", "payer_header", _header),
    EnvSetting("OBOL_VERIFIER_URL", "verifier_url", _url),
    EnvSetting("OBOL_VERIFIER_MAX_RESPONSE_BYTES", "verifier_max_response_bytes", _whole(4096)),
    EnvSetting("OBOL_BUSY_HOST", "busy_host", _host),
    EnvSetting("OBOL_BUSY_PORT", "busy_port", _whole(1, 65535)),
    EnvSetting("OBOL_BUSY_JITTER_SECONDS", "busy_jitter_seconds", _whole(0, 60)),
    EnvSetting("OBOL_RESYNC_SECONDS", "resync_seconds", _whole(0, 86400)),
    EnvSetting("OBOL_PAYMENT_GATE", "payment_gate", _one_of(PAYMENT_GATES)),
    EnvSetting("OBOL_VERIFIER_SETTLEMENT", "verifier_settlement", _one_of(SETTLEMENTS)),
    EnvSetting("OBOL_VERIFIER_PROXY_URL", "verifier_proxy_url", _base_url),
    EnvSetting("OBOL_VERIFIER", "verifier", _one_of(VERIFIERS)),
)

# The observation layer (hooks.core.observation.ObserveSettings).
OBSERVE_ENVIRONMENT: Final = (
    EnvSetting("OBOL_OBSERVE", "enabled", _on_off),
    EnvSetting("OBOL_PROBE_TIMEOUT_MS", "probe_timeout_ms", _whole(10, 60_000)),
    EnvSetting(PROBE_TTL_SECONDS, "ttl_seconds", _whole(1, 86_400)),
    EnvSetting(PROBE_INTERVAL_SECONDS, "interval_seconds", _whole(1, 86_400)),
    EnvSetting("OBOL_PROBE_CONCURRENCY", "concurrency", _whole(1, 64)),
    EnvSetting("OBOL_SYNC_PROBE_BUDGET_MS", "sync_budget_ms", _whole(0, 2_000)),
    EnvSetting(OBSERVE_FORGET_SECONDS, "forget_seconds", _whole(1, 7 * 86_400)),
    EnvSetting("OBOL_OBSERVE_UPSTREAM_OVERRIDES", "upstream_overrides", parse_overrides),
    EnvSetting("OBOL_PROBE_GATEWAY_URL", "gateway_url", _gateway_url),
)

# The shell's own (ShellConfig); the token variables and the registry file are read below.
SHELL_ENVIRONMENT: Final = (
    EnvSetting(BIND, "bind", _bind),
    EnvSetting(BUSY_BIND, "busy_bind", _bind),
    EnvSetting(THREADS, "threads", _whole(1, 64)),
    EnvSetting("OBOL_MAX_REQUEST_BYTES", "max_request_bytes", _whole(1024, 1 << 30)),
    EnvSetting("OBOL_LOG_LEVEL", "log_level", _one_of(LOG_LEVELS, fold_case=True)),
)
FILE_VARIABLES: Final = (HOOK_TOKEN, HOOK_TOKEN_FILE, ASSET_REGISTRY_FILE)
# Variables earlier versions read and this one does not, with what replaced them. Still set on
# an upgraded Deployment, they change nothing; the servers say so at start instead of failing.
RETIRED_VARIABLES: Final = {
    "OBOL_WORKERS": f"the sync server runs one gunicorn worker; set {THREADS} for its threads",
}


def retired_variables(env: Mapping[str, str]) -> list[str]:
    """One warning per retired variable set in ``env``."""
    return [
        f"{variable} is no longer read: {instead}"
        for variable, instead in RETIRED_VARIABLES.items()
        if env.get(variable, "").strip()
    ]


def _read(
    env: Mapping[str, str], table: Iterable[EnvSetting], problems: list[FieldProblem]
) -> dict[str, Any]:
    # Gather every bad variable before failing, so one restart fixes them all.
    values: dict[str, Any] = {}
    for setting in table:
        text = env.get(setting.variable, "").strip()
        if text:
            try:
                values[setting.attribute] = setting.parse(text)
            except ValueError as exc:
                problems.append(FieldProblem(setting.variable, str(exc), text))
    return values


@dataclass(frozen=True, slots=True)
class ShellConfig:
    """Everything the HTTP shell and the CLI need, read once from the environment."""

    settings: Settings
    hook_token: str | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    bind: str = DEFAULT_BIND
    busy_bind: str = DEFAULT_BUSY_BIND
    threads: int = 4
    log_level: str = "info"
    observe: ObserveSettings = field(default_factory=ObserveSettings)


def load_config(env: Mapping[str, str] | None = None) -> ShellConfig:
    """Read the whole shell configuration; raise :class:`ConfigError` listing every bad variable."""
    env = os.environ if env is None else env
    problems: list[FieldProblem] = []
    settings = _settings(env, problems)
    token = None
    try:
        token = load_hook_token(env)
    except ConfigError as exc:
        problems.extend(exc.problems)
    shell = _read(env, SHELL_ENVIRONMENT, problems)
    observe = _observe_settings(env, problems)
    if problems:
        raise ConfigError(problems)
    # With observation on, status refreshes only on a sync: resync every 3 probe intervals when
    # OBOL_RESYNC_SECONDS is unset, and never more often than once per interval.
    resync = resync_after_seconds(settings.resync_seconds, observe)
    config = ShellConfig(replace(settings, resync_seconds=resync), token, observe=observe, **shell)
    sync_port, busy_port = bind_port(config.bind), bind_port(config.busy_bind)
    if config.bind == config.busy_bind or (sync_port is not None and sync_port == busy_port):
        # The two containers share the Pod's network: they cannot listen on one port.
        raise ConfigError.at(
            BUSY_BIND, f"must use another port than {BIND} ({config.bind})", config.busy_bind
        )
    return config


def load_settings() -> Settings:
    """The core's settings: ``OBOL_*`` variables plus the optional asset-registry file."""
    problems: list[FieldProblem] = []
    settings = _settings(os.environ, problems)
    if problems:
        raise ConfigError(problems)
    return settings


def _settings(env: Mapping[str, str], problems: list[FieldProblem]) -> Settings:
    values = _read(env, ENVIRONMENT, problems)
    if (
        values.get("payment_gate") == GATE_SELLER_PROXY
        and values.get("verifier_settlement") == SETTLEMENT_ON_VERIFY
    ):
        # The seller proxy settles after the upstream answered by contract; a verifier that
        # settles on verify would charge buyers the gateway or the upstream then rejects.
        problems.append(
            FieldProblem(
                "OBOL_VERIFIER_SETTLEMENT",
                f"must be {SETTLEMENT_DEFERRED} with OBOL_PAYMENT_GATE={GATE_SELLER_PROXY}"
                " (the seller proxy settles only after the upstream answered)",
                SETTLEMENT_ON_VERIFY,
            )
        )
    try:
        registry = load_asset_registry(env.get(ASSET_REGISTRY_FILE))
    except ConfigError as exc:
        problems.extend(exc.problems)
        registry = None
    if registry is not None:
        values["asset_registry"] = registry
    return Settings(**values)


def _observe_settings(env: Mapping[str, str], problems: list[FieldProblem]) -> ObserveSettings:
    before = len(problems)
    settings = ObserveSettings(**_read(env, OBSERVE_ENVIRONMENT, problems))
    if len(problems) > before:
        return settings
    ttl, interval = settings.ttl_seconds, settings.interval_seconds
    if ttl <= interval:
        problems.append(
            FieldProblem(
                PROBE_TTL_SECONDS,
                f"must exceed {PROBE_INTERVAL_SECONDS} ({interval}), or every observation"
                " goes stale before it is refreshed",
                ttl,
            )
        )
    if settings.forget_seconds <= ttl:
        problems.append(
            FieldProblem(
                OBSERVE_FORGET_SECONDS,
                f"must exceed {PROBE_TTL_SECONDS} ({ttl})",
                settings.forget_seconds,
            )
        )
    return settings


# obol-stack's CLI reads the seller's wallet here; ``obol sell`` uses it when --pay-to is not given.
X402_WALLET: Final = "X402_WALLET"


def default_wallet() -> str | None:
    """The payTo address ``obol sell`` defaults to (``X402_WALLET``, like obol-stack's CLI).

    Checked like any ``--pay-to`` value, by the model, with the message naming the variable.
    """
    return os.environ.get(X402_WALLET, "").strip() or None


def process_environment() -> dict[str, str]:
    """A copy of this process's environment (a command adds its flags to it)."""
    return dict(os.environ)


def load_asset_registry(path: str | None) -> AssetRegistry | None:
    """The built-in registry extended by the YAML file at ``path`` (None when no file is named)."""
    if not path:
        return None
    try:
        with open(path, "rb") as stream:
            documents = parse_user_yaml(stream.read(MAX_BYTES + 1), path)
    except OSError as exc:
        raise ConfigError.at(
            ASSET_REGISTRY_FILE, f"cannot read the file: {exc.strerror}", path
        ) from None
    except UserYamlError as exc:
        raise ConfigError.at(ASSET_REGISTRY_FILE, exc.detail, path) from None
    if len(documents) > 1:
        raise ConfigError.at(ASSET_REGISTRY_FILE, "must hold one YAML document", path)
    document = documents[0] if documents else None
    if document is None:
        return BUILTIN_REGISTRY
    if not isinstance(document, Mapping):
        raise ConfigError.at(ASSET_REGISTRY_FILE, "must hold a YAML mapping", path)
    try:
        return BUILTIN_REGISTRY.extend(document, source=path)
    except SpecError as problem:
        raise ConfigError(problem.problems) from None


def load_hook_token(env: Mapping[str, str]) -> str | None:
    """The bearer token from ``OBOL_HOOK_TOKEN`` or the file ``OBOL_HOOK_TOKEN_FILE`` names."""
    inline, file_name = env.get(HOOK_TOKEN), env.get(HOOK_TOKEN_FILE)
    if not inline and not file_name:
        return None
    if inline and file_name:
        raise ConfigError.at(HOOK_TOKEN_FILE, f"set either {HOOK_TOKEN} or {HOOK_TOKEN_FILE}")
    variable, token = HOOK_TOKEN, inline or ""
    if file_name:
        variable = HOOK_TOKEN_FILE
        try:
            token = Path(file_name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError.at(
                HOOK_TOKEN_FILE, f"cannot read the token file: {reason}", file_name
            ) from None
    token = token.strip()
    # Never echo the token: the problem carries no value.
    if not token:
        raise ConfigError.at(variable, "the token is empty")
    if not all("\x21" <= ch <= "\x7e" for ch in token):
        raise ConfigError.at(variable, "the token must be printable ASCII without spaces")
    return token


def bind_address(bind: str) -> tuple[str, int] | str:
    """A checked bind address as ``(host, port)`` (``HOST:PORT``, ``[v6]:PORT``, the brackets
    removed), or the socket path of ``unix:PATH``."""
    if bind.startswith("unix:"):
        return bind[len("unix:") :]
    host, _, port = bind.rpartition(":")
    return host.strip("[]"), int(port)


def bind_port(bind: str) -> int | None:
    """The TCP port of a bind address (None for a unix socket)."""
    address = bind_address(bind)
    return None if isinstance(address, str) else address[1]

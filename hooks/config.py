"""The only module that reads the process environment: every ``OBOL_*`` variable, read once.

:func:`load_config` turns ``os.environ`` (or any mapping) into a :class:`ShellConfig`: the
core's :class:`~hooks.core.settings.Settings` (:data:`ENVIRONMENT`, plus the optional
asset-registry YAML file named by ``OBOL_ASSET_REGISTRY_FILE``), the observation layer's
:class:`~hooks.observe.observer.ObserveSettings` (:data:`OBSERVE_ENVIRONMENT`; with observation
on, ``resyncAfterSeconds`` is lifted to the probe interval) and the shell's own settings
(:data:`SHELL_ENVIRONMENT`: listeners, workers, bearer token, size cap, log level). The three
tables are the README's settings tables; a test keeps them in step.

Bad values raise :class:`ConfigError` listing every variable that is wrong: a configuration
problem, never an offer's (that is :class:`~hooks.core.errors.SpecError`). This module must never
put a token's value into an error message or a log, and never reads anything after start-up.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TypeVar

from hooks.core.assets import BUILTIN_REGISTRY, AssetRegistry
from hooks.core.errors import FieldProblem, SpecError
from hooks.core.settings import (
    GATE_SELLER_PROXY,
    PAYMENT_GATES,
    SETTLEMENT_DEFERRED,
    SETTLEMENT_ON_VERIFY,
    SETTLEMENTS,
    Settings,
    split_base_url,
)
from hooks.core.user_yaml import MAX_BYTES, UserYamlError, parse_user_yaml
from hooks.observe.observer import ObserveSettings, resync_after_seconds

DEFAULT_BIND = "0.0.0.0:8080"
DEFAULT_BUSY_BIND = "0.0.0.0:8081"
DEFAULT_WORKERS = 2
DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024
DEFAULT_LOG_LEVEL = "info"
LOG_LEVELS = ("debug", "info", "warning", "error")

ASSET_REGISTRY_FILE = "OBOL_ASSET_REGISTRY_FILE"
BIND = "OBOL_BIND"
BUSY_BIND = "OBOL_BUSY_BIND"
WORKERS = "OBOL_WORKERS"
HOOK_TOKEN = "OBOL_HOOK_TOKEN"
HOOK_TOKEN_FILE = "OBOL_HOOK_TOKEN_FILE"
MAX_REQUEST_BYTES = "OBOL_MAX_REQUEST_BYTES"
LOG_LEVEL = "OBOL_LOG_LEVEL"

T = TypeVar("T")


class ConfigError(ValueError):
    """The configuration is wrong: one or more environment variables (or the files they name),
    each with the variable, the reason and, except for secrets, the value."""

    def __init__(self, problems: FieldProblem | Iterable[FieldProblem]) -> None:
        self.problems: tuple[FieldProblem, ...] = (
            (problems,) if isinstance(problems, FieldProblem) else tuple(problems)
        )
        super().__init__("; ".join(str(p) for p in self.problems))

    @classmethod
    def at(cls, variable: str, reason: str, value: Any = None) -> ConfigError:
        """Shorthand for a single problem."""
        return cls(FieldProblem(variable, reason, value))


# --- the core's settings (OBOL_GATEWAY_*, OBOL_VERIFIER_*, ...) -------------------------------

HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"


def settings_from_env(
    env: Mapping[str, str], *, asset_registry: AssetRegistry | None = None
) -> Settings:
    """Build settings from ``OBOL_*`` variables; raise :class:`ConfigError` on bad values."""
    values: dict[str, Any] = {}
    problems: list[FieldProblem] = []
    for spec in ENVIRONMENT:
        raw = env.get(spec.variable)
        if raw is None or raw == "":
            continue
        try:
            values[spec.attribute] = spec.parse(raw)
        except ValueError as exc:
            problems.append(FieldProblem(spec.variable, str(exc), raw))
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
    if problems:
        raise ConfigError(problems)
    if asset_registry is not None:
        values["asset_registry"] = asset_registry
    return Settings(**values)


@dataclass(frozen=True, slots=True)
class EnvSetting:
    """One documented environment variable."""

    variable: str
    attribute: str
    kind: str  # "str", "int", "header", "url", "host", "choice", "base-url"
    description: str
    minimum: int = 0
    maximum: int = 2**31 - 1
    choices: tuple[str, ...] = ()

    def parse(self, raw: str) -> str | int:
        """Parse and check one raw value."""
        text = raw.strip()
        if self.kind == "int":
            try:
                number = int(text, 10)
            except ValueError:
                raise ValueError("must be a whole number") from None
            if not self.minimum <= number <= self.maximum:
                raise ValueError(f"must be between {self.minimum} and {self.maximum}")
            return number
        if not text:
            raise ValueError("must not be empty")
        if self.kind == "choice" and text not in self.choices:
            raise ValueError("must be one of " + ", ".join(self.choices))
        if self.kind == "base-url":
            split_base_url(text)
        if self.kind == "header" and not re.match(HEADER_NAME, text):
            raise ValueError("must be an HTTP header name")
        if self.kind == "url" and not text.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        if self.kind == "host" and ("/" in text or ":" in text or " " in text):
            raise ValueError("must be a bare host name (no scheme, port or path)")
        return text


ENVIRONMENT: tuple[EnvSetting, ...] = (
    EnvSetting(
        "OBOL_GATEWAY_NAME", "gateway_name", "str", "Gateway that offer HTTPRoutes attach to."
    ),
    EnvSetting("OBOL_GATEWAY_NAMESPACE", "gateway_namespace", "str", "Namespace of that Gateway."),
    EnvSetting(
        "OBOL_GATEWAY_LISTENER",
        "gateway_listener",
        "str",
        "Listener (sectionName) of that Gateway; exactly one, so one in-flight counter.",
    ),
    EnvSetting(
        "OBOL_GATEWAY_REPLICAS",
        "gateway_replicas",
        "int",
        "Traefik replicas serving the listener; maxInFlight is divided by it.",
        1,
        1000,
    ),
    EnvSetting(
        "OBOL_PUBLIC_BASE_URL",
        "public_base_url",
        "url",
        "Public base URL written into status.endpoint (path only when unset).",
    ),
    EnvSetting(
        "OBOL_ADMISSION_KEY_HEADER",
        "admission_key_header",
        "header",
        "Header the route overwrites with <namespace>/<name> to key the global limit.",
    ),
    EnvSetting(
        "OBOL_PAYER_HEADER",
        "payer_header",
        "header",
        "Verified payer header the verifier returns; keys the per-buyer limit.",
    ),
    EnvSetting(
        "OBOL_VERIFIER_URL",
        "verifier_url",
        "url",
        "x402 verifier endpoint used by the forwardAuth Middleware.",
    ),
    EnvSetting(
        "OBOL_VERIFIER_MAX_RESPONSE_BYTES",
        "verifier_max_response_bytes",
        "int",
        "forwardAuth maxResponseBodySize; must exceed the largest 402 body.",
        4096,
    ),
    EnvSetting(
        "OBOL_BUSY_HOST",
        "busy_host",
        "host",
        "Host of this hook's busy responder, used by each offer's ExternalName Service.",
    ),
    EnvSetting("OBOL_BUSY_PORT", "busy_port", "int", "Port of the busy responder.", 1, 65535),
    EnvSetting(
        "OBOL_BUSY_JITTER_SECONDS",
        "busy_jitter_seconds",
        "int",
        "Random 0..N seconds the busy responder adds to Retry-After (0 = none).",
        0,
        60,
    ),
    EnvSetting(
        "OBOL_RESYNC_SECONDS",
        "resync_seconds",
        "int",
        "resyncAfterSeconds returned on every sync (0 = only on change).",
        0,
        86400,
    ),
    EnvSetting(
        "OBOL_PAYMENT_GATE",
        "payment_gate",
        "choice",
        "forward-auth: a forwardAuth Middleware asks the verifier, the backend is the upstream;"
        " seller-proxy: the backend is the verifier's proxy, which settles after the upstream"
        " answered (README, Verifier contract).",
        choices=PAYMENT_GATES,
    ),
    EnvSetting(
        "OBOL_VERIFIER_SETTLEMENT",
        "verifier_settlement",
        "choice",
        "forward-auth only: deferred (/verify only verifies) or on-verify (/verify settles as it"
        " accepts; the per-buyer limit is then not rendered, it would charge rejected buyers).",
        choices=SETTLEMENTS,
    ),
    EnvSetting(
        "OBOL_VERIFIER_PROXY_URL",
        "verifier_proxy_url",
        "base-url",
        "seller-proxy only: scheme://host:port of the verifier's proxy, reached through each"
        " offer's ExternalName Service.",
    ),
)


# --- the observation layer (OBOL_OBSERVE*, OBOL_PROBE_*) ----------------------------------------


@dataclass(frozen=True, slots=True)
class ObserveVariable:
    """One documented environment variable of the observation layer (the README's table)."""

    variable: str
    default: str
    description: str


OBSERVE: Final = "OBOL_OBSERVE"
PROBE_TIMEOUT_MS: Final = "OBOL_PROBE_TIMEOUT_MS"
PROBE_TTL_SECONDS: Final = "OBOL_PROBE_TTL_SECONDS"
PROBE_INTERVAL_SECONDS: Final = "OBOL_PROBE_INTERVAL_SECONDS"
PROBE_CONCURRENCY: Final = "OBOL_PROBE_CONCURRENCY"
SYNC_PROBE_BUDGET_MS: Final = "OBOL_SYNC_PROBE_BUDGET_MS"
OBSERVE_FORGET_SECONDS: Final = "OBOL_OBSERVE_FORGET_SECONDS"
OBSERVE_UPSTREAM_OVERRIDES: Final = "OBOL_OBSERVE_UPSTREAM_OVERRIDES"
PROBE_GATEWAY_URL: Final = "OBOL_PROBE_GATEWAY_URL"

# (variable, attribute, minimum, maximum) of the whole-number settings.
_INTEGERS: Final = (
    (PROBE_TIMEOUT_MS, "probe_timeout_ms", 10, 60_000),
    (PROBE_TTL_SECONDS, "ttl_seconds", 1, 86_400),
    (PROBE_INTERVAL_SECONDS, "interval_seconds", 1, 86_400),
    (PROBE_CONCURRENCY, "concurrency", 1, 64),
    (SYNC_PROBE_BUDGET_MS, "sync_budget_ms", 0, 2_000),
    (OBSERVE_FORGET_SECONDS, "forget_seconds", 1, 7 * 86_400),
)


def observe_settings_from_env(env: Mapping[str, str]) -> ObserveSettings:
    """Read the ``OBOL_OBSERVE*`` / ``OBOL_PROBE*`` variables; :class:`ConfigError` on bad ones.

    Every problem names its variable as the path. An unset or empty variable keeps its
    default.
    """
    values: dict[str, Any] = {}
    problems: list[FieldProblem] = []
    raw = env.get(OBSERVE, "").strip().lower()
    if raw in ("on", "off"):
        values["enabled"] = raw == "on"
    elif raw:
        problems.append(FieldProblem(OBSERVE, "must be on or off", env[OBSERVE]))
    for variable, attribute, low, high in _INTEGERS:
        text = env.get(variable, "").strip()
        if not text:
            continue
        try:
            number = int(text, 10)
        except ValueError:
            problems.append(FieldProblem(variable, "must be a whole number", env[variable]))
            continue
        if not low <= number <= high:
            problems.append(
                FieldProblem(variable, f"must be between {low} and {high}", env[variable])
            )
            continue
        values[attribute] = number
    text = env.get(OBSERVE_UPSTREAM_OVERRIDES, "").strip()
    if text:
        try:
            values["upstream_overrides"] = parse_overrides(text)
        except ValueError as exc:
            problems.append(FieldProblem(OBSERVE_UPSTREAM_OVERRIDES, str(exc), text))
    text = env.get(PROBE_GATEWAY_URL, "").strip()
    if text:
        if not re.match(r"^https?://[^/\s?#@]+/?$", text):
            problems.append(
                FieldProblem(PROBE_GATEWAY_URL, "must be an http(s) base URL without a path", text)
            )
        else:
            values["gateway_url"] = text.rstrip("/")
    if not problems:
        defaults = ObserveSettings()
        ttl = values.get("ttl_seconds", defaults.ttl_seconds)
        interval = values.get("interval_seconds", defaults.interval_seconds)
        forget = values.get("forget_seconds", defaults.forget_seconds)
        if ttl <= interval:
            problems.append(
                FieldProblem(
                    PROBE_TTL_SECONDS,
                    f"must exceed {PROBE_INTERVAL_SECONDS} ({interval}), or every observation"
                    " goes stale before it is refreshed",
                    ttl,
                )
            )
        if forget <= ttl:
            problems.append(
                FieldProblem(
                    OBSERVE_FORGET_SECONDS, f"must exceed {PROBE_TTL_SECONDS} ({ttl})", forget
                )
            )
    if problems:
        raise ConfigError(problems)
    return ObserveSettings(**values)


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
            if not isinstance(url, str) or not re.match(r"^https?://[^/\s?#]+/?$", url):
                raise ValueError(
                    f"every key and value must be an http(s) base URL without a path (got {url!r})"
                )
        overrides[key.rstrip("/")] = value.rstrip("/")
    return overrides


OBSERVE_ENVIRONMENT: tuple[ObserveVariable, ...] = (
    ObserveVariable(
        OBSERVE,
        "off",
        "on: probe upstreams and report health and in-flight in status; off: no probes at all,"
        " UpstreamHealthy and capacity state stay Unknown.",
    ),
    ObserveVariable(
        PROBE_TIMEOUT_MS,
        "800",
        "Timeout of each probe request (health and /metrics), in milliseconds.",
    ),
    ObserveVariable(
        PROBE_TTL_SECONDS,
        "15",
        "How long a probe result counts as fresh; older results are not reported (Unknown)."
        " Must exceed the interval.",
    ),
    ObserveVariable(
        PROBE_INTERVAL_SECONDS,
        "10",
        "How often each wanted upstream is re-probed in the background, per worker.",
    ),
    ObserveVariable(
        PROBE_CONCURRENCY,
        "4",
        "Probes running at once per worker (the probe thread pool size).",
    ),
    ObserveVariable(
        SYNC_PROBE_BUDGET_MS,
        "150",
        "Longest a sync waits for the first probe of an upstream it has never seen (0: never"
        " wait); the sync then answers without it.",
    ),
    ObserveVariable(
        OBSERVE_FORGET_SECONDS,
        "600",
        "Stop probing an upstream no sync asked about for this long. Must exceed the TTL and"
        " should exceed resyncAfterSeconds.",
    ),
    ObserveVariable(
        PROBE_GATEWAY_URL,
        "(none)",
        "With OBOL_OBSERVE=on: the gateway's base URL (e.g."
        " http://traefik.traefik.svc.cluster.local); each offer's public path is then probed"
        " unpaid through it, the no-free-ride probe (402 or 429 expected; 2xx: FreeRide, 404:"
        " RoutePublished=False, 5xx: GateUnavailable).",
    ),
    ObserveVariable(
        OBSERVE_UPSTREAM_OVERRIDES,
        "(none)",
        "JSON object mapping an in-cluster base URL to the URL actually probed, e.g."
        ' {"http://vllm.llm.svc.cluster.local:8000": "http://10.203.0.2:8000"}; for running'
        " the hook outside the cluster and for tests.",
    ),
)


# --- the shell (listeners, workers, token, size cap, log level, registry file) ------------------


@dataclass(frozen=True, slots=True)
class ShellVariable:
    """One documented shell-only environment variable (the README's settings table)."""

    variable: str
    default: str
    description: str


SHELL_ENVIRONMENT: tuple[ShellVariable, ...] = (
    ShellVariable(
        BIND, DEFAULT_BIND, "Listen address of the sync listener (POST /sync, /finalize)."
    ),
    ShellVariable(
        BUSY_BIND,
        DEFAULT_BUSY_BIND,
        "Listen address of the busy responder (GET /busy/...); the same value as"
        " OBOL_BIND serves everything on one listener.",
    ),
    ShellVariable(
        WORKERS, str(DEFAULT_WORKERS), "gunicorn worker processes (one request thread each)."
    ),
    ShellVariable(
        HOOK_TOKEN,
        "(none)",
        "Bearer token required on /sync and /finalize (unset: no authentication).",
    ),
    ShellVariable(
        HOOK_TOKEN_FILE,
        "(none)",
        "File holding that token (e.g. a mounted Secret); read once at start-up.",
    ),
    ShellVariable(
        MAX_REQUEST_BYTES,
        str(DEFAULT_MAX_REQUEST_BYTES),
        "Largest accepted sync request body; larger bodies get 413.",
    ),
    ShellVariable(
        LOG_LEVEL, DEFAULT_LOG_LEVEL, "debug, info, warning or error (debug adds routine syncs)."
    ),
    ShellVariable(
        ASSET_REGISTRY_FILE,
        "(none)",
        "YAML file adding networks and tokens to the built-in asset registry.",
    ),
)


@dataclass(frozen=True, slots=True)
class ShellConfig:
    """Everything the HTTP shell and the CLI need, read once from the environment."""

    settings: Settings
    hook_token: str | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    bind: str = DEFAULT_BIND
    busy_bind: str = DEFAULT_BUSY_BIND
    workers: int = DEFAULT_WORKERS
    log_level: str = DEFAULT_LOG_LEVEL
    observe: ObserveSettings = field(default_factory=ObserveSettings)

    @property
    def sync_port(self) -> int | None:
        """TCP port of the sync listener (None for a unix socket)."""
        return bind_port(self.bind)

    @property
    def busy_port(self) -> int | None:
        """TCP port of the busy listener (None for a unix socket)."""
        return bind_port(self.busy_bind)

    @property
    def binds(self) -> list[str]:
        """The addresses gunicorn listens on: one if both listeners share an address."""
        return [self.bind] if self.bind == self.busy_bind else [self.bind, self.busy_bind]


def load_config(env: Mapping[str, str] | None = None) -> ShellConfig:
    """Read the whole shell configuration; raise :class:`ConfigError` listing every bad variable."""
    env = os.environ if env is None else env
    problems: list[FieldProblem] = []
    settings = _collect(problems, lambda: load_settings(env), Settings())
    token = _collect(problems, lambda: load_hook_token(env), None)
    bind = _collect(problems, lambda: _bind(env, BIND, DEFAULT_BIND), DEFAULT_BIND)
    busy_bind = _collect(
        problems, lambda: _bind(env, BUSY_BIND, DEFAULT_BUSY_BIND), DEFAULT_BUSY_BIND
    )
    workers = _collect(
        problems, lambda: _int(env, WORKERS, DEFAULT_WORKERS, 1, 64), DEFAULT_WORKERS
    )
    max_bytes = _collect(
        problems,
        lambda: _int(env, MAX_REQUEST_BYTES, DEFAULT_MAX_REQUEST_BYTES, 1024, 1 << 30),
        DEFAULT_MAX_REQUEST_BYTES,
    )
    level = _collect(problems, lambda: _log_level(env), DEFAULT_LOG_LEVEL)
    observe = _collect(problems, lambda: observe_settings_from_env(env), ObserveSettings())
    if problems:
        raise ConfigError(problems)
    if (
        bind != busy_bind
        and bind_port(bind) is not None
        and bind_port(bind) == bind_port(busy_bind)
    ):
        # Routing is by port, so two addresses on one port could not be told apart.
        raise ConfigError.at(BUSY_BIND, f"uses the same port as {BIND} on another host", busy_bind)
    # With observation on, status refreshes only on a sync: resync every 3 probe intervals when
    # OBOL_RESYNC_SECONDS is unset, and never more often than once per interval.
    settings = replace(
        settings, resync_seconds=resync_after_seconds(settings.resync_seconds, observe)
    )
    return ShellConfig(
        settings,
        token,
        max_bytes,
        bind,
        busy_bind,
        workers,
        level,
        observe=observe,
    )


# obol-stack's CLI reads the seller's wallet here; ``obol sell`` uses it when --pay-to is not given.
X402_WALLET: Final = "X402_WALLET"


def default_wallet(env: Mapping[str, str] | None = None) -> str | None:
    """The payTo address ``obol sell`` defaults to (``X402_WALLET``, like obol-stack's CLI).

    Checked like any ``--pay-to`` value, by the model, with the message naming the variable.
    """
    env = os.environ if env is None else env
    return env.get(X402_WALLET, "").strip() or None


METRICS_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"


def metrics_directory() -> str | None:
    """Where prometheus_client keeps every worker's samples (``PROMETHEUS_MULTIPROC_DIR``)."""
    return os.environ.get(METRICS_DIR) or None


def provide_metrics_directory() -> tuple[str, bool]:
    """``PROMETHEUS_MULTIPROC_DIR``, set to a new private directory when unset (then True).

    Must run before anything imports prometheus_client, which picks its value store on import.
    """
    existing = metrics_directory()
    if existing is not None:
        return existing, False
    created = tempfile.mkdtemp(prefix="obol-hook-metrics-")
    os.environ[METRICS_DIR] = created
    return created, True


def process_environment() -> dict[str, str]:
    """A copy of this process's environment (for a child process the CLI starts)."""
    return dict(os.environ)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The core's settings: ``OBOL_*`` variables plus the optional asset-registry file."""
    env = os.environ if env is None else env
    return settings_from_env(env, asset_registry=load_asset_registry(env.get(ASSET_REGISTRY_FILE)))


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
    if inline and file_name:
        raise ConfigError.at(HOOK_TOKEN_FILE, f"set either {HOOK_TOKEN} or {HOOK_TOKEN_FILE}")
    if file_name:
        try:
            token = Path(file_name).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError.at(
                HOOK_TOKEN_FILE, f"cannot read the token file: {reason}", file_name
            ) from None
        return _checked_token(token, HOOK_TOKEN_FILE)
    if inline:
        return _checked_token(inline.strip(), HOOK_TOKEN)
    return None


def _checked_token(token: str, variable: str) -> str:
    # Never echo the token: the problem carries no value.
    if not token:
        raise ConfigError.at(variable, "the token is empty")
    if not all("\x21" <= ch <= "\x7e" for ch in token):
        raise ConfigError.at(variable, "the token must be printable ASCII without spaces")
    return token


def bind_port(bind: str) -> int | None:
    """The TCP port of a gunicorn bind address (``HOST:PORT``, ``[v6]:PORT``; None for unix:)."""
    if bind.startswith("unix:"):
        return None
    _, _, port = bind.rpartition(":")
    return int(port)


def _bind(env: Mapping[str, str], variable: str, default: str) -> str:
    raw = (env.get(variable) or "").strip()
    if not raw:
        return default
    if raw.startswith("unix:"):
        if len(raw) == len("unix:"):
            raise ConfigError.at(variable, "a unix socket needs a path", raw)
        return raw
    host, colon, port = raw.rpartition(":")
    if not colon or not host or not port.isascii() or not port.isdigit():
        raise ConfigError.at(variable, "must be HOST:PORT (e.g. 0.0.0.0:8080) or unix:PATH", raw)
    if not 1 <= int(port) <= 65535:
        raise ConfigError.at(variable, "port must be between 1 and 65535", raw)
    return raw


def _int(env: Mapping[str, str], variable: str, default: int, low: int, high: int) -> int:
    raw = (env.get(variable) or "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise ConfigError.at(variable, "must be a whole number", raw)
    value = int(raw)
    if not low <= value <= high:
        raise ConfigError.at(variable, f"must be between {low} and {high}", raw)
    return value


def _log_level(env: Mapping[str, str]) -> str:
    raw = (env.get(LOG_LEVEL) or "").strip().lower()
    if not raw:
        return DEFAULT_LOG_LEVEL
    if raw not in LOG_LEVELS:
        raise ConfigError.at(LOG_LEVEL, f"must be one of {', '.join(LOG_LEVELS)}", raw)
    return raw


def _collect(problems: list[FieldProblem], read: Callable[[], T], fallback: T) -> T:
    # Gather every bad variable before failing, so one restart fixes them all.
    try:
        return read()
    except ConfigError as exc:
        problems.extend(exc.problems)
        return fallback

"""The shell's configuration: everything the server and the CLI read from the process environment.

:func:`load_config` is the one place that turns ``os.environ`` (passed in as a mapping) into a
:class:`ShellConfig`: the core's :class:`~hooks.core.settings.Settings` (the ``OBOL_*`` variables of
:data:`hooks.core.settings.ENVIRONMENT`, plus the optional asset-registry YAML file named by
``OBOL_ASSET_REGISTRY_FILE``) and the shell-only settings listed in :data:`SHELL_ENVIRONMENT`
(listen addresses, worker count, bearer token, request size cap, log level), plus the
observation layer's :class:`~hooks.observe.observer.ObserveSettings` (``OBOL_OBSERVE``,
``OBOL_PROBE_*``),
which also lifts ``resyncAfterSeconds`` to the probe interval when observation is on.

Reading happens once, at start-up; a bad value raises :class:`~hooks.core.errors.SpecError` naming
the variable. This module must never put a token's value into an error message or a log, and
never reads anything after start-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from hooks.core.assets import BUILTIN_REGISTRY, AssetRegistry
from hooks.core.errors import FieldProblem, SpecError
from hooks.core.settings import Settings
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
    ShellVariable(WORKERS, str(DEFAULT_WORKERS), "gunicorn sync worker processes."),
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
    """Read the whole shell configuration; raise :class:`SpecError` listing every bad variable."""
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
    observe = _collect(problems, lambda: ObserveSettings.from_env(env), ObserveSettings())
    if problems:
        raise SpecError(problems)
    if (
        bind != busy_bind
        and bind_port(bind) is not None
        and bind_port(bind) == bind_port(busy_bind)
    ):
        # Routing is by port, so two addresses on one port could not be told apart.
        raise SpecError.at(BUSY_BIND, f"uses the same port as {BIND} on another host", busy_bind)
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


def load_settings(env: Mapping[str, str]) -> Settings:
    """The core's settings: ``OBOL_*`` variables plus the optional asset-registry file."""
    return Settings.from_env(env, asset_registry=load_asset_registry(env.get(ASSET_REGISTRY_FILE)))


def load_asset_registry(path: str | None) -> AssetRegistry | None:
    """The built-in registry extended by the YAML file at ``path`` (None when no file is named)."""
    if not path:
        return None
    try:
        with open(path, "rb") as stream:
            documents = parse_user_yaml(stream.read(MAX_BYTES + 1), path)
    except OSError as exc:
        raise SpecError.at(
            ASSET_REGISTRY_FILE, f"cannot read the file: {exc.strerror}", path
        ) from None
    except UserYamlError as exc:
        raise SpecError.at(ASSET_REGISTRY_FILE, exc.detail, path) from None
    if len(documents) > 1:
        raise SpecError.at(ASSET_REGISTRY_FILE, "must hold one YAML document", path)
    document = documents[0] if documents else None
    if document is None:
        return BUILTIN_REGISTRY
    if not isinstance(document, Mapping):
        raise SpecError.at(ASSET_REGISTRY_FILE, "must hold a YAML mapping", path)
    return BUILTIN_REGISTRY.extend(document, source=path)


def load_hook_token(env: Mapping[str, str]) -> str | None:
    """The bearer token from ``OBOL_HOOK_TOKEN`` or the file ``OBOL_HOOK_TOKEN_FILE`` names."""
    inline, file_name = env.get(HOOK_TOKEN), env.get(HOOK_TOKEN_FILE)
    if inline and file_name:
        raise SpecError.at(HOOK_TOKEN_FILE, f"set either {HOOK_TOKEN} or {HOOK_TOKEN_FILE}")
    if file_name:
        try:
            token = Path(file_name).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SpecError.at(
                HOOK_TOKEN_FILE, f"cannot read the token file: {reason}", file_name
            ) from None
        return _checked_token(token, HOOK_TOKEN_FILE)
    if inline:
        return _checked_token(inline.strip(), HOOK_TOKEN)
    return None


def _checked_token(token: str, variable: str) -> str:
    # Never echo the token: the problem carries no value.
    if not token:
        raise SpecError.at(variable, "the token is empty")
    if not all("\x21" <= ch <= "\x7e" for ch in token):
        raise SpecError.at(variable, "the token must be printable ASCII without spaces")
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
            raise SpecError.at(variable, "a unix socket needs a path", raw)
        return raw
    host, colon, port = raw.rpartition(":")
    if not colon or not host or not port.isascii() or not port.isdigit():
        raise SpecError.at(variable, "must be HOST:PORT (e.g. 0.0.0.0:8080) or unix:PATH", raw)
    if not 1 <= int(port) <= 65535:
        raise SpecError.at(variable, "port must be between 1 and 65535", raw)
    return raw


def _int(env: Mapping[str, str], variable: str, default: int, low: int, high: int) -> int:
    raw = (env.get(variable) or "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise SpecError.at(variable, "must be a whole number", raw)
    value = int(raw)
    if not low <= value <= high:
        raise SpecError.at(variable, f"must be between {low} and {high}", raw)
    return value


def _log_level(env: Mapping[str, str]) -> str:
    raw = (env.get(LOG_LEVEL) or "").strip().lower()
    if not raw:
        return DEFAULT_LOG_LEVEL
    if raw not in LOG_LEVELS:
        raise SpecError.at(LOG_LEVEL, f"must be one of {', '.join(LOG_LEVELS)}", raw)
    return raw


def _collect(problems: list[FieldProblem], read: Callable[[], T], fallback: T) -> T:
    # Gather every bad variable before failing, so one restart fixes them all.
    try:
        return read()
    except SpecError as exc:
        problems.extend(exc.problems)
        return fallback

"""What the observation layer and the core exchange: probe settings, targets and results.

The observer (:mod:`hooks.observe.observer`) probes what a valid offer's plan names (its
:class:`UpstreamTarget` and its public path through the gateway) and hands the core one
:class:`Observed`: a typed result for the upstream and one for the gateway probe. The
configuration reader (:mod:`hooks.config`) builds :class:`ObserveSettings` without importing the
observer.

Plain data, pure like the rest of the core: this module must never do I/O or read a clock.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ObserveSettings:
    """How (and whether) upstreams are probed; built once at start-up by
    :func:`hooks.config.load_config`.

    Durations are plain numbers so tests can use fractions of a second; the environment only
    accepts whole milliseconds and seconds.
    """

    enabled: bool = False
    probe_timeout_ms: float = 800
    ttl_seconds: float = 15
    interval_seconds: float = 10
    concurrency: int = 4
    sync_budget_ms: float = 150
    forget_seconds: float = 600
    upstream_overrides: Mapping[str, str] = field(default_factory=dict, hash=False)
    # The gateway's base URL for the no-free-ride probe ("" = no gate probes).
    gateway_url: str = ""

    def __post_init__(self) -> None:
        # A read-only copy: the dataclass is frozen, its mapping must be too.
        frozen = types.MappingProxyType(dict(self.upstream_overrides))
        object.__setattr__(self, "upstream_overrides", frozen)

    @property
    def probe_timeout(self) -> float:
        """The per-request probe timeout in seconds."""
        return self.probe_timeout_ms / 1000

    @property
    def sync_budget(self) -> float:
        """The longest a sync waits for a first probe, in seconds."""
        return self.sync_budget_ms / 1000

    def probe_base(self, base: str) -> str:
        """The URL actually probed for the in-cluster base URL ``base``."""
        return self.upstream_overrides.get(base, base)


def resync_after_seconds(configured: int, observe: ObserveSettings) -> int:
    """The ``resyncAfterSeconds`` the shell should use: status only refreshes on a sync.

    Observation off: ``configured`` unchanged. On: ``configured`` when set (but never below the
    probe interval: a faster resync reads the same cached value), else three intervals (30 s by
    default). Each sync costs Metacontroller one live GET of the parent (client-go QPS 5 by
    default), so with many offers raise ``OBOL_RESYNC_SECONDS`` (about offers / 5 seconds).
    """
    if not observe.enabled:
        return configured
    interval = math.ceil(observe.interval_seconds)
    if configured > 0:
        return max(configured, interval)
    return 3 * interval


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """The upstream a valid offer names, as the observer probes it."""

    url: str  # in-cluster base URL, also shown in status.upstream.url
    health_path: str
    wants_metrics: bool  # an inference offer with a capacity envelope


@dataclass(frozen=True, slots=True)
class Observation:
    """What the observer last learnt about an offer's upstream."""

    healthy: bool | None
    message: str
    http_status: int | None = None
    in_flight: int | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class GateObservation:
    """What an unpaid GET of the offer's public path through the gateway got.

    ``http_status`` is None when no answer came (the probe failed): that changes no condition.
    """

    http_status: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Observed:
    """Fresh observations for one offer; None where there is nothing fresh to report."""

    upstream: Observation | None = None
    gate: GateObservation | None = None


NOTHING_OBSERVED = Observed()

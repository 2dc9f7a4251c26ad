"""The observation layer: live upstream health and engine in-flight counts, kept out of the core.

The pure core (:func:`hooks.core.sync.sync`) takes ``observations: Mapping[str, Observation]``
keyed by the upstream's in-cluster base URL (:func:`hooks.core.names.upstream_url`) and turns
them into ``status.capacity`` and the ``UpstreamHealthy`` condition; this module produces that
mapping (docs/live-capacity.md has the behaviour and the cost formula).

- A sync asks :meth:`Observer.observations_for`; the observer derives the offer's upstream
  (base URL, health path, whether in-flight metrics are wanted), marks it wanted and answers
  from its cache: the latest probe result if younger than ``OBOL_PROBE_TTL_SECONDS``, else
  nothing, so the status says Unknown and never pretends.
- An upstream never seen before is probed at once and the sync waits for that first probe at
  most ``OBOL_SYNC_PROBE_BUDGET_MS``; a stale entry starts a probe but is not waited for.
- A daemon thread (:meth:`Observer.start`) re-probes every wanted upstream every
  ``OBOL_PROBE_INTERVAL_SECONDS`` on a pool of ``OBOL_PROBE_CONCURRENCY`` threads, and forgets
  upstreams no sync asked about for ``OBOL_OBSERVE_FORGET_SECONDS``.
- A probe is ``GET <base><healthPath>`` (2xx: healthy) and, for inference offers with a capacity
  envelope and a healthy upstream, ``GET <base>/metrics`` (:mod:`hooks.observe.engines`). With
  ``OBOL_PROBE_GATEWAY_URL`` set, each offer's public path is a target too, keyed by
  :func:`hooks.core.status.gate_probe_key`: one unpaid GET through the gateway.

Each gunicorn worker keeps its own cache, so two syncs of one offer answered by different
workers may report ``inFlight`` values sampled up to a TTL apart. Status churn stays bounded: a
value only changes when a probe completes, messages carry no timings or counters, and the
CompositeController ignores status changes.

This module must never be imported by the pure core, never block a sync longer than the budget,
never raise into the sync path (malformed input gives an empty mapping: the core reports the
spec problem), never copy an upstream's response body into the status (only the HTTP status
and parsed numbers), and never probe anything but the in-cluster URL derived from the spec (or
its configured override). Everything is bounded: the tracked upstreams (:data:`MAX_UPSTREAMS`),
the metrics body (:data:`MAX_METRICS_BYTES`), one probe in flight per upstream, and the threads
(one scheduler plus the pool).
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import os
import re
import threading
import time
import types
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from hooks.core.api import is_dns_label
from hooks.core.models import DEFAULT_UPSTREAM_PORT, HTTP_PATH
from hooks.core.names import offer_names, upstream_url
from hooks.core.request import SyncRequest
from hooks.core.status import Observation, gate_probe_key
from hooks.observe.engines import METRICS_PATH, EngineReading, parse_engine_metrics
from hooks.observe.fetch import MAX_LABEL, Fetch, FetchResult, describe_error, urllib_fetch

LOGGER: Final = logging.getLogger("obol.hook.observe")

MAX_UPSTREAMS: Final = 2048  # distinct upstreams one process tracks; more are not observed
MAX_METRICS_BYTES: Final = 2 * 1024 * 1024  # a larger /metrics body is not parsed at all
_PATH = re.compile(HTTP_PATH)


# --- settings ----------------------------------------------------------------------------------


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


# --- the upstream of a sync request (pure) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpstreamRef:
    """What a sync request asks to observe."""

    url: str  # in-cluster base URL: the key of the observations mapping
    health_path: str
    wants_metrics: bool  # an inference offer with a capacity envelope
    gate: bool = False  # the no-free-ride probe: url is gate_probe_key(path), health_path the path


def upstream_of(request: SyncRequest) -> UpstreamRef | None:
    """The upstream a sync request's spec names, or None when it names none or is finalizing.

    Never raises: the pure core reports spec problems; here a bad spec is just not observed.
    The checks mirror the CRD's (DNS-1123 labels, port range, health path pattern), so nothing
    else is ever probed.
    """
    spec = request.spec
    if request.finalizing or not isinstance(spec, Mapping):
        return None
    upstream = spec.get("upstream")
    if not isinstance(upstream, Mapping):
        return None
    service, other_namespace = upstream.get("service"), upstream.get("namespace")
    # The API server fills the CRD's port default; a spec seen without it means the same port.
    port = upstream.get("port", DEFAULT_UPSTREAM_PORT)
    health_path = upstream.get("healthPath", "/health")
    if not isinstance(service, str) or not _is_label(service):
        return None
    if other_namespace is not None and not _is_label(other_namespace):
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return None
    if (
        not isinstance(health_path, str)
        or len(health_path) > 1024
        or not _PATH.fullmatch(health_path)
    ):
        return None
    limits = spec.get("limits")
    # obol-stack's limits.maxInFlight is the same ceiling as capacity.maxInFlight.
    ceiling = isinstance(spec.get("capacity"), Mapping) or (
        isinstance(limits, Mapping) and bool(limits.get("maxInFlight"))
    )
    wants_metrics = spec.get("type") == "inference" and ceiling
    url = upstream_url(request.namespace, service, other_namespace, port)
    return UpstreamRef(url, health_path, wants_metrics)


def gate_of(request: SyncRequest) -> UpstreamRef | None:
    """The no-free-ride probe a sync request asks for: an unpaid GET of the offer's public path
    through the gateway. None when finalizing or the path is not a plain HTTP path."""
    spec = request.spec
    if request.finalizing or not isinstance(spec, Mapping):
        return None
    chosen = spec.get("path")
    path = offer_names(
        request.namespace, request.name, chosen if isinstance(chosen, str) else None
    ).path
    if len(path) > 1024 or not _PATH.fullmatch(path):
        return None
    return UpstreamRef(gate_probe_key(path), path, False, gate=True)


def _is_label(value: Any) -> bool:
    return isinstance(value, str) and is_dns_label(value)


# --- the observer (thread-safe, one per process) -----------------------------------------------


@dataclass(slots=True, eq=False)
class _Target:
    """One tracked upstream and its latest probe result."""

    url: str
    gate: bool
    health_path: str
    probe_base: str
    wanted_at: float
    next_due: float
    metrics_wanted_at: float | None = None
    observation: Observation | None = None
    observed_at: float = 0.0
    probing: bool = False
    first_done: threading.Event = field(default_factory=threading.Event)


_NONE: Final[Mapping[str, Observation]] = types.MappingProxyType({})


class Observer:
    """Probes upstreams off the sync path and answers syncs from a bounded, fresh-only cache.

    Thread-safe. Create one per process *after* the fork (gunicorn runs ``create_app`` in each
    worker, ``preload_app`` is off) and call :meth:`start` there; a fork after :meth:`start`
    is survived too (the child drops the parent's threads and starts its own on the next
    :meth:`start` or probe). Each worker keeps its own cache (see the module docstring).
    """

    def __init__(
        self,
        settings: ObserveSettings,
        *,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._fetch: Fetch = fetch if fetch is not None else urllib_fetch
        self._clock = clock
        self._targets: dict[tuple[str, str], _Target] = {}
        self._changed = threading.Condition(threading.Lock())
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._warned_full = False
        own = weakref.ref(self)

        def after_fork() -> None:
            observer = own()
            if observer is not None:
                observer._forget_threads()

        os.register_at_fork(after_in_child=after_fork)

    # -- the sync path --------------------------------------------------------------------------

    def observations_for(self, request: SyncRequest) -> Mapping[str, Observation]:
        """Fresh observations for the request's upstream, keyed by its in-cluster base URL.

        Returns an empty mapping when observation is off, the spec names no upstream, the upstream
        has no fresh result, or anything goes wrong. Waits only for the first probe of an
        upstream never seen before, and at most the sync budget. Never raises.
        """
        if not self.settings.enabled:
            return _NONE
        try:
            started = time.monotonic()
            refs = [upstream_of(request)]
            if self.settings.gateway_url:
                refs.append(gate_of(request))
            found: dict[str, Observation] = {}
            for ref in refs:
                if ref is not None:
                    found.update(self._observe(ref, started))
            return found or _NONE
        except Exception:
            LOGGER.exception("observation failed; answering the sync without it")
            return _NONE

    def _observe(self, ref: UpstreamRef, started: float) -> Mapping[str, Observation]:
        with self._changed:
            now = self._clock()
            key = (ref.url, ref.health_path)
            target = self._targets.get(key)
            if target is None:
                if len(self._targets) >= MAX_UPSTREAMS:
                    if not self._warned_full:  # once until there is room again, not per sync
                        self._warned_full = True
                        LOGGER.warning(
                            "not observing new upstreams: %d upstreams already tracked",
                            MAX_UPSTREAMS,
                            extra={"fields": {"upstream": ref.url}},
                        )
                    return _NONE
                self._warned_full = False
                base = self.settings.gateway_url if ref.gate else self.settings.probe_base(ref.url)
                target = _Target(ref.url, ref.gate, ref.health_path, base, now, now)
                self._targets[key] = target
            target.wanted_at = now
            if ref.wants_metrics:
                target.metrics_wanted_at = now
            fresh = self._fresh(target, now)
            if fresh is not None:
                return fresh
            if not target.probing:
                self._submit(target, now)
            if target.observation is not None:
                return _NONE  # stale: a probe is on its way, but only first probes are awaited
            first_done = target.first_done
        remaining = self.settings.sync_budget - (time.monotonic() - started)
        if remaining <= 0 or not first_done.wait(remaining):
            return _NONE
        with self._changed:
            return self._fresh(target, self._clock()) or _NONE

    def _fresh(self, target: _Target, now: float) -> Mapping[str, Observation] | None:
        if target.observation is None or now - target.observed_at > self.settings.ttl_seconds:
            return None
        return {target.url: target.observation}

    # -- probing --------------------------------------------------------------------------------

    def _submit(self, target: _Target, now: float) -> bool:
        # Called with the lock held. At most one probe per target is queued or running.
        metrics = (
            target.metrics_wanted_at is not None
            and now - target.metrics_wanted_at <= self.settings.forget_seconds
        )
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.settings.concurrency, thread_name_prefix="obol-probe"
            )
        try:
            future = self._pool.submit(self._run_probe, target, metrics)
        except RuntimeError:  # the pool is shutting down (stop() raced with this sync)
            return False
        target.probing = True
        target.next_due = now + self.settings.interval_seconds
        future.add_done_callback(lambda done: self._cancelled(target, done))
        return True

    def _cancelled(self, target: _Target, future: concurrent.futures.Future[None]) -> None:
        if future.cancelled():
            with self._changed:
                target.probing = False
                self._changed.notify_all()

    def _run_probe(self, target: _Target, metrics: bool) -> None:
        try:
            if target.gate:
                observation = self.probe_gate(target.probe_base, target.health_path)
            else:
                observation = self.probe(target.probe_base, target.health_path, metrics=metrics)
        except Exception:  # a bug here must not mark a healthy upstream unhealthy
            LOGGER.exception("probe failed", extra={"fields": {"upstream": target.url}})
            observation = Observation(None, "upstream probe failed inside the hook")
        with self._changed:
            before = target.observation
            target.observation = observation
            target.observed_at = self._clock()
            target.probing = False
            self._changed.notify_all()
        target.first_done.set()
        if before is None or before.healthy != observation.healthy:
            LOGGER.info(
                "%s %s",
                "gateway gate" if target.gate else "upstream health",
                _health_word(observation.healthy),
                extra={"fields": {"upstream": target.url, "detail": observation.message}},
            )

    def probe(self, base: str, health_path: str, *, metrics: bool) -> Observation:
        """Probe one upstream now (blocking, up to about four timeouts): health, then metrics."""
        label = f"GET {health_path[:MAX_LABEL]}"
        health = self._get(base + health_path, label)
        if isinstance(health, str):
            return Observation(False, health)
        answered = f"{label} answered {health.status}"
        if not 200 <= health.status < 300:
            return Observation(False, answered, http_status=health.status)
        if not metrics:
            return Observation(True, answered, http_status=health.status)
        reading, problem = self._read_metrics(base)
        if reading is None:
            return Observation(
                True, f"{answered}; in-flight not observed: {problem}", http_status=health.status
            )
        return Observation(
            True,
            answered,
            http_status=health.status,
            in_flight=reading.in_flight,
            source=reading.source,
        )

    def probe_gate(self, base: str, path: str) -> Observation:
        """The no-free-ride probe: one unpaid GET of the offer's public path through the gateway.

        402 (quoted) or 429 (saturated) is healthy; the core reads any other status (see
        :func:`hooks.core.status.gate_probe_conditions`). A transport failure carries no status,
        so it changes no condition.
        """
        label = f"unpaid GET {path[:MAX_LABEL]} through the gateway"
        answer = self._get(base + path, label)
        if isinstance(answer, str):
            return Observation(None, answer)
        return Observation(
            answer.status in (402, 429), f"{label} answered {answer.status}", answer.status
        )

    def _read_metrics(self, base: str) -> tuple[EngineReading | None, str]:
        label = f"GET {METRICS_PATH}"
        answer = self._get(base + METRICS_PATH, label, MAX_METRICS_BYTES)
        if isinstance(answer, str):
            return None, answer
        if not 200 <= answer.status < 300:
            return None, f"{label} answered {answer.status}"
        if answer.truncated:
            return None, f"{label} body exceeds {MAX_METRICS_BYTES // (1024 * 1024)} MiB"
        reading = parse_engine_metrics(answer.body.decode("utf-8", "replace"))
        if reading is None:
            return None, f"{label} has no vLLM or llama.cpp request gauges"
        return reading, ""

    def _get(self, url: str, label: str, max_bytes: int = 0) -> FetchResult | str:
        # The answer, or "<label> failed: <reason>" when there was none.
        try:
            return self._fetch(url, self.settings.probe_timeout, max_bytes)
        except Exception as error:
            return f"{label} failed: {describe_error(error, self.settings.probe_timeout_ms)}"

    # -- the background scheduler ---------------------------------------------------------------

    def refresh_due(self) -> int:
        """One scheduler round: forget unwanted upstreams, start due probes; returns how many."""
        started = 0
        with self._changed:
            now = self._clock()
            for key, target in list(self._targets.items()):
                if now - target.wanted_at > self.settings.forget_seconds:
                    del self._targets[key]
                elif not target.probing and now >= target.next_due:
                    started += self._submit(target, now)
        return started

    def start(self) -> None:
        """Start the background re-probing thread (idempotent; a no-op when observation is off)."""
        if not self.settings.enabled:
            return
        with self._changed:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = threading.Event()
            self._thread = threading.Thread(
                target=self._loop, args=(self._stopping,), name="obol-observe", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and the probe pool (idempotent); running probes end on their own.

        Queued probes are dropped. A later sync still probes an upstream it has never seen
        (on a new pool); call :meth:`start` again to resume background refreshes.
        """
        with self._changed:
            thread, self._thread = self._thread, None
            pool, self._pool = self._pool, None
            self._stopping.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    @property
    def running(self) -> bool:
        """True while the background thread runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _loop(self, stopping: threading.Event) -> None:
        # Wake often enough to honour the interval to within a quarter of it (at most 1 s).
        tick = max(0.01, min(1.0, self.settings.interval_seconds / 4))
        while not stopping.wait(tick):
            try:
                self.refresh_due()
            except Exception:
                LOGGER.exception("observation round failed")

    def _forget_threads(self) -> None:
        # In a forked child: the parent's threads do not exist here, and a lock may have been
        # held by one of them at the fork. Start clean, keeping the cached results.
        self._changed = threading.Condition(threading.Lock())
        self._pool = None
        self._thread = None
        self._stopping = threading.Event()
        for target in self._targets.values():
            target.probing = False
            if not target.first_done.is_set():
                target.first_done = threading.Event()

    # -- introspection (tests, diagnostics) -----------------------------------------------------

    def tracked(self) -> tuple[str, ...]:
        """The in-cluster base URLs currently tracked, sorted."""
        with self._changed:
            return tuple(sorted({target.url for target in self._targets.values()}))

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no probe is queued or running; False if that took longer than ``timeout``."""
        with self._changed:
            return self._changed.wait_for(
                lambda: not any(t.probing for t in self._targets.values()), timeout
            )


def _health_word(healthy: bool | None) -> str:
    return {True: "healthy", False: "unhealthy", None: "unknown"}[healthy]

"""The observation layer: live upstream health and engine in-flight counts, kept out of the core.

The core (:func:`hooks.core.sync.sync`) asks, once per sync of a valid offer, what was observed
of its plan; :meth:`Observer.observe` answers with one :class:`~hooks.core.observation.Observed`
(the upstream's result and the gateway probe's), which the core turns into ``status.capacity``
and the conditions (docs/live-capacity.md has the behaviour and the cost formula).

- The plan names the upstream (:attr:`hooks.core.plan.OfferPlan.upstream`: base URL, health
  path, whether in-flight metrics are wanted); the observer marks it wanted and answers from its
  cache: the latest probe result if younger than ``OBOL_PROBE_TTL_SECONDS``, else nothing, so
  the status says Unknown and never pretends.
- A target never seen before is probed at once and the sync waits for that first probe at
  most ``OBOL_SYNC_PROBE_BUDGET_MS``; a stale entry starts a probe but is not waited for.
- A daemon thread (:meth:`Observer.start`) re-probes every wanted target every
  ``OBOL_PROBE_INTERVAL_SECONDS`` on a pool of ``OBOL_PROBE_CONCURRENCY`` threads, and forgets
  targets no sync asked about for ``OBOL_OBSERVE_FORGET_SECONDS``.
- A probe is ``GET <base><healthPath>`` (2xx: healthy) and, for inference offers with a capacity
  envelope and a healthy upstream, ``GET <base>/metrics`` (:mod:`hooks.observe.engines`). With
  ``OBOL_PROBE_GATEWAY_URL`` set, each offer's public path is a target too: one unpaid GET
  through the gateway.

The sync server's one worker process keeps the cache (each replica of the hook its own, so two
replicas may report ``inFlight`` values sampled up to a TTL apart). Status churn stays bounded: a
value only changes when a probe completes, messages carry no timings or counters, and the
CompositeController ignores status changes.

This module must never be imported by the pure core, never block a sync longer than the budget,
never raise into the sync path (a failure gives no result: the status says Unknown), never copy
an upstream's response body into the status (only the HTTP status and parsed numbers), and never
probe anything but the in-cluster URL of a valid plan (or its configured override) and the
configured gateway. Everything is bounded: the tracked targets (:data:`MAX_UPSTREAMS`), the
metrics body (:data:`MAX_METRICS_BYTES`), one probe in flight per target, and the threads (one
scheduler plus the pool).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from hooks.core.observation import (
    NOTHING_OBSERVED,
    GateObservation,
    Observation,
    Observed,
    ObserveSettings,
)
from hooks.core.plan import OfferPlan
from hooks.observe.engines import METRICS_PATH, EngineReading, parse_engine_metrics
from hooks.observe.fetch import MAX_LABEL, Fetch, FetchResult, describe_error, urllib_fetch

LOGGER: Final = logging.getLogger("obol.hook.observe")

MAX_UPSTREAMS: Final = 2048  # distinct probe targets one process tracks; more are not observed
MAX_METRICS_BYTES: Final = 2 * 1024 * 1024  # a larger /metrics body is not parsed at all


# --- the observer (thread-safe, one per process) -----------------------------------------------


@dataclass(slots=True, eq=False)
class _Target:
    """One tracked probe target (an upstream, or an offer's path through the gateway) and its
    latest result."""

    gate: bool
    url: str  # the in-cluster base URL of an upstream; the gateway's base URL of a gate probe
    path: str  # the health path, or the offer's public path
    probe_base: str
    wanted_at: float
    next_due: float
    metrics_wanted_at: float | None = None
    result: Observation | GateObservation | None = None
    observed_at: float = 0.0
    probing: bool = False
    first_done: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        """The target in logs: the upstream's base URL, or the URL the gate probe gets."""
        return self.url + self.path if self.gate else self.url


class Observer:
    """Probes upstreams off the sync path and answers syncs from a bounded, fresh-only cache.

    Thread-safe. Call :meth:`start` in the process that serves (the sync server builds it before
    gunicorn forks and starts it in the worker); a fork after :meth:`start` is survived too (the
    child drops the parent's threads and starts its own on the next :meth:`start` or probe).
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
        self._targets: dict[tuple[bool, str, str], _Target] = {}
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

    def observe(self, plan: OfferPlan) -> Observed:
        """Fresh results for a valid offer's upstream and, with a gateway URL configured, for
        its public path through the gateway.

        A result is None when observation is off, nothing fresh is known, or anything goes
        wrong. Waits only for the first probe of a target never seen before, and at most the
        sync budget. Never raises.
        """
        if not self.settings.enabled:
            return NOTHING_OBSERVED
        try:
            started = time.monotonic()
            upstream = plan.upstream
            base = self.settings.probe_base(upstream.url)
            found = self._observe(
                (False, upstream.url, upstream.health_path), base, started, upstream.wants_metrics
            )
            gate = None
            if self.settings.gateway_url:
                key = (True, self.settings.gateway_url, plan.names.path)
                gate = self._observe(key, self.settings.gateway_url, started, False)
            return Observed(
                found if isinstance(found, Observation) else None,
                gate if isinstance(gate, GateObservation) else None,
            )
        except Exception:
            LOGGER.exception("observation failed; answering the sync without it")
            return NOTHING_OBSERVED

    def _observe(
        self, key: tuple[bool, str, str], base: str, started: float, metrics: bool
    ) -> Observation | GateObservation | None:
        with self._changed:
            now = self._clock()
            target = self._targets.get(key)
            if target is None:
                if len(self._targets) >= MAX_UPSTREAMS:
                    if not self._warned_full:  # once until there is room again, not per sync
                        self._warned_full = True
                        LOGGER.warning(
                            "not observing new upstreams: %d upstreams already tracked",
                            MAX_UPSTREAMS,
                            extra={"fields": {"upstream": key[1]}},
                        )
                    return None
                self._warned_full = False
                target = _Target(*key, base, now, now)
                self._targets[key] = target
            target.wanted_at = now
            if metrics:
                target.metrics_wanted_at = now
            fresh = self._fresh(target, now)
            if fresh is not None:
                return fresh
            if not target.probing:
                self._submit(target, now)
            if target.result is not None:
                return None  # stale: a probe is on its way, but only first probes are awaited
            first_done = target.first_done
        remaining = self.settings.sync_budget - (time.monotonic() - started)
        if remaining <= 0 or not first_done.wait(remaining):
            return None
        with self._changed:
            return self._fresh(target, self._clock())

    def _fresh(self, target: _Target, now: float) -> Observation | GateObservation | None:
        if now - target.observed_at > self.settings.ttl_seconds:
            return None
        return target.result

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
        result: Observation | GateObservation
        try:
            if target.gate:
                result = self.probe_gate(target.probe_base, target.path)
            else:
                result = self.probe(target.probe_base, target.path, metrics=metrics)
        except Exception:  # a bug here must not mark a healthy upstream unhealthy
            LOGGER.exception("probe failed", extra={"fields": {"upstream": target.name}})
            failed = "upstream probe failed inside the hook"
            result = GateObservation(None, failed) if target.gate else Observation(None, failed)
        with self._changed:
            before = target.result
            target.result = result
            target.observed_at = self._clock()
            target.probing = False
            self._changed.notify_all()
        target.first_done.set()
        if before is None or _health(before) != _health(result):
            LOGGER.info(
                "%s %s",
                "gateway gate" if target.gate else "upstream health",
                {True: "healthy", False: "unhealthy", None: "unknown"}[_health(result)],
                extra={"fields": {"upstream": target.name, "detail": result.message}},
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

    def probe_gate(self, base: str, path: str) -> GateObservation:
        """The no-free-ride probe: one unpaid GET of the offer's public path through the gateway.

        The core reads the status (see :func:`hooks.core.status.gate_probe_conditions`). A
        transport failure carries no status, so it changes no condition.
        """
        label = f"unpaid GET {path[:MAX_LABEL]} through the gateway"
        answer = self._get(base + path, label)
        if isinstance(answer, str):
            return GateObservation(None, answer)
        return GateObservation(answer.status, f"{label} answered {answer.status}")

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
        """The upstreams' in-cluster base URLs and the gateway probes' URLs tracked, sorted."""
        with self._changed:
            return tuple(sorted({target.name for target in self._targets.values()}))

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no probe is queued or running; False if that took longer than ``timeout``."""
        with self._changed:
            return self._changed.wait_for(
                lambda: not any(t.probing for t in self._targets.values()), timeout
            )


def _health(result: Observation | GateObservation) -> bool | None:
    # A gate is healthy when it quotes (402) or refuses a saturated offer (429).
    if isinstance(result, Observation):
        return result.healthy
    return None if result.http_status is None else result.http_status in (402, 429)

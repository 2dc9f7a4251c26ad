"""Prometheus metrics of the two servers, each in its own process and its own registry.

The sync container (gunicorn, one worker process with several threads) and the busy container
(uvicorn, one process) each count in memory and answer their own ``/metrics``: one process per
server means no multiprocess directory and no merging, and a scrape sees the whole server.

Metrics of the sync server (:class:`SyncMetrics`):

* ``obol_hook_sync_requests_total{outcome}``: sync/finalize requests by outcome (ok,
  invalid_spec, bad_request, error, unauthorized).
* ``obol_hook_sync_duration_seconds``: time to parse, sync and serialise one request.
* ``obol_hook_sync_children_total``: children returned in 200 answers.

Metrics of the busy responder (:class:`BusyMetrics`):

* ``obol_hook_busy_responses_total{namespace}``: 429 bodies served, by offer namespace (never by
  offer name, and at most :data:`MAX_BUSY_NAMESPACES` distinct values, so cardinality stays
  bounded whatever reaches the busy port).
* ``obol_hook_busy_missing_payer_total{namespace}``: per-buyer 429s whose request carried no
  payer header: the verifier does not send it, so every buyer of the offer shares one per-buyer
  bucket. Should stay 0; alert on any increase.

Both: ``obol_hook_build_info{version}``, always 1.

Never labels by offer name, buyer, path or anything a client controls without a bound.
"""

from __future__ import annotations

from importlib import metadata
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from hooks.core.api import is_dns_label

OUTCOMES: Final = ("ok", "invalid_spec", "bad_request", "error", "unauthorized")
MAX_BUSY_NAMESPACES: Final = 256
OTHER_NAMESPACE: Final = "_other"
INVALID_NAMESPACE: Final = "_invalid"
# Sub-millisecond to Metacontroller's 5 s hook timeout.
DURATION_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


def package_version() -> str:
    """The installed version of this project (the build_info label)."""
    try:
        return metadata.version("obol-serviceoffer-hook")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class _Metrics:
    """One server's registry, with the build info every server reports."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        info = Gauge(
            "obol_hook_build_info",
            "Always 1; the version label says which build is running.",
            ["version"],
            registry=self.registry,
        )
        info.labels(version=version).set(1)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class SyncMetrics(_Metrics):
    """The sync server's metrics."""

    def __init__(self, version: str) -> None:
        super().__init__(version)
        self._sync_requests = Counter(
            "obol_hook_sync_requests",
            "Sync and finalize requests answered, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self._sync_duration = Histogram(
            "obol_hook_sync_duration_seconds",
            "Time to parse, sync and serialise one sync request.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._children = Counter(
            "obol_hook_sync_children",
            "Children returned in successful sync answers.",
            registry=self.registry,
        )
        # Every outcome exists from the start (at 0), resolved once: labels() costs per call.
        self._sync_by_outcome = {
            outcome: self._sync_requests.labels(outcome=outcome) for outcome in OUTCOMES
        }

    def observe_sync(self, outcome: str, seconds: float | None, children: int = 0) -> None:
        """Count one sync request; ``seconds`` is None when the body was never processed."""
        counter = self._sync_by_outcome.get(outcome)
        (counter or self._sync_requests.labels(outcome=outcome)).inc()
        if seconds is not None:
            self._sync_duration.observe(seconds)
        if children:
            self._children.inc(children)


class BusyMetrics(_Metrics):
    """The busy responder's metrics."""

    def __init__(self, version: str) -> None:
        super().__init__(version)
        self._busy = Counter(
            "obol_hook_busy_responses",
            "429 bodies served by the busy responder, by offer namespace.",
            ["namespace"],
            registry=self.registry,
        )
        self._missing_payer = Counter(
            "obol_hook_busy_missing_payer",
            "Per-buyer 429s whose request had no payer header (all buyers share one bucket).",
            ["namespace"],
            registry=self.registry,
        )
        self._busy_namespaces: set[str] = set()

    def observe_busy(self, namespace: str) -> None:
        """Count one 429 body served for an offer in ``namespace``."""
        self._busy.labels(namespace=self._namespace_label(namespace)).inc()

    def observe_missing_payer(self, namespace: str) -> None:
        """Count one per-buyer 429 that arrived without the payer header."""
        self._missing_payer.labels(namespace=self._namespace_label(namespace)).inc()

    def _namespace_label(self, namespace: str) -> str:
        if namespace in self._busy_namespaces:
            return namespace
        if not is_dns_label(namespace):
            return INVALID_NAMESPACE
        if len(self._busy_namespaces) >= MAX_BUSY_NAMESPACES:
            return OTHER_NAMESPACE
        self._busy_namespaces.add(namespace)
        return namespace

"""Reading in-flight counts from an inference engine's own ``/metrics`` (vLLM, llama.cpp).

Traefik has no per-route in-flight gauge, so the count is read where requests end. In-flight is
``vllm:num_requests_running + vllm:num_requests_waiting`` or ``llamacpp:requests_processing +
llamacpp:requests_deferred``, summed over every label set (several engines or models).

Parses the text it is given and nothing else (no I/O besides a debug log of what it drops). It
must never report an unknown count as a zero, and an optional gauge (KV-cache usage) must never
void the required ones.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

METRICS_PATH: Final = "/metrics"


@dataclass(frozen=True, slots=True)
class _Engine:
    name: str
    running: str
    waiting: str
    kv_cache: tuple[str, ...]


_ENGINES: Final = (
    _Engine(
        "vllm",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    ),
    _Engine(
        "llama.cpp",
        "llamacpp:requests_processing",
        "llamacpp:requests_deferred",
        ("llamacpp:kv_cache_usage_ratio",),
    ),
)
_REQUEST_GAUGES: Final = frozenset(name for e in _ENGINES for name in (e.running, e.waiting))
_SAMPLE_NAME = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)")
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineReading:
    """In-flight requests read from one engine's ``/metrics``."""

    engine: str  # "vllm" or "llama.cpp"
    running: float
    waiting: float
    kv_cache_usage: float | None = None  # 0..1, highest over label sets; not put in status

    @property
    def in_flight(self) -> int:
        """Requests the engine holds: running plus waiting (queued, deferred)."""
        return round(self.running + self.waiting)

    @property
    def source(self) -> str:
        """What ``status.capacity.source`` says, e.g. ``vllm /metrics``."""
        return f"{self.engine} {METRICS_PATH}"


def _relevant_lines(text: str, wanted: frozenset[str]) -> Iterable[str]:
    # Keep only the wanted families' HELP/TYPE and sample lines: vLLM's /metrics is mostly
    # histograms we do not need, and an unrelated malformed line must not hide the gauges we do
    # need.
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            parts = stripped.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE") and parts[2] in wanted:
                yield stripped
            continue
        match = _SAMPLE_NAME.match(stripped)
        if match and match.group(1) in wanted:
            yield stripped


def _samples(text: str, wanted: frozenset[str]) -> list[tuple[str, float]]:
    """(name, value) of every sample of the ``wanted`` families; raises on a malformed line."""
    families = text_string_to_metric_families("\n".join(_relevant_lines(text, wanted)) + "\n")
    return [
        (sample.name, float(sample.value))
        for family in families
        for sample in family.samples
        if sample.name in wanted
    ]


def _usable(value: float) -> bool:
    return math.isfinite(value) and value >= 0


def parse_engine_metrics(text: str) -> EngineReading | None:
    """Read vLLM or llama.cpp in-flight gauges from a Prometheus text exposition.

    Sums each request gauge over every label set (vLLM exposes one per engine and model).
    Returns None when neither engine's running *and* waiting gauges are present, when one of
    their values is negative or not finite, or when their lines do not parse: an unknown count is
    never a zero. The KV-cache gauge is optional: a value that is not finite, negative or
    malformed is dropped (logged at debug level) and never voids the request gauges.
    """
    sums: dict[str, float] = {}
    try:
        for name, value in _samples(text, _REQUEST_GAUGES):
            if not _usable(value):
                return None
            sums[name] = sums.get(name, 0.0) + value
    except Exception:  # the parser raises ValueError, IndexError, ... on malformed lines
        return None
    for engine in _ENGINES:
        if engine.running in sums and engine.waiting in sums:
            kv = _kv_cache_usage(text, engine)
            return EngineReading(engine.name, sums[engine.running], sums[engine.waiting], kv)
    return None


def _kv_cache_usage(text: str, engine: _Engine) -> float | None:
    """The highest usable KV-cache usage over label sets, or None (what is dropped is logged)."""
    try:
        samples = _samples(text, frozenset(engine.kv_cache))
    except Exception:  # malformed optional lines: the reading goes on without them
        _log.debug("%s /metrics: KV-cache lines do not parse; dropped", engine.name)
        return None
    highest: dict[str, float] = {}
    for name, value in samples:
        if _usable(value):
            highest[name] = max(highest.get(name, 0.0), value)
        else:
            _log.debug("%s /metrics: %s %r is not usable; dropped", engine.name, name, value)
    return next((highest[name] for name in engine.kv_cache if name in highest), None)

"""Reading in-flight counts from an inference engine's own ``/metrics`` (vLLM, llama.cpp).

Traefik has no per-route in-flight gauge, so the count is read where requests end. In-flight is
``vllm:num_requests_running + vllm:num_requests_waiting`` or ``llamacpp:requests_processing +
llamacpp:requests_deferred``, summed over every label set (several engines or models).

Pure: parses the text it is given. It must never report an unknown count as a zero.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

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
_WANTED_NAMES: Final = frozenset(
    name for e in _ENGINES for name in (e.running, e.waiting, *e.kv_cache)
)
_SAMPLE_NAME = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)")


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


def _relevant_lines(text: str) -> Iterable[str]:
    # Keep only our families' HELP/TYPE and sample lines: vLLM's /metrics is mostly histograms
    # we do not need, and an unrelated malformed line must not hide the gauges we do need.
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            parts = stripped.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE") and parts[2] in _WANTED_NAMES:
                yield stripped
            continue
        match = _SAMPLE_NAME.match(stripped)
        if match and match.group(1) in _WANTED_NAMES:
            yield stripped


def parse_engine_metrics(text: str) -> EngineReading | None:
    """Read vLLM or llama.cpp in-flight gauges from a Prometheus text exposition.

    Sums each gauge over every label set (vLLM exposes one per engine and model). Returns None
    when neither engine's running *and* waiting gauges are present, when a value is negative or
    not finite, or when the relevant lines do not parse: an unknown count is never a zero.
    """
    sums: dict[str, float] = {}
    highest: dict[str, float] = {}
    try:
        # Imported here, not at module level: the gunicorn master imports this module (through
        # hooks.config) and prometheus_client picks its multiprocess store on first import.
        from prometheus_client.parser import text_string_to_metric_families

        families = text_string_to_metric_families("\n".join(_relevant_lines(text)) + "\n")
        for family in families:
            for sample in family.samples:
                value = float(sample.value)
                if sample.name not in _WANTED_NAMES:
                    continue
                if not math.isfinite(value) or value < 0:
                    return None
                sums[sample.name] = sums.get(sample.name, 0.0) + value
                highest[sample.name] = max(highest.get(sample.name, 0.0), value)
    except Exception:  # the parser raises ValueError, IndexError, ... on malformed lines
        return None
    for engine in _ENGINES:
        if engine.running in sums and engine.waiting in sums:
            kv = next((highest[name] for name in engine.kv_cache if name in highest), None)
            return EngineReading(engine.name, sums[engine.running], sums[engine.waiting], kv)
    return None

"""In-process cost of the pure core: ``sync()`` per offer, without JSON and without HTTP.

Method: the request is parsed once; then ``sync(request, Settings())`` is called ``iterations``
times after a warm-up, each call timed on its own with ``time.perf_counter_ns`` (about 60 ns of
timer overhead, under 0.2 % of a call), and the median and p99 of the per-call times are
reported. The garbage collector stays on, as in the server, so p99 includes its pauses.

Cases:

* ``small``: ``examples/http-weather-api.yaml`` as a new offer (no observed children).
* ``full``: fixture 02, a full-envelope offer with its 8 existing children carrying server-set
  fields (managedFields, ownerReferences, last-applied annotations; about 20 KB compact).
* ``full_wire``: the same request through :func:`hooks.core.sync.sync_for_wire`, the core call of
  ``POST /sync``; after the warm-up its offer plan comes from the memo, as for every request
  whose spec was seen before.
* ``full_http_path``: the same body as bytes through :func:`hooks.server.app.handle_sync_body`, the
  exact code of ``POST /sync`` (orjson parse + sync + the shell's guard + orjson dump with
  sorted keys), for context against the baseline's 67 µs parse+sync+dump; the plan memo hits.
* ``full_http_path_new_spec``: the same, cycling through 4,096 copies that differ in
  ``spec.upstream.port`` (a spec the worker has not seen lately, as in a storm of more distinct
  offers than the memo holds: planned afresh, never remembered).

``profile_sync()`` prints where the ``full`` case spends its time (cProfile, own time per
function, restricted to ``hooks/``).
"""

from __future__ import annotations

import cProfile
import io
import itertools
import pstats
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from hooks.cli.hook import render_request
from hooks.core.settings import Settings
from hooks.core.sync import sync, sync_for_wire
from hooks.server.app import handle_sync_body

ROOT = Path(__file__).resolve().parents[2]
FULL_FIXTURE = ROOT / "tests/fixtures/sync/02-full-envelope-existing-children.json"
SMALL_EXAMPLE = ROOT / "examples/http-weather-api.yaml"


@dataclass(frozen=True)
class Timing:
    """Per-call timings of one case, in microseconds."""

    case: str
    iterations: int
    median_us: float
    p99_us: float
    mean_us: float
    min_us: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def full_request() -> dict[str, Any]:
    """Fixture 02 as Metacontroller would send it (parsed)."""
    loaded = orjson.loads(FULL_FIXTURE.read_bytes())
    assert isinstance(loaded, dict)
    return loaded


def full_body() -> bytes:
    """Fixture 02 as compact JSON bytes, the way Go's encoding/json sends it."""
    return orjson.dumps(full_request())


def new_spec_bodies(count: int = 4096) -> list[bytes]:
    """``count`` copies of fixture 02's body, each with its own ``spec.upstream.port``."""
    request, bodies = full_request(), []
    for index in range(count):
        request["parent"]["spec"]["upstream"]["port"] = 10_000 + index
        bodies.append(orjson.dumps(request))
    return bodies


def small_request() -> dict[str, Any]:
    """The weather example as a new offer (a sync request with no observed children)."""
    offer = yaml.safe_load(SMALL_EXAMPLE.read_text())
    return render_request(offer)


def time_calls(case: str, call: Callable[[], object], iterations: int) -> Timing:
    """Time ``call`` ``iterations`` times, one timer pair per call, after a warm-up."""
    for _ in range(max(200, iterations // 10)):
        call()
    clock = time.perf_counter_ns
    samples = [0] * iterations
    for index in range(iterations):
        started = clock()
        call()
        samples[index] = clock() - started
    samples.sort()
    p99 = samples[min(iterations - 1, int(iterations * 0.99))]
    return Timing(
        case,
        iterations,
        statistics.median(samples) / 1000,
        p99 / 1000,
        statistics.fmean(samples) / 1000,
        samples[0] / 1000,
    )


def run(iterations: int) -> dict[str, Timing]:
    """Every case above."""
    settings = Settings()
    small, full, body = small_request(), full_request(), full_body()
    answer = handle_sync_body(body, settings)
    if answer.status != 200 or answer.children == 0:
        raise RuntimeError(f"fixture 02 does not give children: {answer.status} {answer.detail}")
    distinct = itertools.cycle(new_spec_bodies())

    def new_spec() -> object:
        return handle_sync_body(next(distinct), settings)

    return {
        # The machine's speed, in the unit the baseline measured it in (perf-baseline.md 3a).
        "orjson_loads": time_calls("orjson_loads", lambda: orjson.loads(body), iterations),
        "small": time_calls("small", lambda: sync(small, settings), iterations),
        "full": time_calls("full", lambda: sync(full, settings), iterations),
        "full_wire": time_calls("full_wire", lambda: sync_for_wire(full, settings), iterations),
        "full_http_path": time_calls(
            "full_http_path", lambda: handle_sync_body(body, settings), iterations
        ),
        "full_http_path_new_spec": time_calls("full_http_path_new_spec", new_spec, iterations),
    }


def profile_sync(iterations: int = 20000, top: int = 25) -> str:
    """cProfile of ``sync(fixture 02)``: the ``top`` functions of ``hooks/`` by own time."""
    settings, request = Settings(), full_request()
    for _ in range(1000):
        sync(request, settings)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(iterations):
        sync(request, settings)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(r"hooks/", top)
    return out.getvalue()

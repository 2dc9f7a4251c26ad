"""In-process cost of the pure core: ``sync()`` of a spec it has never seen, without HTTP.

Method: the requests are parsed before timing; then ``sync(request, Settings())`` is called
``iterations`` times after a warm-up, each call timed on its own with ``time.perf_counter_ns``
(about 60 ns of timer overhead), and the median and p99 of the per-call times are reported. The
garbage collector stays on, as in the server, so p99 includes its pauses.

Cases:

* ``orjson_loads``: ``orjson.loads`` of fixture 02's body, the machine-speed anchor (the
  baseline measured 26.6 µs for its 19.7 KB request on its machine).
* ``full_new_spec``: fixture 02 (a full-envelope offer with its 8 existing children carrying
  server-set fields, about 20 KB compact), cycling through :data:`DISTINCT_SPECS` copies that
  differ in ``spec.upstream.port``: every call is a spec the process has not just seen (the core
  keeps nothing between calls, and the cycle would defeat a cache if one came back).
* ``full_http_path_new_spec``: the same bodies as bytes through the server's body handler
  (:func:`hooks.server.app.handle_sync_body`: orjson parse, sync, the shell's checks, orjson dump
  with sorted keys), for context against the baseline's 67 µs parse + sync + dump.

``profile_sync()`` prints where the ``full_new_spec`` case spends its time (cProfile, own time
per function, restricted to ``hooks/``).
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

from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from hooks.server.app import handle_sync_body

ROOT = Path(__file__).resolve().parents[2]
FULL_FIXTURE = ROOT / "tests/fixtures/sync/02-full-envelope-existing-children.json"
DISTINCT_SPECS = 512  # parsed copies kept in memory (about 100 KB each)


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


def new_spec_bodies(count: int) -> list[bytes]:
    """``count`` copies of fixture 02's body, each with its own ``spec.upstream.port``."""
    request, bodies = full_request(), []
    for index in range(count):
        request["parent"]["spec"]["upstream"]["port"] = 10_000 + index
        bodies.append(orjson.dumps(request))
    return bodies


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
    bodies = new_spec_bodies(DISTINCT_SPECS)
    answer = handle_sync_body(bodies[0], settings)
    if answer.status != 200 or answer.child_count == 0:
        raise RuntimeError(f"fixture 02 does not give children: {answer.status} {answer.detail}")
    requests = itertools.cycle([orjson.loads(body) for body in bodies])
    raw = itertools.cycle(bodies)
    return {
        "orjson_loads": time_calls("orjson_loads", lambda: orjson.loads(bodies[0]), iterations),
        "full_new_spec": time_calls(
            "full_new_spec", lambda: sync(parse_request(next(requests)), settings), iterations
        ),
        "full_http_path_new_spec": time_calls(
            "full_http_path_new_spec", lambda: handle_sync_body(next(raw), settings), iterations
        ),
    }


def profile_sync(iterations: int = 20000, top: int = 25) -> str:
    """cProfile of ``sync()`` over fixture 02's distinct specs: the ``top`` functions by own
    time, and those of ``hooks/`` by cumulative time."""
    settings = Settings()
    requests = itertools.cycle([orjson.loads(body) for body in new_spec_bodies(DISTINCT_SPECS)])
    for _ in range(1000):
        sync(parse_request(next(requests)), settings)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(iterations):
        sync(parse_request(next(requests)), settings)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(r"hooks/", top)
    return out.getvalue()

"""Benchmarks of the sync hook, side by side with a bare ceiling, in one run and one table.

    python tests/bench/run.py            # full: wrk 3 x 15 s per configuration (14-17 min)
    python tests/bench/run.py --quick    # 1 x 3 s per configuration (about 2 min)
    python tests/bench/run.py --json results.json --markdown results.md
    python tests/bench/run.py --profile  # where sync() and one POST /sync spend their time
    python tests/bench/variants.py       # what the log line and the answer cache cost over HTTP

What is measured (method of shared/reference/perf-baseline.md: same machine, wrk closed loop,
``--timeout 10s``, 3 runs per configuration and the median of each metric):

1. The pure core in-process (:mod:`micro`): ``sync()`` per call, median and p99, for a small new
   offer and for fixture 02 (full envelope, 8 existing children with server-set fields); plus
   parse + sync + dump through ``handle_sync_body`` and one whole WSGI call of each app
   (:mod:`wsgi_cost`) for context. First of all ``orjson.loads`` of fixture 02, against the
   baseline's figure for its request: how much slower or faster this machine is than the one
   the issue's µs targets were set on (a µs target missed here is also judged at that speed).
2. ``POST /sync`` through the real server started like production (``obol hook serve``, default
   workers) and through the bare app on the same gunicorn config (:mod:`bare_app`), runs
   alternating between the two, at 16 and 64 connections. Twice: with fixture 02 as the one
   body every time (after the first request every worker answers it from its answer cache), and
   cycling through 4,096 copies of fixture 02 that differ only in ``resourceVersion`` (more than
   the 2 x 1,024 cache entries, so every request is a miss and runs the whole hook; the spec is
   the same, so each worker's offer-plan memo answers what the spec decides, as for an offer
   whose status or children changed). A third time, hook and bare only, cycling through 4,096
   copies that differ in ``spec.upstream.port``: every request also misses the plan memo (a
   spec the worker has not seen, as after a restart or in a storm of new offers).
3. The busy responder (``GET /busy/<ns>/<name>?retryAfter=2`` on the busy port) at 16 and 64
   connections, against the bare ceiling of item 2 (the target: a saturated offer's 429s must
   cost no more than the cheapest possible sync) and, like for like, against a bare GET that
   returns a fixed 429.
4. A resync storm (:mod:`storm`): 10,000 distinct offers' requests sent once each by wrk over 5
   and over 50 persistent connections (Metacontroller ``--workers 5`` / ``50``), every answer
   checked for status 200 and for its offer's endpoint; wall time first request to last answer.

The load generator is wrk on the same cores as the server (loopback only); a Python client
would compete with the server for CPU and for its own GIL. The server's CPU time per request is
read from ``/proc`` for the gunicorn master and its workers, which does not depend on how much
CPU wrk took. Other processes on the machine make every number worse: the CPU they use during
each run is measured (``/proc/stat`` minus server and wrk), a hook/bare pair is repeated (twice
at most) when it exceeded 20 % of a core, and the load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from tests.bench import loadgen, micro, storm  # noqa: E402
from tests.bench.loadgen import StormResult, Summary, WrkResult  # noqa: E402
from tests.bench.servers import Server, run_server  # noqa: E402

HERE = Path(__file__).resolve().parent
SYNC_MEDIAN_TARGET_US = 60.0
HTTP_RATIO_TARGET = 0.90
P99_TARGET_MS = 25.0
BUSY_RATIO_TARGET = 1.0
STORM_TARGET_S = 5.0
STORM_OFFERS = 10_000
CACHE_MISS_VARIANTS = 4096
CONNECTIONS = (16, 64)
NOISY_PCT = 20.0  # CPU % of one core used by other processes during a run pair
RETRIES = 2
REPEATED = [0]  # noisy pairs measured again (a counter for the report)
STORM_CONNECTIONS = (5, 50)
BUSY_PATH = "/busy/llm-sellers/qwen36-fast?retryAfter=2"
BASELINE = {  # shared/reference/perf-baseline.md, 2-vCPU AMD EPYC VM, stand-in hook
    "parse_sync_dump_us": 66.9,
    "orjson_loads_us": 26.6,  # orjson.loads of its 19.7 KB request: the machine-speed anchor
    "bare_rps": {16: 5055, 64: 5039},
    "standin_rps": {16: 3538, 64: 3777},
    "bare_cpu_us": 313,
    "standin_cpu_us": 439,
}


@dataclass(frozen=True)
class Plan:
    """How long and how often to measure."""

    iterations: int
    runs: int
    seconds: float
    warmup_seconds: float
    storm_runs: int


FULL = Plan(iterations=20_000, runs=3, seconds=15, warmup_seconds=3, storm_runs=3)
QUICK = Plan(iterations=3_000, runs=1, seconds=3, warmup_seconds=1, storm_runs=1)


@dataclass
class Row:
    """One line of the table."""

    measurement: str
    result: str
    target: str
    ratio: float | None
    verdict: str  # ok | miss | info

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


# ---------------------------------------------------------------- machine


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def _wrk_version() -> str:
    completed = subprocess.run(
        [loadgen.require_wrk(), "--version"], capture_output=True, text=True, check=False
    )
    first = (completed.stdout or completed.stderr).splitlines()
    return first[0].split(" Copyright")[0] if first else "unknown"


def cpu_reference_ms() -> float:
    """A fixed pure-Python loop (median of 7): how fast this machine is right now.

    VMs on a shared host can run 1.5x slower for minutes without any process in the VM showing
    it; comparing this number between runs tells a slow machine from a slower hook.
    """
    loop = "sum(i * i for i in range(100_000))"
    return statistics.median(timeit.timeit(loop, number=5) / 5 * 1000 for _ in range(7))


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "gunicorn": _version("gunicorn"),
        "flask": _version("flask"),
        "werkzeug": _version("werkzeug"),
        "orjson": _version("orjson"),
        "pydantic": _version("pydantic"),
        "wrk": _wrk_version(),
        "hook": _version("obol-serviceoffer-hook"),
        "git": _git_revision(),
    }


def _git_revision() -> str:
    completed = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "hooks"],
        capture_output=True,
        text=True,
        check=False,
    )
    revision = completed.stdout.strip() or "unknown"
    return revision + ("+dirty hooks/" if dirty.stdout.strip() else "")


def listen_overflows() -> int:
    """System-wide TcpExt ListenOverflows (a full accept queue drops connections)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(table.get("ListenOverflows", 0))
    return 0


# ---------------------------------------------------------------- measurements


def wsgi_cost(iterations: int) -> dict[str, Any]:
    """One WSGI call of each app in a fresh process (see wsgi_cost.py)."""
    completed = subprocess.run(
        [sys.executable, str(HERE / "wsgi_cost.py"), str(iterations)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result = orjson.loads(completed.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result


def write_new_spec_bodies(directory: Path) -> Path:
    """4,096 copies of fixture 02, each with its own spec (``spec.upstream.port``)."""
    path = directory / "fixture02-specs.jsonl"
    path.write_bytes(b"".join(body + b"\n" for body in micro.new_spec_bodies(CACHE_MISS_VARIANTS)))
    return path


def write_bodies(directory: Path) -> tuple[Path, Path]:
    """Fixture 02 once (cache hits), and 4,096 copies differing in resourceVersion (misses)."""
    request = micro.full_request()
    same = directory / "fixture02.jsonl"
    same.write_bytes(orjson.dumps(request) + b"\n")
    varied = directory / "fixture02-varied.jsonl"
    with varied.open("wb") as out:
        for index in range(CACHE_MISS_VARIANTS):
            request["parent"]["metadata"]["resourceVersion"] = str(100_000 + index)
            out.write(orjson.dumps(request) + b"\n")
    return same, varied


def side_by_side(
    servers: dict[str, Server],
    plan: Plan,
    url_of: Callable[[Server], str],
    method: str,
    body_file: Path | None,
    label: str,
) -> dict[int, dict[str, Summary]]:
    """Runs alternating between the servers at each connection count; medians per configuration."""
    results: dict[int, dict[str, Summary]] = {}
    for connections in CONNECTIONS:
        runs: dict[str, list[WrkResult]] = {name: [] for name in servers}
        for _ in range(plan.runs):
            group = quietest_group(servers, url_of, connections, plan.seconds, method, body_file)
            for name, result in group.items():
                runs[name].append(result)
        results[connections] = {name: loadgen.summarize(found) for name, found in runs.items()}
        rates = ", ".join(
            f"{name} {summary.rps:,.0f}" for name, summary in results[connections].items()
        )
        progress(f"{label} c={connections}: {rates} req/s")
    return results


def quietest_group(
    servers: dict[str, Server],
    url_of: Callable[[Server], str],
    connections: int,
    seconds: float,
    method: str,
    body_file: Path | None,
) -> dict[str, WrkResult]:
    """One run per server back to back; repeated (up to RETRIES times) when other processes
    took more than NOISY_PCT of a core meanwhile, keeping the quietest group."""
    best: dict[str, WrkResult] | None = None
    for _ in range(1 + RETRIES):
        group = {
            name: loadgen.wrk_run(
                server, name, url_of(server), connections, seconds, method, body_file
            )
            for name, server in servers.items()
        }
        noise = max(result.foreign_cpu_pct for result in group.values())
        if best is None or noise < max(result.foreign_cpu_pct for result in best.values()):
            best = group
        if noise <= NOISY_PCT:
            break
        REPEATED[0] += 1
        progress(f"other processes used {noise:.0f} % of a core during the runs; repeating")
    assert best is not None
    return best


def run_storms(hook: Server, plan: Plan, bodies: Path, endpoints: Path) -> dict[int, Any]:
    """The resync storm at 5 and 50 connections; the median wall time of each."""
    results: dict[int, Any] = {}
    for connections in STORM_CONNECTIONS:
        runs: list[StormResult] = [
            loadgen.storm_run(hook, bodies, endpoints, connections) for _ in range(plan.storm_runs)
        ]
        results[connections] = {
            "wall_s": statistics.median(run.wall_s for run in runs),
            "server_cpu_us_per_request": statistics.median(
                run.server_cpu_us_per_request for run in runs
            ),
            "p50_ms": statistics.median(run.p50_ms for run in runs),
            "p99_ms": statistics.median(run.p99_ms for run in runs),
            "runs": [run.as_dict() for run in runs],
        }
        progress(f"storm c={connections}: {results[connections]['wall_s']:.2f} s")
    return results


def progress(message: str) -> None:
    """A progress line on stderr (the table goes to stdout)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- table


def _verdict(ok: bool) -> str:
    return "ok" if ok else "miss"


def machine_slowdown(results: dict[str, Any]) -> float:
    """How much slower than the baseline's machine this one parses the same kind of body.

    orjson.loads of fixture 02 (20.4 KB) here, over orjson.loads of the baseline's 19.7 KB
    request there. The issue's targets in µs were set for the baseline's machine; the HTTP
    targets are ratios measured in one run and need no such correction.
    """
    return float(results["micro"]["orjson_loads"]["median_us"]) / BASELINE["orjson_loads_us"]


def _time_verdict(median_us: float, target_us: float, slowdown: float) -> str:
    """ok within the target; on a slower machine, ok when it is within the target scaled."""
    if median_us <= target_us:
        return "ok"
    return "ok at baseline speed" if slowdown > 1 and median_us / slowdown <= target_us else "miss"


def _errors_of(summaries: list[Summary], expected_status_errors: bool = False) -> int:
    total = 0
    for summary in summaries:
        for key, value in summary.errors.items():
            if key == "status" and expected_status_errors:
                continue
            total += value
    return total


def build_rows(results: dict[str, Any]) -> list[Row]:
    """The table, from the raw results."""
    rows: list[Row] = []
    micro_results = results["micro"]
    slowdown = machine_slowdown(results)
    anchor = micro_results["orjson_loads"]
    rows.append(
        Row(
            "machine speed: orjson.loads of fixture 02 (20.4 KB), median",
            f"{anchor['median_us']:.1f} µs ({slowdown:.2f} x the baseline machine)",
            f"baseline {BASELINE['orjson_loads_us']} µs (19.7 KB request)",
            slowdown,
            "info",
        )
    )
    small, full, wire = micro_results["small"], micro_results["full"], micro_results["full_wire"]
    path, new_spec = micro_results["full_http_path"], micro_results["full_http_path_new_spec"]
    rows.append(
        Row(
            "sync() small offer (weather example, new): median / p99",
            f"{small['median_us']:.1f} / {small['p99_us']:.1f} µs",
            "-",
            None,
            "info",
        )
    )
    rows.append(
        Row(
            "sync() full envelope + 8 existing children (fixture 02): median / p99",
            f"{full['median_us']:.1f} / {full['p99_us']:.1f} µs"
            f" ({full['median_us'] / slowdown:.1f} µs median at baseline speed)",
            f"median <= {SYNC_MEDIAN_TARGET_US:.0f} µs",
            full["median_us"] / SYNC_MEDIAN_TARGET_US,
            _time_verdict(full["median_us"], SYNC_MEDIAN_TARGET_US, slowdown),
        )
    )
    rows.append(
        Row(
            "sync_for_wire() fixture 02, the server's core call (spec seen before: plan memo hit):"
            " median / p99",
            f"{wire['median_us']:.1f} / {wire['p99_us']:.1f} µs",
            "-",
            None,
            "info",
        )
    )
    for timing, title in (
        (path, "no answer cache, plan memo hit"),
        (new_spec, "no answer cache, spec not seen before"),
    ):
        rows.append(
            Row(
                f"parse+sync+dump, orjson (handle_sync_body, fixture 02, {title}): median / p99",
                f"{timing['median_us']:.1f} / {timing['p99_us']:.1f} µs",
                f"stand-in baseline {BASELINE['parse_sync_dump_us']} µs",
                timing["median_us"] / BASELINE["parse_sync_dump_us"],
                "info",
            )
        )
    wsgi = results["wsgi"]
    rows.append(
        Row(
            "one WSGI call POST /sync in-process, hook (cache on) vs bare: median",
            f"{wsgi['hook']['median_us']:.0f} vs {wsgi['bare']['median_us']:.0f} µs",
            "-",
            wsgi["hook"]["median_us"] / wsgi["bare"]["median_us"],
            "info",
        )
    )
    for key, title in (
        ("sync_same", "same body: cache hit"),
        ("sync_varied", "4,096 bodies: miss"),
        ("sync_new_specs", "4,096 specs: miss, spec not seen before"),
    ):
        for connections, pair in results[key].items():
            hook, bare = pair["hook"], pair["bare"]
            ratio = hook.rps / bare.rps
            rows.append(
                Row(
                    f"POST /sync fixture 02 ({title}) c={connections}: req/s hook vs bare",
                    f"{hook.rps:,.0f} vs {bare.rps:,.0f}",
                    f">= {HTTP_RATIO_TARGET:.2f} x bare",
                    ratio,
                    _verdict(ratio >= HTTP_RATIO_TARGET),
                )
            )
            latency = (
                f"{hook.p50_ms:.1f} / {hook.p99_ms:.1f} ms (bare {bare.p50_ms:.1f} / "
                f"{bare.p99_ms:.1f})"
            )
            if connections == 64:
                rows.append(
                    Row(
                        f"POST /sync ({title}) c=64: p50 / p99",
                        latency,
                        f"p99 <= {P99_TARGET_MS:.0f} ms",
                        hook.p99_ms / P99_TARGET_MS,
                        _verdict(hook.p99_ms <= P99_TARGET_MS),
                    )
                )
            else:
                rows.append(
                    Row(
                        f"POST /sync ({title}) c={connections}: p50 / p99",
                        latency,
                        "-",
                        None,
                        "info",
                    )
                )
            floor = pair.get("floor")
            if floor is not None:
                rows.append(
                    Row(
                        f"POST /sync ({title}) c={connections}: req/s hook vs a bare WSGI parse"
                        " (no Flask: like for like with the hook's sync front)",
                        f"{hook.rps:,.0f} vs {floor.rps:,.0f} (CPU "
                        f"{hook.server_cpu_us_per_request:.0f} vs "
                        f"{floor.server_cpu_us_per_request:.0f} µs/req)",
                        "-",
                        hook.rps / floor.rps,
                        "info",
                    )
                )
            rows.append(
                Row(
                    f"server CPU per POST /sync ({title}) c={connections}: hook vs bare",
                    f"{hook.server_cpu_us_per_request:.0f} vs "
                    f"{bare.server_cpu_us_per_request:.0f} µs",
                    f"baseline bare {BASELINE['bare_cpu_us']}, stand-in "
                    f"{BASELINE['standin_cpu_us']} µs",
                    hook.server_cpu_us_per_request / bare.server_cpu_us_per_request,
                    "info",
                )
            )
    for connections, pair in results["busy"].items():
        hook, bare = pair["hook"], pair["bare"]
        ceiling = results["sync_same"][connections]["bare"]
        ratio = hook.rps / ceiling.rps
        rows.append(
            Row(
                f"GET /busy (busy port) c={connections}: req/s vs the bare POST /sync ceiling",
                f"{hook.rps:,.0f} vs {ceiling.rps:,.0f}, p99 {hook.p99_ms:.1f} ms",
                f">= {BUSY_RATIO_TARGET:.1f} x bare",
                ratio,
                _verdict(ratio >= BUSY_RATIO_TARGET),
            )
        )
        rows.append(
            Row(
                f"GET /busy c={connections}: req/s vs a bare GET with a fixed 429 (like for like)",
                f"{hook.rps:,.0f} vs {bare.rps:,.0f} (CPU {hook.server_cpu_us_per_request:.0f} "
                f"vs {bare.server_cpu_us_per_request:.0f} µs/req)",
                "-",
                hook.rps / bare.rps,
                "info",
            )
        )
    storm_mix = results["storm_mix"]
    for connections, found in results["storm"].items():
        wall = found["wall_s"]
        rows.append(
            Row(
                f"resync storm, {storm_mix['offers']:,} distinct offers, {connections} "
                "connections: wall",
                f"{wall:.2f} s ({storm_mix['offers'] / wall:,.0f}/s, p50 {found['p50_ms']:.1f} / "
                f"p99 {found['p99_ms']:.1f} ms, {found['server_cpu_us_per_request']:.0f} µs "
                "CPU/req)",
                f"< {STORM_TARGET_S:.0f} s",
                wall / STORM_TARGET_S,
                _verdict(wall < STORM_TARGET_S),
            )
        )
    sync_summaries = [
        summary
        for key in ("sync_same", "sync_varied", "sync_new_specs")
        for pair in results[key].values()
        for summary in pair.values()
    ]
    busy_summaries = [summary for pair in results["busy"].values() for summary in pair.values()]
    storm_bad = sum(
        run["not_ok"] + run["wrong"] + sum(run["socket_errors"].values())
        for found in results["storm"].values()
        for run in found["runs"]
    )
    errors = _errors_of(sync_summaries) + _errors_of(busy_summaries, True) + storm_bad
    rows.append(
        Row(
            "errors: socket errors, non-2xx on /sync, wrong storm answers (all runs)",
            f"{errors} (listen overflows {results['listen_overflows']})",
            "0",
            None,
            _verdict(errors == 0),
        )
    )
    return rows


def format_table(rows: list[Row]) -> str:
    """A plain-text table with aligned columns."""
    header = ("measurement", "result", "baseline/target", "ratio", "verdict")
    cells = [
        (row.measurement, row.result, row.target, "" if row.ratio is None else f"{row.ratio:.2f}",
         row.verdict)
        for row in rows
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(5)]
    rule = "-+-".join("-" * width for width in widths)
    lines = [" | ".join(text.ljust(width) for text, width in zip(header, widths, strict=True))]
    lines.append(rule)
    for line in cells:
        lines.append(
            " | ".join(text.ljust(width) for text, width in zip(line, widths, strict=True))
        )
    return "\n".join(lines)


def format_markdown(rows: list[Row], results: dict[str, Any]) -> str:
    """The same table as Markdown, with the machine and the date."""
    info = results["machine"]
    lines = [
        f"Measured {results['date']} with `python tests/bench/run.py"
        f"{' --quick' if results['quick'] else ''}` on {info['nproc']} x {info['cpu']}, "
        f"{info['memory_gib']} GiB, kernel {info['kernel']}; Python {info['python']}, gunicorn "
        f"{info['gunicorn']}, Flask {info['flask']}, Werkzeug {info['werkzeug']}, orjson "
        f"{info['orjson']}, {info['wrk']}; hook {info['hook']} at {info['git']}. "
        f"{noise_line(results)}.",
        "",
        "| measurement | result | baseline/target | ratio | verdict |",
        "|---|---|---|---:|---|",
    ]
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(
            f"| {row.measurement} | {row.result} | {row.target} | {ratio} | {row.verdict} |"
        )
    return "\n".join(lines) + "\n"


def noise_line(results: dict[str, Any]) -> str:
    """How much CPU other processes took while the HTTP runs were measured."""
    noise = results["noise"]
    return (
        f"Other processes during the HTTP runs: median {noise['median_pct']:.0f} %, max "
        f"{noise['max_pct']:.0f} % of one core ({noise['repeated']} noisy pairs repeated); "
        f"load average {results['load_before']:.2f} before the start; CPU reference loop "
        f"{results['cpu_reference_ms_before']:.2f} ms before, "
        f"{results['cpu_reference_ms_after']:.2f} ms after"
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Summary | WrkResult | StormResult):
        return value.as_dict()
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, micro.Timing):
        return value.as_dict()
    return value


# ---------------------------------------------------------------- main


def rss_mib(hook: Server, bare: Server) -> dict[str, float]:
    """RSS of each server's master and workers, in MiB."""
    return {"hook": hook.rss_bytes() / 2**20, "bare": bare.rss_bytes() / 2**20}


def measure(plan: Plan, quick: bool, storm_offers: int) -> dict[str, Any]:
    """Every measurement, in order; returns the raw results."""
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "plan": plan.__dict__,
        "machine": machine(),
        "load_before": load_average(),
        "cpu_reference_ms_before": cpu_reference_ms(),
    }
    progress(f"machine: {results['machine']['cpu']}, load {results['load_before']:.2f}")
    timings = micro.run(plan.iterations)
    results["micro"] = {name: timing.as_dict() for name, timing in timings.items()}
    progress(f"sync() fixture 02 median {timings['full'].median_us:.1f} µs")
    results["wsgi"] = wsgi_cost(max(2000, plan.iterations // 4))
    workdir = Path(tempfile.mkdtemp(prefix="obol-bench-"))
    try:
        same, varied = write_bodies(workdir)
        new_specs = write_new_spec_bodies(workdir)
        storm_bodies, storm_endpoints = workdir / "storm.jsonl", workdir / "endpoints.txt"
        progress(f"generating {storm_offers:,} storm offers")
        results["storm_mix"] = storm.generate(storm_offers, storm_bodies, storm_endpoints)
        overflows_before = listen_overflows()
        with (
            run_server("hook") as hook,
            run_server("bare", bare=True) as bare,
            run_server("floor", app="bare_wsgi:app") as floor,
        ):
            results["rss_before_mb"] = rss_mib(hook, bare)
            for server in (hook, bare, floor):  # warm-up, discarded
                url = server.sync_url + "/sync"
                loadgen.wrk_run(server, "warm-up", url, 16, plan.warmup_seconds, "POST", varied)
            sync_servers = {"hook": hook, "bare": bare, "floor": floor}
            results["sync_same"] = side_by_side(
                sync_servers, plan, lambda s: s.sync_url + "/sync", "POST", same, "same body"
            )
            results["sync_varied"] = side_by_side(
                sync_servers, plan, lambda s: s.sync_url + "/sync", "POST", varied, "4096 bodies"
            )
            results["sync_new_specs"] = side_by_side(
                {"hook": hook, "bare": bare},
                plan,
                lambda s: s.sync_url + "/sync",
                "POST",
                new_specs,
                "4096 specs",
            )
            results["busy"] = side_by_side(
                {"hook": hook, "bare": bare},
                plan,
                lambda s: s.busy_url + BUSY_PATH,
                "GET",
                None,
                "busy",
            )
            results["storm"] = run_storms(hook, plan, storm_bodies, storm_endpoints)
            results["rss_after_mb"] = rss_mib(hook, bare)
        results["listen_overflows"] = listen_overflows() - overflows_before
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["load_after"] = load_average()
    results["cpu_reference_ms_after"] = cpu_reference_ms()
    foreign = [
        run.foreign_cpu_pct
        for key in ("sync_same", "sync_varied", "sync_new_specs", "busy")
        for pair in results[key].values()
        for summary in pair.values()
        for run in summary.runs
    ]
    results["noise"] = {
        "median_pct": statistics.median(foreign),
        "max_pct": max(foreign),
        "repeated": REPEATED[0],
    }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 x 3 s per configuration")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="write the table as Markdown")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--storm-offers", type=int, default=STORM_OFFERS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile", action="store_true", help="print where sync() and POST /sync spend time"
    )
    args = parser.parse_args(argv)
    if args.profile:
        print(micro.profile_sync())
        completed = subprocess.run(
            [sys.executable, str(HERE / "wsgi_cost.py"), "5000", "--profile"], cwd=ROOT, check=True
        )
        return completed.returncode
    loadgen.require_wrk()
    plan = QUICK if args.quick else FULL
    results = measure(plan, args.quick, args.storm_offers)
    rows = build_rows(results)
    results["rows"] = [row.as_dict() for row in rows]
    info = results["machine"]
    print(
        f"obol ServiceOffer hook benchmarks, {results['date']}"
        f"{' (quick)' if args.quick else ''}\n"
        f"machine: {info['nproc']} x {info['cpu']}, {info['memory_gib']} GiB, kernel "
        f"{info['kernel']}; Python {info['python']}, gunicorn {info['gunicorn']}, Flask "
        f"{info['flask']}, Werkzeug {info['werkzeug']}, orjson {info['orjson']}, {info['wrk']}; "
        f"hook {info['hook']} at {info['git']}\n"
        f"{noise_line(results)}\n"
    )
    print(format_table(rows))
    print(
        "\nratio: hook/bare for req/s rows (target >= the factor), result/target for time rows "
        "(target <= 1)."
    )
    storm_5 = results["storm"].get(5)
    if storm_5 is not None:
        offers = results["storm_mix"]["offers"]
        print(
            f"meaning: a Metacontroller with --workers 5 gets {offers:,} offers re-synced by "
            f"this hook in {storm_5['wall_s']:.1f} s of hook time "
            f"({offers / storm_5['wall_s']:,.0f} syncs/s, {storm_5['p50_ms']:.1f} ms per sync at "
            "p50); Metacontroller's own API client (default --client-go-qps 5, burst 10, "
            "shared/reference/metacontroller.md 2.2) limits a resync of that size far more."
        )
    if results["noise"]["median_pct"] > NOISY_PCT:
        print(
            "WARNING: other processes used the CPUs during the runs: throughput is understated "
            "and latency overstated; run again on an idle machine."
        )
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(_jsonable(results), option=orjson.OPT_INDENT_2))
    if args.markdown is not None:
        args.markdown.write_text(format_markdown(rows, results))
    misses = [row.measurement for row in rows if row.verdict == "miss"]
    return 1 if misses and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())

"""The sync hook's performance floor with plain code, side by side with bare Flask, in one table.

    python tests/bench/run.py            # wrk 3 x 15 s per configuration (about 8 min)
    python tests/bench/run.py --quick    # 1 x 3 s per configuration (about 2 min)
    python tests/bench/run.py --json results.json --markdown results.md --strict
    python tests/bench/run.py --profile  # where sync() spends its time

What it proves (issue 13 item 7; method of shared/reference/perf-baseline.md: same machine, wrk
closed loop, ``--timeout 10s``, 3 runs per configuration and the median of each metric):

1. ``sync()`` of a full-envelope spec it has never seen (fixture 02 cycled through distinct
   specs, :mod:`micro`) costs at most 150 µs median, judged at the baseline machine's speed:
   first ``orjson.loads`` of fixture 02 is timed against the baseline's figure for its request,
   which says how much slower or faster this machine is.
2. ``POST /sync`` through the real server started like production (``obol hook serve``, shipped
   settings) reaches at least 0.60 x the requests/s of a bare Flask app on the same gunicorn
   settings (:mod:`bare_app`: parse the body, answer a fixed 60 bytes) at 64 connections, with p99
   at most 40 ms, on 4,096 bodies with distinct specs; runs alternate between the two servers,
   so the machine's speed and the other processes on it hit both alike. 5 connections
   (Metacontroller's default ``--workers``) is shown beside it.
3. A resync storm (:mod:`storm`) of 10,000 distinct offers' requests, sent once each by wrk over
   5 persistent connections, every answer checked for status 200 and its offer's endpoint, ends
   in under 5 s (first request to last answer).

The load generator is wrk on the same cores as the server (loopback only). The server's CPU time
per request is read from ``/proc`` for the gunicorn master and its worker. Other processes on the
machine make every number worse: the CPU they use during each run is measured (``/proc/stat``
minus server and wrk), a hook/bare pair is repeated (once at most) when it exceeded 20 % of a
core, and the load average is recorded before and after.
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
from tests.bench.loadgen import Check, StormResult, Summary, WrkResult  # noqa: E402
from tests.bench.servers import Server, run_server  # noqa: E402

HERE = Path(__file__).resolve().parent
SYNC_NEW_SPEC_TARGET_US = 150.0
HTTP_RATIO_TARGET = 0.60
P99_TARGET_MS = 40.0
STORM_TARGET_S = 5.0
STORM_OFFERS = 10_000
DISTINCT_BODIES = 4096
CONNECTIONS = (5, 64)
TARGET_CONNECTIONS = 64
STORM_CONNECTIONS = 5
NOISY_PCT = 20.0  # CPU % of one core used by other processes during a run pair
RETRIES = 1
REPEATED = [0]  # noisy pairs measured again (a counter for the report)
BASELINE = {  # shared/reference/perf-baseline.md, 2-vCPU AMD EPYC VM, stand-in hook
    "parse_sync_dump_us": 66.9,
    "orjson_loads_us": 26.6,  # orjson.loads of its 19.7 KB request: the machine-speed anchor
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


def write_new_spec_bodies(directory: Path) -> Path:
    """4,096 copies of fixture 02, each with its own spec (``spec.upstream.port``)."""
    path = directory / "fixture02-specs.jsonl"
    path.write_bytes(b"".join(body + b"\n" for body in micro.new_spec_bodies(DISTINCT_BODIES)))
    return path


SYNC_CHECK = Check(status=200, body_text='"children":')


def side_by_side(
    servers: dict[str, Server],
    plan: Plan,
    url_of: Callable[[Server], str],
    method: str,
    body_file: Path | None,
    label: str,
    check: Check,
) -> dict[int, dict[str, Summary]]:
    """Runs alternating between the servers at each connection count; medians per configuration."""
    results: dict[int, dict[str, Summary]] = {}
    for connections in CONNECTIONS:
        runs: dict[str, list[WrkResult]] = {name: [] for name in servers}
        for _ in range(plan.runs):
            group = quietest_group(
                servers, url_of, connections, plan.seconds, method, body_file, check
            )
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
    check: Check,
) -> dict[str, WrkResult]:
    """One run per server back to back; repeated (up to RETRIES times) when other processes
    took more than NOISY_PCT of a core meanwhile, keeping the quietest group."""
    best: dict[str, WrkResult] | None = None
    for _ in range(1 + RETRIES):
        group = {
            name: loadgen.wrk_run(
                {"server": server.cpu_seconds},
                name,
                url_of(server),
                connections,
                seconds,
                method,
                body_file,
                check=check,
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


def run_storm(hook: Server, plan: Plan, bodies: Path, endpoints: Path) -> dict[str, Any]:
    """The resync storm at STORM_CONNECTIONS connections; the median wall time of its runs."""
    runs: list[StormResult] = [
        loadgen.storm_run(hook, bodies, endpoints, STORM_CONNECTIONS)
        for _ in range(plan.storm_runs)
    ]
    result = {
        "connections": STORM_CONNECTIONS,
        "wall_s": statistics.median(run.wall_s for run in runs),
        "server_cpu_us_per_request": statistics.median(
            run.server_cpu_us_per_request for run in runs
        ),
        "p50_ms": statistics.median(run.p50_ms for run in runs),
        "p99_ms": statistics.median(run.p99_ms for run in runs),
        "runs": [run.as_dict() for run in runs],
    }
    progress(f"storm c={STORM_CONNECTIONS}: {result['wall_s']:.2f} s")
    return result


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
    full, path = micro_results["full_new_spec"], micro_results["full_http_path_new_spec"]
    rows.append(
        Row(
            "sync() full envelope + 8 children, spec never seen (fixture 02): median / p99",
            f"{full['median_us']:.1f} / {full['p99_us']:.1f} µs"
            f" ({full['median_us'] / slowdown:.1f} µs median at baseline speed)",
            f"median <= {SYNC_NEW_SPEC_TARGET_US:.0f} µs",
            full["median_us"] / SYNC_NEW_SPEC_TARGET_US,
            _time_verdict(full["median_us"], SYNC_NEW_SPEC_TARGET_US, slowdown),
        )
    )
    rows.append(
        Row(
            "parse + sync + dump (the server's body handler, same bodies): median / p99",
            f"{path['median_us']:.1f} / {path['p99_us']:.1f} µs",
            f"stand-in baseline {BASELINE['parse_sync_dump_us']} µs",
            path["median_us"] / BASELINE["parse_sync_dump_us"],
            "info",
        )
    )
    for connections, pair in results["sync"].items():
        hook, bare = pair["hook"], pair["bare"]
        ratio = hook.rps / bare.rps
        target = connections == TARGET_CONNECTIONS
        rows.append(
            Row(
                f"POST /sync, {DISTINCT_BODIES:,} distinct specs, c={connections}: req/s hook vs"
                " bare Flask",
                f"{hook.rps:,.0f} vs {bare.rps:,.0f}",
                f">= {HTTP_RATIO_TARGET:.2f} x bare" if target else "-",
                ratio,
                _verdict(ratio >= HTTP_RATIO_TARGET) if target else "info",
            )
        )
        rows.append(
            Row(
                f"POST /sync c={connections}: p50 / p99, hook (bare)",
                f"{hook.p50_ms:.1f} / {hook.p99_ms:.1f} ms ({bare.p50_ms:.1f} / {bare.p99_ms:.1f})",
                f"p99 <= {P99_TARGET_MS:.0f} ms" if target else "-",
                hook.p99_ms / P99_TARGET_MS if target else None,
                _verdict(hook.p99_ms <= P99_TARGET_MS) if target else "info",
            )
        )
        rows.append(
            Row(
                f"server CPU per POST /sync c={connections}: hook vs bare",
                f"{hook.server_cpu_us_per_request:.0f} vs {bare.server_cpu_us_per_request:.0f} µs",
                f"baseline bare {BASELINE['bare_cpu_us']}, stand-in "
                f"{BASELINE['standin_cpu_us']} µs",
                hook.server_cpu_us_per_request / bare.server_cpu_us_per_request,
                "info",
            )
        )
    found, mix = results["storm"], results["storm_mix"]
    wall = found["wall_s"]
    rows.append(
        Row(
            f"resync storm, {mix['offers']:,} distinct offers, {found['connections']} connections:"
            " wall",
            f"{wall:.2f} s ({mix['offers'] / wall:,.0f}/s, p50 {found['p50_ms']:.1f} / "
            f"p99 {found['p99_ms']:.1f} ms, {found['server_cpu_us_per_request']:.0f} µs CPU/req)",
            f"< {STORM_TARGET_S:.0f} s",
            wall / STORM_TARGET_S,
            _verdict(wall < STORM_TARGET_S),
        )
    )
    errors = sum(
        sum(summary.errors.values())
        for pair in results["sync"].values()
        for summary in pair.values()
    )
    errors += sum(
        run["not_ok"] + run["wrong"] + sum(run["socket_errors"].values()) for run in found["runs"]
    )
    rows.append(
        Row(
            "errors: socket errors, unexpected answers, wrong storm answers (all runs)",
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
        f"{info['orjson']}, {info['wrk']}; hook {info['hook']}. "
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
    """RSS of each server's master and worker, in MiB."""
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
    progress(f"sync() never-seen spec median {timings['full_new_spec'].median_us:.1f} µs")
    workdir = Path(tempfile.mkdtemp(prefix="obol-bench-"))
    try:
        specs = write_new_spec_bodies(workdir)
        storm_bodies, storm_endpoints = workdir / "storm.jsonl", workdir / "endpoints.txt"
        progress(f"generating {storm_offers:,} storm offers")
        results["storm_mix"] = storm.generate(storm_offers, storm_bodies, storm_endpoints)
        overflows_before = listen_overflows()
        with run_server("hook") as hook, run_server("bare", bare=True) as bare:
            results["rss_before_mb"] = rss_mib(hook, bare)
            for server in (hook, bare):  # warm-up, discarded
                loadgen.wrk_run(
                    {"server": server.cpu_seconds},
                    "warm-up",
                    server.sync_url + "/sync",
                    16,
                    plan.warmup_seconds,
                    "POST",
                    specs,
                )
            results["sync"] = side_by_side(
                {"hook": hook, "bare": bare},
                plan,
                lambda s: s.sync_url + "/sync",
                "POST",
                specs,
                "distinct specs",
                SYNC_CHECK,
            )
            results["storm"] = run_storm(hook, plan, storm_bodies, storm_endpoints)
            results["rss_after_mb"] = rss_mib(hook, bare)
        results["listen_overflows"] = listen_overflows() - overflows_before
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["load_after"] = load_average()
    results["cpu_reference_ms_after"] = cpu_reference_ms()
    foreign = [
        run.foreign_cpu_pct
        for pair in results["sync"].values()
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
        return 0
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
        "\nratio: hook/bare for req/s and CPU rows (target >= the factor), result/target for "
        "time rows (target <= 1). Measured on a shared machine: see the noise line above."
    )
    found, offers = results["storm"], results["storm_mix"]["offers"]
    print(
        f"meaning: a Metacontroller with --workers {found['connections']} gets {offers:,} offers "
        f"re-synced by this hook in {found['wall_s']:.1f} s of hook time "
        f"({offers / found['wall_s']:,.0f} syncs/s); Metacontroller's own API client (default "
        "--client-go-qps 5, burst 10) limits a resync of that size far more."
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

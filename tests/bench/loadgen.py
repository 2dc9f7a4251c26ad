"""Drive ``wrk`` against a server and collect what one run measured.

* :func:`wrk_run`: one closed-loop wrk run (``-t2 -cN -dS --latency --timeout 10s``, the method of
  shared/reference/perf-baseline.md) with ``post.lua``; requests/s, latency percentiles, errors,
  answers that fail a :class:`Check` (status, a header, a body text), and the CPU time per
  request of each metered process group (read from ``/proc``, so not the load generator's).
* :func:`storm_run`: one resync storm with ``storm.lua``: every pre-generated request sent once
  over N persistent wrk connections (one wrk thread), each answer checked for status 200 and for
  the ``status.endpoint`` of one of the offers, wall time from the first request to the last
  answer measured inside wrk (CLOCK_MONOTONIC), then wrk is ended with SIGINT.

wrk, not a Python client, generates the load: it costs about 10-40 % of one core at these rates,
where a Python client on the same two cores would compete with the server for CPU and measure
itself as much as the server.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.bench.servers import Server

HERE = Path(__file__).resolve().parent
POST_LUA = HERE / "post.lua"
STORM_LUA = HERE / "storm.lua"
WRK_TIMEOUT = "10s"  # Metacontroller's default hook timeout; wrk's own default is 2 s


CpuMeters = Mapping[str, Callable[[], float]]  # name -> CPU seconds of that process group so far


@dataclass(frozen=True)
class Check:
    """What every answer of a run must be (post.lua counts the ones that are not)."""

    status: int | None = None
    header: str | None = None
    body_text: str | None = None

    def args(self) -> list[str]:
        """post.lua's STATUS HEADER BODY_TEXT arguments ("-": no check)."""
        return [
            "-" if self.status is None else str(self.status),
            self.header or "-",
            self.body_text or "-",
        ]


@dataclass(frozen=True)
class WrkResult:
    """One wrk run."""

    label: str
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]  # wrk's socket errors, plus "unexpected": answers failing the Check
    cpu_us_per_request: dict[str, float]  # per meter: CPU µs per request of that process group
    wrk_cpu_pct: float  # of one core
    foreign_cpu_pct: float  # other processes (and uncharged kernel time), of one core
    unexpected_sample: str = ""

    @property
    def server_cpu_us_per_request(self) -> float:
        """CPU µs per request of every metered process together."""
        return sum(self.cpu_us_per_request.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True)
class Summary:
    """The median of several runs of one configuration, with the per-run values kept."""

    label: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: dict[str, float]
    errors: dict[str, int]
    runs: list[WrkResult] = field(default_factory=list)

    @property
    def server_cpu_us_per_request(self) -> float:
        """CPU µs per request of every metered process together (median of the runs' sums)."""
        return statistics.median(run.server_cpu_us_per_request for run in self.runs)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data = asdict(self)
        data["runs"] = [run.as_dict() for run in self.runs]
        return data


def require_wrk() -> str:
    """The wrk binary, or a clear error telling how to install it."""
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk not found: apt-get update && apt-get install -y wrk")
    return found


def _summary_line(output: str, marker: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith(marker + " "):
            parsed = orjson.loads(line[len(marker) + 1 :])
            assert isinstance(parsed, dict)
            return parsed
    raise RuntimeError(f"wrk printed no {marker} line:\n{output}")


def wrk_run(
    meters: CpuMeters,
    label: str,
    url: str,
    connections: int,
    seconds: float,
    method: str = "GET",
    body_file: Path | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    check: Check | None = None,
) -> WrkResult:
    """One wrk run; each meter's CPU is read from /proc before and after."""
    threads = min(2, connections)
    command = [
        require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency",
        "--timeout", WRK_TIMEOUT, "-s", str(POST_LUA),
    ]  # fmt: skip
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    command += [url, "--", method, str(body_file) if body_file else "-", *(check or Check()).args()]
    before = {name: meter() for name, meter in meters.items()}
    busy_before, wrk_before = system_busy(), children_cpu()
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    after = {name: meter() for name, meter in meters.items()}
    busy_after, wrk_after = system_busy(), children_cpu()
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr}")
    data = _summary_line(completed.stdout, "BENCH_JSON")
    requests = int(data["requests"])
    duration = data["duration_us"] / 1e6
    latency = data["latency_us"]
    used = {name: after[name] - before[name] for name in meters}
    wrk_cpu = wrk_after - wrk_before
    foreign = (busy_after - busy_before) - sum(used.values()) - wrk_cpu
    errors = {key: int(value) for key, value in data["errors"].items()}
    errors["unexpected"] = int(data.get("unexpected", 0))
    return WrkResult(
        label=label,
        connections=connections,
        seconds=duration,
        requests=requests,
        rps=requests / duration,
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        errors=errors,
        cpu_us_per_request={name: cpu / max(requests, 1) * 1e6 for name, cpu in used.items()},
        wrk_cpu_pct=100 * wrk_cpu / duration,
        foreign_cpu_pct=100 * max(foreign, 0.0) / duration,
        unexpected_sample=str(data.get("unexpected_sample", "")),
    )


def system_busy() -> float:
    """CPU seconds the whole machine spent busy (all CPUs; idle and iowait excluded)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children (the finished wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def summarize(runs: list[WrkResult]) -> Summary:
    """Median of each metric over the runs (like the baseline), errors summed."""
    errors: dict[str, int] = {}
    for run in runs:
        for key, value in run.errors.items():
            errors[key] = errors.get(key, 0) + value
    return Summary(
        label=runs[0].label,
        connections=runs[0].connections,
        rps=statistics.median(run.rps for run in runs),
        p50_ms=statistics.median(run.p50_ms for run in runs),
        p99_ms=statistics.median(run.p99_ms for run in runs),
        cpu_us_per_request={
            name: statistics.median(run.cpu_us_per_request[name] for run in runs)
            for name in runs[0].cpu_us_per_request
        },
        errors=errors,
        runs=runs,
    )


@dataclass(frozen=True)
class StormResult:
    """One resync storm."""

    connections: int
    requests: int
    ok: int
    not_ok: int
    wrong: int
    distinct: int
    wall_s: float
    socket_errors: dict[str, int]
    server_cpu_us_per_request: float
    p50_ms: float
    p99_ms: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def storm_run(
    server: Server, bodies: Path, endpoints: Path, connections: int, bound_s: float = 120.0
) -> StormResult:
    """Send every body once over ``connections`` connections; wall time first request..last."""
    command = [
        require_wrk(), "-t1", f"-c{connections}", f"-d{bound_s:g}s", "--timeout", WRK_TIMEOUT,
        "-s", str(STORM_LUA), server.sync_url, "--", str(bodies), str(endpoints),
    ]  # fmt: skip
    cpu_before = cpu_after = server.cpu_seconds()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    assert process.stdout is not None
    deadline = time.monotonic() + bound_s + 30
    done: dict[str, Any] | None = None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("STORM_DONE "):
            done = orjson.loads(line[len("STORM_DONE ") :])
            cpu_after = server.cpu_seconds()
            process.send_signal(signal.SIGINT)  # wrk would otherwise sleep out -d
            break
        if time.monotonic() > deadline:
            break
    remaining, errors_text = process.communicate(timeout=30)
    lines.append(remaining)
    if done is None:
        raise RuntimeError(f"storm did not finish: {''.join(lines)}\n{errors_text}")
    summary = _summary_line("".join(lines), "BENCH_JSON")
    wall = float(done["wall_s"])
    server_cpu = cpu_after - cpu_before
    return StormResult(
        connections=connections,
        requests=int(done["requests"]),
        ok=int(done["ok"]),
        not_ok=int(done["not_ok"]),
        wrong=int(done["wrong"]),
        distinct=int(done["distinct"]),
        wall_s=wall,
        socket_errors={
            key: int(value) for key, value in summary["errors"].items() if key != "status"
        },
        server_cpu_us_per_request=server_cpu / max(int(done["requests"]), 1) * 1e6,
        p50_ms=summary["latency_us"]["p50"] / 1000,
        p99_ms=summary["latency_us"]["p99"] / 1000,
    )

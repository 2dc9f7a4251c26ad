"""Where the hook's HTTP cost goes: the hook as shipped next to variants that each drop one thing.

    python tests/bench/variants.py            # 3 x 5 s per configuration and body set
    python tests/bench/variants.py --quick    # 1 x 3 s

Servers, all with the hook's gunicorn config and default workers, measured in turn (round
robin, so drift hits every one alike) with wrk at 16 connections, fixture 02 as the one body
(answer-cache hits) and as 4,096 distinct copies (misses), plus one 10,000-offer storm each at 5
connections:

* the hook as shipped (``obol hook serve``);
* ``OBOL_LOG_LEVEL=debug``: a log line for every sync, routine successes included;
* ``OBOL_RESPONSE_CACHE_ENTRIES=0``: no answer cache (every request hashes nothing and misses);
* the bare app (the ceiling of run.py).

Prints server CPU per request (from /proc) and req/s; the differences between rows are what each
part costs. This is a diagnostic for the people who own ``hooks/``, not a target check.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.bench import loadgen, storm  # noqa: E402
from tests.bench.run import STORM_OFFERS, write_bodies  # noqa: E402
from tests.bench.servers import Server, run_server  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "hook as shipped": {},
    "hook, OBOL_LOG_LEVEL=debug (a line for every sync)": {
        "env_overrides": {"OBOL_LOG_LEVEL": "debug"}
    },
    "hook, OBOL_RESPONSE_CACHE_ENTRIES=0": {"env_overrides": {"OBOL_RESPONSE_CACHE_ENTRIES": "0"}},
    "bare ceiling": {"bare": True},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 x 3 s per configuration")
    args = parser.parse_args(argv)
    runs, seconds = (1, 3.0) if args.quick else (3, 5.0)
    workdir = Path(tempfile.mkdtemp(prefix="obol-bench-variants-"))
    try:
        same, varied = write_bodies(workdir)
        storm_bodies, storm_endpoints = workdir / "storm.jsonl", workdir / "endpoints.txt"
        storm.generate(STORM_OFFERS, storm_bodies, storm_endpoints)
        with contextlib.ExitStack() as stack:
            servers: dict[str, Server] = {
                name: stack.enter_context(run_server(f"variant{index}", **options))
                for index, (name, options) in enumerate(VARIANTS.items())
            }
            rows = measure(servers, same, varied, storm_bodies, storm_endpoints, runs, seconds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    header = ("configuration", "same body: req/s", "CPU µs/req", "4,096 bodies: req/s",
              "CPU µs/req", "storm 10k @5: s")  # fmt: skip
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(" | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


def measure(
    servers: dict[str, Server],
    same: Path,
    varied: Path,
    storm_bodies: Path,
    storm_endpoints: Path,
    runs: int,
    seconds: float,
) -> list[tuple[str, ...]]:
    """Round-robin wrk runs and one storm per server; one row per server."""
    results: dict[str, dict[str, list[loadgen.WrkResult]]] = {
        name: {"same": [], "varied": []} for name in servers
    }
    for _ in range(runs):
        for body_name, body in (("same", same), ("varied", varied)):
            for name, server in servers.items():
                results[name][body_name].append(
                    loadgen.wrk_run(
                        server, name, server.sync_url + "/sync", 16, seconds, "POST", body
                    )
                )
    rows: list[tuple[str, ...]] = []
    for name, server in servers.items():
        wall = loadgen.storm_run(server, storm_bodies, storm_endpoints, 5).wall_s
        same_runs, varied_runs = results[name]["same"], results[name]["varied"]
        rows.append(
            (
                name,
                f"{statistics.median(r.rps for r in same_runs):,.0f}",
                f"{statistics.median(r.server_cpu_us_per_request for r in same_runs):.0f}",
                f"{statistics.median(r.rps for r in varied_runs):,.0f}",
                f"{statistics.median(r.server_cpu_us_per_request for r in varied_runs):.0f}",
                f"{wall:.2f}",
            )
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())

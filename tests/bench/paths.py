"""What path ownership costs: the customize hook and sync requests that carry every offer.

    python tests/bench/paths.py                    # 10, 100 and 1,000 offers (about 1 min)
    python tests/bench/paths.py --offers 10 100 1000 2000 --iterations 50
    python tests/bench/paths.py --json out.json

Not part of ``make test``. With the customize hook (metacontroller/compositecontroller.yaml)
every sync request carries, under ``related``, every ServiceOffer of the cluster as the API
server stores it (metadata with managedFields and kubectl's last-applied annotation, spec,
status), and a change to any offer makes Metacontroller resync every offer
(``customize/manager.go``: every parent whose related rule matches the changed object).

Method: each stored offer is fixture 02's parent (a full-envelope offer with the status the hook
writes, about 4.6 KB compact), renamed and spread over ten namespaces, each with its own path.
The request is fixture 02 itself (the synced offer and its 8 observed children) with those
offers under ``related`` (the synced offer among them, as Metacontroller lists it), serialised
compactly as Metacontroller's Go encoder does. Each request body is timed through the server's
own body handler (:func:`hooks.server.app.handle_sync_body`: JSON parse, request parse with the
related claims, sync, the shell's checks, JSON dump), in process and without HTTP, ``iterations``
times after a warm-up, against the **baseline**: the same request with ``related: {}``, which
is what every sync cost before path ownership (no customize hook). The customize request
(``{controller, parent}``) is timed the same way through
:func:`hooks.server.app.handle_customize_body`; Metacontroller caches its answer per offer and
generation, so it is paid once per spec change, not per sync.

Printed per offer count: bytes of one sync request, its median and p99 time and the ratio to the
baseline, the share of the hook's request cap (``OBOL_MAX_REQUEST_BYTES``, default 8 MiB) that
one request uses, and the hook CPU that one change to any offer causes (that many resyncs).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from hooks.config import DEFAULT_MAX_REQUEST_BYTES  # noqa: E402
from hooks.core.paths import RELATED_KEY  # noqa: E402
from hooks.core.settings import Settings  # noqa: E402
from hooks.server.app import handle_customize_body, handle_sync_body  # noqa: E402

FIXTURE = ROOT / "tests/fixtures/sync/02-full-envelope-existing-children.json"
DEFAULT_OFFERS = (10, 100, 1000)


def machine() -> str:
    """What the numbers were measured on, and how busy it was."""
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, load average {load:.1f}"
        " at the start (other work on the machine makes every number slower)"
    )


def stored_offers(parent: dict[str, Any], count: int) -> dict[str, Any]:
    """``count`` stored offers keyed ``namespace/name``, the synced ``parent`` among them."""
    offers: dict[str, Any] = {}
    meta = parent["metadata"]
    offers[f"{meta['namespace']}/{meta['name']}"] = parent
    for index in range(count - 1):
        other = copy.deepcopy(parent)
        name, namespace = f"offer-{index:05d}", f"sellers-{index % 10}"
        other["metadata"].update(name=name, namespace=namespace, uid=f"uid-{index:05d}")
        other["status"]["endpoint"] = f"/services/{name}"
        offers[f"{namespace}/{name}"] = other
    return offers


def sync_body(request: dict[str, Any], count: int) -> bytes:
    """Fixture 02 with ``count`` stored offers under ``related`` (0: the baseline, none)."""
    related = {RELATED_KEY: stored_offers(request["parent"], count)} if count else {}
    return orjson.dumps({**request, "related": related})


def time_body(handle: Callable[[bytes], Any], body: bytes, iterations: int) -> list[float]:
    """Per-call seconds of ``handle(body)`` after a warm-up (sorted)."""
    for _ in range(max(3, iterations // 10)):
        handle(body)
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        handle(body)
        samples.append(time.perf_counter() - started)
    return sorted(samples)


def p99(samples: list[float]) -> float:
    return samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def measure(counts: list[int], iterations: int) -> dict[str, Any]:
    request = orjson.loads(FIXTURE.read_bytes())
    settings = Settings()

    def sync_handler(body: bytes) -> Any:
        answer = handle_sync_body(body, settings)
        if answer.status != 200:
            raise RuntimeError(f"sync answered {answer.status}: {answer.detail}")
        return answer

    def customize_handler(body: bytes) -> Any:
        answer = handle_customize_body(body)
        if answer.status != 200:
            raise RuntimeError(f"customize answered {answer.status}: {answer.detail}")
        return answer

    baseline_body = sync_body(request, 0)
    baseline = time_body(sync_handler, baseline_body, iterations * 10)
    customize_body = orjson.dumps(
        {"controller": request["controller"], "parent": request["parent"]}
    )
    customize = time_body(customize_handler, customize_body, iterations * 10)
    rows = []
    for count in counts:
        body = sync_body(request, count)
        samples = time_body(sync_handler, body, iterations)
        median = statistics.median(samples)
        rows.append(
            {
                "offers": count,
                "bytes": len(body),
                "median_ms": median * 1000,
                "p99_ms": p99(samples) * 1000,
                "vs_baseline": median / statistics.median(baseline),
                "cap_share": len(body) / DEFAULT_MAX_REQUEST_BYTES,
                "change_cpu_s": count * median,
            }
        )
    return {
        "machine": machine(),
        "iterations": iterations,
        "baseline": {
            "bytes": len(baseline_body),
            "median_ms": statistics.median(baseline) * 1000,
            "p99_ms": p99(baseline) * 1000,
        },
        "customize": {
            "bytes": len(customize_body),
            "median_us": statistics.median(customize) * 1e6,
            "p99_us": p99(customize) * 1e6,
        },
        "rows": rows,
    }


def report(result: dict[str, Any]) -> str:
    base, custom = result["baseline"], result["customize"]
    lines = [
        f"machine: {result['machine']}",
        f"customize request: {custom['bytes']:,} bytes, median {custom['median_us']:.0f} us,"
        f" p99 {custom['p99_us']:.0f} us (once per offer and spec change: Metacontroller"
        " caches it)",
        "",
        f"{'offers':>7} {'sync request':>14} {'of 8 MiB cap':>12} {'median':>10} {'p99':>10}"
        f" {'x baseline':>10} {'one change: resyncs x median':>30}",
        f"{'baseline':>7} {base['bytes']:>12,} B {'':>12} {base['median_ms']:>7.2f} ms"
        f" {base['p99_ms']:>7.2f} ms {1:>10.1f} {'(no related offers)':>30}",
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['offers']:>7} {row['bytes']:>12,} B {row['cap_share']:>11.0%}"
            f" {row['median_ms']:>7.2f} ms {row['p99_ms']:>7.2f} ms {row['vs_baseline']:>10.1f}"
            f" {row['offers']:>10} x = {row['change_cpu_s']:>8.2f} s CPU"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offers", type=int, nargs="+", default=list(DEFAULT_OFFERS))
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    args = parser.parse_args()
    result = measure(args.offers, args.iterations)
    print(report(result))
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()

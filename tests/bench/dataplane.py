"""What buyers feel: the gateway's data plane through real Traefik, side by side in one run.

    make bench-dataplane                       # python tests/bench/dataplane.py (about 10 min)
    python tests/bench/dataplane.py --quick    # 1 round of 3 s per path (about 3 min)
    python tests/bench/dataplane.py --json out.json --markdown out.md --strict

It starts the e2e harness (:mod:`tests.e2e.stack`: real etcd, kube-apiserver and Traefik built by
``tests/e2e/build.sh``, Traefik logging errors only and no access log), the real hook
(``obol hook serve``, log level ``info``), the Metacontroller stand-in (:mod:`tests.e2e.driver`)
that writes the hook's children, a fixed-answer verifier (``upstream_server.py`` answering every
``/verify`` with 200 and a payer header: the real verifier's signature checks are not the
gateway's cost, and the e2e suite's SDK stand-in spends about 20 ms of Python per check, which
would be all this table measured) and one echo upstream in the harness's network namespace.
Then it measures, in rounds, each path after the other with wrk (``-t2``, closed loop, loopback
only), at 64 and 4 connections:

* ``bare``: a hand-written HTTPRoute straight to the upstream (no filter): the floor;
* ``forwardauth``: an offer without a capacity envelope: forwardAuth to the verifier, upstream;
* ``envelope``: an offer with the full envelope (offer key, errors, global and per-buyer
  inFlightReq with room to spare, buffering): what the envelope adds to forwardAuth;
* ``verifier``: the verifier's ``/verify`` alone, asked directly (the hop's own cost);
* ``busy``: an offer whose one slot (``maxInFlight: 1``) is held at the upstream, so every request
  is rejected by inFlightReq and answered by the hook's busy responder through the ``errors``
  Middleware; every answer is checked for 429, ``Retry-After`` and the JSON body;
* ``traefik429``: a hand-written HTTPRoute with the same offer-key header and an inFlightReq of 1,
  held the same way: Traefik's own 429 (no ``Retry-After``, a text body), the busy path's floor.

Ratios are taken within a round (each path against ``bare``, ``busy`` against ``traefik429``) and
their median is reported, so the machine's speed and the other processes on it cancel out. CPU
per request is read from ``/proc`` for Traefik, the hook (both servers) and the stand-ins
(the upstream's and the verifier's processes).

Last, ``POST /sync`` at 5 connections (Metacontroller's default workers) is measured alone, under
a flood of Traefik's own 429s and under a flood of busy 429s (64 connections each): a 429 flood
must not raise /sync's p99 beyond what the same load on the CPUs does.

Targets (issue 17): at 64 connections busy >= 0.5 x traefik429 req/s with p99 <= 20 ms; at 4
connections busy adds <= 1 ms at p50 over traefik429; every busy answer is a 429 with
Retry-After and the JSON body.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import requests  # noqa: E402

from tests.bench import loadgen, micro  # noqa: E402
from tests.bench.loadgen import Check, WrkResult  # noqa: E402
from tests.bench.run import load_average, machine, progress  # noqa: E402
from tests.bench.servers import descendants_of, process_cpu_seconds  # noqa: E402
from tests.e2e.driver import Driver, ready  # noqa: E402
from tests.e2e.hook_process import HookServer, start_hook  # noqa: E402
from tests.e2e.kube import KubeClient  # noqa: E402
from tests.e2e.stack import (  # noqa: E402
    REPO_ROOT,
    HTTPServerProcess,
    Stack,
    wait_until,
)

NAMESPACE = "bench"
UPSTREAM = "upstream"
UPSTREAM_PORT = 8000
PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"
PAYER = "0x" + "a1" * 20
KEY_HEADER = "X-Obol-Offer-Key"
RETRY_AFTER = 2
CONNECTIONS = (64, 4)
FLOOD_CONNECTIONS = 64
SYNC_CONNECTIONS = 5
BUSY_RATIO_TARGET = 0.5
BUSY_P99_TARGET_MS = 20.0
BUSY_ADDED_P50_TARGET_MS = 1.0
PAYMENT = {"network": "base", "asset": "usdc", "payTo": PAY_TO, "price": {"perRequest": "0.001"}}


def _offer(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "obol.org/v1alpha1",
        "kind": "ServiceOffer",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"upstream": {"service": UPSTREAM, "port": UPSTREAM_PORT}, **spec},
    }


OFFERS = (
    _offer("fa-only", {"type": "http", "payment": PAYMENT}),
    _offer(
        "envelope",
        {
            "type": "inference",
            "capabilities": {"protocol": "openai-chat", "streaming": False},
            "requestLimits": {"maxBodyBytes": 65536},
            "capacity": {
                "mode": "external-static",
                "maxInFlight": 10000,
                "perBuyerMaxInFlight": 10000,
                "retryAfterSeconds": RETRY_AFTER,
            },
            "payment": PAYMENT,
        },
    ),
    _offer(
        "busy",
        {
            "type": "http",
            "capacity": {
                "mode": "external-static",
                "maxInFlight": 1,
                "retryAfterSeconds": RETRY_AFTER,
            },
            "payment": PAYMENT,
        },
    ),
)


@dataclass(frozen=True)
class Plan:
    """How long and how often to measure."""

    rounds: int
    seconds: float
    warmup_seconds: float


FULL = Plan(rounds=3, seconds=10, warmup_seconds=2)
QUICK = Plan(rounds=1, seconds=3, warmup_seconds=1)


@dataclass(frozen=True)
class Target:
    """One measured path: where wrk sends its requests and what every answer must be."""

    name: str
    title: str
    url: str
    check: Check
    headers: Mapping[str, str] = field(default_factory=dict)
    reference: str | None = None  # the path its req/s ratio is taken against


# ---------------------------------------------------------------------------------------------
# the harness


def _route(name: str, path: str, filters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "parentRefs": [Stack.parent_ref()],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                    "filters": filters,
                    "backendRefs": [{"name": UPSTREAM, "port": UPSTREAM_PORT}],
                }
            ],
        },
    }


def hand_written_routes() -> list[dict[str, Any]]:
    """``bare`` (no filter) and ``traefik429`` (offer key + inFlightReq 1, nothing else)."""
    limit = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": {"name": "bench-inflight-1", "namespace": NAMESPACE},
        "spec": {
            "inFlightReq": {"amount": 1, "sourceCriterion": {"requestHeaderName": KEY_HEADER}}
        },
    }
    key = {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {"set": [{"name": KEY_HEADER, "value": "bench/traefik429"}]},
    }
    extension = {
        "type": "ExtensionRef",
        "extensionRef": {"group": "traefik.io", "kind": "Middleware", "name": "bench-inflight-1"},
    }
    return [limit, _route("bare", "/bare", []), _route("traefik429", "/t429", [key, extension])]


@dataclass
class Harness:
    """Everything running for the benchmark."""

    stack: Stack
    hook: HookServer
    upstream: HTTPServerProcess
    verifier: HTTPServerProcess
    holders: list[threading.Thread] = field(default_factory=list)

    def meters(self) -> dict[str, Callable[[], float]]:
        traefik = self.stack.process("traefik").pid
        hooks = [self.hook.proc.pid, self.hook.busy_proc.pid]  # the two containers' servers
        upstream, verifier = self.upstream.proc.pid, self.verifier.proc.pid
        assert None not in (traefik, *hooks, upstream, verifier)
        assert traefik is not None

        def hook_cpu() -> float:
            pids = [pid for hook in hooks if hook for pid in [hook, *descendants_of(hook)]]
            return sum(process_cpu_seconds(pid) for pid in pids)

        def stand_ins() -> float:
            return sum(process_cpu_seconds(pid) for pid in (upstream, verifier) if pid)

        return {
            "traefik": lambda: process_cpu_seconds(traefik),
            "hook": hook_cpu,
            "stand-ins": stand_ins,
        }

    def hold(self, path: str, key: str, headers: Mapping[str, str] | None = None) -> None:
        """Hold one request at the upstream under ``key`` until :meth:`release_all`."""

        def send() -> None:
            with contextlib.suppress(requests.RequestException):
                self.stack.http("GET", f"{path}?hold={key}", headers=headers, timeout=4000)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        self.holders.append(thread)
        self.upstream.wait_held(key, 1, timeout=15)

    def release_all(self) -> None:
        for key in self.upstream.held():
            self.upstream.release(key)
        for thread in self.holders:
            thread.join(timeout=10)


@contextlib.contextmanager
def harness() -> Iterator[Harness]:
    """Start the stack, the hook, the stand-ins and the offers; stop everything on exit."""
    with Stack(extra_crds=[REPO_ROOT / "crds" / "serviceoffer.yaml"], quiet=True) as stack:
        kube = KubeClient(stack.api_url, stack.token, stack.ca_file)
        verifier = stack.start_responder(
            "verifier",
            status=200,
            headers={"X-Payment-Payer": PAYER, "Content-Type": "application/json"},
            body='{"isValid":true}',
        )
        hook = start_hook(
            stack, verifier_url=verifier.url + "/verify", extra_env={"OBOL_LOG_LEVEL": "info"}
        )
        upstream = stack.start_upstream(UPSTREAM, hold_timeout=3600)
        stack.ensure_namespace(NAMESPACE)
        stack.expose_endpoints(
            NAMESPACE, UPSTREAM, upstream.host, upstream.port, service_port=UPSTREAM_PORT
        )
        driver = Driver(kube, hook.sync_endpoint)
        stack.apply(*OFFERS, *hand_written_routes())
        for offer in OFFERS:
            driver.converge(NAMESPACE, offer["metadata"]["name"], ready, timeout=90)
        for offer in OFFERS:
            name = offer["metadata"]["name"]
            stack.wait_for_route(NAMESPACE, f"so-{name}", timeout=60)
            wait_until(
                lambda name=name: stack.http("GET", f"/services/{name}/x").status_code == 200,
                timeout=60,
                what=f"200 from /services/{name} (the fixed verifier admits every request)",
            )
        for route in ("bare", "traefik429"):
            stack.wait_for_route(NAMESPACE, route, timeout=60)
        bench = Harness(stack, hook, upstream, verifier)
        try:
            bench.hold("/services/busy/x", "busy-slot")
            bench.hold("/t429", "t429-slot")
            yield bench
        finally:
            bench.release_all()


def paths(bench: Harness) -> list[Target]:
    """The measured paths, in the order of each round."""
    web, ok = bench.stack.web_url, Check(status=200)
    verify_headers = {
        "X-Forwarded-Uri": "/services/fa-only/x",
        "X-Forwarded-Host": "127.0.0.1",
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "http",
    }
    busy = Check(status=429, header="Retry-After", body_text='"error":"offer_saturated"')
    return [
        Target("bare", "bare HTTPRoute -> upstream", f"{web}/bare/x", ok),
        Target(
            "forwardauth",
            "offer without envelope (forwardAuth)",
            f"{web}/services/fa-only/x",
            ok,
            reference="bare",
        ),
        Target(
            "envelope",
            "offer with the full envelope",
            f"{web}/services/envelope/x",
            ok,
            reference="bare",
        ),
        Target(
            "verifier",
            "verifier hop alone (GET /verify)",
            bench.verifier.url + "/verify",
            ok,
            verify_headers,
            reference="bare",
        ),
        Target("traefik429", "Traefik's own inFlightReq 429", f"{web}/t429/x", Check(status=429)),
        Target(
            "busy",
            "saturated offer: busy 429 (errors -> hook)",
            f"{web}/services/busy/x",
            busy,
            reference="traefik429",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# measurements


def rounds(bench: Harness, plan: Plan) -> dict[int, dict[str, list[WrkResult]]]:
    """Every path after the other, ``plan.rounds`` times, at each connection count."""
    meters = bench.meters()
    found: dict[int, dict[str, list[WrkResult]]] = {}
    for connections in CONNECTIONS:
        runs: dict[str, list[WrkResult]] = {}
        for path in paths(bench):  # warm-up, discarded
            loadgen.wrk_run(
                meters,
                "warm-up",
                path.url,
                connections,
                plan.warmup_seconds,
                headers=path.headers,
                check=path.check,
            )
        for number in range(plan.rounds):
            for path in paths(bench):
                result = loadgen.wrk_run(
                    meters,
                    path.name,
                    path.url,
                    connections,
                    plan.seconds,
                    headers=path.headers,
                    check=path.check,
                )
                runs.setdefault(path.name, []).append(result)
            rates = ", ".join(f"{name} {done[-1].rps:,.0f}" for name, done in runs.items())
            progress(f"c={connections} round {number + 1}: {rates} req/s")
        found[connections] = runs
    return found


def sync_under_floods(bench: Harness, plan: Plan, body_file: Path) -> dict[str, WrkResult]:
    """POST /sync at 5 connections alone, then under a 429 flood of each kind."""
    meters = bench.meters()
    web = bench.stack.web_url
    floods = {
        "alone": None,
        "under traefik429 flood": f"{web}/t429/x",
        "under busy flood": f"{web}/services/busy/x",
    }
    results: dict[str, WrkResult] = {}
    for label, flood_url in floods.items():
        flood: subprocess.Popen[bytes] | None = None
        if flood_url is not None:
            flood = subprocess.Popen(
                [
                    loadgen.require_wrk(),
                    "-t1",
                    f"-c{FLOOD_CONNECTIONS}",
                    f"-d{plan.seconds + 4:g}s",
                    flood_url,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        try:
            results[label] = loadgen.wrk_run(
                meters,
                f"sync {label}",
                bench.hook.sync_endpoint,
                SYNC_CONNECTIONS,
                plan.seconds,
                "POST",
                body_file,
                check=Check(status=200, body_text='"children":'),
            )
        finally:
            if flood is not None:
                flood.wait(timeout=plan.seconds + 30)
        progress(f"/sync {label}: p99 {results[label].p99_ms:.1f} ms")
    return results


# ---------------------------------------------------------------------------------------------
# the table


def _median_ratio(runs: Mapping[str, list[WrkResult]], name: str, reference: str) -> float:
    return statistics.median(
        mine.rps / theirs.rps for mine, theirs in zip(runs[name], runs[reference], strict=True)
    )


def _cpu(summary: loadgen.Summary) -> str:
    cpu = summary.cpu_us_per_request
    return f"{cpu['traefik']:.0f} / {cpu['hook']:.0f} / {cpu['stand-ins']:.0f}"


def table(results: dict[str, Any], titles: Mapping[str, Target]) -> list[list[str]]:
    """Rows: one per path and connection count, then the targets and the /sync rows."""
    rows: list[list[str]] = []
    for connections, runs in results["rounds"].items():
        for name, found in runs.items():
            summary = loadgen.summarize(found)
            reference = titles[name].reference
            ratio = f"{_median_ratio(runs, name, reference):.2f} x {reference}" if reference else ""
            unexpected = summary.errors.get("unexpected", 0)
            socket_errors = sum(
                v for k, v in summary.errors.items() if k not in {"unexpected", "status"}
            )
            rows.append(
                [
                    f"c={connections} {name}: {titles[name].title}",
                    f"{summary.rps:,.0f}",
                    ratio,
                    f"{summary.p50_ms:.2f}",
                    f"{summary.p99_ms:.2f}",
                    _cpu(summary),
                    f"{unexpected} / {socket_errors}",
                ]
            )
    return rows


def verdicts(results: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(what, measured, target, met) for the issue's targets."""
    out: list[tuple[str, str, str, bool]] = []
    high = results["rounds"][64]
    ratio = _median_ratio(high, "busy", "traefik429")
    out.append(
        (
            "c=64 busy req/s vs Traefik's own 429",
            f"{ratio:.2f} x",
            f">= {BUSY_RATIO_TARGET} x",
            ratio >= BUSY_RATIO_TARGET,
        )
    )
    p99 = loadgen.summarize(high["busy"]).p99_ms
    out.append(
        (
            "c=64 busy p99",
            f"{p99:.1f} ms",
            f"<= {BUSY_P99_TARGET_MS:.0f} ms",
            p99 <= BUSY_P99_TARGET_MS,
        )
    )
    low = results["rounds"][4]
    added = statistics.median(
        busy.p50_ms - own.p50_ms for busy, own in zip(low["busy"], low["traefik429"], strict=True)
    )
    out.append(
        (
            "c=4 busy p50 added over Traefik's own 429",
            f"{added:.2f} ms",
            f"<= {BUSY_ADDED_P50_TARGET_MS:.0f} ms",
            added <= BUSY_ADDED_P50_TARGET_MS,
        )
    )
    unexpected = sum(
        run.errors.get("unexpected", 0)
        for runs in results["rounds"].values()
        for run in runs["busy"]
    )
    out.append(
        (
            "busy answers without 429 + Retry-After + JSON body",
            str(unexpected),
            "0",
            unexpected == 0,
        )
    )
    sync = results["sync"]
    alone, own, busy_flood = (
        sync[k].p99_ms for k in ("alone", "under traefik429 flood", "under busy flood")
    )
    out.append(
        (
            f"POST /sync c={SYNC_CONNECTIONS} p99: alone / Traefik-429 flood / busy flood",
            f"{alone:.1f} / {own:.1f} / {busy_flood:.1f} ms",
            "busy flood <= 1.5 x the Traefik-429 flood",
            busy_flood <= 1.5 * own,
        )
    )
    return out


def format_rows(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(t.ljust(w) for t, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(t.ljust(w) for t, w in zip(line, widths, strict=True)) for line in rows]
    return "\n".join(lines)


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


HEADER = [
    "path",
    "req/s",
    "ratio (median of rounds)",
    "p50 ms",
    "p99 ms",
    "CPU µs/req traefik / hook / stand-ins",
    "unexpected / socket errors",
]
TARGET_HEADER = ["target", "measured", "wanted", "verdict"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, WrkResult):
        return value.as_dict()
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s per path")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the raw results")
    parser.add_argument(
        "--markdown", type=Path, metavar="PATH", help="write the tables as Markdown"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    loadgen.require_wrk()
    plan = QUICK if args.quick else FULL
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "plan": plan.__dict__,
        "machine": machine(),
        "load_before": load_average(),
    }
    with tempfile.TemporaryDirectory(prefix="obol-dataplane-") as workdir:
        body_file = Path(workdir) / "specs.jsonl"
        body_file.write_bytes(b"".join(body + b"\n" for body in micro.new_spec_bodies(1024)))
        with harness() as bench:
            titles = {path.name: path for path in paths(bench)}
            results["versions"] = dict(bench.stack.binaries.versions)
            results["rounds"] = rounds(bench, plan)
            results["sync"] = sync_under_floods(bench, plan, body_file)
    results["load_after"] = load_average()
    rows = table(results, titles)
    checks = verdicts(results)
    target_rows = [
        [what, got, wanted, "met" if ok else "MISSED"] for what, got, wanted, ok in checks
    ]
    info = results["machine"]
    heading = (
        f"obol data plane through Traefik {results['versions'].get('TRAEFIK_VERSION', '?')}, "
        f"{results['date']}{' (quick)' if args.quick else ''}; {info['nproc']} x {info['cpu']} "
        f"shared with other work (load average {results['load_before']:.1f} before, "
        f"{results['load_after']:.1f} after); wrk -t2, {plan.rounds} round(s) of "
        f"{plan.seconds:g} s per path"
    )
    print(heading + "\n")
    print(format_rows(HEADER, rows))
    print()
    print(format_rows(TARGET_HEADER, target_rows))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(_jsonable(results), option=orjson.OPT_INDENT_2))
    if args.markdown is not None:
        args.markdown.write_text(
            heading
            + ".\n\n"
            + markdown(HEADER, rows)
            + "\n\n"
            + markdown(TARGET_HEADER, target_rows)
            + "\n"
        )
    missed = [what for what, _, _, ok in checks if not ok]
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())

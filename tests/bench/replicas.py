"""Two gateway replicas: what ``maxInFlight / OBOL_GATEWAY_REPLICAS`` really admits.

    python tests/bench/replicas.py              # about 1-2 min
    python tests/bench/replicas.py --json out.json

Not part of ``make test``. On the e2e harness: the real API server, the real hook with
``OBOL_GATEWAY_REPLICAS=2``, the Metacontroller stand-in, and two Traefik processes serving the
same Gateway listener from the same API server (``127.0.0.1`` and ``127.0.0.2``, same port), as
two gateway replicas behind a load balancer do. Each replica counts in-flight requests in its own
memory, so each enforces ``floor(maxInFlight / 2)``.

A simple client stands in for the balancer: it sends paid requests one after another, each held
open at the upstream, to replica A or B by a pattern (even round robin A, B, A, B...; skewed
A, A, A, B...; all to A), and records for each whether it was admitted (held at the upstream)
or answered 429. Reported per offer and pattern: the most requests admitted at once, and the
request number of the earliest 429, against ``maxInFlight``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import requests  # noqa: E402

from tests.bench.run import progress  # noqa: E402
from tests.e2e.buyer import Buyer, paid  # noqa: E402
from tests.e2e.driver import Driver, ready  # noqa: E402
from tests.e2e.hook_process import start_hook  # noqa: E402
from tests.e2e.kube import KubeClient  # noqa: E402
from tests.e2e.stack import REPO_ROOT, HTTPServerProcess, Stack, wait_until  # noqa: E402
from tests.e2e.verifier_stub import start_verifier  # noqa: E402

NAMESPACE = "replicas"
PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"
REPLICAS = 2
LIMITS = (4, 5)
PATTERNS = {
    "even (A, B, A, B, ...)": "AB",
    "skewed 3:1 (A, A, A, B, ...)": "AAAB",
    "all to replica A": "A",
}


def offer(limit: int) -> dict[str, Any]:
    return {
        "apiVersion": "obol.org/v1alpha1",
        "kind": "ServiceOffer",
        "metadata": {"name": f"cap-{limit}", "namespace": NAMESPACE},
        "spec": {
            "type": "http",
            "upstream": {"service": "upstream", "port": 8000},
            "capacity": {"mode": "external-static", "maxInFlight": limit, "retryAfterSeconds": 1},
            "payment": {
                "network": "base",
                "asset": "usdc",
                "payTo": PAY_TO,
                "price": {"perRequest": "0.001"},
            },
        },
    }


def probe(
    replicas: dict[str, str],
    upstream: HTTPServerProcess,
    path: str,
    headers: dict[str, str],
    pattern: str,
    count: int,
    tag: str,
) -> dict[str, Any]:
    """Send ``count`` held requests by ``pattern``; which were admitted, which got 429."""
    outcomes: list[str] = []
    keys: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        futures = []
        try:
            for index in range(count):
                replica = pattern[index % len(pattern)]
                key = f"{tag}-{index}"
                keys.append(key)
                url = f"{replicas[replica]}{path}?hold={key}"
                future = pool.submit(requests.get, url, headers=headers, timeout=60)
                futures.append(future)

                def settled(
                    future: Any = future, key: str = key, replica: str = replica
                ) -> str | None:
                    if future.done():
                        return f"{replica}:{future.result().status_code}"
                    if upstream.held().get(key, 0) == 1:
                        return f"{replica}:held"
                    return None

                outcomes.append(
                    wait_until(settled, timeout=15, what=f"request {key}", interval=0.02)
                )
        finally:
            for key in keys:
                upstream.release(key)
            for future in futures:
                future.result(timeout=30)
    admitted = [o for o in outcomes if o.endswith(":held")]
    first_429 = next((i + 1 for i, o in enumerate(outcomes) if o.endswith(":429")), None)
    return {
        "outcomes": outcomes,
        "admitted": len(admitted),
        "admitted_per_replica": {r: sum(o.startswith(r) for o in admitted) for r in "AB"},
        "first_429": first_429,
        "other": [o for o in outcomes if not o.endswith((":held", ":429"))],
    }


def run() -> dict[str, Any]:
    with Stack(extra_crds=[REPO_ROOT / "crds" / "serviceoffer.yaml"], quiet=True) as stack:
        kube = KubeClient(stack.api_url, stack.token, stack.ca_file)
        buyer = Buyer()
        verifier = start_verifier(
            stack.api_url, stack.token, str(stack.ca_file), funded=[buyer.address]
        )
        try:
            hook = start_hook(
                stack,
                verifier_url=verifier.verify_url,
                extra_env={"OBOL_LOG_LEVEL": "info", "OBOL_GATEWAY_REPLICAS": str(REPLICAS)},
            )
            upstream = stack.start_upstream("upstream")
            stack.ensure_namespace(NAMESPACE)
            stack.expose_endpoints(
                NAMESPACE, "upstream", upstream.host, upstream.port, service_port=8000
            )
            second_web, _ = stack.start_gateway_replica("traefik-b", "127.0.0.2")
            replicas = {"A": stack.web_url, "B": second_web}
            driver = Driver(kube, hook.sync_endpoint)
            offers = [offer(limit) for limit in LIMITS]
            stack.apply(*offers)
            for item in offers:
                driver.converge(NAMESPACE, item["metadata"]["name"], ready, timeout=90)
            for item in offers:
                path = f"/services/{item['metadata']['name']}/x"
                for url in replicas.values():
                    wait_until(
                        lambda url=url, path=path: (
                            requests.get(url + path, timeout=5).status_code == 402
                        ),
                        timeout=60,
                        what=f"402 from {url}{path}",
                    )
            required = requests.get(f"{stack.web_url}/services/cap-4/x", timeout=5).json()
            headers = paid(required, buyer)  # verify-only: one authorization serves every hold
            time.sleep(1.0)  # let both replicas settle on the last configuration
            found: dict[str, Any] = {}
            for limit in LIMITS:
                for label, pattern in PATTERNS.items():
                    result = probe(
                        replicas,
                        upstream,
                        f"/services/cap-{limit}/x",
                        headers,
                        pattern,
                        2 * limit,
                        f"c{limit}-{pattern}",
                    )
                    found[f"{limit}|{label}"] = result
                    progress(f"maxInFlight {limit}, {label}: {result['outcomes']}")
            return found
        finally:
            verifier.stop()


def report(found: dict[str, Any]) -> str:
    lines = [
        f"| maxInFlight (per replica, {REPLICAS} replicas) | traffic | requests sent | most "
        "admitted at once (A + B) | earliest 429 at request |",
        "|---|---|---:|---|---:|",
    ]
    for key, result in found.items():
        limit, label = key.split("|")
        per = max(1, int(limit) // REPLICAS)
        each = result["admitted_per_replica"]
        lines.append(
            f"| {limit} ({per}) | {label} | {len(result['outcomes'])} | {result['admitted']} "
            f"({each['A']} + {each['B']}) | {result['first_429'] or 'none'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the raw results")
    args = parser.parse_args(argv)
    found = run()
    print(report(found))
    others = [o for result in found.values() for o in result["other"]]
    if others:
        print(f"unexpected answers: {others}")
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(found, option=orjson.OPT_INDENT_2))
    return 1 if others else 0


if __name__ == "__main__":
    sys.exit(main())

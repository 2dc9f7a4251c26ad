"""Load generation for the robustness tests against a real server (not a test module).

Design notes:

* A :class:`Probe` is one kind of request with the status it must get and a check of its body.
  Valid sync requests come from the benchmark's resync-storm generator (distinct offers, most
  with live children), so each 200 is checked to be the answer for *its own* offer (the
  ``status.endpoint`` of that offer) and never ``children: []`` for an existing offer.
* :func:`run_load` drives several client threads for a bounded time (and a bounded number of
  requests), picks probes by weight with a seeded RNG per thread, and records every outcome.
  A connection error (refused, reset, timeout, truncated answer) is recorded, never retried.
* Process helpers read the gunicorn master's workers and their RSS from ``/proc``.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import requests
import yaml

from hooks.cli.hook import render_request
from tests.bench.storm import storm_offer
from tests.http.http_harness import children
from tests.robustness.strategies import RESPONSE_KEYS
from tests.support.rss import rss_bytes

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0  # Metacontroller's default hook timeout

Check = Callable[[bytes], str | None]  # None when the body is right, else what is wrong


@dataclass(frozen=True)
class Probe:
    """One kind of request and what it must get."""

    name: str
    method: str
    port: str  # "sync" or "busy"
    path: str
    body: bytes | Callable[[], Iterator[bytes]] | None
    expected: frozenset[int]
    check: Check | None = None
    headers: dict[str, str] = field(default_factory=dict)
    weight: float = 1.0


@dataclass
class Outcome:
    """What one client saw."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    wrong_status: list[str] = field(default_factory=list)
    wrong_body: list[str] = field(default_factory=list)
    connection_errors: list[str] = field(default_factory=list)
    requests: int = 0

    def merge(self, other: Outcome) -> None:
        """Add another client's outcome to this one."""
        self.statuses.update(other.statuses)
        self.wrong_status += other.wrong_status
        self.wrong_body += other.wrong_body
        self.connection_errors += other.connection_errors
        self.requests += other.requests

    @property
    def server_errors(self) -> int:
        """Answers with a 5xx status."""
        return sum(count for (_, status), count in self.statuses.items() if status >= 500)


# ---------------------------------------------------------------- body checks


def json_error(body: bytes) -> str | None:
    """A JSON error body ``{"error": ..., ...}``."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "not JSON"
    return None if isinstance(answer, dict) and answer.get("error") else f"not an error: {body!r}"


def sync_answer(endpoint: str | None, *, existing: bool) -> Check:
    """A v2 answer for the offer whose ``status.endpoint`` is ``endpoint``."""

    def check(body: bytes) -> str | None:
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "not JSON"
        if not isinstance(answer, dict) or not set(answer) <= RESPONSE_KEYS:
            return f"keys {sorted(answer) if isinstance(answer, dict) else type(answer)}"
        if not isinstance(answer.get("status"), dict) or not isinstance(
            answer.get("children"), list
        ):
            return "no status object or children list"
        if existing and not answer["children"]:
            return "children: [] for an existing offer"
        got = answer["status"].get("endpoint")
        if endpoint is not None and got != endpoint:
            return f"answer for {got!r}, asked for {endpoint!r}"
        return None

    return check


def invalid_spec_answer(body: bytes) -> str | None:
    """200 with Ready=False/InvalidSpec and no children (a new offer)."""
    problem = sync_answer(None, existing=False)(body)
    if problem is not None:
        return problem
    answer = orjson.loads(body)
    reasons = {c.get("reason") for c in answer["status"].get("conditions", [])}
    if "InvalidSpec" not in reasons or answer["children"]:
        return f"not an InvalidSpec answer: {reasons}"
    return None


# ---------------------------------------------------------------- the catalogue


def valid_probes(count: int, weight: float = 1.0) -> list[Probe]:
    """``count`` distinct offers' sync requests (90 % existing), each checked for its endpoint."""
    probes = []
    for index in range(count):
        offer = storm_offer(index)
        check = sync_answer(offer.endpoint, existing=offer.existing)
        kind = "valid-existing" if offer.existing else "valid-new"
        headers = {"Content-Type": "application/json"}
        ok = frozenset({200})
        probes.append(Probe(kind, "POST", "sync", "/sync", offer.body, ok, check, headers, weight))
    return probes


def _invalid_offer_bodies() -> list[bytes]:
    bodies = []
    for path in sorted((ROOT / "examples/invalid").glob("*.yaml")):
        bodies.append(orjson.dumps(render_request(yaml.safe_load(path.read_text()))))
    return bodies


def _chunks(total: int) -> Callable[[], Iterator[bytes]]:
    def generate() -> Iterator[bytes]:
        sent = 0
        while sent < total:
            piece = min(65536, total - sent)
            sent += piece
            yield b" " * piece

    return generate


def hostile_probes(cap: int, seed: int = 6) -> list[Probe]:
    """Invalid specs, malformed and garbage bodies, wrong content types, oversized bodies,
    the busy responder, unknown paths and wrong methods."""
    rng = random.Random(seed)
    json_type = {"Content-Type": "application/json"}
    valid = storm_offer(1)
    probes = [
        Probe(f"invalid-spec-{index}", "POST", "sync", "/sync", body, frozenset({200}),
              invalid_spec_answer, json_type)
        for index, body in enumerate(_invalid_offer_bodies())
    ]  # fmt: skip
    malformed = [
        b"[1, 2]",
        b'"text"',
        b'{"parent": 5}',
        b'{"parent": {"metadata": {}}}',
        b'{"parent": {"metadata": {"name": "x"}}, "children": []}',
        b"{}",
        b"null",
    ]
    garbage = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))) for _ in range(8)]
    truncated = [valid.body[: rng.randrange(1, len(valid.body))] for _ in range(6)]
    for label, group in (("malformed", malformed), ("garbage", garbage), ("truncated", truncated)):
        probes += [
            Probe(label, "POST", "sync", "/sync", body, frozenset({400}), json_error, json_type)
            for body in group
        ]
    good = sync_answer(valid.endpoint, existing=valid.existing)
    for content_type in ("text/plain", "multipart/form-data; boundary=x", "", "application/xml"):
        headers = {"Content-Type": content_type} if content_type else {}
        probes.append(Probe("wrong-content-type", "POST", "sync", "/sync", valid.body,
                            frozenset({200}), good, headers))  # fmt: skip
    probes += [
        Probe("oversized", "POST", "sync", "/sync", b" " * (cap + 1), frozenset({413}),
              json_error, json_type),
        Probe("oversized-x4", "POST", "sync", "/sync", valid.body + b" " * (4 * cap),
              frozenset({413}), json_error, json_type),
        # Chunked bodies are cut at the cap by Werkzeug (so answered 400, not 413).
        Probe("oversized-chunked", "POST", "sync", "/sync", _chunks(2 * cap),
              frozenset({400, 413}), json_error, json_type),
        Probe("busy", "GET", "busy", "/busy/llm-sellers/qwen36-fast?retryAfter=3",
              None, frozenset({429}), json_error, weight=4),
        Probe("unknown-path", "POST", "sync", "/no/such/path", valid.body, frozenset({404}),
              json_error, json_type),
        Probe("sync-on-busy-port", "POST", "busy", "/sync", valid.body, frozenset({404}),
              json_error, json_type),
        Probe("wrong-method", "GET", "sync", "/sync", None, frozenset({405}), json_error),
        Probe("wrong-method-busy", "DELETE", "busy", "/busy/a/b", None, frozenset({405}),
              json_error),
        Probe("healthz", "GET", "sync", "/healthz", None, frozenset({200})),
    ]  # fmt: skip
    return probes


# ---------------------------------------------------------------- the driver


def send(base: dict[str, str], probe: Probe, outcome: Outcome) -> None:
    """One request; record what happened."""
    outcome.requests += 1
    body = probe.body() if callable(probe.body) else probe.body
    try:
        response = requests.request(
            probe.method,
            base[probe.port] + probe.path,
            data=body,
            headers={"Connection": "close", **probe.headers},
            timeout=TIMEOUT,
        )
    except requests.RequestException as exc:
        outcome.connection_errors.append(f"{probe.name}: {type(exc).__name__}: {exc}"[:300])
        return
    outcome.statuses[(probe.name, response.status_code)] += 1
    if response.status_code not in probe.expected:
        outcome.wrong_status.append(f"{probe.name}: {response.status_code} {response.text[:200]}")
        return
    problem = probe.check(response.content) if probe.check is not None else None
    if problem is not None:
        outcome.wrong_body.append(f"{probe.name}: {problem}")


def run_load(
    base: dict[str, str],
    probes: list[Probe],
    *,
    threads: int,
    seconds: float,
    max_requests: int,
    seed: int = 0,
    during: Callable[[], None] | None = None,
) -> Outcome:
    """``threads`` clients send weighted random probes until ``seconds`` or ``max_requests``.

    ``during`` runs in the calling thread while the clients run (e.g. to kill a worker).
    """
    deadline = time.monotonic() + seconds
    per_thread = max(1, max_requests // threads)
    weights = [probe.weight for probe in probes]
    outcomes = [Outcome() for _ in range(threads)]

    def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        outcome = outcomes[number]
        while time.monotonic() < deadline and outcome.requests < per_thread:
            send(base, rng.choices(probes, weights)[0], outcome)

    workers = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    if during is not None:
        during()
    for worker in workers:
        worker.join(timeout=seconds + 2 * TIMEOUT)
    total = Outcome()
    for outcome in outcomes:
        total.merge(outcome)
    return total


def urls(server: Any) -> dict[str, str]:
    """The two listeners' base URLs of a HookServer."""
    return {"sync": server.sync_url, "busy": server.busy_url}


# ---------------------------------------------------------------- processes


def workers_of(master: int) -> list[int]:
    """The gunicorn master's current children (its workers)."""
    return children(master)


def tree_rss(root: int) -> int:
    """RSS of a process and all its descendants (``obol hook serve``: both servers, workers)."""
    pids, level = [root], [root]
    while level:
        level = [child for pid in level for child in children(pid)]
        pids.extend(level)
    return sum(rss_bytes(pid) for pid in pids)


def metric(metrics_text: str, name: str, labels: str = "") -> float:
    """One sample's value from a Prometheus text exposition (0 when absent)."""
    pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", re.MULTILINE)
    found = pattern.search(metrics_text)
    return float(found.group(1)) if found else 0.0


def wait_for_workers(master: int, count: int, excluding: set[int], timeout: float) -> list[int]:
    """Wait until the master has ``count`` workers, none of them in ``excluding``."""
    deadline = time.monotonic() + timeout
    current = workers_of(master)
    while time.monotonic() < deadline:
        current = workers_of(master)
        if len(current) == count and not set(current) & excluding:
            return current
        time.sleep(0.05)
    raise AssertionError(f"workers did not come back: {current} (killed {excluding})")

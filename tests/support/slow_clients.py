"""Clients that trickle or sit silent on a server's port, and what the kubelet and
Metacontroller see meanwhile: the load behind tests/http/test_slow_clients.py and the
targets script (tests/bench/pod_targets.py).

A *trickling* client sends a request head one byte every :data:`TRICKLE_INTERVAL` seconds and
never finishes it; a *silent* client connects and sends nothing. Either reconnects as soon as
the server closes on it, so the pressure holds for the whole run. Meanwhile one thread asks the
attacked port's probes (``/healthz`` and ``/readyz`` in turn, as the kubelet does, with its 1 s
timeout) and another POSTs syncs to the sync port back to back. Every loop is bounded by the
run's duration; every socket has a timeout.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

TRICKLE_INTERVAL = 1.9  # seconds between two bytes of a trickling head
PROBE_TIMEOUT = 1.0  # the kubelet's timeoutSeconds
PROBE_INTERVAL = 0.25
HEAD = b"GET /healthz HTTP/1.1\r\nHost: hook\r\nX-Slow: " + b"a" * 4096


@dataclass(frozen=True)
class Outcome:
    """What the probes and syncs saw during one run."""

    probes: int
    probe_misses: int  # no answer within PROBE_TIMEOUT
    probe_max: float  # seconds, the slowest probe answered in time
    syncs: int
    sync_failures: int
    sync_p99: float  # seconds

    def line(self) -> str:
        return (
            f"probes {self.probes - self.probe_misses}/{self.probes} answered within"
            f" {PROBE_TIMEOUT:g} s (slowest {self.probe_max * 1000:.0f} ms); /sync p99"
            f" {self.sync_p99 * 1000:.0f} ms over {self.syncs} ({self.sync_failures} failed)"
        )


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _hold(address: tuple[str, int], mode: str, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with socket.create_connection(address, timeout=TRICKLE_INTERVAL + 1) as sock:
                sent = 0
                while not stop.is_set():
                    if mode == "trickle":
                        sock.sendall(HEAD[sent % len(HEAD) : sent % len(HEAD) + 1])
                        sent += 1
                    sock.settimeout(TRICKLE_INTERVAL)
                    try:
                        if sock.recv(4096) == b"":
                            break  # the server closed on us: come back
                    except TimeoutError:
                        pass
        except OSError:
            stop.wait(0.05)


def run(
    attacked_url: str, sync_url: str, sync_body: bytes, mode: str, clients: int, seconds: float
) -> Outcome:
    """``clients`` clients in ``mode`` on ``attacked_url`` for ``seconds``; what was seen."""
    stop = threading.Event()
    address = _address(attacked_url)
    holders = [
        threading.Thread(target=_hold, args=(address, mode, stop), daemon=True)
        for _ in range(clients)
    ]
    for holder in holders:
        holder.start()
    time.sleep(0.5)  # let them connect and take what they can
    probe_times: list[float] = []
    sync_times: list[float] = []
    sync_failures = [0]

    def probe() -> None:
        paths = ("/healthz", "/readyz")
        while not stop.is_set():
            started = time.monotonic()
            try:
                answer = requests.get(
                    attacked_url + paths[len(probe_times) % 2], timeout=PROBE_TIMEOUT
                )
                elapsed = time.monotonic() - started if answer.status_code == 200 else 99.0
            except requests.RequestException:
                elapsed = 99.0
            probe_times.append(elapsed)
            stop.wait(PROBE_INTERVAL)

    def sync() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                answer = requests.post(sync_url + "/sync", data=sync_body, timeout=5)
                ok = answer.status_code == 200
            except requests.RequestException:
                ok = False
            sync_times.append(time.monotonic() - started if ok else 5.0)  # failed: the timeout
            sync_failures[0] += not ok
            stop.wait(0.05)

    watchers = [threading.Thread(target=probe), threading.Thread(target=sync)]
    for watcher in watchers:
        watcher.start()
    time.sleep(seconds)
    stop.set()
    for thread in [*watchers, *holders]:
        thread.join(timeout=TRICKLE_INTERVAL + 6)
    ordered = sorted(sync_times) or [0.0]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return Outcome(
        probes=len(probe_times),
        probe_misses=sum(t > PROBE_TIMEOUT for t in probe_times),
        probe_max=max((t for t in probe_times if t <= PROBE_TIMEOUT), default=0.0),
        syncs=len(sync_times),
        sync_failures=sync_failures[0],
        sync_p99=p99 if len(ordered) > 1 else statistics.fmean(ordered),
    )

"""Stand-ins for the seller's inference server: real HTTP servers on 127.0.0.1, random ports.

:class:`FakeEngine` answers ``GET /health`` and ``GET /metrics`` like vLLM or llama.cpp (the
exposition is the committed sample with its request gauges rewritten), and can be told to
answer another status, to hold requests (a slow upstream) or to redirect. Every hold is bounded,
and the server logs the paths it saw so tests can assert what was (not) probed.

Also here: :class:`FakeClock` (a settable monotonic clock), :class:`ScriptedFetch` (an in-memory
``fetch`` that can block), :func:`offer` (a valid offer) and :func:`plan_of` (its plan, what the
observer is given).
Test support only; never used by the hook.
"""

from __future__ import annotations

import copy
import re
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hooks.core.plan import OfferPlan, plan_offer
from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.observe.fetch import FetchResult

SAMPLES = Path(__file__).resolve().parent / "samples"
HOLD_LIMIT = 10.0  # no request is ever held longer than this


def sample(name: str) -> str:
    """The text of a committed exposition sample (``vllm.txt`` or ``llamacpp.txt``)."""
    return (SAMPLES / name).read_text()


def vllm_exposition(running: tuple[float, ...], waiting: tuple[float, ...]) -> str:
    """The vLLM sample with one running/waiting value per engine label set (engine 0, 1, ...)."""
    lines = [
        line
        for line in sample("vllm.txt").splitlines()
        if not line.startswith(("vllm:num_requests_running{", "vllm:num_requests_waiting{"))
    ]
    out: list[str] = []
    for line in lines:
        out.append(line)
        for name, values in (("running", running), ("waiting", waiting)):
            if line.startswith(f"# TYPE vllm:num_requests_{name} "):
                out.extend(
                    f'vllm:num_requests_{name}{{engine="{i}",model_name="Qwen/Qwen3.6-32B-Instruct"}}'
                    f" {float(v)}"
                    for i, v in enumerate(values)
                )
    return "\n".join(out) + "\n"


def llamacpp_exposition(processing: float, deferred: float) -> str:
    """The llama.cpp sample with its two request gauges set."""
    text = sample("llamacpp.txt")
    text = re.sub(
        r"(?m)^llamacpp:requests_processing .*$",
        f"llamacpp:requests_processing {processing:g}",
        text,
    )
    return re.sub(
        r"(?m)^llamacpp:requests_deferred .*$", f"llamacpp:requests_deferred {deferred:g}", text
    )


class FakeEngine:
    """A vLLM-like or llama.cpp-like upstream; every attribute can be changed while it runs."""

    def __init__(self, metrics: str = "") -> None:
        self.health_status = 200
        self.metrics_status = 200
        self.metrics = metrics
        self.redirect_to: str | None = None  # answer /health with a 302 to this URL
        self.drip: float | None = None  # send /metrics a line at a time, this many s apart
        self.hold = threading.Event()  # set = answer at once; clear = hold (bounded)
        self.hold.set()
        self.paths: list[str] = []
        self.seen = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeEngine:
        self._thread.start()
        return self

    def close(self) -> None:
        self.hold.set()
        self._server.shutdown()
        self._server.server_close()

    def count(self, path: str) -> int:
        """How many GETs of ``path`` arrived so far."""
        with self.seen:
            return self.paths.count(path)

    def wait_for(self, path: str, count: int = 1, timeout: float = 5.0) -> bool:
        """Wait until ``count`` GETs of ``path`` arrived."""
        with self.seen:
            return self.seen.wait_for(lambda: self.paths.count(path) >= count, timeout)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with engine.seen:
                    engine.paths.append(self.path)
                    engine.seen.notify_all()
                engine.hold.wait(HOLD_LIMIT)
                if self.path == "/metrics":
                    body = engine.metrics.encode()
                    self._answer(engine.metrics_status, body, "text/plain; version=0.0.4")
                elif engine.redirect_to is not None:
                    self._answer(302, b"", "text/plain", {"Location": engine.redirect_to})
                else:
                    self._answer(engine.health_status, b"{}", "application/json")

            def _answer(
                self,
                status: int,
                body: bytes,
                content_type: str,
                headers: dict[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                pause = engine.drip if self.path == "/metrics" else None
                try:
                    if pause is None:
                        self.wfile.write(body)
                        return
                    for line in body.splitlines(keepends=True):
                        self.wfile.write(line)
                        self.wfile.flush()
                        threading.Event().wait(pause)
                except OSError:
                    pass  # the prober gave up (timeout); nothing to do

        return Handler


def refused_url() -> str:
    """A loopback URL where nothing listens (the port was just freed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class ScriptedFetch:
    """An in-memory fetch: answers from ``routes`` (url -> result or exception factory).

    ``gate`` (cleared) holds every call until set, bounded; ``active``/``peak`` count calls in
    progress, so tests can assert bounded concurrency.
    """

    def __init__(self, routes: dict[str, Callable[[], FetchResult]] | None = None) -> None:
        self.routes = routes if routes is not None else {}
        self.calls: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.active = 0
        self.peak = 0
        self.changed = threading.Condition()

    def __call__(self, url: str, timeout: float, max_bytes: int) -> FetchResult:
        with self.changed:
            self.calls.append(url)
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.changed.notify_all()
        try:
            self.gate.wait(HOLD_LIMIT)
            answer = self.routes.get(url)
            if answer is None:
                raise ConnectionRefusedError(111, "Connection refused")
            return answer()
        finally:
            with self.changed:
                self.active -= 1
                self.changed.notify_all()

    def wait_active(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until ``count`` calls are in progress at once."""
        with self.changed:
            return self.changed.wait_for(lambda: self.active >= count, timeout)


def ok(body: str = "", status: int = 200) -> Callable[[], FetchResult]:
    """A route answering ``status`` with ``body``."""
    return lambda: FetchResult(status, body.encode())


def offer(
    *,
    namespace: str = "llm",
    name: str = "fast",
    service: str = "vllm",
    port: int = 8000,
    type_: str = "inference",
    capacity: bool = True,
    health_path: str | None = None,
) -> dict[str, Any]:
    """A small valid ServiceOffer parent."""
    upstream: dict[str, Any] = {"service": service, "port": port}
    if health_path is not None:
        upstream["healthPath"] = health_path
    payment = {"network": "base", "payTo": PAY_TO, "price": {"perRequest": "0.001"}}
    spec: dict[str, Any] = {"type": type_, "upstream": upstream, "payment": payment}
    if capacity:
        spec["capacity"] = {"mode": "external-static", "maxInFlight": 8}
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


PAY_TO = "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"


def plan_of(parent: dict[str, Any]) -> OfferPlan:
    """The plan of ``parent``, as the core hands it to the observer."""
    request = parse_request(sync_request(parent))
    return plan_offer(request.namespace, request.name, request.spec, Settings())


def sync_request(parent: dict[str, Any]) -> dict[str, Any]:
    """A sync request for ``parent`` with no observed children."""
    return {"parent": copy.deepcopy(parent), "children": {}}

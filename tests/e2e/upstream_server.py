"""A tiny stand-in HTTP server for the e2e stack: an "upstream" (echo) or a fixed responder.

Run as a separate process by ``stack.py`` (inside a network namespace for upstreams, on loopback for
responders), so that every server the tests start is a process with its own PID that the stack
can stop. Standard library only.

Modes
- echo (default): answers every request with 200 and a JSON description of what it received
  (method, path, query, headers, body size). A request whose query has ``hold=<key>`` is held open
  until ``POST /__e2e/release?key=<key>`` arrives (or ``--hold-timeout`` seconds pass), which lets a
  test keep a request in flight on purpose. ``GET /__e2e/held`` reports how many requests are held
  per key and ``GET /__e2e/requests`` returns the log of requests seen (newest last).
- fixed (``--fixed-status``): answers every request with that status, the ``--fixed-header`` headers
  and the ``--fixed-body`` body; used as the 429 responder behind Traefik's ``errors`` middleware.
  It still logs requests and serves ``/__e2e/requests``.
- ``--vllm-metrics`` (echo mode): also play a vLLM engine for the hook's observation layer.
  ``GET /metrics`` answers the Prometheus text format with ``vllm:num_requests_running`` = the
  number of requests held right now (all keys) and ``vllm:num_requests_waiting`` 0, and
  ``GET /health`` answers 200 with an empty body, as vLLM does. These two are not logged in
  ``/__e2e/requests`` (the hook probes them every second or so).

The first line printed on stdout is ``LISTENING <host> <port>``; the parent reads it to learn the
port when ``--port 0`` is given.

It is honest under load, so latencies measured through it are the gateway's, not its own: every
response leaves in one write (head and body buffered, flushed once) on a socket with Nagle off,
so no reply waits for a delayed ACK; the listen backlog is 1,024, so 64 connections opened at
once never overflow the accept queue into SYN retransmits; and it logs errors only, not a line
per request (``/__e2e/requests`` keeps the request log).

This server must never listen on anything but the address it is given (loopback or a test
namespace address), never hold a request forever (every hold is bounded), and never make outgoing
connections.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CONTROL_PREFIX = "/__e2e/"
LISTEN_BACKLOG = 1024  # socketserver's default of 5 overflows at 16+ concurrent connects


class Server(ThreadingHTTPServer):
    """A thread per connection, with a listen backlog that fits the benchmark's load."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG


class State:
    """Shared state of one server: held requests and the request log."""

    def __init__(self, name: str, hold_timeout: float) -> None:
        self.name = name
        self.hold_timeout = hold_timeout
        self.lock = threading.Lock()
        self.held: dict[str, int] = {}
        self.release_events: dict[str, threading.Event] = {}
        self.log: list[dict[str, Any]] = []

    def event_for(self, key: str) -> threading.Event:
        with self.lock:
            ev = self.release_events.get(key)
            if ev is None:
                ev = self.release_events[key] = threading.Event()
            return ev

    def release(self, key: str) -> int:
        """Release every request held under ``key``; later holds with that key block again."""
        with self.lock:
            ev = self.release_events.pop(key, None)
            count = self.held.get(key, 0)
        if ev is not None:
            ev.set()
        return count


def vllm_metrics(running: int) -> bytes:
    """A vLLM-style exposition with the two gauges the hook's observer reads."""
    return (
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        f'vllm:num_requests_running{{model_name="e2e"}} {float(running)}\n'
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
        "# TYPE vllm:num_requests_waiting gauge\n"
        'vllm:num_requests_waiting{model_name="e2e"} 0.0\n'
    ).encode()


def make_handler(
    state: State, fixed: dict[str, Any] | None, engine: bool = False
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "obol-e2e-upstream"
        disable_nagle_algorithm = True  # TCP_NODELAY on every accepted connection
        wbufsize = 64 * 1024  # head and body buffered; handle_one_request flushes them once

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass  # no line per request: /__e2e/requests has them, and under load it is noise

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"[{state.name}] {self.address_string()} {format % args}\n")

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, obj: Any) -> None:
            body = json.dumps(obj, sort_keys=True).encode()
            self._send(status, body, {"Content-Type": "application/json"})

        def _handle(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            query = parse_qs(url.query)
            seen = {
                "server": state.name,
                "method": self.command,
                "path": url.path,
                "query": url.query,
                "headers": {k: v for k, v in self.headers.items()},
                "body_bytes": len(body),
                "time": time.time(),
            }
            if url.path.startswith(CONTROL_PREFIX):
                self._control(url.path[len(CONTROL_PREFIX) :], query)
                return
            if engine and fixed is None and self.command == "GET" and url.path == "/metrics":
                with state.lock:
                    running = sum(state.held.values())
                content_type = "text/plain; version=0.0.4; charset=utf-8"
                self._send(200, vllm_metrics(running), {"Content-Type": content_type})
                return
            if engine and fixed is None and self.command == "GET" and url.path == "/health":
                self._send(200, b"", {})
                return
            with state.lock:
                state.log.append(seen)
                del state.log[:-1000]  # bounded memory
            if fixed is not None:
                self._send(fixed["status"], fixed["body"], fixed["headers"])
                return
            hold = (query.get("hold") or [""])[0]
            if hold:
                ev = state.event_for(hold)
                with state.lock:
                    state.held[hold] = state.held.get(hold, 0) + 1
                try:
                    released = ev.wait(state.hold_timeout)
                finally:
                    with state.lock:
                        state.held[hold] -= 1
                seen["held"] = hold
                seen["released"] = released
            self._json(200, seen)

        def _control(self, what: str, query: dict[str, list[str]]) -> None:
            if what == "held":
                with state.lock:
                    self._json(200, {"held": dict(state.held)})
            elif what == "release" and self.command == "POST":
                key = (query.get("key") or [""])[0]
                self._json(200, {"released": state.release(key), "key": key})
            elif what == "requests":
                with state.lock:
                    self._json(200, {"requests": list(state.log)})
            elif what == "health":
                self._json(200, {"ok": True, "server": state.name})
            else:
                self._json(404, {"error": f"unknown control endpoint {what!r}"})

        do_GET = _handle
        do_POST = _handle
        do_PUT = _handle
        do_DELETE = _handle
        do_PATCH = _handle
        do_HEAD = _handle
        do_OPTIONS = _handle

    return Handler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", required=True, help="address to listen on")
    ap.add_argument("--port", type=int, default=0, help="port (0: pick a free one)")
    ap.add_argument("--name", default="upstream", help="name reported in responses and logs")
    ap.add_argument("--hold-timeout", type=float, default=60.0, help="max seconds a hold lasts")
    ap.add_argument(
        "--max-lifetime",
        type=float,
        default=3600.0,
        help="exit after this many seconds even if nobody stops the server",
    )
    ap.add_argument("--fixed-status", type=int, help="fixed mode: status to answer with")
    ap.add_argument("--fixed-header", action="append", default=[], metavar="NAME: VALUE")
    ap.add_argument("--fixed-body", default="", help="fixed mode: response body")
    ap.add_argument(
        "--vllm-metrics",
        action="store_true",
        help="echo mode: also serve vLLM-style /metrics (held requests as running) and /health",
    )
    args = ap.parse_args(argv)

    fixed = None
    if args.fixed_status is not None:
        headers = {}
        for h in args.fixed_header:
            name, _, value = h.partition(":")
            headers[name.strip()] = value.strip()
        fixed = {"status": args.fixed_status, "headers": headers, "body": args.fixed_body.encode()}

    state = State(args.name, args.hold_timeout)
    handler = make_handler(state, fixed, args.vllm_metrics)
    server = Server((args.host, args.port), handler)
    port = server.server_address[1]
    print(f"LISTENING {args.host} {port}", flush=True)
    # A watchdog so that a forgotten server never outlives its test run by much.
    watchdog = threading.Timer(args.max_lifetime, server.shutdown)
    watchdog.daemon = True
    watchdog.start()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

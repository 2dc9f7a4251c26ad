"""``obol hook serve``: the sync listener and the busy responder run and stop as one unit.

Two servers, two child processes of this one: gunicorn with the Flask app on ``OBOL_BIND``
(:mod:`hooks.server.gunicorn_conf`) and the busy responder on ``OBOL_BUSY_BIND``
(:mod:`hooks.server.busy`), with the same environment. The busy responder starts first and
gunicorn once it listens, so a ready sync port means a ready unit. SIGTERM and SIGINT are passed
on to both; when either exits, the other is stopped and this process exits too: a container
whose busy responder died must restart, not keep answering syncs while every saturated offer's
429 loses its Retry-After. The exit status is 0 after a requested stop that both servers
completed, else the failing server's (1 if it said 0, 128 + N if signal N killed it).

Both servers write their metrics into one Prometheus multiprocess directory (the sync
listener's ``/metrics`` merges them): set to a private temporary directory when
``PROMETHEUS_MULTIPROC_DIR`` is unset, and emptied here before either server starts.

Never: import the app, Flask or uvicorn (the servers do), or read the environment except through
:mod:`hooks.config`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from types import FrameType
from typing import Final

from hooks.config import METRICS_DIR, bind_address, load_config, provide_metrics_directory
from hooks.server import SERVER_NAME

FORWARDED: Final = (signal.SIGTERM, signal.SIGINT)
STOP_WAIT: Final = 30  # seconds each server gets to stop (gunicorn's graceful_timeout is 20)
START_WAIT: Final = 30  # seconds the busy responder may take to listen before gunicorn starts
SYNC_SERVER: Final = ("-m", "gunicorn", "--config", "python:hooks.server.gunicorn_conf")
BUSY_SERVER: Final = ("-m", "hooks.server.busy")


def serve(env: Mapping[str, str]) -> int:
    """Run both servers with ``env`` until one exits or a signal stops them; the exit status."""
    directory, private = provide_metrics_directory()
    env = {**env, METRICS_DIR: directory}
    os.makedirs(directory, exist_ok=True)
    for stale in glob.glob(os.path.join(directory, "*.db")):
        os.remove(stale)
    servers: list[subprocess.Popen[bytes]] = []
    requested: list[int] = []  # the signals this process was asked to stop with

    def stop_all(signum: int, frame: FrameType | None = None) -> None:
        if frame is not None:
            requested.append(signum)
        for server in servers:
            with contextlib.suppress(ProcessLookupError):
                server.send_signal(signum)

    previous = {signum: signal.signal(signum, stop_all) for signum in FORWARDED}
    try:
        # The busy responder first: once /readyz answers on the sync port, a 429 gets its body.
        busy = subprocess.Popen([sys.executable, *BUSY_SERVER], env=env)
        servers.append(busy)
        _await_listener(busy, load_config(env).busy_bind)
        if busy.poll() is None and not requested:
            servers.append(subprocess.Popen([sys.executable, *SYNC_SERVER], env=env))
            first = _first_exit(servers)
        else:  # it failed to start, or a stop came first: gunicorn never starts
            first = busy
        stop_all(signal.SIGTERM)
        codes = [_stopped(server) for server in servers]
        if requested:
            # uvicorn ends a stop it was asked for by re-raising the signal: also a clean stop.
            clean = {0, *(-signum for signum in FORWARDED)}
            return next((_status(code) for code in codes if code not in clean), 0)
        # A server that ends by itself is a failure, whatever its status says.
        return _status(first.returncode) or 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for server in servers:
            if server.poll() is None:
                server.kill()
                server.wait()
        if private:
            shutil.rmtree(directory, ignore_errors=True)


def _await_listener(server: subprocess.Popen[bytes], bind: str) -> None:
    """Wait until the busy responder answers on ``bind``, ``server`` exits or :data:`START_WAIT`
    passes. Its own answer, not a connection: another process may hold the port."""
    deadline = time.monotonic() + START_WAIT
    while server.poll() is None and time.monotonic() < deadline:
        try:
            with _connect(bind) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: hook\r\nConnection: close\r\n\r\n")
                if _READY_ANSWER.match(sock.recv(4096)):
                    return
        except OSError:
            pass
        time.sleep(0.05)


_READY_ANSWER: Final = re.compile(
    rb"HTTP/1\.1 200 .*\r\nserver: " + re.escape(SERVER_NAME.encode()) + rb"\r\n", re.I | re.S
)


def _connect(bind: str) -> socket.socket:
    address = bind_address(bind)
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(1)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return sock
    host, port = address
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # a wildcard: ask loopback
    return socket.create_connection((host, port), timeout=1)


def _first_exit(servers: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """The server that exits first (a signal handler runs during the wait, which then goes on)."""
    while True:
        pid, status = os.wait()
        for server in servers:
            if server.pid == pid:
                server.returncode = os.waitstatus_to_exitcode(status)
                return server


def _stopped(server: subprocess.Popen[bytes]) -> int:
    try:
        return server.wait(timeout=STOP_WAIT)
    except subprocess.TimeoutExpired:
        server.kill()
        return server.wait()


def _status(code: int) -> int:
    """A child's return code as an exit status (killed by signal N: 128 + N, as a shell says)."""
    return 128 - code if code < 0 else code

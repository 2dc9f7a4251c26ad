"""gunicorn's ``gthread`` worker with one request thread: keep-alive for the gateway, no stalls.

Why ``gthread`` with one thread: the gateway asks the busy responder once for every 429 of a
saturated offer, over connections it keeps alive. gunicorn's ``sync`` worker closes every
connection after one answer, so each busy 429 cost a TCP connect and close on both sides
(measured through Traefik: about 3x the gateway's CPU per 429, ``tests/bench/dataplane.py``).
``gthread`` keeps idle connections in a poller on the worker's main thread and hands a request to
its pool when one arrives; with a pool of one thread a worker still serves one request at a time,
like ``sync``, so requests never contend for the GIL (16 threads on 2 cores made p99 3-4x worse in
shared/reference/perf-baseline.md).

Only the busy listener keeps connections alive (when it has its own port). The sync listener
answers ``Connection: close`` as the ``sync`` worker did: Metacontroller's request rate is low, and
a worker accepts a sync only while it has none (so a worker that dies loses at most the one sync
it was serving, and syncs wait in the kernel's queue for an idle worker), and its thread takes a
waiting sync before any waiting busy request (:class:`SyncsFirst`): a flood of busy 429s does not
make syncs wait behind it.

A connection that connects and sends nothing, or part of a request (a port scanner, a broken
proxy, a hostile pod), must not hold the one thread. gunicorn's own ``gthread`` waits up to 5 s in
the thread for a first byte and then reads without a time limit. Here a connection with nothing
to read after :data:`FIRST_BYTE_WAIT` goes back to the poller (no thread is used while it waits;
gunicorn closes it after ``keepalive`` seconds); every read or write of a request that stalls for
:data:`IO_TIMEOUT` fails at the socket (``SO_RCVTIMEO`` / ``SO_SNDTIMEO``), which gunicorn answers
by closing the connection; and a request whose body the app refused unread closes its connection
instead of being drained. Metacontroller, Traefik and kubelet probes send their whole request the
moment they connect, so none of these limits touches them.

Shell code: never imported by the pure core.
"""

from __future__ import annotations

import queue
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent import futures
from typing import Any

import gunicorn.http.wsgi
import gunicorn.util
import orjson
from gunicorn.workers import gthread

from hooks.config import load_config

FIRST_BYTE_WAIT = 0.1  # seconds a new connection may hold the thread before it has sent a byte
DRAIN_WAIT = 0.05  # seconds to wait for the rest of a body the app did not read (a refusal)
IO_TIMEOUT = 2  # seconds any one read or write of a request may stall
_TIMEVAL = struct.pack("ll", IO_TIMEOUT, 0)


# What a response says its server is: not gunicorn's name and version (gunicorn's Response reads
# this module global for every response's Server header).
SERVER_HEADER = "obol-hook"
gunicorn.http.wsgi.SERVER = SERVER_HEADER


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own answer to a request it cannot parse (bad request line or header, such as
    ``Content-Length: abc``), as JSON like every answer of the app instead of an HTML page.
    gunicorn answers these before the app sees anything."""
    body = orjson.dumps(
        {"error": reason.lower().replace(" ", "_"), "detail": mesg or reason, "status": status_int}
    )
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


gunicorn.util.write_error = write_json_error


class SyncsFirst:
    """The thread pool's work queue with sync-listener requests ahead of busy ones, so a flood of
    busy 429s (each one cheap, but many) never makes a sync wait behind it. ``put``, ``get`` and
    ``get_nowait`` are what ``concurrent.futures.ThreadPoolExecutor`` calls on its queue."""

    def __init__(self, urgent: Callable[[Any], bool]) -> None:
        self.urgent = urgent
        self.ready = threading.Condition()
        self.first: deque[Any] = deque()
        self.rest: deque[Any] = deque()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        args = getattr(item, "args", ())  # a work item (fn, (conn,)); None asks a thread to stop
        with self.ready:
            (self.first if args and self.urgent(args[0]) else self.rest).append(item)
            self.ready.notify()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        with self.ready:
            while not self.first and not self.rest:
                if not block:
                    raise queue.Empty
                self.ready.wait()
            return (self.first or self.rest).popleft()

    def get_nowait(self) -> Any:
        return self.get(block=False)


class OneThreadWorker(gthread.ThreadWorker):  # type: ignore[misc]
    """``gthread.ThreadWorker`` whose thread never waits on a silent or stalled client, and
    that keeps connections alive on the busy listener only."""

    keep_alive_port: int | None = None  # None: every listener keeps connections alive
    syncs_in_thread = 0  # sync-listener requests handed to the thread pool and not finished

    def init_process(self) -> None:
        config = load_config()
        if config.sync_port != config.busy_port and config.busy_port is not None:
            self.keep_alive_port = config.busy_port
        self._listening: set[int] = set()  # file numbers of the listeners in the poller
        super().init_process()

    def get_thread_pool(self) -> futures.ThreadPoolExecutor:
        pool = futures.ThreadPoolExecutor(max_workers=self.cfg.threads)
        pool._work_queue = SyncsFirst(lambda conn: self._closes(conn.server))  # type: ignore[assignment]
        return pool

    def _closes(self, server: Any) -> bool:
        """True for a connection (or listener) of the sync listener, when the listeners differ."""
        port = server[1] if isinstance(server, tuple) else None
        return self.keep_alive_port is not None and port != self.keep_alive_port

    # The sync listener accepts a new connection only while no sync is in this worker, as the
    # sync worker did: a worker busy with a sync leaves the next one in the kernel's queue for
    # an idle worker instead of queueing it behind its own (where it would wait longer, and die
    # with this worker if it is killed). The busy listener accepts whenever gunicorn would.
    def set_accept_enabled(self, enabled: bool) -> None:
        self._accepting = enabled
        for listener in self.sockets:
            wanted = enabled and (
                self.syncs_in_thread == 0 or not self._closes(listener.getsockname())
            )
            number = listener.fileno()
            if wanted and number not in self._listening:
                listener.setblocking(False)
                self.poller.register(listener, selectors.EVENT_READ, self.accept)
                self._listening.add(number)
            elif not wanted and number in self._listening:
                self.poller.unregister(listener)
                self._listening.discard(number)

    def enqueue_req(self, conn: Any) -> None:
        if self._closes(conn.server):
            self.syncs_in_thread += 1
            self.set_accept_enabled(self._accepting)
        super().enqueue_req(conn)

    def finish_request(self, conn: Any, fs: Any) -> None:
        if self._closes(conn.server):
            self.syncs_in_thread -= 1
        super().finish_request(conn, fs)
        self.set_accept_enabled(self._accepting)

    def handle_request(self, req: Any, conn: Any) -> Any:
        if self._closes(conn.server):
            req.must_close = True  # gunicorn answers "Connection: close" and closes
        return super().handle_request(req, conn)

    def handle(self, conn: Any) -> Any:
        if not conn.initialized:
            if not conn.data_ready and not conn.wait_for_data(FIRST_BYTE_WAIT):
                return gthread._DEFER  # back to the poller: wait there, not in the thread
            # Kernel-level limits, set once per connection: they survive gunicorn's
            # setblocking(True) before it reads.
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _TIMEVAL)
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _TIMEVAL)
        return super().handle(conn)

    def _keepalive_after(self, conn: Any, keepalive: bool) -> bool:
        """Keep the connection only if the request's body is all read: a body the app refused
        unread (401, 413) closes it at once instead of being drained in the thread for up to
        gunicorn's 5 s."""
        if not keepalive:
            return False
        return bool(conn.parser.finish_body(deadline=time.monotonic() + DRAIN_WAIT))

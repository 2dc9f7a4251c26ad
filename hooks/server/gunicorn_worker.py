"""gunicorn's ``gthread`` worker with one request thread that never waits on a stalled client.

Each worker serves one sync at a time, like gunicorn's ``sync`` worker (the hook does no I/O,
so more threads would buy nothing but GIL contention), and answers ``Connection: close``:
Metacontroller's request rate is low, and a worker accepts a new connection only while it has
no sync in hand, so a sync waits in the kernel's queue for an idle worker instead of behind
another one (where it would also die with this worker if it were killed).

Why ``gthread`` and not ``sync``: a connection that connects and sends nothing, or part of a
request (a port scanner, a broken proxy, a hostile pod), must not hold the one thread. gunicorn's
own ``gthread`` waits up to 5 s in the thread for a first byte and then reads without a time
limit; ``sync`` blocks the whole worker. Here a connection with nothing to read after
:data:`FIRST_BYTE_WAIT` goes back to the poller (no thread is used while it waits; gunicorn
closes it after ``keepalive`` seconds); every read or write of a request that stalls for
:data:`IO_TIMEOUT` fails at the socket (``SO_RCVTIMEO`` / ``SO_SNDTIMEO``), which gunicorn answers
by closing the connection. Metacontroller and kubelet probes send their whole request the moment
they connect, so none of these limits touches them.

Shell code: never imported by the pure core.
"""

from __future__ import annotations

import selectors
import socket
import struct
from typing import Any

import gunicorn.http.wsgi
import gunicorn.util
import orjson
from gunicorn.workers import gthread

from hooks.server import SERVER_NAME

FIRST_BYTE_WAIT = 0.1  # seconds a new connection may hold the thread before it has sent a byte
IO_TIMEOUT = 2  # seconds any one read or write of a request may stall
_TIMEVAL = struct.pack("ll", IO_TIMEOUT, 0)


# gunicorn's Response reads this module global for every response's Server header.
gunicorn.http.wsgi.SERVER = SERVER_NAME


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


class OneThreadWorker(gthread.ThreadWorker):  # type: ignore[misc]
    """``gthread.ThreadWorker`` whose thread never waits on a silent or stalled client, and
    that takes a new connection only while it has none in hand."""

    in_thread = 0  # requests handed to the thread pool and not finished

    def init_process(self) -> None:
        self._listening: set[int] = set()  # file numbers of the listeners in the poller
        super().init_process()

    def set_accept_enabled(self, enabled: bool) -> None:
        self._accepting = enabled
        for listener in self.sockets:
            wanted = enabled and self.in_thread == 0
            number = listener.fileno()
            if wanted and number not in self._listening:
                listener.setblocking(False)
                self.poller.register(listener, selectors.EVENT_READ, self.accept)
                self._listening.add(number)
            elif not wanted and number in self._listening:
                self.poller.unregister(listener)
                self._listening.discard(number)

    def enqueue_req(self, conn: Any) -> None:
        self.in_thread += 1
        self.set_accept_enabled(self._accepting)
        super().enqueue_req(conn)

    def finish_request(self, conn: Any, fs: Any) -> None:
        self.in_thread -= 1
        super().finish_request(conn, fs)
        self.set_accept_enabled(self._accepting)

    def handle_request(self, req: Any, conn: Any) -> Any:
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

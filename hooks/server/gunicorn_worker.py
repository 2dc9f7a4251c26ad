"""gunicorn's ``sync`` worker, made immune to connections that stall.

A sync worker serves one connection at a time and, once it has accepted one, blocks reading it
until gunicorn's worker timeout (30 s). A client that connects and sends nothing, or part of a
request (a port scanner, a broken proxy, a hostile pod), would so stop every sync for 30 s with
two such connections. This worker closes a connection that sends nothing for
:data:`FIRST_BYTE_TIMEOUT`, and gives every later read or write of the request
:data:`IO_TIMEOUT`. Metacontroller, Traefik and kubelet probes send their whole request the
moment they connect, so neither limit ever touches them.

Everything else is gunicorn's ``SyncWorker``, which on 2 cores beats ``gthread`` on p99 at
Metacontroller's concurrency (see :mod:`hooks.server.gunicorn_conf`). Shell code: never imported by
the pure core.
"""

from __future__ import annotations

import select
import socket
from typing import Any

from gunicorn.workers.sync import SyncWorker

FIRST_BYTE_TIMEOUT = 1.0  # seconds an accepted connection may stay silent
IO_TIMEOUT = 2.0  # seconds any one read or write of a request may stall


class FirstByteTimeoutSyncWorker(SyncWorker):  # type: ignore[misc]
    """``SyncWorker`` that drops silent connections and bounds every stalled read or write."""

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        readable, _, _ = select.select([client], [], [], FIRST_BYTE_TIMEOUT)
        if not readable:
            self.log.debug("Closing a connection that sent nothing: %s", addr)
            client.close()  # not close_graceful: it would wait for the silent client again
            return
        # A stalled read then raises TimeoutError, which gunicorn logs and answers by closing.
        client.settimeout(IO_TIMEOUT)
        super().handle(listener, client, addr)

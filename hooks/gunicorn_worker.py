"""gunicorn's ``sync`` worker, made immune to connections that never send a request.

A sync worker serves one connection at a time and, once it has accepted one, blocks reading it
until gunicorn's worker timeout (30 s). A client that connects and sends nothing (a port scanner,
a broken proxy, a hostile pod) would so stop every sync for 30 s with two such connections.
This worker waits at most :data:`FIRST_BYTE_TIMEOUT` for the first byte of a request and closes
the connection otherwise. Metacontroller, Traefik and kubelet probes send their request the
moment they connect, so they never wait on it.

Everything else is gunicorn's ``SyncWorker``, which on 2 cores beats ``gthread`` on p99 at
Metacontroller's concurrency (see :mod:`hooks.gunicorn_conf`). Shell code: never imported by
the pure core.
"""

from __future__ import annotations

import select
import socket
from typing import Any

from gunicorn import util
from gunicorn.workers.sync import SyncWorker

FIRST_BYTE_TIMEOUT = 1.0  # seconds an accepted connection may stay silent


class FirstByteTimeoutSyncWorker(SyncWorker):  # type: ignore[misc]
    """``SyncWorker`` that drops connections silent for :data:`FIRST_BYTE_TIMEOUT` seconds."""

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        readable, _, _ = select.select([client], [], [], FIRST_BYTE_TIMEOUT)
        if not readable:
            self.log.debug("Closing a connection that sent nothing: %s", addr)
            util.close_graceful(client)
            return
        super().handle(listener, client, addr)

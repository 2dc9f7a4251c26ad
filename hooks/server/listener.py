"""The listening socket of either server, opened before the server itself starts.

Both commands open their port here first and hand the socket to the stock server (gunicorn's
``fd://`` bind, uvicorn's ``sockets``), so a port that is taken or not allowed fails the command
at once with one line, before gunicorn or uvicorn runs, and nothing else can take the port
between the check and the server start.

Never: read the environment (the bind comes from :mod:`hooks.config`).
"""

from __future__ import annotations

import os
import socket
import stat
from typing import Final

from hooks.config import bind_address

BACKLOG: Final = 2048


def open_listener(bind: str) -> socket.socket:
    """A listening socket on ``bind`` (``HOST:PORT`` or ``unix:PATH``); OSError when refused."""
    address = bind_address(bind)
    if isinstance(address, str):
        if os.path.exists(address) and stat.S_ISSOCK(os.stat(address).st_mode):
            os.unlink(address)  # a socket file left behind, as gunicorn itself replaces it
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it a small answer written in two parts waits for the peer's delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock

"""The observation layer's only network I/O: one bounded ``GET``.

This module must never follow redirects or use proxies (in-cluster names must not go to an
HTTP_PROXY), and never wait or read without a bound: a fetch takes at most about twice its
timeout and reads at most the bytes it was asked for.
"""

from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Final, Protocol

USER_AGENT: Final = "obol-serviceoffer-hook/observe"
# vLLM and llama.cpp serve the classic text format; ask for it explicitly.
METRICS_ACCEPT: Final = "text/plain;version=0.0.4;q=1.0, */*;q=0.1"
MAX_LABEL: Final = 120  # longest error text (and path) put into a status message
_READ_CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One HTTP answer: status, at most ``max_bytes`` of body, and whether more was cut off."""

    status: int
    body: bytes = b""
    truncated: bool = False


class Fetch(Protocol):
    """``GET url`` with a timeout in seconds, reading at most ``max_bytes`` of the body.

    Answers any HTTP status (non-2xx included) as a :class:`FetchResult`; raises on transport
    failures (timeout, refused, reset, unresolvable name, invalid HTTP).
    """

    def __call__(self, url: str, timeout: float, max_bytes: int) -> FetchResult: ...


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A 3xx is an answer, not an invitation to probe somewhere else.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# No proxies (in-cluster names must not go to an HTTP_PROXY), no redirects.
_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def urllib_fetch(url: str, timeout: float, max_bytes: int) -> FetchResult:
    """The default :class:`Fetch`: stdlib urllib, bounded in time and body size.

    ``timeout`` bounds connecting and each read; reading the body also stops at a deadline of
    ``timeout`` after the answer began, so a fetch takes at most about twice the timeout.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError("only http(s) URLs are probed")
    request = urllib.request.Request(
        url, headers={"User-Agent": USER_AGENT, "Accept": METRICS_ACCEPT}
    )
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        error.close()
        return FetchResult(error.code)
    with response:
        status = int(response.status)
        if max_bytes <= 0:
            return FetchResult(status)
        deadline = time.monotonic() + timeout
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            if time.monotonic() > deadline:
                raise TimeoutError("body read timed out")
            chunk = response.read1(min(_READ_CHUNK, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    body = b"".join(chunks)
    return FetchResult(status, body[:max_bytes], size > max_bytes)


def describe_error(error: BaseException, timeout_ms: float) -> str:
    """A short, stable text for a transport failure (no addresses, no timings but the limit)."""
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        return describe_error(error.reason, timeout_ms)
    if isinstance(error, TimeoutError):
        return f"timed out after {timeout_ms:g} ms"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, http.client.RemoteDisconnected):  # before its base ConnectionResetError
        return "connection closed without an answer"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    if isinstance(error, socket.gaierror):
        return "host name not resolved"
    if isinstance(error, http.client.HTTPException):
        return "invalid HTTP answer"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()[:MAX_LABEL]
    return type(error).__name__

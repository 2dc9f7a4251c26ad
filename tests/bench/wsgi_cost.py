"""Per-request cost of the two Flask apps in-process, as a gunicorn worker runs them.

``python tests/bench/wsgi_cost.py ITERATIONS [--profile]`` prints one JSON object: the median
and p99 of one WSGI call of ``POST /sync`` with fixture 02, and of the busy responder's GET, for
the real app and for the bare app, with no socket and no gunicorn in between. The difference is
what the hook adds per request on top of Flask and Werkzeug: the sync core (or the answer cache),
the 7 KB answer's serialisation, the metrics and the log line. With ``--profile`` it prints
instead where the real app's calls spend their time.

It runs as its own process because the real app must see what a gunicorn worker sees:
``PROMETHEUS_MULTIPROC_DIR`` set before ``prometheus_client`` is first imported (so samples go to
mmap files, as in production), the embedded defaults (no ``OBOL_*``), and log level info with
the log lines going to a file (stderr is redirected), as a container runtime would take them.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURE = ROOT / "tests/fixtures/sync/02-full-envelope-existing-children.json"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


BUSY_PATH = "/busy/llm-sellers/qwen36-fast"


def _environ(body: bytes | None) -> dict[str, Any]:
    """A POST /sync with ``body`` on the sync port, or the busy GET when ``body`` is None."""
    if body is None:
        return {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": BUSY_PATH,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "retryAfter=2",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8081",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:8081",
        }
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/sync",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8080",
    }


def call(app: WsgiApp, body: bytes | None) -> bytes:
    """One WSGI request (the busy GET when ``body`` is None); returns the answer's body."""
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        statuses.append(status)

    chunks = app(_environ(body), start_response)
    payload = b"".join(chunks)
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
    if not statuses or not statuses[0].startswith("200" if body is not None else "429"):
        raise RuntimeError(f"WSGI call answered {statuses}")
    return payload


def time_app(app: WsgiApp, body: bytes | None, iterations: int) -> dict[str, float]:
    """Median and p99 of one WSGI call, in microseconds."""
    for _ in range(max(200, iterations // 10)):
        call(app, body)
    samples = []
    for _ in range(iterations):
        started = time.perf_counter_ns()
        call(app, body)
        samples.append(time.perf_counter_ns() - started)
    samples.sort()
    return {
        "median_us": statistics.median(samples) / 1000,
        "p99_us": samples[min(iterations - 1, int(iterations * 0.99))] / 1000,
    }


def main(argv: list[str]) -> None:
    iterations = int(argv[0]) if argv else 5000
    workdir = Path(tempfile.mkdtemp(prefix="obol-bench-wsgi-"))
    for key in [key for key in os.environ if key.startswith("OBOL_")]:
        del os.environ[key]
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(workdir)
    real_stdout = sys.stdout
    sys.stderr = (workdir / "app.log").open("w")  # the per-request log lines go to a file

    import orjson

    sys.path.insert(0, str(HERE))
    from bare_app import create_bare_app

    from hooks.server.app import create_app

    body = orjson.dumps(orjson.loads(FIXTURE.read_bytes()))
    hook, bare = create_app().wsgi_app, create_bare_app().wsgi_app
    if "--profile" in argv:
        for title, request_body in (("POST /sync, fixture 02", body), ("GET /busy", None)):
            for _ in range(500):
                call(hook, request_body)
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(iterations):
                call(hook, request_body)
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("cumulative").print_stats(30)
            real_stdout.write(f"==== {title}: hook app, {iterations} calls\n{out.getvalue()}")
        return
    result = {
        "hook": time_app(hook, body, iterations),
        "bare": time_app(bare, body, iterations),
        "busy_hook": time_app(hook, None, iterations),
        "busy_bare": time_app(bare, None, iterations),
    }
    real_stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])

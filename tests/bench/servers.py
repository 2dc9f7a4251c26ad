"""Start the real hook and the bare ceiling under gunicorn, and read their CPU and memory.

* The real server is started exactly like production: ``obol hook serve`` with only the listen
  address given, which reads the configuration and runs gunicorn with the shipped settings
  (:mod:`hooks.server.sync_server`). The environment mirrors the Dockerfile
  (``PYTHONUNBUFFERED=1``, ``PYTHONDONTWRITEBYTECODE=1``, ``HOME`` in a private temporary
  directory), minus any ``OBOL_*`` variable of the caller, so the embedded defaults are measured
  (log level ``info``: a JSON line for every sync that is not a routine success, written to a
  file as a container runtime would).
* The bare server is the same interpreter, the same gunicorn settings and the same environment,
  with ``tests/bench/bare_app.py`` as the app (``bare_app.py`` runs it).
* CPU time and RSS are read from ``/proc`` for the master and its children (the workers), so the
  numbers are the server's own, not the load generator's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Server:
    """A running gunicorn master and the URL of its listener."""

    name: str
    process: subprocess.Popen[bytes]
    sync_url: str
    log_path: Path

    @property
    def pid(self) -> int:
        """The started process's PID (``obol hook serve``, or a bare gunicorn master)."""
        return self.process.pid

    def worker_pids(self) -> list[int]:
        """Every live process below it (servers, gunicorn workers)."""
        return descendants_of(self.pid)

    def cpu_seconds(self) -> float:
        """utime + stime of the process and everything live below it."""
        return sum(process_cpu_seconds(pid) for pid in [self.pid, *self.worker_pids()])

    def rss_bytes(self) -> int:
        """Resident set size of the process and everything live below it."""
        return sum(process_rss_bytes(pid) for pid in [self.pid, *self.worker_pids()])

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's combined output."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` from ``/proc/<pid>/task/*/children``."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found.extend(int(child) for child in text.split())
    return sorted(set(found))


def descendants_of(pid: int) -> list[int]:
    """Children, grandchildren and so on of ``pid``."""
    found, level = [], [pid]
    while level:
        level = [child for parent in level for child in children_of(parent)]
        found.extend(level)
    return sorted(found)


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def process_rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except OSError:
        return 0


def production_environment(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without ``OBOL_*``, plus the Dockerfile's variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OBOL_")}
    env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", HOME=str(home), TMPDIR=str(home))
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(extra or {})
    return env


OBOL = [sys.executable, "-c", "from hooks.cli.main import main; main()", "hook", "serve"]
BARE = [sys.executable, str(HERE / "bare_app.py")]


@contextlib.contextmanager
def run_server(
    name: str,
    *,
    bare: bool = False,
    env_overrides: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Start the real hook (``bare=True``: the bare app under the same gunicorn settings) on a
    free loopback port; stop it on exit. ``env_overrides`` adds ``OBOL_*`` settings."""
    workdir = Path(tempfile.mkdtemp(prefix=f"obol-bench-{name}-"))
    sync_port = free_port()
    env = production_environment(
        workdir, {**(env_overrides or {}), "OBOL_BIND": f"127.0.0.1:{sync_port}"}
    )
    command = BARE if bare else OBOL
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir
        )
    server = Server(name, process, f"http://127.0.0.1:{sync_port}", log_path)
    try:
        wait_until_ready(server)
        yield server
    finally:
        stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def wait_until_ready(server: Server, timeout: float = START_TIMEOUT) -> None:
    """Poll ``/readyz`` until 200 and every worker has started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
        with contextlib.suppress(OSError, urllib.error.URLError):
            with urllib.request.urlopen(server.sync_url + "/readyz", timeout=1) as response:
                if response.status == 200 and len(server.worker_pids()) >= 1:
                    return
        time.sleep(0.05)
    raise RuntimeError(f"{server.name} not ready after {timeout} s:\n{server.log_tail()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the master by PID, SIGKILL it only if it does not exit in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)

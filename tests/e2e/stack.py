"""Real-stack end-to-end harness: etcd + kube-apiserver + Traefik, on this machine only.

What it is for
    Start a throw-away Kubernetes control plane (real etcd and real kube-apiserver, no
    controllers, no kubelet) and a real Traefik v3 watching it through its kubernetesGateway and
    kubernetesCRD providers, so that tests can write Gateway API / Traefik objects with the real
    kubectl and then send real HTTP through Traefik. ``Stack`` is the entry point; see its
    docstring for the public API. The binaries come from ``tests/e2e/build.sh`` (built from
    source, cached outside the repository); :func:`Binaries.find` locates them.

How an upstream on this machine is reached
    Kubernetes rejects loopback addresses in EndpointSlices, so stand-in upstreams run inside a
    network namespace that the stack creates itself (``ip netns`` + a veth pair on a private /30).
    The upstream listens on the namespace's address, a selectorless Service + EndpointSlice points
    at it, exactly as for an external vLLM. See ``README.md`` for why.

What it must never do
    - download anything, or start a binary it did not find in the build cache;
    - listen on, or send traffic to, any address other than loopback and the /30 of a network
      namespace it created itself;
    - stop a process it did not start (every process is stopped by its own PID), or leave a
      process, a network namespace, a veth or a temp directory behind (on failure only the log
      directory is kept, and its path is printed);
    - wait without a bound: every wait has a timeout and raises :class:`StackTimeout`;
    - mock Kubernetes or Traefik.

Only the standard library, PyYAML and requests are used.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
import yaml

from tests.support.upstream_crds import BUILD_SH, build_paths

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent

UPSTREAM_SERVER = HERE / "upstream_server.py"
GATEWAY_CLASS = "traefik"
GATEWAY_CONTROLLER = "traefik.io/gateway-controller"
GATEWAY_NAMESPACE = "traefik"
GATEWAY_NAME = "traefik-gateway"
LISTENER_NAME = "web"
FIELD_MANAGER = "obol-e2e"

T = TypeVar("T")


class StackError(RuntimeError):
    """Something in the e2e stack failed (a process, a kubectl call, a precondition)."""


class BinariesMissing(StackError):
    """The binaries are not built; run ``bash tests/e2e/build.sh``."""


class StackTimeout(StackError):
    """A bounded wait ran out."""


class KubectlError(StackError):
    """kubectl exited non-zero."""

    def __init__(self, args: Sequence[str], proc: subprocess.CompletedProcess[str]) -> None:
        self.proc = proc
        super().__init__(
            f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
        )


# ---------------------------------------------------------------------------------------------
# small helpers


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until(
    fn: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
) -> T:
    """Call ``fn`` until it returns something truthy and return that; give up after ``timeout``.

    Exceptions raised by ``fn`` count as "not yet"; the last one is quoted in the
    :class:`StackTimeout` message.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except Exception as exc:  # "not yet": keep the reason for the timeout message
            last = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last!r})" if last is not None else ""
            raise StackTimeout(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(data.splitlines()[-lines:])


def _log(msg: str) -> None:
    print(f"[e2e stack {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def to_yaml(*objs: Mapping[str, Any] | str) -> str:
    """Objects (dicts) or YAML text as one multi-document YAML string."""
    docs = [o if isinstance(o, str) else yaml.safe_dump(dict(o), sort_keys=False) for o in objs]
    return "\n---\n".join(d.strip() for d in docs) + "\n"


# ---------------------------------------------------------------------------------------------
# binaries


@dataclass(frozen=True)
class Binaries:
    """Paths of the binaries built by ``tests/e2e/build.sh`` and the versions they were built at."""

    etcd: Path
    kube_apiserver: Path
    kubectl: Path
    traefik: Path
    traefik_crds: Path  # directory: every CRD this Traefik watches (traefik.io, GRPCRoute, ...)
    gateway_api_crds: Path  # directory: HTTPRoute, Gateway, GatewayClass, ReferenceGrant
    versions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def find(cls) -> Binaries:
        """Ask ``build.sh --print`` where the binaries are; raise :class:`BinariesMissing` if any
        is not built (the build itself is never started from here)."""
        try:
            returncode, kv = build_paths()
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BinariesMissing(f"cannot run {BUILD_SH} --print: {exc}") from exc
        if returncode != 0:
            missing = [
                v
                for k, v in kv.items()
                if k in {"ETCD", "KUBE_APISERVER", "KUBECTL", "TRAEFIK"} and not Path(v).exists()
            ]
            raise BinariesMissing(
                "e2e binaries are not built (missing: "
                f"{', '.join(missing) or 'upstream CRD export'}); run: bash tests/e2e/build.sh"
            )
        return cls(
            etcd=Path(kv["ETCD"]),
            kube_apiserver=Path(kv["KUBE_APISERVER"]),
            kubectl=Path(kv["KUBECTL"]),
            traefik=Path(kv["TRAEFIK"]),
            traefik_crds=Path(kv["TRAEFIK_CRDS"]),
            gateway_api_crds=Path(kv["GATEWAY_API_CRDS"]),
            versions={k: v for k, v in kv.items() if k.endswith("_VERSION")},
        )


# ---------------------------------------------------------------------------------------------
# processes


class ManagedProcess:
    """One child process, started by us, stopped by its own PID, with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        log_path: Path,
        *,
        stop_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.stop_timeout = stop_timeout
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self, *, env: Mapping[str, str] | None = None, stdout_pipe: bool = False) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"$ {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else log,
                stderr=log,
                env=dict(env) if env is not None else None,
                start_new_session=True,  # Ctrl-C in the terminal reaches us, not the children
            )
        _log(f"started {self.name} pid={self.popen.pid} log={self.log_path}")

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise StackError(
                f"{self.name} exited with {self.popen.returncode}; log {self.log_path}:\n"
                + _tail(self.log_path, 30)
            )

    def read_line(self, timeout: float) -> str:
        """The next line of stdout (only with ``stdout_pipe=True``), waiting at most ``timeout``."""
        assert self.popen is not None and self.popen.stdout is not None
        buf = b""
        deadline = time.monotonic() + timeout
        fd = self.popen.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while not buf.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.check_alive()
                    raise StackTimeout(f"{self.name}: no output line within {timeout}s")
                chunk = os.read(fd, 1)
                if not chunk:
                    self.check_alive()
                    raise StackError(f"{self.name}: stdout closed")
                buf += chunk
        return buf.decode().strip()

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` (default: this process's); only this PID."""
        timeout = self.stop_timeout if timeout is None else timeout
        p = self.popen
        if p is None:
            return
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                _log(f"{self.name} pid={p.pid} ignored SIGTERM for {timeout}s; SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait(timeout)
        if p.stdout is not None:
            p.stdout.close()


class HTTPServerProcess:
    """A running ``upstream_server.py`` (echo upstream or fixed responder) and its controls."""

    def __init__(self, proc: ManagedProcess, host: str, port: int) -> None:
        self.proc = proc
        self.host = host
        self.port = port

    @property
    def name(self) -> str:
        return self.proc.name

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _control(self, method: str, what: str, **params: str) -> Any:
        r = requests.request(method, f"{self.url}/__e2e/{what}", params=params, timeout=5)
        r.raise_for_status()
        return r.json()

    def held(self) -> dict[str, int]:
        """Requests currently held open, per hold key."""
        return dict(self._control("GET", "held")["held"])

    def wait_held(self, key: str, count: int, timeout: float = 10.0) -> None:
        """Wait until exactly ``count`` requests are held under ``key``."""
        wait_until(
            lambda: self.held().get(key, 0) == count,
            timeout=timeout,
            what=f"{count} request(s) held under {key!r} at {self.name}",
        )

    def release(self, key: str) -> int:
        """Release every request held under ``key``; returns how many were held."""
        return int(self._control("POST", "release", key=key)["released"])

    def requests(self) -> list[dict[str, Any]]:
        """Every request this server answered (not the control endpoints), oldest first."""
        return list(self._control("GET", "requests")["requests"])

    def stop(self) -> None:
        self.proc.stop()


class Netns:
    """A network namespace with a veth pair on a private /30: host side ``host_ip``, namespace
    side ``ns_ip``. Created and deleted by us; needs root and ``ip`` (iproute2)."""

    BASE = "10.203"

    def __init__(self, name: str, host_if: str, host_ip: str, ns_ip: str) -> None:
        self.name = name
        self.host_if = host_if
        self.host_ip = host_ip
        self.ns_ip = ns_ip

    @staticmethod
    def unavailable_reason() -> str | None:
        """Why a namespace cannot be created here, or None if it can (probably)."""
        if os.geteuid() != 0:
            return "network namespaces need root"
        if shutil.which("ip") is None:
            return "`ip` (iproute2) is not installed"
        return None

    @staticmethod
    def _ip(*args: str) -> str:
        proc = subprocess.run(
            ["ip", *args], capture_output=True, text=True, timeout=15, check=False
        )
        if proc.returncode != 0:
            raise StackError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    @classmethod
    def create(cls) -> Netns:
        reason = cls.unavailable_reason()
        if reason:
            raise StackError(f"cannot create a network namespace: {reason}")
        used = cls._ip("-4", "-o", "addr", "show")
        # Pick a /30 in 10.203.<x>.0 that no interface on this machine uses yet.
        xs = list(range(256))
        random.shuffle(xs)
        x = next((x for x in xs if f" {cls.BASE}.{x}." not in used), None)
        if x is None:
            raise StackError(f"no free /30 left in {cls.BASE}.0.0/16")
        tag = f"{os.getpid() % 100000}x{x}"
        ns = cls(f"obol-e2e-{tag}", f"oe{tag}h"[:15], f"{cls.BASE}.{x}.1", f"{cls.BASE}.{x}.2")
        peer = f"oe{tag}n"[:15]
        cls._ip("netns", "add", ns.name)
        try:
            cls._ip("link", "add", ns.host_if, "type", "veth", "peer", "name", peer)
            cls._ip("link", "set", peer, "netns", ns.name)
            cls._ip("addr", "add", f"{ns.host_ip}/30", "dev", ns.host_if)
            cls._ip("link", "set", ns.host_if, "up")
            cls._ip("-n", ns.name, "addr", "add", f"{ns.ns_ip}/30", "dev", peer)
            cls._ip("-n", ns.name, "link", "set", peer, "up")
            cls._ip("-n", ns.name, "link", "set", "lo", "up")
        except BaseException:
            ns.delete()
            raise
        _log(f"netns {ns.name}: host {ns.host_if} {ns.host_ip}/30 <-> {ns.ns_ip}")
        return ns

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """argv that runs ``argv`` inside the namespace (``ip netns exec`` execs, so the PID is
        the program's own)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def delete(self) -> None:
        for args in (("link", "del", self.host_if), ("netns", "del", self.name)):
            with contextlib.suppress(StackError, OSError, subprocess.TimeoutExpired):
                self._ip(*args)


# ---------------------------------------------------------------------------------------------
# the stack


class Stack:
    """etcd + kube-apiserver + Traefik on loopback, plus helpers to drive them.

    Use as a context manager (``with Stack(extra_crds=[...]) as stack: ...``) or call
    :meth:`start` / :meth:`stop`. Everything it starts is stopped in :meth:`stop`, also when
    :meth:`start` fails half-way or on KeyboardInterrupt.

    After :meth:`start` these attributes are set:

    - ``api_url``, ``token``, ``ca_file``, ``kubeconfig``: how to reach the API server
      (bearer token, CA bundle of the self-signed serving cert);
    - ``web_port`` / ``web_url``: Traefik's ``web`` entry point (= the Gateway listener port);
    - ``traefik_api_url``: Traefik's API (``/api/http/routers`` ...) and ``/ping``;
    - ``workdir``, ``log_dir``: temp directory and its ``logs/`` (etcd.log, kube-apiserver.log,
      traefik.log, traefik-access.log, one log per stand-in server);
    - ``netns``: the :class:`Netns` for upstreams, or None if ``use_netns=False``.

    ``quiet=True`` is for load (the benchmarks): Traefik logs at ERROR instead of DEBUG and
    writes no access log, so neither its CPU nor the disk measures the logging.
    ``metrics=True`` serves Traefik's Prometheus metrics at ``traefik_api_url + "/metrics"``.
    ``allow_external_name_services=False`` starts Traefik without
    ``providers.kubernetesCRD.allowExternalNameServices`` (a misconfigured platform).
    """

    def __init__(
        self,
        *,
        extra_crds: Iterable[Path | str] = (),
        binaries: Binaries | None = None,
        use_netns: bool = True,
        keep_workdir: bool = False,
        start_timeout: float = 120.0,
        quiet: bool = False,
        metrics: bool = False,
        allow_external_name_services: bool = True,
    ) -> None:
        self.binaries = binaries or Binaries.find()
        self.quiet = quiet
        self.metrics = metrics
        self.allow_external_name_services = allow_external_name_services
        self.extra_crds = [Path(p) for p in extra_crds]
        self.use_netns = use_netns
        self.keep_workdir = keep_workdir or os.environ.get("OBOL_E2E_KEEP") == "1"
        self.start_timeout = start_timeout
        self.failed = False
        self._procs: list[ManagedProcess] = []
        self._servers: list[HTTPServerProcess] = []
        self._extra_logs: list[Path] = []
        self._diagnostics: list[Callable[[], str]] = []
        self._stopped = True
        self._old_sigterm: Any = None
        self.netns: Netns | None = None
        self.workdir = Path()
        self.log_dir = Path()
        self.etcd_url = ""
        self.api_url = ""
        self.token = ""
        self.ca_file = Path()
        self.kubeconfig = Path()
        self.web_port = 0
        self.web_url = ""
        self.traefik_api_url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.failed = True
        self.stop()

    def start(self) -> Stack:
        """Start everything and wait until it is ready; on any failure stop what was started."""
        t0 = time.monotonic()
        self._stopped = False
        atexit.register(self.stop)
        self._trap_sigterm()
        self.workdir = Path(tempfile.mkdtemp(prefix="obol-e2e-"))
        self.log_dir = self.workdir / "logs"
        self.log_dir.mkdir()
        _log(f"workdir {self.workdir}; versions {dict(self.binaries.versions)}")
        try:
            self._start_etcd()
            self._start_apiserver()
            crds = sorted(self.binaries.gateway_api_crds.glob("*.yaml"))
            crds += sorted(self.binaries.traefik_crds.glob("*.yaml"))
            self.install_crds(crds + self.extra_crds)
            self._create_gateway()
            self._start_traefik()
            if self.use_netns:
                self.netns = Netns.create()
        except BaseException:
            self.failed = True
            self.stop()
            raise
        _log(
            f"stack ready in {time.monotonic() - t0:.1f}s: api {self.api_url}, "
            f"web {self.web_url}, traefik api {self.traefik_api_url}"
        )
        return self

    def mark_failed(self) -> None:
        """Tell the stack a test failed, so :meth:`stop` prints log tails and keeps the logs."""
        self.failed = True

    def stop(self) -> None:
        """Stop every process we started (by PID), delete the netns, remove the temp dir.

        If the stack is marked failed, print where the logs are and their tails, and keep the
        log directory (the etcd data and certificates are still removed)."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        self._untrap_sigterm()
        if self.failed:
            with contextlib.suppress(Exception):
                print(self.diagnostics(), file=sys.stderr, flush=True)
        for server in reversed(self._servers):
            with contextlib.suppress(Exception):
                server.stop()
        for proc in reversed(self._procs):
            try:
                proc.stop()
            except Exception as exc:  # keep going: the others must be stopped too
                _log(f"stopping {proc.name} failed: {exc!r}")
        if self.netns is not None:
            self.netns.delete()
            self.netns = None
        if not self.workdir.parts or not self.workdir.exists():
            return
        if self.failed or self.keep_workdir:
            for sub in ("etcd-data", "certs"):
                shutil.rmtree(self.workdir / sub, ignore_errors=True)
            _log(f"logs kept in {self.log_dir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _trap_sigterm(self) -> None:
        """While the stack runs, turn SIGTERM (e.g. a CI timeout) into SystemExit, so that the
        ``with`` block / fixture teardown still stops the children. Only from the main thread
        and only if nobody else installed a handler."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def on_sigterm(signum: int, frame: Any) -> None:
            raise SystemExit(128 + signum)

        self._old_sigterm = signal.signal(signal.SIGTERM, on_sigterm)

    def _untrap_sigterm(self) -> None:
        if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    def diagnostics(self, lines: int = 40) -> str:
        """Where the logs are, plus the tails of the Traefik, API server and etcd logs (and
        shorter tails of the access log and of each stand-in server)."""
        out = [f"==== e2e stack logs: {self.log_dir} ===="]
        names = [(n, lines) for n in ("traefik.log", "kube-apiserver.log", "etcd.log")]
        names.append(("traefik-access.log", 10))
        names += [(p.name, 10) for p in sorted(self.log_dir.glob("server-*.log"))]
        paths = [(self.log_dir / name, n) for name, n in names]
        paths += [(path, lines) for path in self._extra_logs]
        for path, n in paths:
            if path.exists():
                out.append(f"---- tail -n {n} {path}")
                out.append(_tail(path, n))
        for extra in self._diagnostics:
            try:
                out.append(extra())
            except Exception as exc:  # diagnostics must never hide the original failure
                out.append(f"<diagnostics callback failed: {exc!r}>")
        return "\n".join(out)

    def process(self, name: str) -> ManagedProcess:
        """A process the stack started (``etcd``, ``kube-apiserver``, ``traefik``, a helper from
        :meth:`start_process` or a stand-in server), by name; for reading its PID."""
        found = [p for p in self._procs if p.name == name]
        found += [server.proc for server in self._servers if server.name == name]
        if not found:
            raise StackError(f"no process named {name!r} in this stack")
        return found[-1]

    def add_diagnostics(self, callback: Callable[[], str]) -> None:
        """Also print ``callback()`` in :meth:`diagnostics` (e.g. a test driver's history)."""
        self._diagnostics.append(callback)

    def start_process(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
    ) -> ManagedProcess:
        """Start a helper process (e.g. the sync hook) owned by the stack: its output goes to
        ``log_dir/<name>.log``, its log tail is part of :meth:`diagnostics`, and :meth:`stop`
        stops it by PID before Traefik and the API server. ``env`` is added to the stack's
        small child environment."""
        log_path = self.log_dir / f"{name}.log"
        proc = ManagedProcess(name, argv, log_path)
        self._procs.append(proc)
        self._extra_logs.append(log_path)
        proc.start(env={**self._child_env(), **(env or {})})
        return proc

    # -- etcd --------------------------------------------------------------------------------

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        data = self.workdir / "etcd-data"
        proc = ManagedProcess(
            "etcd",
            [
                self.binaries.etcd,
                "--name",
                "e2e",
                "--data-dir",
                data,
                "--listen-client-urls",
                self.etcd_url,
                "--advertise-client-urls",
                self.etcd_url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-cluster",
                f"e2e=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",  # throw-away data: no fsync, much faster on a shared disk
                "--log-level",
                "warn",
            ],
            self.log_dir / "etcd.log",
        )
        self._procs.append(proc)
        proc.start(env=self._child_env())

        def healthy() -> bool:
            proc.check_alive()
            r = requests.get(f"{self.etcd_url}/health", timeout=2)
            return r.status_code == 200 and r.json().get("health") == "true"

        wait_until(healthy, timeout=30, what="etcd /health")

    # -- kube-apiserver ------------------------------------------------------------------------

    def _start_apiserver(self) -> None:
        port = free_port()
        certs = self.workdir / "certs"
        certs.mkdir()
        self.token = os.urandom(24).hex()
        token_file = certs / "tokens.csv"
        token_file.write_text(f'{self.token},e2e-admin,e2e-admin,"system:masters"\n')
        # The API server writes a self-signed CA + serving cert here (apiserver.crt holds both).
        self.ca_file = certs / "apiserver.crt"
        # Service-account tokens are never used here, but the API server wants a signing key.
        # It generates the self-signed serving key before it reads the signing key, so the
        # serving key doubles as one: no openssl or crypto library needed.
        sa_key = certs / "apiserver.key"
        self.api_url = f"https://127.0.0.1:{port}"
        proc = ManagedProcess(
            "kube-apiserver",
            [
                self.binaries.kube_apiserver,
                "--etcd-servers",
                self.etcd_url,
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--secure-port",
                str(port),
                "--cert-dir",
                certs,
                "--token-auth-file",
                token_file,
                "--authorization-mode",
                "AlwaysAllow",
                "--service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file",
                sa_key,
                "--service-account-signing-key-file",
                sa_key,
                "--service-cluster-ip-range",
                "10.96.0.0/16",
                # no kubelet/nodes: do not try to publish the apiserver's own (loopback) endpoint
                "--endpoint-reconciler-type",
                "none",
                "--profiling=false",
                "--v",
                "1",
            ],
            self.log_dir / "kube-apiserver.log",
            # Its graceful shutdown took the whole 10 s in most modules' teardowns (over a minute
            # of every run); nothing of a throwaway test cluster needs to survive it.
            stop_timeout=2.0,
        )
        self._procs.append(proc)
        proc.start(env=self._child_env())

        def ready() -> bool:
            proc.check_alive()
            if not self.ca_file.exists():
                return False
            r = requests.get(
                f"{self.api_url}/readyz", headers=self._auth(), verify=str(self.ca_file), timeout=5
            )
            return r.status_code == 200

        wait_until(ready, timeout=self.start_timeout, what="kube-apiserver /readyz", interval=0.5)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "e2e",
                            "cluster": {
                                "server": self.api_url,
                                "certificate-authority": str(self.ca_file),
                            },
                        }
                    ],
                    "users": [{"name": "e2e-admin", "user": {"token": self.token}}],
                    "contexts": [
                        {"name": "e2e", "context": {"cluster": "e2e", "user": "e2e-admin"}}
                    ],
                    "current-context": "e2e",
                }
            )
        )
        # The API server creates the default namespace shortly after it is ready.
        wait_until(lambda: self.get("namespace", "default"), timeout=30, what="namespace default")

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _child_env(self) -> dict[str, str]:
        """A small, explicit environment for the children: no proxies, no in-cluster config."""
        tmp = self.workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "TMPDIR": str(tmp),
            "LANG": "C.UTF-8",
        }

    # -- kubectl -------------------------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this stack; raise :class:`KubectlError` on failure
        (unless ``check=False``)."""
        env = self.kubectl_env()
        argv = [str(self.binaries.kubectl), *args]
        try:
            proc = subprocess.run(
                argv,
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise StackTimeout(f"kubectl {' '.join(args)} took more than {timeout}s") from exc
        if check and proc.returncode != 0:
            raise KubectlError(args, proc)
        return proc

    def kubectl_env(self) -> dict[str, str]:
        """The environment the stack's kubectl runs with (``KUBECONFIG`` = this stack, context
        ``e2e``); also right for any program that runs kubectl itself, such as ``obol sell``."""
        env = self._child_env()
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["KUBECACHEDIR"] = str(self.workdir / "kubecache")
        return env

    def apply(self, *objs: Mapping[str, Any] | str, timeout: float = 120.0) -> str:
        """Server-side apply objects (dicts or YAML text) with field manager ``obol-e2e``."""
        return self.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            f"--field-manager={FIELD_MANAGER}",
            "-f",
            "-",
            input=to_yaml(*objs),
            timeout=timeout,
        ).stdout

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """One object as a dict, or None if it does not exist."""
        args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
        if namespace:
            args += ["-n", namespace]
        out = self.kubectl(*args).stdout.strip()
        return json.loads(out) if out else None

    def list_objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """All objects of a kind (in one namespace, or in all if ``namespace`` is None)."""
        args = ["get", kind, "-o", "json"]
        args += ["-n", namespace] if namespace else ["--all-namespaces"]
        return list(json.loads(self.kubectl(*args).stdout)["items"])

    def delete(
        self, kind: str, name: str, namespace: str | None = None, timeout: float = 60.0
    ) -> None:
        """Delete an object if it exists and wait for it to be gone."""
        args = [
            "delete",
            kind,
            name,
            "--ignore-not-found",
            "--wait=true",
            f"--timeout={int(timeout)}s",
        ]
        if namespace:
            args += ["-n", namespace]
        self.kubectl(*args, timeout=timeout + 10)

    def install_crds(self, paths: Iterable[Path], timeout: float = 60.0) -> list[str]:
        """Apply CRD files (server-side: the Gateway API CRDs are too big for the
        last-applied annotation) and wait until each is Established. Returns the CRD names."""
        names: list[str] = []
        texts: list[str] = []
        for path in paths:
            if not Path(path).is_file():
                raise StackError(f"CRD file {path} does not exist")
            text = Path(path).read_text()
            for doc in yaml.safe_load_all(text):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    names.append(doc["metadata"]["name"])
            texts.append(text)
        if not names:
            return names
        self.apply(*texts, timeout=timeout)
        self.kubectl(
            "wait",
            "--for=condition=Established",
            f"--timeout={int(timeout)}s",
            *(f"crd/{n}" for n in names),
            timeout=timeout + 10,
        )
        _log(f"CRDs established: {', '.join(names)}")
        return names

    # -- Gateway -------------------------------------------------------------------------------

    def _create_gateway(self) -> None:
        self.web_port = free_port()
        self.apply(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GatewayClass",
                "metadata": {"name": GATEWAY_CLASS},
                "spec": {"controllerName": GATEWAY_CONTROLLER},
            },
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GATEWAY_NAMESPACE}},
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "metadata": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE},
                "spec": {
                    "gatewayClassName": GATEWAY_CLASS,
                    "listeners": [
                        {
                            "name": LISTENER_NAME,
                            "protocol": "HTTP",
                            "port": self.web_port,
                            "allowedRoutes": {"namespaces": {"from": "All"}},
                        }
                    ],
                },
            },
        )

    @staticmethod
    def parent_ref() -> dict[str, str]:
        """The HTTPRoute ``parentRefs`` entry for the stack's Gateway listener."""
        return {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": GATEWAY_NAME,
            "namespace": GATEWAY_NAMESPACE,
            "sectionName": LISTENER_NAME,
        }

    # -- Traefik -------------------------------------------------------------------------------

    def _start_traefik(self) -> None:
        self.web_url, self.traefik_api_url, proc = self._traefik_process("traefik", "127.0.0.1")

        def gateway_programmed() -> bool:
            proc.check_alive()
            gw = self.get("gateway", GATEWAY_NAME, GATEWAY_NAMESPACE) or {}
            return _condition_true(gw, "Programmed")

        wait_until(
            gateway_programmed, timeout=60, what="Gateway Programmed=True by Traefik", interval=0.5
        )

    def start_gateway_replica(self, name: str, host: str) -> tuple[str, str]:
        """A further Traefik process serving the same Gateway from the same API server, as a
        second gateway replica does: its ``web`` entry point on ``host`` (another loopback
        address, e.g. ``127.0.0.2``) and the Gateway listener's port. Returns its web URL and its
        API URL; it is stopped with the stack."""
        web_url, api_url, _ = self._traefik_process(name, host)
        return web_url, api_url

    def _traefik_process(self, name: str, host: str) -> tuple[str, str, ManagedProcess]:
        """Start one Traefik watching this stack, wait for its /ping; (web URL, API URL, proc)."""
        api_port = free_port(host)
        web_url = f"http://{host}:{self.web_port}"
        api_url = f"http://{host}:{api_port}"
        kube = {
            "endpoint": self.api_url,
            "token": self.token,
            "certAuthFilePath": str(self.ca_file),
        }
        config: dict[str, Any] = {
            # Never phone home: no version check, no anonymous usage statistics.
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            "entryPoints": {
                "web": {"address": f"{host}:{self.web_port}"},
                "traefik": {"address": f"{host}:{api_port}"},
            },
            "api": {"insecure": True, "dashboard": False},
            "ping": {"entryPoint": "traefik"},
            "log": {
                "level": "ERROR" if self.quiet else "DEBUG",
                "filePath": str(self.log_dir / f"{name}.log"),
                "noColor": True,
            },
            "providers": {
                "providersThrottleDuration": "200ms",
                "kubernetesCRD": {
                    **kube,
                    "allowExternalNameServices": self.allow_external_name_services,
                    "allowEmptyServices": True,
                },
                "kubernetesGateway": dict(kube),
            },
        }
        if self.metrics:
            config["metrics"] = {"prometheus": {"entryPoint": "traefik"}}
        if not self.quiet:
            config["accessLog"] = {
                "filePath": str(self.log_dir / f"{name}-access.log"),
                "format": "json",
            }
        config_file = self.workdir / f"{name}.yaml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        proc = ManagedProcess(
            name,
            [self.binaries.traefik, f"--configFile={config_file}"],
            self.log_dir / f"{name}-stdout.log",
        )
        self._procs.append(proc)
        proc.start(env=self._child_env())

        def pinged() -> bool:
            proc.check_alive()
            return requests.get(f"{api_url}/ping", timeout=2).status_code == 200

        wait_until(pinged, timeout=60, what=f"{name} /ping")
        return web_url, api_url, proc

    def traefik_api(self, path: str) -> Any:
        """GET a Traefik API path (e.g. ``/api/http/routers``) and return the JSON."""
        r = requests.get(f"{self.traefik_api_url}{path}", timeout=5)
        r.raise_for_status()
        return r.json()

    def routers(self) -> list[dict[str, Any]]:
        """Traefik's HTTP routers (all providers), as its API reports them."""
        return list(self.traefik_api("/api/http/routers?per_page=1000"))

    @staticmethod
    def route_router_prefix(namespace: str, route: str) -> str:
        """Prefix of the Traefik router names made from an HTTPRoute on the stack's Gateway."""
        return (
            f"httproute-{namespace}-{route}-gw-{GATEWAY_NAMESPACE}-{GATEWAY_NAME}"
            f"-ep-{LISTENER_NAME}-"
        )

    def wait_for_route(self, namespace: str, route: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until Traefik serves an enabled router for HTTPRoute ``namespace/route``."""
        prefix = self.route_router_prefix(namespace, route)

        def found() -> dict[str, Any] | None:
            for r in self.routers():
                if r.get("name", "").startswith(prefix) and r.get("status") == "enabled":
                    return r
            return None

        return wait_until(found, timeout=timeout, what=f"Traefik router {prefix}*", interval=0.3)

    def access_log(self) -> list[dict[str, Any]]:
        """Traefik's access log so far (JSON lines: RouterName, DownstreamStatus, ...)."""
        path = self.log_dir / "traefik-access.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def http(
        self, method: str, path: str, *, timeout: float = 10.0, **kwargs: Any
    ) -> requests.Response:
        """Send one request through Traefik's ``web`` entry point."""
        return requests.request(method, f"{self.web_url}{path}", timeout=timeout, **kwargs)

    # -- stand-in servers and how Kubernetes points at them ----------------------------------------

    def _start_server(
        self, name: str, args: Sequence[str], *, in_netns: bool, host: str
    ) -> HTTPServerProcess:
        argv = [
            sys.executable,
            str(UPSTREAM_SERVER),
            "--host",
            host,
            "--port",
            "0",
            "--name",
            name,
            *args,
        ]
        if in_netns:
            if self.netns is None:
                raise StackError("this stack has no network namespace (use_netns=False)")
            argv = self.netns.exec_argv(argv)
        proc = ManagedProcess(name, argv, self.log_dir / f"server-{name}.log")
        proc.start(env=self._child_env(), stdout_pipe=True)
        server = HTTPServerProcess(proc, host, 0)
        self._servers.append(server)
        line = proc.read_line(timeout=15)
        parts = line.split()
        if len(parts) != 3 or parts[0] != "LISTENING":
            raise StackError(f"{name}: unexpected first line {line!r}")
        server.port = int(parts[2])
        wait_until(
            lambda: requests.get(f"{server.url}/__e2e/health", timeout=2).ok,
            timeout=10,
            what=f"{name} /__e2e/health",
        )
        return server

    def start_upstream(
        self, name: str, *, hold_timeout: float = 60.0, vllm_metrics: bool = False
    ) -> HTTPServerProcess:
        """Start an echo upstream inside the stack's network namespace (see
        ``upstream_server.py``); expose it with :meth:`expose_endpoints`. ``vllm_metrics``
        makes it also serve vLLM-style ``/metrics`` (held requests count as running) and
        ``/health``."""
        if self.netns is None:
            raise StackError("start_upstream needs the network namespace (use_netns=True)")
        args = ["--hold-timeout", str(hold_timeout)]
        if vllm_metrics:
            args.append("--vllm-metrics")
        return self._start_server(name, args, in_netns=True, host=self.netns.ns_ip)

    def start_responder(
        self,
        name: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        body: str = "",
    ) -> HTTPServerProcess:
        """Start a fixed-response server on 127.0.0.1 (for an ExternalName ``localhost``
        Service, e.g. the ``errors`` middleware's service)."""
        args = ["--fixed-status", str(status), "--fixed-body", body]
        for k, v in (headers or {}).items():
            args += ["--fixed-header", f"{k}: {v}"]
        return self._start_server(name, args, in_netns=False, host="127.0.0.1")

    def expose_endpoints(
        self,
        namespace: str,
        name: str,
        address: str,
        port: int,
        *,
        service_port: int | None = None,
        port_name: str = "http",
        app_protocol: str | None = None,
    ) -> None:
        """A selectorless Service ``name`` plus a hand-written EndpointSlice pointing at
        ``address:port``, in the form Traefik needs: label ``kubernetes.io/service-name``,
        EndpointSlice port name equal to the Service port name, ``conditions.ready: true``.
        ``address`` must not be loopback (the API server rejects 127.0.0.0/8)."""
        svc_port: dict[str, Any] = {
            "name": port_name,
            "port": service_port or port,
            "targetPort": port,
            "protocol": "TCP",
        }
        slice_port: dict[str, Any] = {"name": port_name, "port": port, "protocol": "TCP"}
        if app_protocol:
            svc_port["appProtocol"] = app_protocol
            slice_port["appProtocol"] = app_protocol
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"type": "ClusterIP", "ports": [svc_port]},
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-e2e",
                    "namespace": namespace,
                    "labels": {
                        "kubernetes.io/service-name": name,
                        "endpointslice.kubernetes.io/managed-by": FIELD_MANAGER,
                    },
                },
                "addressType": "IPv4",
                "ports": [slice_port],
                "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            },
        )

    def expose_external_name(
        self, namespace: str, name: str, external_name: str, port: int, *, port_name: str = "http"
    ) -> None:
        """An ExternalName Service (only the kubernetesCRD provider follows it, because the
        stack enables ``allowExternalNameServices``; the Gateway provider refuses it)."""
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "type": "ExternalName",
                    "externalName": external_name,
                    "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
                },
            }
        )

    def ensure_namespace(self, namespace: str) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})


def _condition_true(obj: Mapping[str, Any], ctype: str) -> bool:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return bool(c.get("status") == "True")
    return False

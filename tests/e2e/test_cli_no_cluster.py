"""Without a kubeconfig, ``obol`` says there is no cluster, whatever listens on localhost:8080.

Real kubectl (built by tests/e2e/build.sh) with ``KUBECONFIG`` pointing nowhere falls back to
``http://localhost:8080``; a local HTTP server listens there (as ``obol hook serve`` does by
default) and answers anything. The CLI must exit 5 with its "no cluster configured" line, and
the local server must not be asked anything.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .hook_process import obol_command
from .stack import Binaries, BinariesMissing

pytestmark = pytest.mark.e2e


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []  # noqa: RUF012 (one server per test module)

    def do_GET(self) -> None:  # a cluster impostor: answers everything with JSON
        self.seen.append(self.path)
        body = b'{"kind": "APIVersions", "versions": ["v1"]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PATCH = do_PUT = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def kubectl() -> Path:
    try:
        return Binaries.find().kubectl
    except BinariesMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def impostor() -> Iterator[list[str] | None]:
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 8080), _Recorder)
    except OSError:
        yield None  # something else already listens on 8080: the point stands
        return
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield _Recorder.seen
    server.shutdown()
    server.server_close()


SELL_HTTP = ["sell", "http", "weather", "-n", "shop", "--upstream", "weather", "--port", "8080"]
SELL_HTTP += ["--network", "base-sepolia", "--price", "0.001"]
SELL_HTTP += ["--pay-to", "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"]


@pytest.mark.parametrize(
    "args",
    [["sell", "list", "-A"], ["crd", "apply"], SELL_HTTP],
    ids=["sell list", "crd apply", "sell http"],
)
def test_no_kubeconfig_is_no_cluster_even_with_something_on_8080(
    tmp_path: Path, kubectl: Path, impostor: list[str] | None, args: list[str]
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "OBOL_"))},
        "KUBECONFIG": str(tmp_path / "no-such-kubeconfig"),
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        [*obol_command(), *args, "--kubectl", str(kubectl)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 5, done.stderr
    assert "kubectl has no cluster configured" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    if impostor is not None:
        assert impostor == [], "the CLI let kubectl talk to localhost:8080"

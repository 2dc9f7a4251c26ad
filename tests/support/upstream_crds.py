"""Where the upstream CRDs are: Gateway API v1.5.1 (standard channel) and Traefik's own.

What it is for
    Tests that validate the hook's children (HTTPRoute, Middleware, ...) and the e2e stack need
    the upstream CustomResourceDefinition files. ``tests/e2e/build.sh`` exports them from their Go
    modules, fetched through the module proxy and checked against pinned go.sum hashes, into the
    same cache as the e2e binaries (``$OBOL_E2E_CACHE``, default ``~/.cache/obol-e2e``). This
    module asks ``build.sh --print`` where that is, so the versions are pinned in one place.

What it must never do
    Start a download or a build (``bash tests/e2e/build.sh --crds`` does that, and ``make test``
    / ``make unit`` run it first), or read anything outside the repository and that cache.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SH = REPO_ROOT / "tests" / "e2e" / "build.sh"
HOW_TO_GET_THEM = (
    "run `bash tests/e2e/build.sh --crds` (downloads the Gateway API and Traefik modules "
    "through the Go module proxy; `make test` and `make unit` do it first)"
)


class UpstreamCrdsMissing(RuntimeError):
    """The CRD export of ``tests/e2e/build.sh`` is not in the cache."""


@dataclass(frozen=True)
class UpstreamCrds:
    """The two exported folders, each complete (its ``.complete`` marker is written last)."""

    gateway_api: Path
    """HTTPRoute, Gateway, GatewayClass, ReferenceGrant of the Gateway API release we target."""
    traefik: Path
    """Every CRD the built Traefik watches (traefik.io kinds, GRPCRoute, BackendTLSPolicy)."""

    def files(self) -> list[Path]:
        return sorted(self.gateway_api.glob("*.yaml")) + sorted(self.traefik.glob("*.yaml"))


@functools.cache
def build_paths() -> tuple[int, dict[str, str]]:
    """``build.sh --print``: its exit code (3: something is not built) and its NAME=PATH lines.

    Raises OSError or subprocess.TimeoutExpired when the script cannot run.
    """
    proc = subprocess.run(
        ["bash", str(BUILD_SH), "--print"], capture_output=True, text=True, timeout=30, check=False
    )
    return proc.returncode, dict(
        line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line
    )


def find_upstream_crds() -> UpstreamCrds:
    """The exported CRD folders; :class:`UpstreamCrdsMissing` (with the command to run) if not
    exported yet."""
    try:
        _, paths = build_paths()
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UpstreamCrdsMissing(f"cannot run {BUILD_SH} --print: {exc}") from exc
    # --print exits 3 when any binary is missing; the CRD folders are judged on their own.
    missing = [
        key
        for key in ("GATEWAY_API_CRDS", "TRAEFIK_CRDS")
        if key not in paths or not (Path(paths[key]) / ".complete").is_file()
    ]
    if missing:
        where = ", ".join(paths.get(key, key) for key in missing)
        raise UpstreamCrdsMissing(f"upstream CRDs not exported ({where}); {HOW_TO_GET_THEM}")
    return UpstreamCrds(Path(paths["GATEWAY_API_CRDS"]), Path(paths["TRAEFIK_CRDS"]))


def upstream_crds_or_skip() -> UpstreamCrds:
    """For tests: the exported CRDs, or skip the test saying how to get them."""
    try:
        return find_upstream_crds()
    except UpstreamCrdsMissing as exc:
        pytest.skip(str(exc))

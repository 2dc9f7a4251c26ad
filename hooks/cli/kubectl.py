"""The one place the package runs a subprocess: a small wrapper around ``kubectl``.

``obol sell`` and ``obol crd`` talk to the cluster only through :class:`Kubectl`: ``apply -f -``
and ``get serviceoffers.obol.org ... -o json``. kubectl's failures are sorted into the
:class:`KubectlError` kinds below (:func:`classify_failure`, pure): each is a
:class:`~hooks.cli.errors.CliError`, one line with its own exit code.

This module must never build, validate or format offers (that is :mod:`hooks.core.models` and
:mod:`hooks.cli.offer_view`), never read the environment itself (the CLI passes the executable and
context in), and never use a shell: arguments go to kubectl as a list.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hooks.cli.errors import (
    EXIT_INVALID,
    EXIT_KUBECTL_FAILED,
    EXIT_NO_CRD,
    EXIT_NO_KUBECTL,
    EXIT_NOT_FOUND,
    EXIT_UNREACHABLE,
    CliError,
)
from hooks.core import api

SERVICEOFFERS = f"{api.PLURAL}.{api.GROUP}"
DEFAULT_TIMEOUT_SECONDS = 60.0

_KLOG_LINE = re.compile(r"^[IWEF]\d{4} \d{2}:\d{2}:\d{2}")
# kubectl's advice to skip client-side validation; never the right fix for an unreachable server.
_VALIDATE_ADVICE = (
    "; if you choose to ignore these errors, turn validation off with --validate=false"
)
_UNREACHABLE_MARKERS = (
    "unable to connect to the server",
    "connection refused",
    "was refused",
    "no such host",
    "i/o timeout",
    "no route to host",
    "network is unreachable",
    "tls handshake timeout",
    "couldn't get current server api group list",
)
_CRD_MISSING_MARKERS = (
    "the server doesn't have a resource type",
    "no matches for kind",
    "ensure crds are installed first",
    "could not find the requested resource",
)


class KubectlError(CliError):
    """kubectl could not do what was asked: one line fit for a user, and the kind's exit code."""

    exit_code = EXIT_KUBECTL_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message, type(self).exit_code)


class KubectlNotFound(KubectlError):
    """The kubectl executable is missing or cannot be run."""

    exit_code = EXIT_NO_KUBECTL


class ClusterUnreachable(KubectlError):
    """kubectl could not reach the API server, or has no cluster configured."""

    exit_code = EXIT_UNREACHABLE


class CrdMissing(KubectlError):
    """The API server does not know the ServiceOffer resource."""

    exit_code = EXIT_NO_CRD


class OfferNotFound(KubectlError):
    """A named ServiceOffer does not exist (in the namespace asked)."""

    exit_code = EXIT_NOT_FOUND


class RejectedByServer(KubectlError):
    """The API server's validation (schema or CEL rules) refused the object."""

    exit_code = EXIT_INVALID


class KubectlFailed(KubectlError):
    """Any other kubectl failure."""


def summary_line(stderr: str) -> str:
    """The most useful single line of kubectl's stderr (skipping klog noise)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    plain = [line for line in lines if not _KLOG_LINE.match(line)]
    chosen = plain[0] if plain else (lines[-1] if lines else "no error message")
    chosen = chosen.removeprefix("error: ").replace(_VALIDATE_ADVICE, "")
    return chosen if len(chosen) <= 400 else chosen[:397] + "..."


def classify_failure(stderr: str, returncode: int) -> KubectlError:
    """Sort a failed kubectl run into one of the error kinds above (pure)."""
    text = stderr.lower()
    line = summary_line(stderr)
    if any(marker in text for marker in _UNREACHABLE_MARKERS):
        return ClusterUnreachable(f"cannot reach the cluster: {line}")
    if any(marker in text for marker in _CRD_MISSING_MARKERS):
        return CrdMissing(
            f"the ServiceOffer CRD ({SERVICEOFFERS}) is not installed in this cluster;"
            " install the one this package ships with: obol crd apply (or: obol crd print | kubectl"
            f" apply -f -) ({line})"
        )
    if "(invalid)" in text or " is invalid:" in text:
        return RejectedByServer(f"the API server rejected the offer: {line}")
    return KubectlFailed(f"kubectl failed (exit {returncode}): {line}")


@dataclass(frozen=True, slots=True)
class Kubectl:
    """How to run kubectl: which executable, which kubeconfig context, how long to wait."""

    executable: str = "kubectl"
    context: str | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    def apply(self, manifest: Mapping[str, Any]) -> str:
        """``kubectl apply -f -`` with the manifest as JSON on stdin; return kubectl's stdout."""
        self.check_cluster_configured()
        return self._run(["apply", "-f", "-"], stdin=json.dumps(manifest)).strip()

    def check_cluster_configured(self) -> None:
        """Raise :class:`ClusterUnreachable` unless kubectl has a context with a server.

        Without a kubeconfig (or with an unknown ``--context``) kubectl falls back to
        ``http://localhost:8080``, and whatever listens there (``obol hook serve``'s default
        port, for one) would answer as if it were the cluster.
        """
        done = self._exec(["config", "view", "--minify", "--output", "json"])
        server = None
        if done.returncode == 0:
            try:
                clusters = json.loads(done.stdout).get("clusters") or []
                server = clusters[0]["cluster"].get("server") if clusters else None
            except (json.JSONDecodeError, AttributeError, KeyError, TypeError):
                server = None
        if server:
            return
        why = summary_line(done.stderr) if done.returncode != 0 else "its context names no server"
        which = f"context {self.context!r}" if self.context else "a current context"
        raise ClusterUnreachable(
            f"cannot reach the cluster: kubectl has no cluster configured ({why}); without"
            f" {which} kubectl would send requests to http://localhost:8080, which is not a"
            " cluster (whatever listens there). Set KUBECONFIG, run 'kubectl config use-context',"
            " or pass --context"
        )

    def get_offers(
        self,
        *,
        name: str | None = None,
        namespace: str | None = None,
        all_namespaces: bool = False,
    ) -> list[dict[str, Any]]:
        """Read ServiceOffers as JSON objects (one when ``name`` is given, else a list)."""
        args = ["get", SERVICEOFFERS]
        if all_namespaces:
            args.append("--all-namespaces")
        elif namespace:
            args += ["--namespace", namespace]
        if name:
            args.append(name)
        args += ["--output", "json"]
        self.check_cluster_configured()
        try:
            output = self._run(args)
        except KubectlFailed as failure:
            if name and f'"{name}" not found' in str(failure):
                where = f"namespace {namespace!r}" if namespace else "the current namespace"
                raise OfferNotFound(
                    f"ServiceOffer {name!r} not found in {where};"
                    " list offers with: obol sell list --all-namespaces"
                ) from None
            raise
        return _offers_from(output)

    def _run(self, args: Sequence[str], stdin: str | None = None) -> str:
        done = self._exec(args, stdin)
        if done.returncode != 0:
            raise classify_failure(done.stderr, done.returncode)
        return done.stdout

    def _exec(
        self, args: Sequence[str], stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.executable]
        if self.context:
            argv += ["--context", self.context]
        argv += args
        try:
            done = subprocess.run(  # the only subprocess call in the package
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout_seconds,
                check=False,
            )
        except FileNotFoundError:
            raise KubectlNotFound(_not_found_message(self.executable)) from None
        except PermissionError:
            raise KubectlNotFound(f"kubectl at {self.executable!r} is not executable") from None
        except subprocess.TimeoutExpired:
            raise ClusterUnreachable(
                f"cannot reach the cluster: kubectl did not answer within {self.timeout_seconds:g}s"
            ) from None
        return done


def _not_found_message(executable: str) -> str:
    if "/" in executable:
        return f"kubectl not found at {executable!r} (check --kubectl or OBOL_KUBECTL)"
    return (
        f"kubectl not found: {executable!r} is not on PATH"
        " (install kubectl, or point --kubectl or OBOL_KUBECTL at it)"
    )


def _offers_from(output: str) -> list[dict[str, Any]]:
    try:
        document = json.loads(output)
    except json.JSONDecodeError:
        snippet = output[:80]
        raise KubectlFailed(f"kubectl printed something that is not JSON: {snippet!r}") from None
    if not isinstance(document, dict):
        raise KubectlFailed("kubectl printed JSON that is not an object")
    if document.get("kind", "").endswith("List") or "items" in document:
        items = document.get("items") or []
        return [item for item in items if isinstance(item, dict)]
    return [document]

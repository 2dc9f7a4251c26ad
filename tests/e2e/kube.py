"""A tiny Kubernetes REST client for the e2e stack: the driver and the verifier stub use it.

kubectl is a separate process per call (about 0.1 s each); the Metacontroller stand-in and the
verifier stand-in make many small reads and writes, so they talk to the API server directly, with
the stack's bearer token and CA bundle, exactly as a controller would. Only what they need is
here: get, list by label selector, create, update (PUT), merge-patch, delete with a UID
precondition, and the status subresource; create and update can be strict dry runs (validation
by the real API server without storing anything).

Errors are raised as :class:`ApiError` carrying the HTTP status and the API server's ``reason``
(``NotFound``, ``AlreadyExists``, ``Conflict``, ``Invalid``), so callers can swallow the same
errors Metacontroller swallows. Every call has a timeout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

REQUEST_TIMEOUT = 10.0
# Validate without storing: the API server defaults, prunes, runs the schema and CEL rules and
# answers with the object it would store; an unknown field is an error, not a silent prune.
DRY_RUN_STRICT = {"dryRun": "All", "fieldValidation": "Strict"}


class ApiError(RuntimeError):
    """The API server answered with an error status."""

    def __init__(self, method: str, path: str, response: requests.Response) -> None:
        self.status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {}
        self.reason = str(body.get("reason", "")) if isinstance(body, dict) else ""
        self.message = str(body.get("message", response.text[:500])) if body else response.text
        super().__init__(f"{method} {path}: {self.status} {self.reason}: {self.message}")

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409 and self.reason == "Conflict"

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"


def collection_path(api_version: str, plural: str, namespace: str | None) -> str:
    """``/api/v1/...`` for the core group, ``/apis/<group>/<version>/...`` otherwise."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace is None:
        return f"{base}/{plural}"
    return f"{base}/namespaces/{quote(namespace, safe='')}/{plural}"


def object_path(api_version: str, plural: str, namespace: str, name: str) -> str:
    """The URL path of one namespaced object."""
    return f"{collection_path(api_version, plural, namespace)}/{quote(name, safe='')}"


@dataclass
class KubeClient:
    """Bearer-token client for one API server (the stack's ``api_url``, token and CA file)."""

    api_url: str
    token: str
    ca_file: Path

    def __post_init__(self) -> None:
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {self.token}"
        # verify is passed on every call: a Session-level verify loses to REQUESTS_CA_BUNDLE.
        self._session.trust_env = False  # and no proxies from the environment

    def close(self) -> None:
        self._session.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        headers = {"Content-Type": content_type} if body is not None else {}
        response = self._session.request(
            method,
            self.api_url + path,
            json=body,
            params=params,
            headers=headers,
            timeout=REQUEST_TIMEOUT,
            verify=str(self.ca_file),
        )
        if response.status_code >= 400:
            raise ApiError(method, path, response)
        result = response.json()
        return result if isinstance(result, dict) else {}

    def get(self, path: str) -> dict[str, Any] | None:
        """The object at ``path``, or None when it does not exist."""
        try:
            return self._call("GET", path)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        """Items of a collection (optionally filtered by a label selector), with their
        ``apiVersion`` and ``kind`` filled in (list items come without them)."""
        params = {"labelSelector": label_selector} if label_selector else None
        listing = self._call("GET", path, params=params)
        api_version = str(listing.get("apiVersion", ""))
        kind = str(listing.get("kind", "")).removesuffix("List")
        items = []
        for item in listing.get("items") or []:
            if isinstance(item, dict):
                items.append({"apiVersion": api_version, "kind": kind, **item})
        return items

    def create(self, path: str, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """POST ``obj`` to the collection ``path``; ``dry_run``: see :data:`DRY_RUN_STRICT`."""
        return self._call("POST", path, body=obj, params=DRY_RUN_STRICT if dry_run else None)

    def update(self, path: str, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """PUT ``obj`` (a full object with its resourceVersion) to ``path``."""
        return self._call("PUT", path, body=obj, params=DRY_RUN_STRICT if dry_run else None)

    def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """JSON merge patch (RFC 7386)."""
        return self._call("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def delete(self, path: str, *, uid: str | None = None) -> None:
        """Delete with background propagation and, when given, a UID precondition."""
        options: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
        }
        if uid:
            options["preconditions"] = {"uid": uid}
        self._call("DELETE", path, body=options)

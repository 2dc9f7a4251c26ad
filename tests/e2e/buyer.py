"""Buyer-side helpers shared by the e2e test modules: quotes, payments, held requests, the CLI.

* :func:`quote` sends an unpaid GET and returns the x402 v2 ``PaymentRequired`` of the 402.
* :class:`Buyer` is a real x402 buyer: an ``eth-account`` key made in the test and the x402
  SDK's own client (``x402ClientSync`` with the EVM ``exact`` scheme), which parses our 402 and
  signs an EIP-3009 authorization for it. :func:`paid` turns a 402 into that buyer's
  ``PAYMENT-SIGNATURE`` header; :meth:`Buyer.pay` does it from the 402 response itself (the
  ``PAYMENT-REQUIRED`` header, as the SDK reads it).
* :class:`Held` sends requests that the stand-in upstream holds open (``?hold=<key>``) until
  the test releases them, so a test can fill an offer's in-flight slots on purpose.
* :func:`assert_busy` checks a 429 from the hook's busy responder and that it carries no x402.
* :func:`run_obol` runs the real ``obol`` CLI against the stack's API server.
* :func:`owned_children` reads an offer's children as stored (for before/after comparisons).

Every request has a timeout; :class:`Held` always releases what it held, also on failure.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
from collections.abc import Mapping
from typing import Any

import requests
from eth_account import Account
from x402 import x402ClientSync
from x402.http import x402HTTPClientSync
from x402.mechanisms.evm.exact.register import register_exact_evm_client
from x402.schemas import PaymentRequired

from hooks.core import api

from .hook_process import obol_command
from .kube import KubeClient, collection_path
from .stack import HTTPServerProcess, Stack

REQUEST_TIMEOUT = 30.0


def header(headers: Mapping[str, Any], name: str) -> Any:
    """A header from a JSON dict of headers (the echo upstream's), case-insensitively."""
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def quote(stack: Stack, path: str) -> dict[str, Any]:
    """The x402 v2 PaymentRequired of an unpaid GET (asserting the 402 on the way)."""
    reply = stack.http("GET", path)
    assert reply.status_code == 402, f"{path}: {reply.status_code} {reply.text[:300]}"
    required: dict[str, Any] = reply.json()
    return required


class Buyer:
    """A buyer with a fresh key, paying through the x402 SDK's client."""

    def __init__(self) -> None:
        self.account = Account.create()
        client = x402ClientSync()
        register_exact_evm_client(client, self.account)
        self.http = x402HTTPClientSync(client)

    @property
    def address(self) -> str:
        return str(self.account.address)

    def pay(self, reply: requests.Response) -> dict[str, str]:
        """The payment headers for a 402 response, parsed by the SDK from PAYMENT-REQUIRED."""
        headers, _ = self.http.handle_402_response(dict(reply.headers), reply.content, reply.url)
        return dict(headers)

    def __repr__(self) -> str:
        return f"Buyer({self.address})"


def paid(required: Mapping[str, Any], buyer: Buyer) -> dict[str, str]:
    """Headers of a request paid by ``buyer`` for a 402's ``PaymentRequired`` (its JSON body),
    signed by the SDK: a new EIP-3009 authorization (fresh nonce) on every call."""
    payload = buyer.http.create_payment_payload(PaymentRequired.model_validate(dict(required)))
    return dict(buyer.http.encode_payment_signature_header(payload))


def assert_busy(
    reply: requests.Response, retry_after: int, offer: str, reason: str = "offer_saturated"
) -> None:
    """429 from the busy responder: Retry-After, JSON with ``reason`` (offer_saturated or
    buyer_limit, also in X-Obol-Reject-Reason), and nothing of x402 in it."""
    assert reply.status_code == 429, f"{reply.status_code} {dict(reply.headers)} {reply.text}"
    assert reply.headers.get("Retry-After") == str(retry_after)
    assert reply.headers.get("Content-Type", "").startswith("application/json")
    assert "PAYMENT-REQUIRED" not in reply.headers
    body = reply.json()
    assert body["error"] == reason  # the hook's busy responder wrote this body
    assert reply.headers.get("X-Obol-Reject-Reason") == reason
    assert ("not charged" if reason == "buyer_limit" else "No payment was quoted") in body[
        "message"
    ]
    assert body["retryAfterSeconds"] == retry_after
    assert body["offer"] == offer
    assert "accepts" not in body and "x402Version" not in body


def owned_children(kube: KubeClient, namespace: str, offer: str) -> dict[tuple[str, str], Any]:
    """The offer's children as they are stored: (kind, name) -> spec (data for ConfigMaps)."""
    parent = kube.get(f"/apis/obol.org/v1alpha1/namespaces/{namespace}/serviceoffers/{offer}")
    assert parent is not None
    selector = f"controller-uid={parent['metadata']['uid']}"
    found: dict[tuple[str, str], Any] = {}
    for version, kind, plural in api.CHILD_TYPES:
        for child in kube.list(collection_path(version, plural, namespace), selector):
            found[(kind, child["metadata"]["name"])] = child.get("spec", child.get("data"))
    return found


class Held:
    """Requests sent concurrently and held open at the upstream under one key until released.

    Use as a context manager: entering waits until all of them are held; leaving releases them
    (also when the test failed) and collects the responses in :attr:`responses`.
    """

    def __init__(
        self,
        stack: Stack,
        upstream: HTTPServerProcess,
        path: str,
        key: str,
        headers: list[dict[str, str]],
    ) -> None:
        self.upstream = upstream
        self.key = key
        self.count = len(headers)
        self.responses: list[requests.Response] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.count)
        self._futures = [
            self._pool.submit(
                stack.http, "GET", f"{path}?hold={key}", headers=h, timeout=REQUEST_TIMEOUT
            )
            for h in headers
        ]

    def __enter__(self) -> Held:
        try:
            self.upstream.wait_held(self.key, self.count, timeout=15)
        except BaseException:
            self._finish()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish()

    def _finish(self) -> None:
        self.upstream.release(self.key)
        try:
            self.responses = [f.result(timeout=REQUEST_TIMEOUT + 5) for f in self._futures]
        finally:
            self.upstream.release(self.key)  # in case one arrived after the first release
            self._pool.shutdown(wait=True)


def run_obol(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """``obol <args> --kubectl <built kubectl> --context e2e``, KUBECONFIG = this stack."""
    argv = [*obol_command(), *args, "--kubectl", str(stack.binaries.kubectl), "--context", "e2e"]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env=stack.kubectl_env(), check=False
    )

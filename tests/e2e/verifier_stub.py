"""A test-only stand-in for the x402 verifier (a product outside this repository), both gates.

It implements the verifier contract of docs/verifier-contract.md,
which follows obol-stack's verifier (its ``/verify`` ForwardAuth endpoint and its seller proxy,
ADR 0004 in that project), with the x402 protocol's own code wherever it fits:

* **402 bodies** are the x402 SDK's ``PaymentRequired`` model (``x402`` from PyPI), sent as the
  JSON body and base64 in ``PAYMENT-REQUIRED`` (the SDK's header encoder).
* **Payments** (``PAYMENT-SIGNATURE`` or ``X-PAYMENT``) are decoded by the SDK and verified and
  settled by the SDK's own facilitator for the ``exact`` EVM scheme (``ExactEvmScheme``, EIP-3009),
  which recovers the signer from the EIP-712 typed data with the domain of the requirements we
  published (name, version, chainId, verifyingContract = the asset).
* The chain underneath is :class:`FakeChain`, an in-memory EIP-3009 token ledger that plays the
  facilitator's RPC: it knows the real tokens from the SDK's own table of default assets (not
  from the offer), checks every ``transferWithAuthorization`` as the token contract would
  (signature recovered with eth-account against the token's real EIP-712 domain, validity window,
  unused nonce, balance) and records each transfer. A quote published with a wrong EIP-712 name
  therefore fails like it would on chain.

Ours are only the obol-specific parts: the route table (the pricing ConfigMaps the hook writes,
label ``obol.org/x402-pricing=true``, key ``routes.json``, kept up to date by a watch, not a
LIST per request), the payer header, the per-buyer limit and the settle timing:

* ``GET /verify`` (forward-auth): route from ``X-Forwarded-Uri``; no payment: 402; a valid
  payment: 200 with ``X-Payment-Payer``; settles only when started with
  ``settle_on_verify=True`` (obol-stack's ``verifyOnly: false``), otherwise verify-only.
* any other path (seller-proxy): strip client-sent payer headers, 402 / verify as above, 429 +
  ``Retry-After`` when the payer already has ``perBuyerMaxInFlight`` requests in flight (nothing
  settled), else proxy to ``upstreamURL`` minus ``stripPrefix`` with ``X-Payment-Payer``; settle
  only when the upstream answered below 400, then add ``X-PAYMENT-RESPONSE``.
* A path no route matches: 403 for /verify, 404 for the proxy (fail closed). With
  ``free_unknown=True`` /verify answers 200 instead, as obol-stack's does for paths outside its
  known prefixes; routes of offers listed in ``ignored_offers`` are treated as unknown.

Every request is recorded (:class:`VerifyCall`) and every settlement (:class:`Settlement`), each
with a sequence number, so a test can prove exactly which requests were verified and charged.

Honest under load: responses are written with one ``write`` (status line, headers and body
together) on sockets with ``TCP_NODELAY``, and the listen backlog (128) fits the c=64 runs.
The server runs in threads of the test process on 127.0.0.1; :meth:`VerifierStub.stop` ends it.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address
from x402 import x402FacilitatorSync
from x402.http.utils import (
    decode_payment_signature_header,
    encode_payment_required_header,
    encode_payment_response_header,
)
from x402.mechanisms.evm.exact.register import register_exact_evm_facilitator
from x402.mechanisms.evm.types import TransactionReceipt
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo

PRICING_LABEL = "obol.org/x402-pricing"
PRICING_KEY = "routes.json"
PAYER_HEADER = "X-Payment-Payer"
# Headers a client must never be able to set for the upstream (obol-stack strips both).
FORGEABLE = ("x-payment-payer", "x-verified-wallet")
PAYMENT_HEADERS = ("payment-signature", "x-payment")
MATCHED_FIELDS = ("scheme", "network", "amount", "asset", "pay_to")
HOP_BY_HOP = frozenset(
    (
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailers", "transfer-encoding", "upgrade", "host", "content-length",
    )
)  # fmt: skip
# Networks the stand-in's facilitator serves (the CAIP-2 ids of the offers the tests sell).
NETWORKS = ["eip155:8453", "eip155:84532", "eip155:1"]
LISTEN_BACKLOG = 128
UPSTREAM_TIMEOUT = 90.0


# --- the chain ---------------------------------------------------------------------------------


class ContractRevert(RuntimeError):
    """What a token contract's revert looks like to the facilitator ("revert" in the text)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"execution reverted: {reason}")


@dataclass(frozen=True)
class Transfer:
    """One executed ``transferWithAuthorization``."""

    tx_hash: str
    token: str
    sender: str
    to: str
    value: int
    nonce: str


_EIP3009_TYPES = {
    "TransferWithAuthorization": [
        {"name": "from", "type": "address"},
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "validAfter", "type": "uint256"},
        {"name": "validBefore", "type": "uint256"},
        {"name": "nonce", "type": "bytes32"},
    ]
}


class FakeChain:
    """An in-memory chain of EIP-3009 tokens, seen through the facilitator's signer interface
    (``x402.mechanisms.evm.signer.FacilitatorEvmSigner``).

    Tokens are the SDK's default assets (real addresses and EIP-712 domains), so a token is
    "deployed" only if the SDK knows it on that network. Balances start at what :meth:`fund`
    gave an address. Only the calls the exact/EIP-3009 facilitator makes are implemented; any
    other call raises, so a new code path in the SDK fails loudly instead of passing silently.
    """

    def __init__(self, networks: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, str, int]] = {}  # address -> (name, version, chainId)
        for network in networks:
            chain_id = int(network.split(":")[1])
            for address, info in _default_tokens(network):
                self._tokens[address.lower()] = (info["name"], info["version"], chain_id)
        self._funded: dict[str, int] = {}
        self._balances: dict[tuple[str, str], int] = {}
        self._used_nonces: set[tuple[str, str, str]] = set()
        self.transfers: list[Transfer] = []
        self._receipts: dict[str, TransactionReceipt] = {}
        self._facilitator = Account.create()

    def fund(self, holder: str, amount: int) -> None:
        """Give ``holder`` ``amount`` atomic units of every token (once, before it spends)."""
        with self._lock:
            self._funded[holder.lower()] = amount

    def balance(self, holder: str, token: str) -> int:
        with self._lock:
            return self._balance(holder.lower(), token.lower())

    def _balance(self, holder: str, token: str) -> int:
        return self._balances.get((token, holder), self._funded.get(holder, 0))

    # FacilitatorEvmSigner ----------------------------------------------------------------------

    def get_addresses(self) -> list[str]:
        return [self._facilitator.address]

    def get_chain_id(self) -> int:
        raise NotImplementedError("the facilitator takes the chain id from the network")

    def get_code(self, address: str) -> bytes:
        return b"\x60\x80" if address.lower() in self._tokens else b""

    def get_balance(self, address: str, token_address: str) -> int:
        return self.balance(address, token_address)

    def verify_typed_data(self, *args: Any, **kwargs: Any) -> bool:
        raise NotImplementedError("EOA signatures are recovered by the facilitator itself")

    def read_contract(self, address: str, abi: Any, function_name: str, *args: Any) -> Any:
        if function_name == "transferWithAuthorization":
            with self._lock:
                self._check_transfer(address.lower(), args)
            return None
        if function_name == "balanceOf":
            return self.balance(args[0], address)
        if function_name == "authorizationState":
            with self._lock:
                return (address.lower(), str(args[0]).lower(), _hex(args[1])) in self._used_nonces
        raise NotImplementedError(f"read_contract {function_name} is not part of the stand-in")

    def write_contract(
        self,
        address: str,
        abi: Any,
        function_name: str,
        *args: Any,
        data_suffix: str | None = None,
    ) -> str:
        if function_name != "transferWithAuthorization":
            raise NotImplementedError(f"write_contract {function_name} is not part of the stand-in")
        token = address.lower()
        with self._lock:
            sender, to, value, nonce = self._check_transfer(token, args)
            self._used_nonces.add((token, sender, nonce))
            self._balances[(token, sender)] = self._balance(sender, token) - value
            self._balances[(token, to)] = self._balance(to, token) + value
            tx_hash = "0x" + keccak(f"{token}:{sender}:{nonce}".encode()).hex()
            self.transfers.append(Transfer(tx_hash, token, sender, to, value, nonce))
            self._receipts[tx_hash] = TransactionReceipt(
                status=1, block_number=len(self.transfers), tx_hash=tx_hash, logs=None
            )
        return tx_hash

    def send_transaction(self, to: str, data: bytes) -> str:
        raise NotImplementedError("raw transactions are not part of the stand-in")

    def wait_for_transaction_receipt(self, tx_hash: str) -> TransactionReceipt:
        with self._lock:
            return self._receipts[tx_hash]

    # the token contract ------------------------------------------------------------------------

    def _check_transfer(self, token: str, args: tuple[Any, ...]) -> tuple[str, str, int, str]:
        """What ``transferWithAuthorization(from, to, value, validAfter, validBefore, nonce,
        v, r, s)`` checks on a USDC-like token; raises :class:`ContractRevert`."""
        if token not in self._tokens:
            raise ContractRevert("no contract at this address")
        if len(args) != 9:
            raise ContractRevert("only the (v, r, s) overload is deployed")
        sender, to, value, valid_after, valid_before, nonce, v, r, s = args
        name, version, chain_id = self._tokens[token]
        now = int(time.time())
        if now <= int(valid_after):
            raise ContractRevert("FiatTokenV2: authorization is not yet valid")
        if now >= int(valid_before):
            raise ContractRevert("FiatTokenV2: authorization is expired")
        nonce_hex = _hex(nonce)
        if (token, str(sender).lower(), nonce_hex) in self._used_nonces:
            raise ContractRevert("FiatTokenV2: authorization is used or canceled")
        message = {
            "from": sender,
            "to": to,
            "value": int(value),
            "validAfter": int(valid_after),
            "validBefore": int(valid_before),
            "nonce": bytes.fromhex(nonce_hex[2:]),
        }
        domain = {
            "name": name,
            "version": version,
            "chainId": chain_id,
            "verifyingContract": _checksum(token),
        }
        signable = encode_typed_data(domain, _EIP3009_TYPES, message)
        signature = bytes(r) + bytes(s) + bytes([int(v)])
        if Account.recover_message(signable, signature=signature).lower() != str(sender).lower():
            raise ContractRevert("FiatTokenV2: invalid signature")
        if self._balance(str(sender).lower(), token) < int(value):
            raise ContractRevert("ERC20: transfer amount exceeds balance")
        return str(sender).lower(), str(to).lower(), int(value), nonce_hex


def _default_tokens(network: str) -> list[tuple[str, Any]]:
    from x402.mechanisms.evm.default_assets import DEFAULT_ASSETS

    return [(info["asset"], info) for info in DEFAULT_ASSETS.get(network, [])]


def _hex(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    text = str(value).lower()
    return text if text.startswith("0x") else "0x" + text


def _checksum(address: str) -> str:
    return str(to_checksum_address(address))


# --- records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyCall:
    """One request the stand-in answered (a /verify call or a proxied request)."""

    seq: int
    time: float
    kind: str  # "verify" (forward-auth) or "proxy" (seller-proxy)
    method: str
    host: str
    uri: str  # public path and query as the client sent them
    status: int
    payer: str | None  # the verified payer, when the payment was valid
    route: str | None  # the matched pattern
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return urlsplit(self.uri).path


@dataclass(frozen=True)
class Settlement:
    """One settled payment (the facilitator's settle succeeded)."""

    seq: int
    payer: str
    pay_to: str
    amount: str
    asset: str
    network: str
    transaction: str
    uri: str
    upstream_status: int | None  # None when settled on /verify, before any upstream


# --- routes ------------------------------------------------------------------------------------


def atomic_amount(price: str, decimals: int) -> str:
    """A decimal whole-token price as an atomic-unit integer string ("0.002", 6 -> "2000")."""
    try:
        value = Decimal(price) * (Decimal(10) ** decimals)
    except InvalidOperation as exc:
        raise ValueError(f"price {price!r} is not a decimal") from exc
    if value != value.to_integral_value() or value <= 0:
        raise ValueError(f"price {price!r} is not a positive whole number of atomic units")
    return str(int(value))


def requirements(route: Mapping[str, Any]) -> PaymentRequirements:
    """The ``accepts`` entry for one pricing route (the SDK's model)."""
    return PaymentRequirements(
        scheme="exact",
        network=route["network"],
        asset=route["assetAddress"],
        amount=atomic_amount(str(route["price"]), int(route["assetDecimals"])),
        pay_to=route["payTo"],
        max_timeout_seconds=int(route["maxTimeoutSeconds"]),
        extra={
            "name": route["eip712Name"],
            "version": route["eip712Version"],
            "assetTransferMethod": route["assetTransferMethod"],
        },
    )


def pattern_matches(pattern: str, path: str) -> bool:
    """``/x/*`` matches ``/x`` and everything under ``/x/``; other patterns match exactly."""
    if pattern.endswith("/*"):
        prefix = pattern[:-2]
        return path == prefix or path.startswith(prefix + "/")
    return path == pattern


def routes_of(configmaps: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every route of every pricing ConfigMap, in first-match order (namespace, name, pattern)."""
    routes: list[dict[str, Any]] = []
    for cm in configmaps:
        try:
            document = json.loads((cm.get("data") or {}).get(PRICING_KEY) or "{}")
        except ValueError:
            continue  # the real verifier skips a broken document too
        for route in document.get("routes") or []:
            if isinstance(route, dict) and isinstance(route.get("pattern"), str):
                routes.append(route)
    routes.sort(
        key=lambda r: (str(r.get("offerNamespace", "")), str(r.get("offerName", "")), r["pattern"])
    )
    return routes


class ConfigMapWatch:
    """The pricing ConfigMaps, kept current by one LIST and then a WATCH of the API server
    (re-listed when the watch's resourceVersion is too old), as an informer would."""

    def __init__(self, api_url: str, token: str, ca_file: str) -> None:
        self._url = f"{api_url}/api/v1/configmaps"
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._session.trust_env = False
        self._verify = ca_file
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Any]] = {}
        self._stopping = threading.Event()
        self.synced = threading.Event()
        self.on_change: Callable[[list[dict[str, Any]]], None] = lambda _: None
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ConfigMapWatch:
        self._thread.start()
        if not self.synced.wait(30):
            raise RuntimeError(f"pricing ConfigMaps not listed in 30 s: {self.errors[-3:]}")
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._session.close()

    def _publish(self) -> None:
        with self._lock:
            objects = list(self._objects.values())
        self.on_change(objects)

    def _run(self) -> None:
        version = ""
        while not self._stopping.is_set():
            try:
                if not version:
                    version = self._list()
                version = self._watch(version)
            except Exception as exc:  # the API server restarted, a stream broke: start again
                if self._stopping.is_set():
                    return
                self.errors.append(repr(exc))
                version = ""
                time.sleep(0.2)

    def _list(self) -> str:
        reply = self._session.get(
            self._url, params={"labelSelector": f"{PRICING_LABEL}=true"}, verify=self._verify,
            timeout=30,
        )  # fmt: skip
        reply.raise_for_status()
        listing = reply.json()
        with self._lock:
            self._objects = {_uid(cm): cm for cm in listing.get("items") or []}
        self._publish()
        self.synced.set()
        return str(listing["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> str:
        params = {
            "labelSelector": f"{PRICING_LABEL}=true",
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "60",
        }
        with self._session.get(
            self._url, params=params, stream=True, verify=self._verify, timeout=(10, 90)
        ) as reply:
            reply.raise_for_status()
            for line in reply.iter_lines():
                if self._stopping.is_set():
                    return version
                if not line:
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    return ""  # 410 Gone: list again
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if event.get("type") == "BOOKMARK":
                    continue
                with self._lock:
                    if event.get("type") == "DELETED":
                        self._objects.pop(_uid(obj), None)
                    else:
                        self._objects[_uid(obj)] = obj
                self._publish()
        return version


def _uid(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


# --- the verifier ------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class VerifierStub:
    """The stand-in server. Feed it routes with :meth:`set_routes` (or a :class:`ConfigMapWatch`
    via :meth:`watch`), give buyers funds with :meth:`fund`, then :meth:`start` it."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        settle_on_verify: bool = False,
        free_unknown: bool = False,
        ignored_offers: Iterable[str] = (),
        upstream_resolver: Callable[[str], str] = lambda url: url,
    ) -> None:
        self.settle_on_verify = settle_on_verify
        self.free_unknown = free_unknown
        self.ignored_offers = frozenset(ignored_offers)
        self.upstream_resolver = upstream_resolver
        self.chain = FakeChain(NETWORKS)
        self._facilitator = register_exact_evm_facilitator(
            x402FacilitatorSync(), self.chain, NETWORKS
        )
        self._lock = threading.Lock()
        self._seq = 0
        self._calls: list[VerifyCall] = []
        self._settlements: list[Settlement] = []
        self._in_flight: dict[tuple[str, str], int] = {}
        self._routes: tuple[dict[str, Any], ...] = ()
        self._watch: ConfigMapWatch | None = None
        self.errors: list[str] = []
        server_class = type(
            "VerifierServer", (ThreadingHTTPServer,), {"request_queue_size": LISTEN_BACKLOG}
        )
        self._server = server_class((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    @property
    def verify_url(self) -> str:
        """The forwardAuth address (``OBOL_VERIFIER_URL``)."""
        return f"http://{self.host}:{self.port}/verify"

    @property
    def proxy_url(self) -> str:
        """The seller proxy's base URL (``OBOL_VERIFIER_PROXY_URL``), with a host name."""
        return f"http://localhost:{self.port}"

    def watch(self, api_url: str, token: str, ca_file: str) -> VerifierStub:
        """Keep the routes current from the API server's pricing ConfigMaps."""
        self._watch = ConfigMapWatch(api_url, token, ca_file)
        self._watch.on_change = lambda cms: self.set_routes(routes_of(cms))
        self._watch.start()
        return self

    def set_routes(self, routes: Iterable[dict[str, Any]]) -> None:
        self._routes = tuple(routes)  # one reference swap: readers never see a half table

    def fund(self, holder: str, amount: int = 10**15) -> None:
        self.chain.fund(holder, amount)

    def start(self) -> VerifierStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.stop()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # -- records -----------------------------------------------------------------------------

    def mark(self) -> int:
        """A position in the records; see :meth:`calls_since` and :meth:`settlements_since`."""
        with self._lock:
            return self._seq

    def calls(self) -> list[VerifyCall]:
        with self._lock:
            return list(self._calls)

    def calls_since(self, mark: int) -> list[VerifyCall]:
        with self._lock:
            return [c for c in self._calls if c.seq > mark]

    def settlements(self) -> list[Settlement]:
        with self._lock:
            return list(self._settlements)

    def settlements_since(self, mark: int) -> list[Settlement]:
        with self._lock:
            return [s for s in self._settlements if s.seq > mark]

    def _next(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def _record(self, call: VerifyCall) -> None:
        with self._lock:
            self._calls.append(call)
            del self._calls[:-20000]

    def _record_settlement(self, settlement: Settlement) -> None:
        with self._lock:
            self._settlements.append(settlement)

    # -- the protocol ------------------------------------------------------------------------

    def match(self, path: str) -> dict[str, Any] | None:
        for route in self._routes:
            if pattern_matches(route["pattern"], path):
                offer = f"{route.get('offerNamespace')}/{route.get('offerName')}"
                return None if offer in self.ignored_offers else route
        return None

    def _payment_required(
        self, route: Mapping[str, Any], url: str, error: str, accepts: PaymentRequirements
    ) -> Answer:
        required = PaymentRequired(
            x402_version=2,
            error=error,
            resource=ResourceInfo(
                url=url, description=str(route.get("description", "")), mime_type="application/json"
            ),
            accepts=[accepts],
        )
        body = required.model_dump_json(by_alias=True, exclude_none=True).encode()
        headers = {
            "Content-Type": "application/json",
            "PAYMENT-REQUIRED": encode_payment_required_header(required),
        }
        return Answer(402, headers, body)

    def _verified(
        self, headers: Mapping[str, str], route: Mapping[str, Any], url: str
    ) -> tuple[Answer | None, PaymentPayload | None, PaymentRequirements, str | None]:
        """(402 answer or None, the payload, the requirements, the verified payer)."""
        accepts = requirements(route)
        raw = next((headers[h] for h in PAYMENT_HEADERS if h in headers), None)
        if raw is None:
            answer = self._payment_required(
                route, url, "PAYMENT-SIGNATURE header is required", accepts
            )
            return answer, None, accepts, None
        try:
            payload = decode_payment_signature_header(raw)
        except Exception as exc:
            answer = self._payment_required(route, url, f"invalid payment: {exc}", accepts)
            return answer, None, accepts, None
        if not isinstance(payload, PaymentPayload) or any(
            getattr(payload.accepted, f) != getattr(accepts, f) for f in MATCHED_FIELDS
        ):
            answer = self._payment_required(
                route,
                url,
                "invalid payment: the accepted requirements are not these terms",
                accepts,
            )
            return answer, None, accepts, None
        result = self._facilitator.verify(payload, accepts)
        if not result.is_valid:
            reason = result.invalid_reason or "invalid"
            answer = self._payment_required(route, url, f"invalid payment: {reason}", accepts)
            return answer, None, accepts, None
        return None, payload, accepts, str(result.payer)

    def _settle(
        self,
        payload: PaymentPayload,
        accepts: PaymentRequirements,
        uri: str,
        upstream_status: int | None,
    ) -> tuple[bool, str]:
        """Settle through the facilitator; (success, X-PAYMENT-RESPONSE value)."""
        result = self._facilitator.settle(payload, accepts)
        if result.success:
            self._record_settlement(
                Settlement(
                    self._next(), str(result.payer), accepts.pay_to, accepts.amount,
                    accepts.asset, str(accepts.network), result.transaction, uri, upstream_status,
                )
            )  # fmt: skip
        return bool(result.success), encode_payment_response_header(result)

    @staticmethod
    def _recorder(
        seq: int, kind: str, method: str, host: str, uri: str, headers: Mapping[str, str]
    ) -> Callable[[Answer, str | None, str | None], tuple[Answer, VerifyCall]]:
        """``done(answer, payer, route)``: the answer with its record."""

        def done(answer: Answer, payer: str | None, route: str | None) -> tuple[Answer, VerifyCall]:
            call = VerifyCall(
                seq, time.time(), kind, method, host, uri, answer.status, payer, route,
                dict(headers),
            )  # fmt: skip
            return answer, call

        return done

    def answer_verify(self, headers: Mapping[str, str]) -> tuple[Answer, VerifyCall]:
        """The forward-auth answer to ``GET /verify`` with these (lower-cased) headers."""
        seq = self._next()
        uri = headers.get("x-forwarded-uri", "")
        host = headers.get("x-forwarded-host", "")
        method = headers.get("x-forwarded-method", "")
        url = f"{headers.get('x-forwarded-proto', 'http')}://{host}{uri}"

        done = self._recorder(seq, "verify", method, host, uri, headers)

        if not uri:
            return done(_json(403, {"error": "X-Forwarded-Uri is missing"}), None, None)
        route = self.match(urlsplit(uri).path)
        if route is None:
            if self.free_unknown:
                return done(Answer(200, {PAYER_HEADER: ""}, b""), None, None)
            return done(_json(403, {"error": f"no paid route for {uri}"}), None, None)
        rejected, payload, accepts, payer = self._verified(headers, route, url)
        if rejected is not None or payload is None:
            assert rejected is not None
            return done(rejected, None, route["pattern"])
        extra = {PAYER_HEADER: str(payer)}
        if self.settle_on_verify:
            settled, receipt = self._settle(payload, accepts, uri, None)
            if not settled:
                return done(_json(402, {"error": "settlement failed"}), None, route["pattern"])
            extra["X-PAYMENT-RESPONSE"] = receipt
        return done(Answer(200, extra, b""), payer, route["pattern"])

    def answer_proxy(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[Answer, VerifyCall]:
        """The seller proxy's answer to one request (``target``: the public path and query)."""
        seq = self._next()
        headers = {k: v for k, v in headers.items() if k not in FORGEABLE}
        host = headers.get("x-forwarded-host") or headers.get("host", "")
        url = f"{headers.get('x-forwarded-proto', 'http')}://{host}{target}"

        done = self._recorder(seq, "proxy", method, host, target, headers)

        route = self.match(urlsplit(target).path)
        if route is None or "upstreamURL" not in route:
            return done(_json(404, {"error": "No service here"}), None, None)
        rejected, payload, accepts, payer = self._verified(headers, route, url)
        if rejected is not None or payload is None or payer is None:
            assert rejected is not None
            return done(rejected, None, route["pattern"])
        key = (route["pattern"], payer.lower())
        limit = route.get("perBuyerMaxInFlight")
        with self._lock:
            if isinstance(limit, int) and self._in_flight.get(key, 0) >= limit:
                busy = True
            else:
                busy = False
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
        if busy:
            retry = str(route.get("retryAfterSeconds", 1))
            answer = _json(
                429,
                {"error": "buyer_limit", "message": "too many of your requests are in flight",
                 "retryAfterSeconds": int(retry)},
                {"Retry-After": retry},
            )  # fmt: skip
            return done(answer, payer, route["pattern"])
        try:
            status, reply_headers, reply_body = self._forward(
                route, method, target, headers, body, payer
            )
        finally:
            with self._lock:
                self._in_flight[key] -= 1
        if status >= 400:
            return done(Answer(status, reply_headers, reply_body), payer, route["pattern"])
        settled, receipt = self._settle(payload, accepts, target, status)
        if not settled:
            answer = _json(402, {"error": "settlement failed"}, {"X-PAYMENT-RESPONSE": receipt})
            return done(answer, payer, route["pattern"])
        reply_headers["X-PAYMENT-RESPONSE"] = receipt
        reply_headers["PAYMENT-RESPONSE"] = receipt
        return done(Answer(status, reply_headers, reply_body), payer, route["pattern"])

    def _forward(
        self,
        route: Mapping[str, Any],
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        payer: str,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send the request to the route's upstream, prefix stripped; the whole answer."""
        base = urlsplit(self.upstream_resolver(str(route["upstreamURL"])))
        parts = urlsplit(target)
        prefix = str(route.get("stripPrefix", ""))
        path = parts.path[len(prefix) :] if parts.path.startswith(prefix) else parts.path
        path = "/" + path.lstrip("/")
        if parts.query:
            path += "?" + parts.query
        forwarded = {k: v for k, v in headers.items() if k not in HOP_BY_HOP}
        forwarded[PAYER_HEADER] = payer
        connection = http.client.HTTPConnection(
            base.hostname or "localhost", base.port or 80, timeout=UPSTREAM_TIMEOUT
        )
        try:
            connection.request(method, path, body=body or None, headers=forwarded)
            reply = connection.getresponse()
            data = reply.read()
            out = {k: v for k, v in reply.getheaders() if k.lower() not in HOP_BY_HOP}
            return reply.status, out, data
        except OSError as exc:
            return 502, {"Content-Type": "text/plain"}, f"upstream unreachable: {exc}".encode()
        finally:
            connection.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "obol-e2e-verifier"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # calls are recorded instead

            def _reply(self, answer: Answer) -> None:
                # One write: status line, headers and body together.
                lines = [f"HTTP/1.1 {answer.status} {_reason(answer.status)}"]
                lines += [f"{k}: {v}" for k, v in answer.headers.items()]
                lines.append(f"Content-Length: {len(answer.body)}")
                head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
                self.wfile.write(head + answer.body)

            def _handle(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                length = int(headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    if urlsplit(self.path).path == "/verify" and self.command == "GET":
                        answer, call = stub.answer_verify(headers)
                    else:
                        answer, call = stub.answer_proxy(self.command, self.path, headers, body)
                except Exception as exc:  # a bug or a broken route: fail closed, visibly
                    stub.errors.append(repr(exc))
                    self._reply(_json(500, {"error": repr(exc)}))
                    return
                stub._record(call)
                self._reply(answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        return Handler


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Answer:
    data = json.dumps(body, separators=(",", ":")).encode()
    return Answer(status, {"Content-Type": "application/json", **(headers or {})}, data)


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def start_verifier(
    api_url: str, token: str, ca_file: str, *, funded: Iterable[str] = (), **options: Any
) -> VerifierStub:
    """A started stand-in whose routes follow the API server's pricing ConfigMaps, with every
    address in ``funded`` given a balance of every token."""
    stub = VerifierStub(**options)
    for address in funded:
        stub.fund(address)
    stub.watch(api_url, token, ca_file)
    return stub.start()

"""A test-only stand-in for obol-stack's x402 verifier (a product outside this repository).

It does what obol-stack's verifier source does, not what this project's design would like; each
behaviour below names the obol-stack file it comes from (repository ObolNetwork/obol-stack, the
"line A" verifier of docs/verifier-contract.md, read 2026-12-06):

* **Routes come from the ServiceOffers themselves** (internal/x402/serviceoffer_source.go): one
  LIST + WATCH of every ServiceOffer, plus the Secrets named ``litellm-secrets``, and the whole
  route table is rebuilt on every event. Each offer is decoded strictly into obol-stack's types
  (internal/monetizeapi/types.go, mirrored by :data:`SERVICE_OFFER`; the Go converter itself
  runs in tests/obol_decode and :mod:`tests.e2e.test_verifier_stub` checks both agree): ONE offer
  that does not decode, whether published or not, aborts the reload and the table keeps its
  previous content for every offer. A stand-in that has never loaded a table is not ready
  (internal/x402/verifier.go, HandleReadyz); it then answers 503, as a Service with no ready
  endpoint does.
* An offer becomes a route only while ``status.conditions[type=RoutePublished].status`` is
  ``"True"`` and its drain has not expired (serviceoffer_source.go, routesFromStore). Rules are
  sorted by (namespace, name, pattern); the first match wins (internal/x402/matcher.go: a
  trailing ``/*`` also matches the bare prefix).
* The rule (serviceoffer_source.go, routeRuleFromOffer): pattern ``<path>/*``; price = the first
  of perRequest, perMTok / 1000 (approxTokensPerRequest), perHour, perMB, else "0"; network as
  CAIP-2; the asset is the chain's USDC with ``payment.asset``'s fields laid over it
  (internal/x402/chains.go, ResolveAssetInfo); upstreamURL
  ``http://<service>.<namespace>.svc.cluster.local:<port>`` (port 11434 when unset);
  stripPrefix = the offer's path; upstreamAuth ``Bearer <LITELLM_MASTER_KEY>`` only when
  ``upstream.service`` is ``litellm``. An unknown network or an unparsable perMTok also aborts
  the reload (verifier.go, load; serviceoffer_source.go, effectivePrice).
* ``/verify`` (verifier.go, HandleVerify): the path from ``X-Forwarded-Uri`` (query dropped);
  no rule: 403 when the path is under a known paid prefix, else **200, free**; a payment
  (``X-PAYMENT``, or ``PAYMENT-SIGNATURE``) is verified and, on success, the answer is 200 with
  ``Authorization`` (upstreamAuth, when there is one), ``X-Payment-Payer`` and an empty
  ``X-Verified-Wallet`` (internal/x402/authgate.go). Verify-only, as obol-stack's default
  ``verifyOnly: true``; ``settle_on_verify=True`` is ``verifyOnly: false``.
* The seller proxy, every other path (verifier.go, HandleProxy; ADR 0004): client-sent
  ``X-Payment-Payer``/``X-Verified-Wallet`` removed; no rule: 404; no payment: 402; a verified
  payment is proxied to upstreamURL with the prefix stripped (stripRoutePrefix), the query
  kept, ``Authorization: <upstreamAuth>`` and ``X-Payment-Payer``; settled only when the
  upstream answered below 400 (internal/x402/forwardauth.go, settlementInterceptor), then
  ``X-PAYMENT-RESPONSE``. obol-stack's proxy has **no per-buyer limit**; ``per_buyer_limit=True``
  makes this stand-in "a verifier that implements it": 429 + ``Retry-After`` when the verified
  payer already has ``spec.capacity.perBuyerMaxInFlight`` requests in flight, before settling.

The x402 protocol is the SDK's (``x402`` from PyPI): 402 bodies are its ``PaymentRequired``,
sent as JSON and base64 in ``PAYMENT-REQUIRED``; payments are decoded by it and verified and
settled by its own facilitator for the ``exact`` EVM scheme, on :class:`FakeChain`, an
in-memory EIP-3009 ledger that knows the real tokens from the SDK's table of default assets (not
from the offer) and checks every ``transferWithAuthorization`` as the token contract would.

Every request is recorded (:class:`VerifyCall`) and every settlement (:class:`Settlement`), each
with a sequence number, so a test can prove exactly which requests were verified and charged;
every aborted reload is in :attr:`VerifierStub.reload_errors`. Responses are written with one
``write`` on sockets with ``TCP_NODELAY``; the listen backlog (128) fits the c=64 runs. The
server runs in threads of the test process on 127.0.0.1; :meth:`VerifierStub.stop` ends it.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
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

PAYER_HEADER = "X-Payment-Payer"
WALLET_HEADER = "X-Verified-Wallet"
# Headers a client must never be able to set for the upstream (authgate.go, stripIdentityHeaders).
FORGEABLE = ("x-payment-payer", "x-verified-wallet")
PAYMENT_HEADERS = ("x-payment", "payment-signature")
# What a payment's "accepted" terms must equal (forwardauth.go, findMatchingRequirementV1).
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
SERVICEOFFERS = "/apis/obol.org/v1alpha1/serviceoffers"
SECRETS = "/api/v1/secrets"
LITELLM_SECRET = "litellm-secrets"


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


# --- decoding, as obol-stack's Go types do ------------------------------------------------------

# obol-stack's ServiceOffer types (internal/monetizeapi/types.go, both code lines), as shapes:
# a scalar kind, ("list", shape), ("map", shape) or a dict of fields (a Go struct; keys it does
# not name are ignored, as by the converter). tests/obol_decode/types.go holds the same in Go.
S, N, B, T, D = "string", "int64", "bool", "time", "duration"
Shape = Any
PRICE: Shape = {"perRequest": S, "perMTok": S, "perHour": S, "perEpoch": S, "perMB": S}
PAYMENT: Shape = {
    "method": S, "scheme": S, "network": S, "payTo": S, "maxTimeoutSeconds": N,
    "asset": {
        "address": S, "symbol": S, "decimals": N, "transferMethod": S, "eip712Name": S,
        "eip712Version": S,
    },
    "card": {
        "provider": S, "account": S, "currency": S, "networkId": S,
        "paymentMethodTypes": ("list", S),
    },
    "price": PRICE,
}  # fmt: skip
SPEC: Shape = {
    "type": S,
    "agent": {"ref": {"name": S, "namespace": S}},
    "dataset": {"manifestHash": S, "version": S, "fileHash": S, "sizeBytes": N},
    "skill": {
        "name": S, "version": S, "sha256": S, "bundleConfigMap": S, "displayName": S,
        "description": S,
    },
    "model": {"name": S, "runtime": S},
    "upstream": {"service": S, "namespace": S, "port": N, "healthPath": S},
    "payment": PAYMENT,
    "payments": ("list", PAYMENT),
    "listing": {"weight": N, "category": S},
    "routes": ("list", {
        "path": S, "methods": ("list", S), "gate": S, "price": PRICE, "summary": S,
        "freeQuota": N,
    }),
    "path": S,
    "hostname": S,
    "branding": {
        k: S for k in ("displayName", "tagline", "logoUrl", "theme", "accentColor",
                       "faviconUrl", "ogImageUrl", "description", "customCss")
    },
    "provenance": ("map", S),
    "registration": {
        "enabled": B, "name": S, "description": S, "image": S,
        "services": ("list", {"name": S, "endpoint": S, "version": S}),
        "supportedTrust": ("list", S), "skills": ("list", S), "domains": ("list", S),
        "metadata": ("map", S),
    },
    "async": {"enabled": B, "resultVisibility": S, "ttl": D},
    "limits": {"maxInFlight": N, "rps": N},
    "drainAt": T,
    "drainGracePeriod": D,
}  # fmt: skip
STATUS: Shape = {
    "conditions": ("list", {
        "type": S, "status": S, "reason": S, "message": S, "lastTransitionTime": T,
    }),
    "endpoint": S, "agentId": S, "registrationTxHash": S, "observedGeneration": N,
    "agentResolution": {"model": S, "skills": ("list", S), "runtime": S, "endpoint": S},
}  # fmt: skip
# metav1.ObjectMeta: the fields an offer's metadata carries in practice.
OBJECT_META: Shape = {
    "name": S, "namespace": S, "uid": S, "resourceVersion": S, "generation": N,
    "creationTimestamp": T, "deletionTimestamp": T, "labels": ("map", S),
    "annotations": ("map", S), "finalizers": ("list", S),
}  # fmt: skip
SERVICE_OFFER: Shape = {
    "apiVersion": S, "kind": S, "metadata": OBJECT_META, "spec": SPEC, "status": STATUS,
}  # fmt: skip

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_DURATION = re.compile(r"[-+]?(0|(\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+")


class DecodeError(ValueError):
    """An offer obol-stack's converter cannot restore into its types."""


def _kind(value: Any) -> str:
    """The Go kind of a JSON value in an unstructured object."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "slice" if isinstance(value, list) else "map"


def decode(value: Any, shape: Shape, path: str = "") -> None:
    """Raise :class:`DecodeError` where obol-stack's converter would fail (null is a zero value)."""
    if value is None:
        return
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            raise DecodeError(f"{path}: cannot restore struct from: {_kind(value)}")
        for key, inner in shape.items():
            decode(value.get(key), inner, f"{path}.{key}")
    elif isinstance(shape, tuple):
        container, inner = shape
        if container == "list" and not isinstance(value, list):
            raise DecodeError(f"{path}: cannot restore slice from {_kind(value)}")
        if container == "map" and not isinstance(value, dict):
            raise DecodeError(f"{path}: cannot restore map from {_kind(value)}")
        items = enumerate(value) if container == "list" else value.items()
        for key, item in items:
            decode(item, inner, f"{path}[{key}]")
    elif shape in (S, B):
        if _kind(value) != shape:
            raise DecodeError(f"{path}: unrecognized type: {shape}")
    elif shape == N:
        integral = isinstance(value, float) and value == int(value)
        if _kind(value) != N and not integral:
            raise DecodeError(f"{path}: unrecognized type: {N}")
    elif shape == T and not (isinstance(value, str) and _RFC3339.fullmatch(value)):
        raise DecodeError(f"{path}: parsing time {value!r} as RFC 3339")
    elif shape == D and not (isinstance(value, str) and _DURATION.fullmatch(value)):
        raise DecodeError(f"{path}: time: invalid duration {value!r}")


# --- the route table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    """A chain's CAIP-2 id and default USDC (internal/x402/chains.go)."""

    caip2: str
    usdc: str
    eip712_name: str
    eip712_version: str = "2"
    decimals: int = 6


CHAINS = {
    "base": Chain("eip155:8453", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "USD Coin"),
    "base-sepolia": Chain("eip155:84532", "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC"),
    "ethereum": Chain("eip155:1", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "USD Coin"),
    # Resolvable, so an offer on them keeps the table loading; the tests pay on the three above.
    "polygon": Chain("eip155:137", "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359", "USD Coin"),
    "polygon-amoy": Chain("eip155:80002", "0x41E94Eb019C0762f9Bfcf9Fb1E58725BfB0e7582", "USDC"),
    "avalanche": Chain("eip155:43114", "0xB97EF9Ef8734C71904D8002F8b6Bc66Dd9c48a6E", "USD Coin"),
    "avalanche-fuji": Chain(
        "eip155:43113", "0x5425890298aed601595a70AB815c96711a31Bc65", "USD Coin"
    ),
    "arbitrum-one": Chain("eip155:42161", "0xaf88d065e77c8cC2239327C5EDb3A432268e5831", "USD Coin"),
    "arbitrum-sepolia": Chain(
        "eip155:421614", "0x75faf114eafb1BDbe2F0316DF893fd58CE46AA4d", "USD Coin"
    ),
}
_CHAIN_KEYS = {
    **{name: name for name in CHAINS},
    **{chain.caip2: name for name, chain in CHAINS.items()},
    "mainnet": "ethereum",
    "ethereum-mainnet": "ethereum",
    "base-mainnet": "base",
    "polygon-mainnet": "polygon",
    "avalanche-mainnet": "avalanche",
    "arbitrum": "arbitrum-one",
}
APPROX_TOKENS_PER_REQUEST = 1000


class ReloadError(ValueError):
    """The route table could not be rebuilt; the previous one stays."""


def _condition_true(offer: Mapping[str, Any], kind: str) -> bool:
    for condition in (offer.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return bool(condition.get("status") == "True")
    return False


def _drain_expired(spec: Mapping[str, Any], now: float) -> bool:
    drain_at = spec.get("drainAt")
    if not drain_at:
        return False
    start = datetime.datetime.fromisoformat(drain_at.replace("Z", "+00:00")).timestamp()
    grace = _seconds(spec.get("drainGracePeriod") or "1h")
    return now >= start + grace


def _seconds(duration: str) -> float:
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(
        float(number) * units[unit]
        for number, unit in re.findall(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", duration)
    )


def _price(price: Mapping[str, Any], where: str) -> tuple[str, str, str]:
    """(price, priceModel, perMTok): obol-stack's first non-empty price (effectivePrice)."""
    if price.get("perRequest"):
        return str(price["perRequest"]), "perRequest", ""
    if price.get("perMTok"):
        try:
            per_request = Decimal(str(price["perMTok"]).strip()) / APPROX_TOKENS_PER_REQUEST
        except InvalidOperation:
            raise ReloadError(f"{where}: invalid perMTok price {price['perMTok']!r}") from None
        return _go_decimal(per_request), "perMTok", str(price["perMTok"])
    for model in ("perHour", "perMB"):
        if price.get(model):
            return str(price[model]), model, ""
    return "0", "", ""


def _go_decimal(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


def upstream_auth(secrets: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """``Bearer <LITELLM_MASTER_KEY>`` by namespace (serviceoffer_source.go,
    upstreamAuthByNamespace)."""
    found = {}
    for secret in secrets:
        meta = secret.get("metadata") or {}
        value = (secret.get("data") or {}).get("LITELLM_MASTER_KEY")
        if meta.get("name") != LITELLM_SECRET or not value:
            continue
        try:
            token = base64.b64decode(value, validate=True).decode().strip()
        except ValueError as exc:  # the verifier's reload fails on it too
            raise ReloadError(f"{meta.get('namespace')}/{LITELLM_SECRET}: {exc}") from None
        if token:
            found[str(meta.get("namespace"))] = f"Bearer {token}"
    return found


def route_table(
    offers: Iterable[Mapping[str, Any]],
    secrets: Iterable[Mapping[str, Any]] = (),
    *,
    per_buyer_limit: bool = False,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """The rules obol-stack's verifier builds from these objects; :class:`ReloadError` when it
    would abort the reload."""
    now = time.time() if now is None else now
    auth = upstream_auth(secrets)
    rules = []
    for offer in offers:
        meta = offer.get("metadata") or {}
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        try:
            decode(offer, SERVICE_OFFER)
        except DecodeError as exc:
            raise ReloadError(f"{where}{exc}") from None
        spec = offer.get("spec") or {}
        if _drain_expired(spec, now) or not _condition_true(offer, "RoutePublished"):
            continue
        rules.append(_rule(offer, spec, auth, where, per_buyer_limit))
    rules.sort(key=lambda r: (r["offerNamespace"], r["offerName"], r["pattern"]))
    return rules


def _rule(
    offer: Mapping[str, Any],
    spec: Mapping[str, Any],
    auth: Mapping[str, str],
    where: str,
    per_buyer_limit: bool,
) -> dict[str, Any]:
    meta = offer.get("metadata") or {}
    upstream = spec.get("upstream") or {}
    payment = spec.get("payment") or {}
    asset = payment.get("asset") or {}
    namespace = upstream.get("namespace") or meta.get("namespace")
    path = spec.get("path") or f"/services/{meta.get('name')}"
    network = str(payment.get("network") or "")
    chain_name = _CHAIN_KEYS.get(network.lower())
    if chain_name is None:
        raise ReloadError(f"{where}: resolve chain for route: unsupported chain {network!r}")
    chain = CHAINS[chain_name]
    price, price_model, per_mtok = _price(payment.get("price") or {}, where)
    rule: dict[str, Any] = {
        "pattern": path.rstrip("/") + "/*",
        "price": price,
        "priceModel": price_model,
        "perMTok": per_mtok,
        "payTo": payment.get("payTo") or "",
        "network": chain.caip2,
        "assetAddress": asset.get("address") or chain.usdc,
        "assetSymbol": asset.get("symbol") or "USDC",
        "assetDecimals": int(asset.get("decimals") or chain.decimals),
        "assetTransferMethod": asset.get("transferMethod") or "eip3009",
        "eip712Name": asset.get("eip712Name") or chain.eip712_name,
        "eip712Version": asset.get("eip712Version") or chain.eip712_version,
        "maxTimeoutSeconds": int(payment.get("maxTimeoutSeconds") or 0),
        "upstreamURL": (
            f"http://{upstream.get('service')}.{namespace}.svc.cluster.local"
            f":{int(upstream.get('port') or 11434)}"
        ),
        "stripPrefix": path,
        "upstreamAuth": (
            auth.get(str(namespace), "")
            if str(upstream.get("service", "")).lower() == "litellm"
            else ""
        ),
        "offerNamespace": meta.get("namespace") or "",
        "offerName": meta.get("name") or "",
    }
    capacity = spec.get("capacity") or {}
    if per_buyer_limit and isinstance(capacity.get("perBuyerMaxInFlight"), int):
        # Not obol-stack's: a verifier that implements the per-buyer limit reads it from the offer.
        rule["perBuyerMaxInFlight"] = capacity["perBuyerMaxInFlight"]
        rule["retryAfterSeconds"] = int(capacity.get("retryAfterSeconds") or 1)
    return rule


def atomic_amount(price: str, decimals: int) -> str:
    """A decimal whole-token price in atomic units, rounded half up (chains.go, decimalToAtomic)."""
    try:
        value = Decimal(price) * (Decimal(10) ** decimals)
    except InvalidOperation as exc:
        raise ValueError(f"price {price!r} is not a decimal") from exc
    return str(int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP)))


def requirements(route: Mapping[str, Any]) -> PaymentRequirements:
    """The ``accepts`` entry for one rule (the SDK's model)."""
    return PaymentRequirements(
        scheme="exact",
        network=route["network"],
        asset=route["assetAddress"],
        amount=atomic_amount(str(route["price"]), int(route["assetDecimals"])),
        pay_to=route["payTo"],
        # 0 means the verifier's default (paymentrequired.go); clamped to a day.
        max_timeout_seconds=min(int(route["maxTimeoutSeconds"]) or 600, 86400),
        extra={
            "name": route["eip712Name"],
            "version": route["eip712Version"],
            "assetTransferMethod": route["assetTransferMethod"],
        },
    )


def pattern_matches(pattern: str, path: str) -> bool:
    """matcher.go: ``/x/*`` matches ``/x`` and everything under ``/x/``; else exact."""
    if pattern.endswith("/*"):
        prefix = pattern[:-2]
        return path == prefix or path.startswith(prefix + "/")
    return path == pattern


def paid_prefixes(routes: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The prefixes /verify knows as paid (verifier.go, load): ``<pattern minus *>`` and
    ``<stripPrefix>/``; a path under one that no rule matches is refused, not waved through."""
    found: list[str] = []
    for route in routes:
        for prefix in (route["pattern"][:-1] if route["pattern"].endswith("/*") else "",
                       str(route.get("stripPrefix", "")).rstrip("/") + "/"):  # fmt: skip
            if prefix not in ("", "/") and prefix not in found:
                found.append(prefix)
    return tuple(sorted(found, key=len, reverse=True))


def strip_prefix(prefix: str, path: str) -> str:
    """verifier.go, stripRoutePrefix."""
    prefix = prefix.rstrip("/")
    if prefix in ("", "/"):
        return path or "/"
    if path == prefix:
        return "/"
    return path[len(prefix) :] if path.startswith(prefix + "/") else path


class ListWatch:
    """Objects of one collection kept current by one LIST and then a WATCH of the API server
    (re-listed when the watch's resourceVersion is too old), as an informer does."""

    def __init__(
        self, api_url: str, path: str, token: str, ca_file: str, params: Mapping[str, str]
    ) -> None:
        self._url = f"{api_url}{path}"
        self._params = dict(params)
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._session.trust_env = False
        self._verify = ca_file
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Any]] = {}
        self._stopping = threading.Event()
        self.synced = threading.Event()
        self.on_change: Callable[[], None] = lambda: None
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ListWatch:
        self._thread.start()
        return self

    def wait_synced(self) -> None:
        if not self.synced.wait(30):
            raise RuntimeError(f"{self._url} not listed in 30 s: {self.errors[-3:]}")

    def stop(self) -> None:
        self._stopping.set()
        self._session.close()

    def objects(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._objects.values())

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
        reply = self._session.get(self._url, params=self._params, verify=self._verify, timeout=30)
        reply.raise_for_status()
        listing = reply.json()
        with self._lock:
            self._objects = {_uid(obj): obj for obj in listing.get("items") or []}
        self.synced.set()
        self.on_change()
        return str(listing["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> str:
        params = {
            **self._params,
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
                self.on_change()
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
    """The stand-in server. Feed it offers with :meth:`load` (or the API server's, via
    :meth:`watch`), give buyers funds with :meth:`fund`, then :meth:`start` it."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        settle_on_verify: bool = False,
        per_buyer_limit: bool = False,
        upstream_resolver: Callable[[str], str] = lambda url: url,
    ) -> None:
        self.settle_on_verify = settle_on_verify
        self.per_buyer_limit = per_buyer_limit
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
        self._prefixes: tuple[str, ...] = ()
        self._watches: list[ListWatch] = []
        self.ready = threading.Event()
        self.reloads = 0
        self.reload_errors: list[str] = []
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
        """Keep the routes current from the API server's ServiceOffers and LiteLLM Secrets."""
        offers = ListWatch(api_url, SERVICEOFFERS, token, ca_file, {})
        secrets = ListWatch(
            api_url, SECRETS, token, ca_file, {"fieldSelector": f"metadata.name={LITELLM_SECRET}"}
        )
        self._watches = [offers, secrets]

        def refresh() -> None:
            if offers.synced.is_set() and secrets.synced.is_set():
                self.load(offers.objects(), secrets.objects())

        for source in self._watches:
            source.on_change = refresh
            source.start()
        for source in self._watches:
            source.wait_synced()
        refresh()
        return self

    def load(
        self, offers: Iterable[Mapping[str, Any]], secrets: Iterable[Mapping[str, Any]] = ()
    ) -> bool:
        """Rebuild the whole route table; on a :class:`ReloadError` keep the previous one."""
        try:
            routes = route_table(offers, secrets, per_buyer_limit=self.per_buyer_limit)
        except ReloadError as exc:
            with self._lock:
                self.reload_errors.append(str(exc))
            return False
        with self._lock:  # one swap: readers never see a half table
            self._routes, self._prefixes = tuple(routes), paid_prefixes(routes)
            self.reloads += 1
        self.ready.set()
        return True

    def routes(self) -> tuple[dict[str, Any], ...]:
        return self._routes

    def fund(self, holder: str, amount: int = 10**15) -> None:
        self.chain.fund(holder, amount)

    def start(self) -> VerifierStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        for source in self._watches:
            source.stop()
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
        """The first rule whose pattern matches (the table is in first-match order)."""
        return next((r for r in self._routes if pattern_matches(r["pattern"], path)), None)

    def _payment_required(self, path: str, url: str, error: str, accepts: Any) -> Answer:
        required = PaymentRequired(
            x402_version=2,
            error=error,
            resource=ResourceInfo(
                url=url, description=f"Payment required for {path}", mime_type="application/json"
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
        self, headers: Mapping[str, str], route: Mapping[str, Any], path: str, url: str
    ) -> tuple[Answer | None, PaymentPayload | None, PaymentRequirements, str | None]:
        """(the refusal or None, the payload, the requirements, the verified payer)."""
        accepts = requirements(route)
        raw = next((headers[h] for h in PAYMENT_HEADERS if h in headers), None)
        if raw is None:
            required = "Payment required for this resource"
            return self._payment_required(path, url, required, accepts), None, accepts, None
        try:
            payload = decode_payment_signature_header(raw)
        except Exception as exc:  # forwardauth.go: an undecodable header is a 400
            return _json(400, {"error": f"Invalid payment header: {exc}"}), None, accepts, None
        if not isinstance(payload, PaymentPayload) or any(
            getattr(payload.accepted, f) != getattr(accepts, f) for f in MATCHED_FIELDS
        ):
            refusal = self._payment_required(
                path, url, "invalid payment: the accepted requirements are not these terms", accepts
            )
            return refusal, None, accepts, None
        result = self._facilitator.verify(payload, accepts)
        if not result.is_valid:
            reason = f"invalid payment: {result.invalid_reason or 'invalid'}"
            return self._payment_required(path, url, reason, accepts), None, accepts, None
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
        """The forward-auth answer to ``/verify`` with these (lower-cased) headers."""
        seq = self._next()
        uri = headers.get("x-forwarded-uri", "")
        host = headers.get("x-forwarded-host", "")
        method = headers.get("x-forwarded-method", "")
        url = f"{headers.get('x-forwarded-proto', 'http')}://{host}{uri}"
        done = self._recorder(seq, "verify", method, host, uri, headers)

        if not uri:
            return done(_json(403, {"error": "forbidden: missing forwarded URI"}), None, None)
        path = urlsplit(uri).path
        route = self.match(path)
        if route is None:
            if any(path.startswith(prefix) for prefix in self._prefixes):
                refusal = _json(403, {"error": "no rule matches under a paid prefix"})
                return done(refusal, None, None)
            return done(Answer(200, {}, b""), None, None)  # "legitimately free": not known
        refused, payload, accepts, payer = self._verified(headers, route, path, url)
        if refused is not None or payload is None:
            assert refused is not None
            return done(refused, None, route["pattern"])
        extra = {PAYER_HEADER: str(payer), WALLET_HEADER: ""}
        if route["upstreamAuth"]:
            extra["Authorization"] = route["upstreamAuth"]
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

        path = urlsplit(target).path
        route = self.match(path)
        if route is None:
            return done(_json(404, {"error": "No service here"}), None, None)
        refused, payload, accepts, payer = self._verified(headers, route, path, url)
        if refused is not None or payload is None or payer is None:
            assert refused is not None
            return done(refused, None, route["pattern"])
        key = (route["pattern"], payer.lower())
        limit = route.get("perBuyerMaxInFlight")
        with self._lock:
            busy = isinstance(limit, int) and self._in_flight.get(key, 0) >= limit
            if not busy:
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
        if busy:
            retry = str(route["retryAfterSeconds"])
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
            refusal = self._payment_required(path, url, "settlement failed", accepts)
            refusal.headers["X-PAYMENT-RESPONSE"] = receipt
            return done(refusal, payer, route["pattern"])
        reply_headers["X-PAYMENT-RESPONSE"] = receipt
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
        """Send the request to the rule's upstream, prefix stripped; the whole answer."""
        base = urlsplit(self.upstream_resolver(str(route["upstreamURL"])))
        parts = urlsplit(target)
        path = strip_prefix(str(route["stripPrefix"]), parts.path)
        if parts.query:
            path += "?" + parts.query
        forwarded = {k: v for k, v in headers.items() if k not in HOP_BY_HOP}
        forwarded[PAYER_HEADER] = payer
        if route["upstreamAuth"]:
            forwarded["Authorization"] = route["upstreamAuth"]
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
            return 502, {"Content-Type": "text/plain"}, f"upstream unavailable: {exc}".encode()
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
                path = urlsplit(self.path).path
                if path == "/readyz":
                    ready = stub.ready.is_set()
                    self._reply(_json(200 if ready else 503, {"ready": ready}))
                    return
                if not stub.ready.is_set():
                    # Not ready: a Service sends it no traffic; the caller sees no endpoint.
                    self._reply(_json(503, {"error": "not ready: routes not loaded"}))
                    return
                try:
                    if path == "/verify":
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
    """A started stand-in whose routes follow the API server's ServiceOffers, with every
    address in ``funded`` given a balance of every token."""
    stub = VerifierStub(**options)
    for address in funded:
        stub.fund(address)
    stub.watch(api_url, token, ca_file)
    return stub.start()

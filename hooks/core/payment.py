"""Resolve an offer's payment terms into exact, quotable amounts.

This is the second validation step after :mod:`hooks.core.models`: it needs the asset registry
(which the operator may extend), so the CRD cannot do it. It answers: which chain, which token
contract, which EIP-712 domain, and how many atomic units one request is quoted.

Quoting rule (``exact`` scheme, so a buyer signs one fixed amount per request): what
obol-stack's verifier quotes, since it reads the offer itself (its serviceoffer_source.go,
effectivePrice): the first price set.

* ``perRequest``: that amount, also when ``perMTok`` is set beside it (status warns that the
  per-token price is then not charged).
* ``perMTok`` alone: the verifier's approximation, 1,000 tokens per request
  (``perMTok / 1000``), in atomic units rounded half up as the verifier rounds.
* Neither: ``perHour``, else ``perMB``, is quoted as a flat price per request, exactly as
  obol-stack's verifier does (it meters neither time nor size); the quote's basis says so.
  ``perEpoch`` alone cannot be quoted: obol-stack's verifier never quotes it (it would serve the
  offer for nothing), so it is refused. Prices the quote does not use are listed in status as
  not acted upon.

Assets: a symbol or address resolves through the registry. obol-stack's asset *object* resolves
the same way when it names a registered token (by address, else by symbol), and every field it
declares must then agree with the registry (decimals, transfer method, EIP-712 domain); a token
the registry does not know is used exactly as declared (decimals and the EIP-712 domain are then
required) and flagged in status.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from hooks.core.assets import Asset, AssetRegistry, Network
from hooks.core.errors import FieldProblem, SpecError
from hooks.core.models import AssetObject, Payment
from hooks.core.pricing import format_atomic, quote_for_tokens, to_atomic
from hooks.core.settings import Settings

APPROX_TOKENS_PER_REQUEST = 1000


@dataclass(frozen=True, slots=True)
class ResolvedPayment:
    """Payment terms with the network and token resolved and every amount exact."""

    network: Network
    asset: Asset
    pay_to: str
    scheme: str
    max_timeout_seconds: int
    per_request_atomic: int | None
    per_mtok_atomic: int | None
    quote_atomic: int
    quote_basis: str
    warnings: tuple[str, ...]
    # Whole-token decimal strings of the amounts above, computed once.
    per_request_amount: str | None
    per_mtok_amount: str | None
    quote_amount: str
    summary: str
    # The asset is not in the registry: used exactly as the offer declared it.
    asset_registered: bool = True
    # Prices set in the spec that the quote does not use (status lists them).
    unused_prices: tuple[str, ...] = ()

    @property
    def price_model(self) -> str:
        """Which price the verifier charges: ``perMTok`` only without a per-request price (it
        quotes the first price set, perRequest first), else ``perRequest``."""
        alone = self.per_request_atomic is None and self.per_mtok_atomic is not None
        return "perMTok" if alone else "perRequest"


_FLAT_BASIS = {
    "perHour": "perHour charged as a flat price per request, as obol-stack's verifier does"
    " (time is not metered)",
    "perMB": "perMB charged as a flat price per request, as obol-stack's verifier does"
    " (size is not metered)",
}


def verifier_warnings(payment: Payment, settings: Settings) -> tuple[str, ...]:
    """What the platform's verifier will make of these terms (OBOL_VERIFIER), as warnings.

    obol-stack's verifier decodes every ServiceOffer in the cluster into its Go types, where
    ``payment.asset`` is an object; a string there fails the decode, and one failed decode aborts
    its route reload for every offer (internal/x402/serviceoffer_source.go).
    """
    # Unset, the asset is the network's USDC here and the chain default there: nothing to decode.
    if "asset" not in payment.model_fields_set or not isinstance(payment.asset, str):
        return ()
    return (
        f"payment.asset is the string {payment.asset!r}: obol-stack's verifier (OBOL_VERIFIER="
        f"{settings.verifier}) cannot decode this offer, and while it is stored that verifier"
        " stops loading route changes for every offer in the cluster; write the object form"
        " (obol sell does: symbol, address, decimals, transferMethod, eip712Name, eip712Version)",
    )


def resolve_payment(payment: Payment, registry: AssetRegistry) -> ResolvedPayment:
    """Resolve ``spec.payment`` against ``registry``; raise :class:`SpecError` on any problem."""
    price = payment.price
    if payment.network is None or payment.pay_to is None:
        # Only a card payment may omit them, and card offers are not rendered (hooks.core.plan).
        raise SpecError.at("spec.payment.method", "only crypto payments are supported", "card")
    network = registry.network(payment.network)
    asset, registered = resolve_asset(registry, network, payment.asset)
    # The price fields set, in the order obol-stack's verifier picks the first one.
    declared = {
        field: text
        for field, text in (
            ("perRequest", price.per_request),
            ("perMTok", price.per_m_tok),
            ("perHour", price.per_hour),
            ("perEpoch", price.per_epoch),
            ("perMB", price.per_mb),
        )
        if text is not None
    }
    problems: list[FieldProblem] = []
    # The offer's own token too: an asset spelled out in the offer is not in the registry.
    token = next(
        (t for t in (asset, *registry.assets()) if t.address.lower() == payment.pay_to.lower()),
        None,
    )
    if token is not None:
        problems.append(
            FieldProblem(
                "spec.payment.payTo",
                f"is the {token.symbol} token contract on {token.network}, not a wallet:"
                " payments sent there are lost; give the seller's own address",
                payment.pay_to,
            )
        )
    per_request = _atomic(price.per_request, "perRequest", asset, problems)
    per_mtok = _atomic(price.per_m_tok, "perMTok", asset, problems)
    flat_field = None
    flat = None
    if per_request is None and per_mtok is None and not problems:
        # Neither price this project quotes: obol-stack's verifier picks the first one set.
        flat_field = next(iter(declared), None)
        if flat_field == "perEpoch":
            raise SpecError.at(
                "spec.payment.price.perEpoch",
                "cannot be quoted: obol-stack's verifier never quotes perEpoch (the offer would be"
                " served for nothing); set perRequest, perMTok or perHour",
                price.per_epoch,
            )
        if flat_field is not None:
            flat = _atomic(declared[flat_field], flat_field, asset, problems)
    if problems:
        raise SpecError(problems)
    used = {"perRequest", "perMTok"} if flat_field is None else {flat_field}
    unused = tuple(f"spec.payment.price.{field}" for field in declared if field not in used)
    warnings: list[str] = []
    if flat is not None and flat_field is not None:
        quote = per_request = flat
        basis = _FLAT_BASIS[flat_field]
    elif per_request is not None:
        # The verifier reads the offer and quotes the first price set (obol-stack's
        # serviceoffer_source.go, effectivePrice): perRequest alone, even beside perMTok.
        quote = per_request
        basis = "perRequest"
        if per_mtok is not None:
            warnings.append(
                "perMTok is not charged: obol-stack's verifier quotes the first price set, and"
                " perRequest comes first; drop perRequest to charge per token"
            )
    else:
        # perMTok alone: the verifier's approximation, perMTok / 1000 per request.
        assert per_mtok is not None
        quote = quote_for_tokens(per_mtok, APPROX_TOKENS_PER_REQUEST)
        basis = (
            f"approximate: perMTok x {APPROX_TOKENS_PER_REQUEST} tokens, as obol-stack's"
            " verifier quotes it"
        )
    if quote == 0:
        raise SpecError.at(
            "spec.payment.price.perMTok",
            f"quotes 0 {asset.symbol} per request; raise the price",
            price.per_m_tok,
        )
    per_request_amount = _amount(per_request, asset)
    per_mtok_amount = _amount(per_mtok, asset)
    parts = [
        f"{amount} {asset.symbol}/{unit}"
        for amount, unit in ((per_request_amount, "request"), (per_mtok_amount, "MTok"))
        if amount is not None
    ]
    if flat_field is not None:
        parts = [f"{parts[0]} ({flat_field})"]  # the flat price is the only per-request one
    if asset.test_asset:
        warnings.append(f"{asset.symbol} on {network.name} is a test token, not a canonical one")
    if not registered:
        warnings.append(
            f"token {asset.address} on {network.name} is not in the asset registry: used as"
            f" declared ({asset.symbol}, {asset.decimals} decimals, {asset.transfer_method},"
            f' EIP-712 "{asset.eip712_name}"/"{asset.eip712_version}"); a wrong domain breaks'
            " every buyer's signature"
        )
    return ResolvedPayment(
        network=network,
        asset=asset,
        pay_to=payment.pay_to,
        scheme=payment.scheme,
        max_timeout_seconds=payment.max_timeout_seconds,
        per_request_atomic=per_request,
        per_mtok_atomic=per_mtok,
        quote_atomic=quote,
        quote_basis=basis,
        warnings=tuple(warnings),
        per_request_amount=per_request_amount,
        per_mtok_amount=per_mtok_amount,
        quote_amount=format_atomic(quote, asset.decimals),
        summary=" + ".join(parts),
        asset_registered=registered,
        unused_prices=unused,
    )


_ASSET_PATH = "spec.payment.asset"


def resolve_asset(
    registry: AssetRegistry, network: Network, asset: str | AssetObject
) -> tuple[Asset, bool]:
    """The token ``asset`` names on ``network``, and whether the registry knows it.

    Raises :class:`SpecError` when a declared field contradicts the registered token, or when an
    unregistered token leaves out what cannot be guessed.
    """
    if isinstance(asset, str):
        return registry.resolve(network, asset, path=_ASSET_PATH), True
    known: Asset | None
    if asset.address is not None:
        known = registry.registered(network, asset.address)
    else:
        known = registry.resolve(network, asset.symbol or "usdc", path=f"{_ASSET_PATH}.symbol")
    if known is not None:
        _check_declared(asset, known)
        return known, True
    return _declared_token(asset, network), False


def _check_declared(declared: AssetObject, known: Asset) -> None:
    # A symbol is matched whatever its case.
    symbol_differs = (declared.symbol or known.symbol).upper() != known.symbol.upper()
    problems = [
        FieldProblem(
            f"{_ASSET_PATH}.{field}",
            f"does not match the registered {known.symbol} on {known.network} ({expected})",
            value,
        )
        for field, value, expected in (
            ("symbol", declared.symbol, known.symbol),
            ("decimals", declared.decimals, known.decimals),
            ("transferMethod", declared.transfer_method, known.transfer_method),
            ("eip712Name", declared.eip712_name, known.eip712_name),
            ("eip712Version", declared.eip712_version, known.eip712_version),
        )
        if value is not None and (symbol_differs if field == "symbol" else value != expected)
    ]
    if problems:
        raise SpecError(problems)


def _declared_token(declared: AssetObject, network: Network) -> Asset:
    missing = [
        FieldProblem(
            f"{_ASSET_PATH}.{field}",
            "required for a token the asset registry does not know"
            " (it cannot be guessed; a wrong value breaks every payment)",
        )
        for field, value in (
            ("decimals", declared.decimals),
            ("eip712Name", declared.eip712_name),
            ("eip712Version", declared.eip712_version),
        )
        if value is None
    ]
    address, decimals = declared.address, declared.decimals
    name, version = declared.eip712_name, declared.eip712_version
    if address is None or decimals is None or name is None or version is None:
        # address is set here: an object without one resolved by symbol or raised.
        raise SpecError(missing or [FieldProblem(f"{_ASSET_PATH}.address", "is required")])
    return Asset(
        symbol=declared.symbol or "TOKEN",
        network=network.name,
        address=address,
        decimals=decimals,
        # x402's default transfer method when a token does not say otherwise.
        transfer_method=declared.transfer_method or "eip3009",
        eip712_name=name,
        eip712_version=version,
    )


def _amount(atomic: int | None, asset: Asset) -> str | None:
    return None if atomic is None else format_atomic(atomic, asset.decimals)


def _atomic(text: str | None, field: str, asset: Asset, problems: list[FieldProblem]) -> int | None:
    if text is None:
        return None
    try:
        return to_atomic(
            text,
            decimals=asset.decimals,
            path=f"spec.payment.price.{field}",
            symbol=asset.symbol,
        )
    except SpecError as exc:
        problems.extend(exc.problems)
        return None

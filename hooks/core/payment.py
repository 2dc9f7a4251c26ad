"""Resolve an offer's payment terms into exact, quotable amounts.

This is the second validation step after :mod:`hooks.core.models`: it needs the asset registry
(which the operator may extend), so the CRD cannot do it. It answers: which chain, which token
contract, which EIP-712 domain, and how many atomic units one request is quoted.

Quoting rule (``exact`` scheme, so a buyer signs one fixed amount per request):

* ``perRequest`` only: that amount.
* ``perMTok`` with both ``maxInputTokens`` and ``maxOutputTokens``: the worst case,
  ``perRequest + ceil((maxInputTokens + maxOutputTokens) * perMTok / 1e6)`` in atomic units.
* ``perMTok`` without both limits: the request cannot be bounded, so the quote falls back to the
  existing verifier's approximation of 1,000 tokens per request, and status warns about it.

Pure: no I/O. Results are cached because Metacontroller re-sends the same terms on every resync.
"""

from __future__ import annotations

from dataclasses import dataclass

from hooks.core.assets import Asset, AssetRegistry, Network
from hooks.core.errors import FieldProblem, SpecError
from hooks.core.models import Payment, RequestLimits
from hooks.core.pricing import format_atomic, quote_for_tokens, to_atomic, worst_case_request_quote

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

    @property
    def price_model(self) -> str:
        """How the verifier should read the price: ``perRequest`` or ``perMTok``."""
        return "perRequest" if self.per_mtok_atomic is None else "perMTok"


def resolve_payment(
    payment: Payment, limits: RequestLimits | None, registry: AssetRegistry
) -> ResolvedPayment:
    """Resolve ``spec.payment`` against ``registry``; raise :class:`SpecError` on any problem."""
    price = payment.price
    max_in = limits.max_input_tokens if limits else None
    max_out = limits.max_output_tokens if limits else None
    network = registry.network(payment.network, path="spec.payment.network")
    asset = registry.resolve(network, payment.asset, path="spec.payment.asset")
    problems: list[FieldProblem] = []
    per_request = _atomic(price.per_request, "perRequest", asset, problems)
    per_mtok = _atomic(price.per_m_tok, "perMTok", asset, problems)
    if problems:
        raise SpecError(problems)
    warnings: list[str] = []
    bounded = worst_case_request_quote(per_request, per_mtok, max_in, max_out)
    if bounded is not None:
        quote = bounded
        basis = "perRequest"
        if per_mtok is not None:
            basis = "perMTok x (maxInputTokens + maxOutputTokens)"
            if per_request is not None:
                basis = "perRequest + " + basis
    else:
        # Per-token pricing without both token limits: the existing verifier's approximation.
        quote = (per_request or 0) + quote_for_tokens(per_mtok or 0, APPROX_TOKENS_PER_REQUEST)
        basis = f"approximate: perMTok x {APPROX_TOKENS_PER_REQUEST} tokens"
        if per_request is not None:
            basis = "perRequest + " + basis
        warnings.append(
            "perMTok is quoted for an assumed 1000 tokens per request because"
            " requestLimits.maxInputTokens and maxOutputTokens are not both set;"
            " set both to quote the worst case exactly"
        )
    if quote == 0:
        raise SpecError.at(
            "spec.payment.price.perMTok",
            f"quotes 0 {asset.symbol} per request; raise the price",
            price.per_m_tok,
        )
    per_request_amount = _amount(per_request, asset)
    per_mtok_amount = _amount(per_mtok, asset)
    parts = []
    if per_request_amount is not None:
        parts.append(f"{per_request_amount} {asset.symbol}/request")
    if per_mtok_amount is not None:
        parts.append(f"{per_mtok_amount} {asset.symbol}/MTok")
    if asset.test_asset:
        warnings.append(f"{asset.symbol} on {network.name} is a test token, not a canonical one")
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

"""Exact pricing math: seller prices as decimal strings, quotes as integer atomic token units.

Sellers write prices in whole-token units as decimal strings (``"0.001"`` USDC per request,
``"0.50"`` USDC per million tokens). Buyers sign amounts in *atomic* units (USDC has 6 decimals, so
``"0.001"`` is ``1000``). This module converts between the two and computes per-token quotes.

Rules, chosen so that no request is ever quoted a surprising amount:

* Prices are strings of plain decimal digits: ``^[0-9]+(\\.[0-9]+)?$``. No sign, exponent,
  whitespace, ``NaN``/``Infinity``, leading ``.`` or thousands separators. Numbers (floats) are
  refused outright: ``0.1`` is not exactly representable, and x402's own Python float conversion
  turns ``1.005`` into ``1004999``.
* Conversion is exact or refused. A price with more significant fractional digits than the token
  has is rejected instead of being rounded (trailing zeros are not significant). Zero is rejected:
  a zero quote is a free endpoint behind a payment wall. Amounts must fit in a uint256.
* Per-token quotes round **up** (ceil) to a whole atomic unit, in favour of the seller: a request is
  never quoted less than its exact price, and at most one atomic unit (for USDC, $0.000001) more.
  Input and output tokens are summed *before* rounding, so a request pays at most one unit extra.

This module is pure core: no I/O, no environment, no clock, no randomness, and never floats.
Only integer arithmetic on digit strings is used, so the result never depends on a
:mod:`decimal` context. Input problems raise :class:`hooks.core.errors.SpecError` naming the field
path; misuse by calling code (negative counts, no price at all) raises :class:`ValueError`.
"""

from __future__ import annotations

import re
from typing import Any

from hooks.core.errors import SpecError

TOKENS_PER_MTOK = 1_000_000
"""Per-token prices are given per million tokens (``perMTok``)."""

MAX_ATOMIC_AMOUNT = 2**256 - 1
"""On-chain amounts are uint256; no quote may exceed this."""

MAX_PRICE_LENGTH = 400
"""Longest accepted price string. A uint256 has 78 digits and a token at most 255 decimals, so no
meaningful price is longer; the cap keeps digit-string work bounded."""

_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)

_FORMAT_HINT = 'a decimal string such as "0.001"'


def to_atomic(text: str, *, decimals: int, path: str, symbol: str = "the token") -> int:
    """Convert a price in whole tokens to atomic units, exactly, or raise :class:`SpecError`.

    ``decimals`` and ``symbol`` describe the token (e.g. 6 and ``"USDC"``); the symbol only
    appears in messages. Trailing fractional zeros are fine (``"0.0010000"`` is 1000 for 6
    decimals); any further significant digit is rejected rather than rounded.
    """
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    integer_digits, fraction_digits = _split_positive_price(text, path=path)
    significant = fraction_digits.rstrip("0")
    if len(significant) > decimals:
        digits = "digit" if len(significant) == 1 else "digits"
        reason = f"has {len(significant)} fractional {digits} but {symbol} has only {decimals}"
        raise SpecError.at(path, reason, text)
    atomic = int(integer_digits + significant.ljust(decimals, "0"))
    if atomic > MAX_ATOMIC_AMOUNT:
        raise SpecError.at(path, f"is too large: {symbol} amounts must fit in a uint256", text)
    return atomic


def quote_for_tokens(per_mtok_atomic: int, tokens: int) -> int:
    """Atomic units for ``tokens`` tokens at ``per_mtok_atomic`` per million, rounded half up,
    as obol-stack's verifier converts its per-request price (chains.go, decimalToAtomic).

    Integer arithmetic only; exact multiples are not rounded.
    """
    if per_mtok_atomic < 0 or tokens < 0:
        raise ValueError(f"need non-negative price and tokens, got {per_mtok_atomic}, {tokens}")
    return (tokens * per_mtok_atomic + TOKENS_PER_MTOK // 2) // TOKENS_PER_MTOK


def format_atomic(amount: int, decimals: int) -> str:
    """Render atomic units as a canonical whole-token decimal string (``1000``, 6 → ``"0.001"``).

    No exponent, no sign, no trailing fractional zeros, and no ``.`` for whole amounts.
    """
    if amount < 0 or decimals < 0:
        raise ValueError(f"need non-negative amount and decimals, got {amount}, {decimals}")
    whole, fraction = divmod(amount, 10**decimals)
    fraction_digits = str(fraction).rjust(decimals, "0").rstrip("0") if decimals else ""
    return f"{whole}.{fraction_digits}" if fraction_digits else str(whole)


def _split_positive_price(text: Any, *, path: str) -> tuple[str, str]:
    """Check the plain-decimal form and positivity; return (integer digits, fractional digits)."""
    if not isinstance(text, str):
        hint = " (quote it in YAML)" if isinstance(text, int | float) else ""
        raise SpecError.at(path, f"must be {_FORMAT_HINT}{hint}", text)
    if len(text) > MAX_PRICE_LENGTH:
        raise SpecError.at(path, f"is too long: at most {MAX_PRICE_LENGTH} characters", text)
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise SpecError.at(
            path,
            f"must be {_FORMAT_HINT}: digits with an optional fraction, "
            "no sign, exponent, spaces or separators",
            text,
        )
    integer_digits, _, fraction_digits = text.partition(".")
    if not (integer_digits + fraction_digits).strip("0"):
        raise SpecError.at(path, "must be greater than 0", text)
    return integer_digits, fraction_digits

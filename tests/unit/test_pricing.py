"""Exact pricing math: decimal price strings in, integer atomic amounts out.

Test design notes:

* Parsing is a table of strings, "valid because…" / "invalid because…", covering every form the
  rules exclude: sign, exponent, whitespace, NaN/Infinity, leading or trailing '.', separators,
  non-ASCII digits, numbers that are not strings, zero in every spelling.
* Conversion is exact or refused: a too-precise price names its digit count and the token; trailing
  zeros are not significant; huge values (30 integer digits) stay exact; uint256 is the ceiling.
* Per-token quotes round up; the table includes exact multiples (no rounding) and the
  one-token-at-a-tiny-price edge, and the worst-case quote sums input and output before rounding.
* Hypothesis checks that formatting and parsing are inverse for every amount and decimals, and that
  a per-token quote is never below the exact price nor a whole unit above it.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hooks.core.errors import SpecError, format_value
from hooks.core.pricing import (
    MAX_ATOMIC_AMOUNT,
    format_atomic,
    quote_for_tokens,
    to_atomic,
)

PATH = "spec.payment.price.perRequest"
FORMAT_REASON = (
    'must be a decimal string such as "0.001": digits with an optional fraction, '
    "no sign, exponent, spaces or separators"
)


def rejection(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(SpecError) as caught:
        call(*args, **kwargs)
    (problem,) = caught.value.problems
    return str(problem)


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1", 10**9, id="valid because a whole number"),
        pytest.param("0.001", 10**6, id="valid because a plain fraction"),
        pytest.param("0.0010000", 10**6, id="valid because trailing zeros"),
        pytest.param("007.5", 75 * 10**8, id="valid because leading zeros are digits"),
        pytest.param(
            "123456789012345678901234567890.123456789",
            123456789012345678901234567890123456789,
            id="valid because 30 integer digits stay exact",
        ),
    ],
)
def test_price_accepts(text: str, expected: int) -> None:
    assert to_atomic(text, decimals=9, path=PATH) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("0", "must be greater than 0", id="invalid because zero"),
        pytest.param("0.000", "must be greater than 0", id="invalid because zero with decimals"),
        pytest.param("000", "must be greater than 0", id="invalid because zero with zeros"),
        pytest.param("-1", FORMAT_REASON, id="invalid because negative"),
        pytest.param("+1", FORMAT_REASON, id="invalid because of a plus sign"),
        pytest.param("1e-3", FORMAT_REASON, id="invalid because of an exponent"),
        pytest.param("1E3", FORMAT_REASON, id="invalid because of a capital exponent"),
        pytest.param(" 1", FORMAT_REASON, id="invalid because of leading whitespace"),
        pytest.param("1 ", FORMAT_REASON, id="invalid because of trailing whitespace"),
        pytest.param("1\n", FORMAT_REASON, id="invalid because of a trailing newline"),
        pytest.param("NaN", FORMAT_REASON, id="invalid because NaN"),
        pytest.param("Infinity", FORMAT_REASON, id="invalid because Infinity"),
        pytest.param("inf", FORMAT_REASON, id="invalid because inf"),
        pytest.param(".5", FORMAT_REASON, id="invalid because of a leading point"),
        pytest.param("5.", FORMAT_REASON, id="invalid because of a trailing point"),
        pytest.param("1,000", FORMAT_REASON, id="invalid because of a thousands separator"),
        pytest.param("1_000", FORMAT_REASON, id="invalid because of an underscore separator"),
        pytest.param("1.2.3", FORMAT_REASON, id="invalid because of two points"),
        pytest.param("0,5", FORMAT_REASON, id="invalid because of a decimal comma"),
        pytest.param("$0.01", FORMAT_REASON, id="invalid because of a currency sign"),
        pytest.param("\u0661", FORMAT_REASON, id="invalid because of a non-ASCII digit"),
        pytest.param("", FORMAT_REASON, id="invalid because empty"),
        pytest.param(
            0.001,
            'must be a decimal string such as "0.001" (quote it in YAML)',
            id="invalid because a float is not a string",
        ),
        pytest.param(
            1,
            'must be a decimal string such as "0.001" (quote it in YAML)',
            id="invalid because an integer is not a string",
        ),
        pytest.param(
            None, 'must be a decimal string such as "0.001"', id="invalid because missing"
        ),
    ],
)
def test_price_rejects(text: Any, reason: str) -> None:
    expected_value = f" (got {text!r})" if text is not None else ""
    assert rejection(to_atomic, text, decimals=6, path=PATH) == f"{PATH}: {reason}{expected_value}"


def test_overlong_price_is_rejected_before_any_digit_work() -> None:
    text = "1" * 401
    message = rejection(to_atomic, text, decimals=6, path=PATH)
    assert message.startswith(f"{PATH}: is too long: at most 400 characters (got '111")


# -- conversion to atomic units --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "decimals", "expected"),
    [
        pytest.param("0.001", 6, 1000, id="valid because 0.001 USDC is 1000 units"),
        pytest.param("1.005", 6, 1_005_000, id="valid because no float error (not 1004999)"),
        pytest.param("0.000001", 6, 1, id="valid because the smallest USDC unit"),
        pytest.param("0.0010000", 6, 1000, id="valid because trailing zeros beyond 6 are fine"),
        pytest.param("0.0000010", 6, 1, id="valid because one unit with a trailing zero"),
        pytest.param("1", 6, 1_000_000, id="valid because a whole token"),
        pytest.param("2.5", 18, 2_500_000_000_000_000_000, id="valid because OBOL has 18"),
        pytest.param(
            "123456789012345678901234567890.123456",
            6,
            123456789012345678901234567890123456,
            id="valid because 30 integer digits stay exact",
        ),
        pytest.param("7", 0, 7, id="valid because a token without decimals"),
        pytest.param("7.000", 0, 7, id="valid because zeros only, for a token without decimals"),
        pytest.param(
            format_atomic(MAX_ATOMIC_AMOUNT, 18),
            18,
            MAX_ATOMIC_AMOUNT,
            id="valid because the uint256 maximum fits",
        ),
    ],
)
def test_to_atomic_is_exact(text: str, decimals: int, expected: int) -> None:
    assert to_atomic(text, decimals=decimals, path=PATH, symbol="USDC") == expected


@pytest.mark.parametrize(
    ("text", "decimals", "symbol", "reason"),
    [
        pytest.param(
            "0.0000001",
            6,
            "USDC",
            "has 7 fractional digits but USDC has only 6",
            id="invalid because 7 significant digits for a 6-decimal token",
        ),
        pytest.param(
            "0.00000010",
            6,
            "USDC",
            "has 7 fractional digits but USDC has only 6",
            id="invalid because trailing zeros do not hide a 7th significant digit",
        ),
        pytest.param(
            "1.5",
            0,
            "POINTS",
            "has 1 fractional digit but POINTS has only 0",
            id="invalid because a fraction of an indivisible token",
        ),
        pytest.param(
            "0.0000000000000000001",
            18,
            "OBOL",
            "has 19 fractional digits but OBOL has only 18",
            id="invalid because below one OBOL wei",
        ),
        pytest.param(
            "0", 6, "USDC", "must be greater than 0", id="invalid because zero is a free endpoint"
        ),
        pytest.param(
            "1" + "0" * 78,
            0,
            "USDC",
            "is too large: USDC amounts must fit in a uint256",
            id="invalid because it exceeds uint256",
        ),
    ],
)
def test_to_atomic_rejects(text: str, decimals: int, symbol: str, reason: str) -> None:
    message = rejection(to_atomic, text, decimals=decimals, path=PATH, symbol=symbol)
    assert message == f"{PATH}: {reason} (got {format_value(text)})"


def test_to_atomic_without_a_symbol_says_the_token() -> None:
    assert rejection(to_atomic, "0.0000001", decimals=6, path=PATH) == (
        f"{PATH}: has 7 fractional digits but the token has only 6 (got '0.0000001')"
    )


def test_to_atomic_rejects_negative_decimals_as_misuse() -> None:
    with pytest.raises(ValueError, match="decimals"):
        to_atomic("1", decimals=-1, path=PATH)


# -- formatting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "decimals", "expected"),
    [
        pytest.param(1000, 6, "0.001", id="1000 USDC units"),
        pytest.param(1, 6, "0.000001", id="one USDC unit"),
        pytest.param(1_000_000, 6, "1", id="whole token has no point"),
        pytest.param(1_500_000, 6, "1.5", id="trailing zeros dropped"),
        pytest.param(0, 6, "0", id="zero"),
        pytest.param(42, 0, "42", id="token without decimals"),
        pytest.param(10**18, 18, "1", id="one OBOL"),
        pytest.param(10**30, 6, "1" + "0" * 24, id="large amount has no exponent"),
    ],
)
def test_format_atomic(amount: int, decimals: int, expected: str) -> None:
    assert format_atomic(amount, decimals) == expected


def test_format_atomic_rejects_negative_amounts_as_misuse() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        format_atomic(-1, 6)


@given(
    amount=st.integers(min_value=1, max_value=MAX_ATOMIC_AMOUNT),
    decimals=st.integers(min_value=0, max_value=255),
)
def test_format_then_parse_round_trips(amount: int, decimals: int) -> None:
    text = format_atomic(amount, decimals)
    assert to_atomic(text, decimals=decimals, path=PATH) == amount
    assert not ("." in text and text.endswith("0"))  # canonical: no trailing fractional zeros


# -- per-token quotes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_mtok", "tokens", "expected"),
    [
        pytest.param(1_000_000, 1, 1, id="1 USDC per MTok, 1 token: exactly 1 unit"),
        pytest.param(1_000_000, 1_000_000, 1_000_000, id="exact multiple is not rounded"),
        pytest.param(3_000_000, 1000, 3000, id="3 USDC per MTok, 1000 tokens: exact"),
        pytest.param(1, 1, 0, id="below half a unit rounds down to nothing"),
        pytest.param(1, 1_000_000, 1, id="exactly one unit at a million tokens"),
        pytest.param(500_000, 1, 1, id="exactly half a unit rounds up"),
        pytest.param(500_000, 3, 2, id="1.5 units rounds up to 2"),
        pytest.param(999_999, 1, 1, id="just under one unit rounds to 1"),
        pytest.param(1_000_001, 1, 1, id="just over one unit rounds to 1"),
        pytest.param(2_500_000, 0, 0, id="zero tokens cost nothing"),
    ],
)
def test_quote_for_tokens_rounds_half_up_like_obol_stacks_verifier(
    per_mtok: int, tokens: int, expected: int
) -> None:
    assert quote_for_tokens(per_mtok, tokens) == expected


def test_quote_for_tokens_rejects_negative_counts_as_misuse() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        quote_for_tokens(1_000_000, -1)


@given(
    per_mtok=st.integers(min_value=0, max_value=10**30),
    tokens=st.integers(min_value=0, max_value=10**9),
)
def test_quote_is_within_half_a_unit_of_the_exact_price(per_mtok: int, tokens: int) -> None:
    exact = Fraction(per_mtok * tokens, 1_000_000)
    quote = quote_for_tokens(per_mtok, tokens)
    assert exact - Fraction(1, 2) < quote <= exact + Fraction(1, 2)

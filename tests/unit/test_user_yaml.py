"""Every YAML a user gives the product is parsed by hooks.core.user_yaml: bounded, JSON-shaped,
and every refusal names the source, the line and the path inside the document.

Test-design notes: the hostile inputs are written by hand here (billion laughs, deep nesting,
oversized input, YAML 1.1 number notations); a property test checks that plain JSON data
written out by PyYAML's own dumper comes back unchanged.
"""

from __future__ import annotations

import re
import time
import tracemalloc
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hooks.core.user_yaml import MAX_BYTES, MAX_DEPTH, UserYamlError, parse_user_yaml


def refusal(text: str | bytes) -> str:
    with pytest.raises(UserYamlError) as caught:
        parse_user_yaml(text, "offer.yaml")
    return str(caught.value)


def billion_laughs(levels: int) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        prev, name = chr(96 + level), chr(97 + level)
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_aliases_are_refused_at_the_first_one_with_the_line() -> None:
    assert refusal(billion_laughs(10)) == (
        "offer.yaml: line 2: YAML aliases (*name) are not accepted: write the value out in full"
    )


def test_an_anchor_without_alias_is_harmless() -> None:
    assert parse_user_yaml("a: &x 1\n", "f") == [{"a": 1}]


@pytest.mark.parametrize("opener", ["[", "{a: ", "- "])
def test_deep_nesting_is_refused_without_recursion(opener: str) -> None:
    # Deep enough input crashes libyaml's own composer (a segfault at 100,000 levels) and
    # PyYAML's (RecursionError). From PyYAML 6.0.4 libyaml's scanner refuses deep flow
    # collections itself, while looking ahead for a key, before any event reaches our bound.
    text = opener * 10_000 if opener != "- " else "".join(" " * i + "-\n" for i in range(200))
    assert re.search(
        f"nested deeper than {MAX_DEPTH} levels|exceeded maximum nesting depth", refusal(text)
    )


@pytest.mark.parametrize("opener", ["[", "{a: "])
def test_one_level_past_the_bound_is_refused_by_our_own_check(opener: str) -> None:
    assert f"nested deeper than {MAX_DEPTH} levels" in refusal(opener * (MAX_DEPTH + 1))


def test_nesting_up_to_the_bound_is_fine() -> None:
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    value: Any = parse_user_yaml(text, "f")[0]
    for _ in range(MAX_DEPTH - 1):
        value = value[0]
    assert value == []


def test_oversized_input_is_refused_before_parsing() -> None:
    assert refusal("a" * (MAX_BYTES + 1)) == f"offer.yaml: is larger than {MAX_BYTES} bytes"


@pytest.mark.parametrize(
    "text",
    [
        "[" + "1, " * (MAX_BYTES // 3 - 2) + "1]",
        "- 1\n" * (MAX_BYTES // 4),
        "".join(f"k{i}: v\n" for i in range(MAX_BYTES // 10)),
    ],
    ids=["flow list", "block list", "mapping"],
)
def test_the_largest_accepted_input_parses_in_under_a_second_and_100_mb(text: str) -> None:
    assert len(text) <= MAX_BYTES
    # CPU time: the machine may be shared, and waiting for a core is not the parser's cost.
    started = time.process_time()
    parse_user_yaml(text, "f")
    assert time.process_time() - started < 1.0
    tracemalloc.start()
    try:
        parse_user_yaml(text, "f")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "spec:\n  payment:\n    payTo: 0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31\n",
            "offer.yaml: line 3: spec.payment.payTo: YAML reads the unquoted value"
            " 0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31 as a hex number; quote it"
            ' ("0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31") if it is an address or text,'
            " or write the number in decimal",
        ),
        ("mode: 0755\n", "line 1: mode: YAML reads the unquoted value 0755 as a number in a"),
        ("t: 1:30\n", "line 1: t: YAML reads the unquoted value 1:30 as a number in a"),
        ("t: 1:30.5\n", "line 1: t: YAML reads the unquoted value 1:30.5 as a base-60 number"),
        ("a: [1, {b: 0b101}]\n", "a[1].b: YAML reads the unquoted value 0b101"),
        ("n: 99999999999999999999\n", "line 1: n: the number 99999999999999999999 is too large"),
        ("n: .inf\n", "n: .inf is not a finite number"),
        ("n: .NaN\n", "n: .NaN is not a finite number"),
        ("b: !!binary aGVsbG8=\n", "line 1: b: the tag !!binary is not accepted"),
        ("s: !!set {a, b}\n", "s: the tag !!set is not accepted"),
        ("o: !!python/object:os.system x\n", "o: the tag !!python/object:os.system"),
        ("x: !local y\n", "x: the tag !local is not accepted"),
        ("a: 1\nb: 2\na: 3\n", "line 3: a: is given twice (duplicate key)"),
        ("m:\n  1: x\n", "line 2: m: keys must be text; quote the key '1'"),
        ("on: push\n", "keys must be text; quote the key 'on'"),
        ("<<: {a: 1}\n", "merge keys (<<) are not accepted"),
        ("a: [\n", "offer.yaml: line 2: not valid YAML"),
    ],
)
def test_refusals_name_line_path_and_reason(text: str, message: str) -> None:
    assert message in refusal(text)


def test_non_utf8_bytes_are_refused() -> None:
    assert refusal(b"a: \xff\n") == "offer.yaml: is not UTF-8 text"


def test_quoted_values_and_decimal_numbers_are_kept() -> None:
    text = 'payTo: "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31"\nn: -1_000\nf: 1.5\nd: 2026-01-01\n'
    assert parse_user_yaml(text, "f") == [
        {
            "payTo": "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31",
            "n": -1000,
            "f": 1.5,
            # Dates stay text, as Kubernetes reads them.
            "d": "2026-01-01",
        }
    ]


def test_every_document_but_empty_ones() -> None:
    assert parse_user_yaml("---\n---\na: 1\n---\n- x\n", "f") == [{"a": 1}, ["x"]]


# PyYAML's dumper folds some control characters (NEL, ...) in keys; people do not write them.
TEXT = st.characters(blacklist_categories=("Cc", "Cs"))
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(TEXT, max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(TEXT, max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(JSON)
def test_json_data_dumped_by_pyyaml_comes_back_unchanged(value: Any) -> None:
    text = yaml.safe_dump({"v": value}, allow_unicode=True)
    assert parse_user_yaml(text, "f") == [{"v": value}]

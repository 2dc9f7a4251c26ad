"""Rendering of offers for ``obol sell status`` and ``obol sell list`` (pure, no kubectl).

Design notes:
- Offer objects get their status from the real pure hook: the example is synced once (nothing
  observed yet), then again with the children Metacontroller would report and, when a case
  needs one, an upstream :class:`~hooks.core.observation.Observation` carrying ``inFlight``. So
  the view is tested against exactly what the hook writes, not a hand-made imitation of it.
- Available / Saturated / Unknown and failing conditions are each one case; the full text of one
  status block and of one list table is pinned, the rest assert the lines that matter.
- The view must never raise on odd objects read from a cluster: a Hypothesis property takes a
  well-formed synced offer and puts arbitrary JSON values at the places the view reads.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hooks.cli.offer_view import (
    LIST_COLUMNS,
    OfferView,
    format_table,
    list_record,
    list_row,
    offer_view,
    status_lines,
    status_record,
    status_text,
)
from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from tests.cli.sell_helpers import LLAMA, QWEN, SETTINGS, WEATHER, example, synced
from tests.support.observed import parent_object, sync_request


def facts(view: OfferView) -> dict[str, str]:
    """The ``Label: value`` lines of a status block, as a mapping."""
    found = {}
    for line in status_lines(view)[1:]:
        label, sep, value = line.strip().partition(": ")
        if sep and not line.startswith("    "):
            found[label.rstrip(":")] = value.strip()
    return found


def condition_lines(view: OfferView) -> list[str]:
    return [line.strip() for line in status_lines(view) if line.startswith("    ")]


# --- status ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "gate", "per_buyer"),
    [
        pytest.param(
            Settings(payment_gate="seller-proxy"),
            "seller-proxy (settlement: the verifier settles after the upstream answered below 400)",
            "2 (enforced by: none)",
            id="seller-proxy with obol-stack's verifier",
        ),
        pytest.param(
            Settings(payment_gate="seller-proxy", verifier="obol-stack-per-buyer"),
            "seller-proxy (settlement: the verifier settles after the upstream answered below 400)",
            "2 (enforced by: verifier)",
            id="seller-proxy with a verifier that limits buyers",
        ),
        pytest.param(
            Settings(verifier_settlement="on-verify"),
            "forward-auth (settlement: the verifier settles during /verify, before the upstream"
            " answers)",
            "2 (enforced by: none)",
            id="forward-auth settling on verify",
        ),
    ],
)
def test_status_shows_the_gate_who_settles_and_who_enforces_the_buyer_limit(
    settings: Settings, gate: str, per_buyer: str
) -> None:
    view = offer_view(synced(QWEN, settings=settings))
    shown = facts(view)
    assert shown["Payment gate"] == gate
    assert shown["Per-buyer max in-flight"] == per_buyer
    record = status_record(view)["paymentGate"]
    assert record["mode"] == settings.payment_gate
    assert record["perBuyerLimit"] == per_buyer.split(": ")[1].rstrip(")")


def test_available_offer_full_status_block() -> None:
    view = offer_view(synced(QWEN, in_flight=3))
    assert status_text([view]) == (
        "ServiceOffer llm-sellers/qwen36-fast\n"
        "  Type:                    inference\n"
        "  Endpoint:                https://obol.example/services/qwen36-fast\n"
        "  Price:                   0.002 USDC/request + 0.5 USDC/MTok on base\n"
        "  Quote:                   0.002 USDC per request (perRequest)\n"
        "  Payment gate:            forward-auth"
        " (settlement: not by the gateway: /verify only verifies)\n"
        "  Capacity mode:           external-static\n"
        "  Scaling:                 scalingControlled=false"
        " (capacity is declared by the seller; nothing is autoscaled)\n"
        "  GPU count:               1\n"
        "  Max in-flight:           8\n"
        "  Per-buyer max in-flight: 2 (enforced by: gateway)\n"
        "  In flight:               3\n"
        "  Capacity state:          Available\n"
        "  Ready:                   True\n"
        "  Conditions:\n"
        "    PaymentGateReady=True\n"
        "    CapacityEnforced=True\n"
        "    RoutePublished=True\n"
        "    UpstreamHealthy=True\n"
        "    Ready=True\n"
        "  Warning: maxBodyBytes is advertised only:"
        " request buffering would break streaming responses\n"
        "  Warning: perMTok is not charged: obol-stack's verifier quotes the first price set,"
        " and perRequest comes first; drop perRequest to charge per token\n"
    )


@pytest.mark.parametrize(
    ("offer", "expected"),
    [
        pytest.param(
            lambda: synced(QWEN, in_flight=8),
            {"In flight": "8", "Capacity state": "Saturated", "Max in-flight": "8"},
            id="saturated when in flight reaches maxInFlight",
        ),
        pytest.param(
            lambda: synced(QWEN, in_flight=0),
            {"In flight": "0", "Capacity state": "Available"},
            id="available with nothing in flight",
        ),
        pytest.param(
            lambda: synced(LLAMA),
            {
                "In flight": "Unknown",
                "Capacity state": "Unknown",
                "GPU count": "2",
                "Per-buyer max in-flight": "-",
                "Price": "0.25 OBOL/request on ethereum",
            },
            id="unknown when nothing is observed",
        ),
        pytest.param(
            lambda: synced(WEATHER),
            {
                "Capacity mode": "none",
                "Max in-flight": "-",
                "GPU count": "-",
                "Capacity state": "Unknown",
                "Scaling": "scalingControlled=false"
                " (capacity is declared by the seller; nothing is autoscaled)",
            },
            id="no envelope shows mode none",
        ),
        pytest.param(
            lambda: example(QWEN),
            {
                "Endpoint": "(not reported yet)",
                "Ready": "Unknown",
                "Price": "0.002 USDC/request + 0.50 USDC/MTok on base",
                "Capacity mode": "external-static",
                "Max in-flight": "8",
                "In flight": "Unknown",
                "Capacity state": "Unknown",
            },
            id="no status yet falls back to the spec",
        ),
    ],
)
def test_status_facts(offer: Any, expected: dict[str, str]) -> None:
    shown = facts(offer_view(offer()))
    assert {label: shown[label] for label in expected} == expected


def test_failing_conditions_show_reason_and_message() -> None:
    view = offer_view(synced(WEATHER, route_accepted=False))
    assert condition_lines(view) == [
        "PaymentGateReady=True",
        "CapacityEnforced=False (NotConfigured: no capacity envelope:"
        " requests are not admission-limited)",
        "RoutePublished=False (NotAccepted: Accepted is False: listener web allows Same)",
        "UpstreamHealthy=Unknown (NotObserved: upstream health is not observed)",
        "Ready=False (NotReady: RoutePublished is False (NotAccepted))",
    ]
    assert facts(view)["Ready"] == "False"


def test_pending_children_show_as_pending() -> None:
    view = offer_view(synced(QWEN, children_observed=False))
    lines = condition_lines(view)
    assert lines[0].startswith("PaymentGateReady=False (Pending: not observed yet: Middleware")
    assert lines[-1].startswith("Ready=False (NotReady: PaymentGateReady is False (Pending)")


def test_invalid_spec_is_shown_with_its_field_path() -> None:
    offer = example(QWEN)
    offer["spec"]["capacity"]["perBuyerMaxInFlight"] = 99
    status = sync(parse_request(sync_request(parent_object(offer))), SETTINGS).response["status"]
    view = offer_view({**offer, "status": status})
    assert condition_lines(view) == [
        "Ready=False (InvalidSpec: spec.capacity.perBuyerMaxInFlight:"
        " must be <= maxInFlight (99 > 8))"
    ]


def test_several_offers_are_separated_by_a_blank_line() -> None:
    text = status_text([offer_view(synced(QWEN)), offer_view(synced(WEATHER))])
    blocks = text.split("\n\n")
    assert [block.splitlines()[0] for block in blocks] == [
        "ServiceOffer llm-sellers/qwen36-fast",
        "ServiceOffer tenant-a/weather-api",
    ]


def test_status_record_is_structured_and_says_unknown() -> None:
    record = status_record(offer_view(synced(LLAMA)))
    assert record["capacity"] == {
        "mode": "external-static",
        "scalingControlled": False,
        "gpuCount": 2,
        "maxInFlight": 4,
        "perBuyerMaxInFlight": None,
        "inFlight": "Unknown",
        "state": "Unknown",
    }
    assert record["price"] == "0.25 OBOL/request"
    assert record["network"] == "ethereum"
    assert [c["type"] for c in record["conditions"]][-1] == "Ready"


# --- list --------------------------------------------------------------------------------------


def test_list_table() -> None:
    offers = [synced(QWEN, in_flight=8), synced(LLAMA), synced(WEATHER, route_accepted=False)]
    table = format_table(LIST_COLUMNS, [list_row(offer_view(o)) for o in offers])
    assert table == (
        "NAMESPACE    NAME         TYPE       PRICE                               NETWORK"
        "       MAX-IN-FLIGHT  CAPACITY   READY\n"
        "llm-sellers  qwen36-fast  inference  0.002 USDC/request + 0.5 USDC/MTok  base"
        "          8              Saturated  True\n"
        "llm-sellers  llama-obol   inference  0.25 OBOL/request                   ethereum"
        "      4              Unknown    True\n"
        "tenant-a     weather-api  http       0.0001 USDC/request                 base-sepolia"
        "  -              Unknown    False\n"
    )


def test_list_record() -> None:
    assert list_record(offer_view(synced(QWEN, in_flight=2))) == {
        "namespace": "llm-sellers",
        "name": "qwen36-fast",
        "type": "inference",
        "price": "0.002 USDC/request + 0.5 USDC/MTok",
        "network": "base",
        "maxInFlight": 8,
        "capacity": "Available",
        "ready": "True",
    }


def test_spec_fallback_names_token_addresses_as_written() -> None:
    address = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
    offer = example(WEATHER)
    offer["spec"]["payment"]["asset"] = address
    assert offer_view(offer).price == f"0.0001 {address}/request"


# --- leniency ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
# Every place the view reads (list indexes for conditions).
READ_PATHS: list[tuple[str | int, ...]] = [
    ("metadata",),
    ("metadata", "name"),
    ("metadata", "namespace"),
    ("spec",),
    ("spec", "type"),
    ("spec", "capacity"),
    ("spec", "payment"),
    *(
        ("spec", "capacity", key)
        for key in ("mode", "gpuCount", "maxInFlight", "perBuyerMaxInFlight")
    ),
    ("spec", "payment", "asset"),
    ("spec", "payment", "network"),
    ("spec", "payment", "price"),
    ("spec", "payment", "price", "perRequest"),
    ("spec", "payment", "price", "perMTok"),
    ("status",),
    ("status", "endpoint"),
    ("status", "capacity"),
    ("status", "payment"),
    *(
        ("status", "capacity", key)
        for key in (
            "mode",
            "scalingControlled",
            "gpuCount",
            "maxInFlight",
            "perBuyerMaxInFlight",
            "inFlight",
            "state",
            "message",
        )
    ),
    ("status", "payment", "summary"),
    ("status", "payment", "network"),
    ("status", "payment", "quote"),
    ("status", "payment", "quote", "amount"),
    ("status", "payment", "quote", "basis"),
    ("status", "payment", "asset"),
    ("status", "payment", "asset", "symbol"),
    ("status", "warnings"),
    ("status", "warnings", 0),
    ("status", "conditions"),
    ("status", "conditions", 0),
    *(("status", "conditions", 0, key) for key in ("type", "status", "reason", "message")),
]
WELL_FORMED = synced(QWEN, in_flight=3)


def mutated(offer: Any, path: tuple[str | int, ...], value: Any) -> None:
    """Set ``value`` at ``path`` when every parent on the way is still a container."""
    node = offer
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(node, dict) or (
        isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node)
    ):
        node[path[-1]] = value


def assert_renders(offer: Any) -> None:
    view = offer_view(offer)
    assert status_text([view]).startswith("ServiceOffer ")
    assert len(list_row(view)) == len(LIST_COLUMNS)
    assert status_record(view)["capacity"]["scalingControlled"] in (True, False)


ODD_VALUES = [None, 0, 7, -1, True, 1.5, "", "x", [], [1, "a"], {}, {"a": 1}]


@pytest.mark.parametrize("path", READ_PATHS, ids=lambda path: ".".join(map(str, path)))
def test_view_survives_every_odd_value_at_each_place_it_reads(path: tuple[Any, ...]) -> None:
    for value in ODD_VALUES:
        offer = copy.deepcopy(WELL_FORMED)
        mutated(offer, path, value)
        assert_renders(offer)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(READ_PATHS), json_values), min_size=1, max_size=12))
def test_view_survives_combinations_of_odd_fields(changes: list[tuple[Any, Any]]) -> None:
    offer = copy.deepcopy(WELL_FORMED)
    for path, value in changes:
        mutated(offer, path, value)
    assert_renders(offer)

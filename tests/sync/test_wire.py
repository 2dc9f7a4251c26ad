"""The server's path through the core: ``sync_for_wire`` gives ``sync``'s bytes, memo or not.

Design notes:
- ``sync_for_wire`` differs from ``sync`` only in how the answer is built (the children of a
  valid offer pre-serialised, what a spec decides remembered per offer and spec from its second
  sight); what reaches Metacontroller must be byte for byte the same. Each request here is
  answered three times (planned afresh, remembered, answered from the memo), and the fuzzers in
  tests/robustness check the same on hostile input.
- The memo's key must hold everything the plan depends on: the offer's namespace and name, the
  spec, the settings, and the asset registry (which ``Settings`` leaves out of its equality).
  Each test below changes one of them and expects the answer to follow.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from hooks.core.assets import BUILTIN_REGISTRY
from hooks.core.settings import Settings
from hooks.core.sync import PLAN_MEMO_ENTRIES, _memoised_plan, seen_before, sync, sync_for_wire

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted((ROOT / "tests/fixtures/sync").glob("*.json"))
SORTED = orjson.OPT_SORT_KEYS


def load(path: Path) -> dict[str, Any]:
    loaded = orjson.loads(path.read_bytes())
    assert isinstance(loaded, dict)
    return loaded


def wire_bytes(request: dict[str, Any], settings: Settings) -> bytes:
    """The wire answer, asked three times: planned afresh, then remembered, then remembered."""
    bodies = set()
    for _ in range(3):
        response, children = sync_for_wire(copy.deepcopy(request), settings)
        body = orjson.dumps(response, option=SORTED)
        assert children == len(orjson.loads(body)["children"])
        bodies.add(body)
    assert len(bodies) == 1
    return bodies.pop()


def sync_bytes(request: dict[str, Any], settings: Settings) -> bytes:
    return orjson.dumps(sync(request, settings), option=SORTED)


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_wire_answer_is_byte_identical_to_sync(fixture: Path) -> None:
    assert wire_bytes(load(fixture), Settings()) == sync_bytes(load(fixture), Settings())


def full_request() -> dict[str, Any]:
    return load(ROOT / "tests/fixtures/sync/02-full-envelope-existing-children.json")


def test_a_repeated_spec_is_answered_from_the_memo() -> None:
    wire_bytes(full_request(), Settings())
    before = _memoised_plan.cache_info().hits
    changed = full_request()
    changed["parent"]["metadata"]["resourceVersion"] = "999999"
    assert wire_bytes(changed, Settings()) == sync_bytes(changed, Settings())
    assert _memoised_plan.cache_info().hits == before + 3


def test_a_spec_is_remembered_only_from_its_second_sight() -> None:
    request = full_request()
    request["parent"]["spec"]["upstream"]["port"] = 4321  # a spec no other test uses
    before = _memoised_plan.cache_info()
    sync_for_wire(copy.deepcopy(request), Settings())
    first = _memoised_plan.cache_info()
    assert (first.misses, first.currsize) == (before.misses, before.currsize)
    sync_for_wire(copy.deepcopy(request), Settings())
    assert _memoised_plan.cache_info().misses == before.misses + 1
    sync_for_wire(copy.deepcopy(request), Settings())
    assert _memoised_plan.cache_info().hits == first.hits + 1


def test_sightings_forget_the_oldest_keys() -> None:
    base = 1 << 40  # hashes no other test produces in practice
    assert not seen_before(base)
    assert seen_before(base)
    for other in range(1, 2 * PLAN_MEMO_ENTRIES):
        assert not seen_before(base + other)
    assert seen_before(base)  # its second sight refreshed it: still among the last 2,048
    for other in range(2 * PLAN_MEMO_ENTRIES, 4 * PLAN_MEMO_ENTRIES):
        seen_before(base + other)
    assert not seen_before(base)


def test_the_memo_is_keyed_on_the_offer_name_and_namespace() -> None:
    first = full_request()
    wire_bytes(first, Settings())
    for field, value in (("name", "another-offer"), ("namespace", "other-sellers")):
        moved = full_request()
        moved["parent"]["metadata"][field] = value
        body = wire_bytes(moved, Settings())
        assert body == sync_bytes(moved, Settings())
        assert value.encode() in body


def test_the_memo_is_keyed_on_the_spec() -> None:
    wire_bytes(full_request(), Settings())
    changed = full_request()
    changed["parent"]["spec"]["upstream"]["port"] = 9999
    body = wire_bytes(changed, Settings())
    assert body == sync_bytes(changed, Settings())
    assert b'"port":9999' in body


def test_the_memo_is_keyed_on_the_settings() -> None:
    wire_bytes(full_request(), Settings())
    other = Settings(gateway_name="another-gateway")
    body = wire_bytes(full_request(), other)
    assert body == sync_bytes(full_request(), other)
    assert b"another-gateway" in body


def test_the_memo_is_keyed_on_the_asset_registry() -> None:
    # Settings ignores its registry in == and hash; the memo must not.
    request = full_request()
    spec = request["parent"]["spec"]
    network, asset = spec["payment"]["network"], spec["payment"].get("asset", "usdc")
    token = BUILTIN_REGISTRY.resolve(network, asset)
    renamed = {
        "symbol": token.symbol,
        "network": token.network,
        "address": token.address,
        "decimals": token.decimals,
        "transferMethod": token.transfer_method,
        "eip712Name": "Renamed Token",
        "eip712Version": token.eip712_version,
    }
    other = Settings(asset_registry=BUILTIN_REGISTRY.extend({"assets": [renamed]}))
    assert other == Settings()  # the reason the registry is a key of its own
    wire_bytes(request, Settings())
    body = wire_bytes(full_request(), other)
    assert body == sync_bytes(full_request(), other)
    assert b"Renamed Token" in body


def test_invalid_specs_are_not_remembered() -> None:
    request = full_request()
    request["parent"]["spec"]["upstream"]["port"] = 0
    before = _memoised_plan.cache_info()
    assert wire_bytes(request, Settings()) == sync_bytes(request, Settings())
    after = _memoised_plan.cache_info()
    assert (after.hits, after.currsize) == (before.hits, before.currsize)


def test_sync_gives_fresh_children_that_callers_may_change() -> None:
    first = sync(full_request(), Settings())
    first["children"][0]["metadata"]["name"] = "changed-by-a-caller"
    first["children"].clear()
    assert sync_bytes(full_request(), Settings()) == wire_bytes(full_request(), Settings())
    assert b"changed-by-a-caller" not in sync_bytes(full_request(), Settings())

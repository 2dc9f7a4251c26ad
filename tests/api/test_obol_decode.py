"""obol-stack's verifier can decode every offer this project ships or writes, with the real library.

Design notes:
- obol-stack's x402 verifier (internal/x402/serviceoffer_source.go) decodes every ServiceOffer
  in the cluster with k8s.io/apimachinery's ``runtime.DefaultUnstructuredConverter`` into its
  Go types (internal/monetizeapi/types.go), and ONE offer that fails aborts the route reload for
  every offer. :mod:`tests.support.obol_decode` runs that converter (the Go program in
  ``tests/obol_decode``); nothing here re-implements it.
- What is decoded is what the API server would hold: every example; every obol-stack-shaped
  fixture and every sync fixture's parent, each with the status the hook wrote for it (its
  golden). The offers ``obol sell`` writes are checked in tests/cli/test_sell_obol_decode.py.
- The check must be able to fail: the string form of ``payment.asset`` (which this hook still
  accepts) and a number where obol-stack declares a string are refused, with the converter's
  own message.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.obol_decode import decode

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))
OBOL_FIXTURES = sorted((ROOT / "tests/fixtures/obol").glob("*.yaml"))
SYNC_FIXTURES = {p.stem: p for p in sorted((ROOT / "tests/fixtures/sync").glob("*.json"))}
SYNC_GOLDENS = sorted((ROOT / "tests/golden").glob("sync*/*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _stored(parent: dict[str, Any], golden: Path) -> dict[str, Any]:
    """The offer as the API server holds it once the hook's status (the golden's) is written."""
    stored = copy.deepcopy(parent)
    stored["status"] = _load(golden)["status"]
    return stored


def _assert_all_decode(named: dict[str, dict[str, Any]]) -> None:
    verdicts = decode(list(named.values()))
    failed = {name: v.error for name, v in zip(named, verdicts, strict=True) if not v.ok}
    assert not failed, f"obol-stack's verifier cannot decode: {json.dumps(failed, indent=2)}"


def test_every_example_decodes() -> None:
    _assert_all_decode({str(p.relative_to(ROOT)): _load(p) for p in EXAMPLES})


def test_every_obol_fixture_decodes_with_the_status_the_hook_writes() -> None:
    named = {}
    for path in OBOL_FIXTURES:
        named[path.name] = _load(path)
        named[f"{path.name} + status"] = _stored(
            _load(path), ROOT / "tests/golden/obol" / path.name
        )
    _assert_all_decode(named)


def _sync_goldens(*, string_asset: bool) -> dict[str, dict[str, Any]]:
    named = {}
    for golden in SYNC_GOLDENS:
        parent = json.loads(SYNC_FIXTURES[golden.stem].read_text())["parent"]
        if isinstance(parent["spec"]["payment"].get("asset"), str) == string_asset:
            named[str(golden.relative_to(ROOT))] = _stored(parent, golden)
    return named


def test_every_sync_golden_decodes_as_the_stored_offer() -> None:
    named = _sync_goldens(string_asset=False)
    assert len(named) >= 20, sorted(named)
    _assert_all_decode(named)


def test_a_stored_string_asset_does_not_decode_and_its_status_says_so() -> None:
    """The hook still accepts the string form, renders it, and warns (OBOL_VERIFIER=obol-stack,
    the default) that obol-stack's verifier cannot decode it."""
    named = _sync_goldens(string_asset=True)
    assert list(named) == ["tests/golden/sync/16-string-asset.yaml"]
    [verdict] = decode(list(named.values()))
    assert not verdict.ok and "cannot restore struct from: string" in verdict.error
    [stored] = named.values()
    assert any(
        "payment.asset is the string 'usdc': obol-stack's verifier" in w
        for w in stored["status"]["warnings"]
    )


def _example_with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    offer = _load(ROOT / "examples/inference-qwen36-fast.yaml")
    node = offer
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return offer


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        pytest.param(
            ("spec", "payment", "asset"), "usdc", "cannot restore struct from: string", id="usdc"
        ),
        pytest.param(
            ("spec", "payment", "asset"),
            "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
            "cannot restore struct from: string",
            id="an address",
        ),
        pytest.param(
            ("spec", "payment", "price", "perRequest"), 0.002, "unrecognized type", id="a number"
        ),
    ],
)
def test_what_obol_stack_cannot_decode_is_refused(
    path: tuple[str, ...], value: Any, error: str
) -> None:
    good = _load(ROOT / "examples/inference-qwen36-fast.yaml")
    ok, bad = decode([good, _example_with(path, value)])
    assert ok.ok
    assert not bad.ok and error in bad.error, bad

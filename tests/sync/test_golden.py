"""Golden tests: each request fixture in tests/fixtures/sync gives exactly its golden response.

Design notes:
- One scenario per file pair, named by behaviour. Fixtures are frozen inputs written by hand or
  captured from a real API server, never produced by the hook (tests/fixtures/sync/README.md);
  goldens are then written by ``pytest tests/sync --update-goldens``.
- Goldens are YAML for review; the comparison is on parsed data. Byte-for-byte determinism is
  tests/sync/test_properties.py's topic (every generated offer, twice).
- Review golden diffs like code: they are the rendered manifests users get.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from tests.support.goldens import assert_matches_golden, assert_response_schema_valid

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted((ROOT / "tests/fixtures/sync").glob("*.json"))
GOLDEN = ROOT / "tests/golden/sync"


# The same requests answered under the non-default payment gates (docs/verifier-contract.md):
# golden directory, settings, and the fixtures that show what changes.
GATE_GOLDENS = {
    "sync-seller-proxy": (
        Settings(payment_gate="seller-proxy"),
        ("01-full-envelope-new-offer", "02-full-envelope-existing-children", "03-no-capacity",
         "05-non-streaming-body-limit"),
    ),
    "sync-settles-on-verify": (
        Settings(verifier_settlement="on-verify"),
        ("01-full-envelope-new-offer",),
    ),
    # A seller proxy that enforces perBuyerMaxInFlight (obol-stack's has no per-buyer limit).
    "sync-seller-proxy-per-buyer": (
        Settings(payment_gate="seller-proxy", verifier="obol-stack-per-buyer"),
        ("01-full-envelope-new-offer",),
    ),
}  # fmt: skip
GATE_CASES = [
    pytest.param(directory, settings, stem, id=f"{directory}/{stem}")
    for directory, (settings, stems) in GATE_GOLDENS.items()
    for stem in stems
]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def check_golden(response: dict[str, Any], golden: Path, update_goldens: bool) -> None:
    assert_matches_golden(response, golden, update=update_goldens)


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_response_matches_golden(fixture: Path, update_goldens: bool) -> None:
    response = sync(parse_request(load(fixture)), Settings()).response
    check_golden(response, GOLDEN / f"{fixture.stem}.yaml", update_goldens)


@pytest.mark.parametrize(("directory", "settings", "stem"), GATE_CASES)
def test_gate_mode_response_matches_golden(
    directory: str, settings: Settings, stem: str, update_goldens: bool
) -> None:
    fixture = ROOT / "tests/fixtures/sync" / f"{stem}.json"
    response = sync(parse_request(load(fixture)), settings).response
    check_golden(response, ROOT / "tests/golden" / directory / f"{stem}.yaml", update_goldens)
    for child in response["children"]:
        if child["kind"] in ("ConfigMap", "Service", "TraefikService"):
            continue  # applied to a real API server (with Traefik's CRDs) by the e2e suite
        from tests.support.crd_validation import format_violations, validate_object

        violations = validate_object(child)
        assert not violations, format_violations(violations)


def test_every_golden_has_a_fixture() -> None:
    stems = {p.stem for p in FIXTURES}
    orphans = [g.name for g in GOLDEN.glob("*.yaml") if g.stem not in stems]
    assert not orphans
    for directory, (_, gate_stems) in GATE_GOLDENS.items():
        extra = [g.name for g in (GOLDEN.parent / directory).glob("*.yaml")]
        assert sorted(extra) == sorted(f"{stem}.yaml" for stem in gate_stems), directory


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_golden_children_and_status_are_schema_valid(fixture: Path) -> None:
    assert_response_schema_valid(sync(parse_request(load(fixture)), Settings()).response)

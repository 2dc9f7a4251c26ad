"""Golden-file comparison shared by the sync and obol-offer golden tests.

A golden is YAML for review; the comparison is on parsed data. ``--update-goldens`` rewrites it,
and a missing golden is written and the test fails, so a new one is always reviewed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml


def assert_matches_golden(response: Any, golden: Path, *, update: bool) -> None:
    """Compare ``response`` with the YAML golden at ``golden`` (or rewrite it when updating)."""
    rendered = yaml.safe_dump(response, sort_keys=True, width=100)
    if update or not golden.exists():
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(rendered)
        if not update:
            pytest.fail(f"golden {golden.name} was missing and has been written; review it")
    assert response == yaml.safe_load(golden.read_text())


def assert_response_schema_valid(response: Any) -> None:
    """Every non-core child and the status of a sync response pass their CRD schemas."""
    from tests.support.crd_validation import format_violations, validate_object, validate_status

    for child in response["children"]:
        if child["kind"] in ("ConfigMap", "Service"):
            continue  # core kinds: applied to a real API server by the end-to-end suite
        violations = validate_object(child)
        assert not violations, format_violations(violations)
    assert not validate_status(response["status"])

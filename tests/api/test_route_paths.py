"""spec.path: what Gateway API refuses in an HTTPRoute path is refused before anyone applies it.

Test design notes:
- The rules come from Gateway API v1.5.1's HTTPRoute CRD (CEL on ``rules[].matches[].path``):
  no ``//``, no ``/./`` or ``/../``, no value ending in ``/.`` or ``/..``; its character rule
  is stricter than ours nowhere (obol-stack's ``spec.path`` pattern allows a subset).
- Three judges agree on every path (tests/support/one_validation.py): ``obol sell --path``, the
  CRD (offline JSON Schema + CEL; the real API server judges the same table in
  tests/e2e/test_crd_validation.py, with Gateway API's own CRD refusing the route the hook would
  otherwise have rendered) and the hook (``Ready=False/InvalidSpec`` at ``spec.path``).
- ``/x/../api`` is ``/api``: refused for its dot segment, before the reserved-path rule reads it.
- Names that merely contain dots (``/v1.2``, ``/x/..y``, ``/.x``) stay valid.
"""

from __future__ import annotations

import pytest

from hooks.core.errors import SpecError
from hooks.core.models import parse_spec
from tests.support.one_validation import (
    GOOD,
    args_for,
    cli_accepts,
    crd_accepts,
    hook_accepts,
    manifest_for,
)

DOUBLE_SLASH = "must not contain '//' (Gateway API refuses it in an HTTPRoute path)"
DOT_SEGMENT = "must not contain a '.' or '..' segment (Gateway API refuses it in an HTTPRoute path)"

PATHS = [
    pytest.param("/x/../api", DOT_SEGMENT, id="dot-dot-into-reserved"),
    pytest.param("/services/a/../b", DOT_SEGMENT, id="dot-dot-segment"),
    pytest.param("/x/..", DOT_SEGMENT, id="ends-with-dot-dot"),
    pytest.param("/./x", DOT_SEGMENT, id="dot-segment"),
    pytest.param("/x/.", DOT_SEGMENT, id="ends-with-dot"),
    pytest.param("/.", DOT_SEGMENT, id="root-dot"),
    pytest.param("//api", DOUBLE_SLASH, id="leading-double-slash"),
    pytest.param("/a//b", DOUBLE_SLASH, id="inner-double-slash"),
    pytest.param("/a/b//", DOUBLE_SLASH, id="trailing-double-slash"),
    pytest.param("/services/qwen", None, id="plain"),
    pytest.param("/v1.2/chat", None, id="dot-in-a-name"),
    pytest.param("/x/..y", None, id="dots-in-a-name"),
    pytest.param("/.x/y", None, id="leading-dot-name"),
    pytest.param("/x/y/", None, id="trailing-slash"),
]
FLAGS = {
    "upstream": "vllm",
    "port": 8000,
    "network": "base-sepolia",
    "price": "0.001",
    "pay_to": GOOD,
}


@pytest.mark.parametrize(("path", "reason"), PATHS)
def test_the_model_refuses_what_gateway_api_refuses_at_spec_path(
    path: str, reason: str | None
) -> None:
    spec = {**manifest_for({**FLAGS, "path": path})["spec"]}
    if reason is None:
        assert parse_spec(spec).path == path
        return
    with pytest.raises(SpecError) as caught:
        parse_spec(spec)
    assert [(p.path, p.reason, p.value) for p in caught.value.problems] == [
        ("spec.path", reason, path)
    ]


@pytest.mark.parametrize(("path", "reason"), PATHS)
def test_cli_crd_and_hook_agree_on_every_path(path: str, reason: str | None) -> None:
    flags = {**FLAGS, "path": path}
    accepted, stderr = cli_accepts([*args_for(flags), "--path", path])
    manifest = manifest_for(flags)
    assert (accepted, crd_accepts(manifest), hook_accepts(manifest)) == (reason is None,) * 3
    if reason is not None:
        assert f"spec.path: {reason}" in stderr
        assert len(stderr.strip().splitlines()) == 1, stderr

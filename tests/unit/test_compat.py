"""hooks.core.compat: what the hook notices when obol-stack's controller was (or is) here.

Design notes: the objects are hand-written in the shapes the API server returns (managedFields
entries, ownerReferences, finalizers); the e2e migration test proves the same on a real server.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from hooks.core.compat import (
    OBOL_FINALIZER,
    finalizer_patch_command,
    foreign_controllers,
    leftover_finalizer_warning,
)

UID = "0b0b0b0b-0000-4000-8000-000000000001"


def child(**meta: Any) -> dict[str, Any]:
    return {"kind": "HTTPRoute", "metadata": {"name": "so-qwen", **meta}}


def test_our_own_children_are_not_foreign() -> None:
    ours = child(
        managedFields=[{"manager": "metacontroller", "operation": "Update"}],
        ownerReferences=[{"kind": "ServiceOffer", "name": "qwen", "uid": UID, "controller": True}],
    )
    assert foreign_controllers([ours], UID) == []


def test_obols_field_manager_is_named() -> None:
    theirs = child(managedFields=[{"manager": "serviceoffer-controller", "operation": "Apply"}])
    assert foreign_controllers([theirs], UID) == [
        "HTTPRoute so-qwen (field manager serviceoffer-controller)"
    ]


def test_a_child_controlled_by_another_object_is_named() -> None:
    other = child(
        ownerReferences=[
            {"kind": "ServiceOffer", "name": "old", "uid": "other-uid", "controller": True},
            {"kind": "ConfigMap", "name": "x", "uid": "y"},
        ]
    )
    assert foreign_controllers([other], UID) == [
        "HTTPRoute so-qwen (controlled by ServiceOffer old uid other-uid)"
    ]


def test_the_finalizer_command_removes_only_that_finalizer_and_is_shell_safe() -> None:
    command = shlex.split(finalizer_patch_command("llm", "qwen", 1))
    assert command[:7] == [
        "kubectl",
        "patch",
        "serviceoffers.obol.org",
        "qwen",
        "-n",
        "llm",
        "--type=json",
    ]
    assert json.loads(command[-1]) == [
        {"op": "test", "path": "/metadata/finalizers/1", "value": OBOL_FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/1"},
    ]


def test_the_finalizer_warning_only_when_obols_finalizer_is_set() -> None:
    parent: dict[str, Any] = {"metadata": {"finalizers": ["example.com/other"]}}
    assert leftover_finalizer_warning(parent, "llm", "qwen") is None
    parent["metadata"]["finalizers"].append(OBOL_FINALIZER)
    warning = leftover_finalizer_warning(parent, "llm", "qwen")
    assert warning is not None
    assert warning.endswith(finalizer_patch_command("llm", "qwen", 1))

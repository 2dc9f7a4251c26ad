"""The Metacontroller stand-in's related-resource rules, checked without a cluster.

Path ownership rests on the stand-in sending ``related`` exactly as Metacontroller does, so the
rule handling of ``pkg/controller/common/customize/manager.go`` is pinned here: how a rule's
fields choose the selection type (``determineSelectionType``), and how label selectors select
(``metav1.LabelSelectorAsSelector``: nil and empty match everything). Not marked e2e.
"""

from __future__ import annotations

from typing import Any

import pytest

from .driver import label_selector, labels_match, selection_type

OFFERS = {"apiVersion": "obol.org/v1alpha1", "resource": "serviceoffers"}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, "Labels"),  # what the hook answers: every namespace under hook v2
        ({"labelSelector": {}}, "Labels"),
        ({"labelSelector": {}, "namespace": "a"}, "NamespaceAndLabels"),
        ({"namespace": "a"}, "NamespacesAndNames"),
        ({"names": ["x"]}, "NamespacesAndNames"),
        ({"namespaceSelector": {}}, "NamespaceSelector"),
    ],
)
def test_selection_type_follows_the_rule_fields(extra: dict[str, Any], expected: str) -> None:
    assert selection_type({**OFFERS, **extra}) == expected


@pytest.mark.parametrize(
    "extra",
    [
        {"names": ["x"], "labelSelector": {}},
        {"names": ["x"], "namespaceSelector": {}},
        {"namespace": "a", "namespaceSelector": {}},
    ],
)
def test_contradictory_rules_are_refused(extra: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="cannot have both"):
        selection_type({**OFFERS, **extra})


def test_label_selectors_as_queries_and_as_predicates() -> None:
    selector = {
        "matchLabels": {"tier": "paid"},
        "matchExpressions": [
            {"key": "region", "operator": "In", "values": ["eu", "us"]},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert label_selector(selector) == "tier=paid,region in (eu,us),!legacy"
    assert label_selector({}) is None and label_selector(None) is None
    assert labels_match(selector, {"tier": "paid", "region": "eu"})
    assert not labels_match(selector, {"tier": "paid", "region": "ap"})
    assert not labels_match(selector, {"tier": "paid", "region": "eu", "legacy": "1"})
    assert labels_match({}, {}) and labels_match(None, {"any": "thing"})

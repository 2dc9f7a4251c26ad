"""Offers in the shapes obol-stack's newest CRD accepts and an older version of ours refused.

Shared by the offline checks (tests/api/test_obol_offers.py: the CRD stores each, the hook
answers it) and the real API server's (tests/e2e/test_crd_validation.py). Each shape changes one
field of a valid offer, as obol-stack's CLI or controller may have written it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]


def _set(*path: str, value: Any) -> Callable[[Obj], None]:
    def apply(spec: Obj) -> None:
        node = spec
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value

    return apply


# shape -> how it changes the spec.
OBOL_SHAPES: dict[str, Callable[[Obj], None]] = {
    "upstream.service not a DNS label": _set("upstream", "service", value="LiteLLM_Proxy.v2"),
    "upstream.namespace not a DNS label": _set("upstream", "namespace", value="Team Models"),
    "empty upstream.healthPath": _set("upstream", "healthPath", value=""),
    "maxTimeoutSeconds 0": _set("payment", "maxTimeoutSeconds", value=0),
    "maxTimeoutSeconds above 86400": _set("payment", "maxTimeoutSeconds", value=172800),
    "an empty price table": _set("payment", "price", value={}),
}


def obol_shaped(offer: Obj, shape: str) -> Obj:
    """A copy of ``offer`` in the named shape."""
    changed = copy.deepcopy(offer)
    OBOL_SHAPES[shape](changed["spec"])
    return changed

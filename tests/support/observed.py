"""Simulate what Metacontroller and the API server make of the children we return.

Sync requests in tests must look like real ones: observed children carry server-populated
metadata (uid, resourceVersion, managedFields, ownerReferences, Metacontroller's
``controller-uid`` label and last-applied annotation) and, for the HTTPRoute, the status the
Gateway wrote. This module builds such requests from a ServiceOffer and the hook's own output;
it is test data generation only and never used by the hook.
"""

from __future__ import annotations

import copy
import json
from typing import Any

PARENT_UID = "5b1c0e9e-3d5a-4c53-9a57-1f0c2d7e8a11"
TIME = "2026-11-20T10:00:00Z"
LATER = "2026-11-20T10:05:00Z"
CONTROLLER = {
    "apiVersion": "metacontroller.k8s.io/v1alpha1",
    "kind": "CompositeController",
    "metadata": {"name": "serviceoffer-controller"},
    "spec": {"generateSelector": True},
    "status": {},
}


def parent_object(
    offer: dict[str, Any], *, generation: int = 1, status: Any = None
) -> dict[str, Any]:
    """A ServiceOffer as Metacontroller sends it: server metadata, managedFields, status."""
    parent = copy.deepcopy(offer)
    meta = parent.setdefault("metadata", {})
    meta.setdefault("namespace", "default")
    meta.update(
        uid=PARENT_UID,
        resourceVersion="1001",
        generation=generation,
        creationTimestamp=TIME,
        finalizers=[],
        managedFields=[
            {
                "apiVersion": "obol.org/v1alpha1",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {}},
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "time": TIME,
            }
        ],
    )
    meta.setdefault("annotations", {})["kubectl.kubernetes.io/last-applied-configuration"] = (
        json.dumps(offer, sort_keys=True)
    )
    if status is not None:
        parent["status"] = status
    return parent


def _key(child: dict[str, Any]) -> str:
    return f"{child['kind']}.{child['apiVersion']}"


def observed_children(
    desired: list[dict[str, Any]],
    *,
    route_accepted: bool | None = True,
    v1_keys: bool = False,
    time: str = LATER,
) -> dict[str, dict[str, Any]]:
    """The ``children`` map Metacontroller would send after applying ``desired``.

    ``route_accepted``: True/False writes the Gateway's conditions on the HTTPRoute; None
    leaves the route without status (the Gateway has not reported yet).
    """
    children: dict[str, dict[str, Any]] = {
        "HTTPRoute.gateway.networking.k8s.io/v1": {},
        "Middleware.traefik.io/v1alpha1": {},
        "ConfigMap.v1": {},
        "Service.v1": {},
    }
    for number, child in enumerate(desired, start=1):
        applied = copy.deepcopy(child)
        applied["metadata"].setdefault("labels", {})["controller-uid"] = PARENT_UID
        live = copy.deepcopy(applied)
        meta = live["metadata"]
        meta["annotations"] = {
            "metacontroller.k8s.io/last-applied-configuration": json.dumps(
                applied, sort_keys=True, separators=(",", ":")
            )
        }
        meta.update(
            uid=f"00000000-0000-4000-8000-{number:012d}",
            resourceVersion=str(2000 + number),
            generation=1,
            creationTimestamp=time,
            ownerReferences=[
                {
                    "apiVersion": "obol.org/v1alpha1",
                    "kind": "ServiceOffer",
                    "name": "owner",
                    "uid": PARENT_UID,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            managedFields=[
                {
                    "apiVersion": child["apiVersion"],
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {}},
                    "manager": "metacontroller",
                    "operation": "Update",
                    "time": time,
                }
            ],
        )
        if child["kind"] == "Service":
            # What kube-apiserver stores for the hook's ExternalName Service: no clusterIP
            # (setting one is refused), an empty load-balancer status.
            live["status"] = {"loadBalancer": {}}
        if child["kind"] == "HTTPRoute" and route_accepted is not None:
            parent_ref = child["spec"]["parentRefs"][0]
            state = "True" if route_accepted else "False"
            live["status"] = {
                "parents": [
                    {
                        "controllerName": "traefik.io/gateway-controller",
                        "parentRef": dict(parent_ref),
                        "conditions": [
                            {
                                "type": "Accepted",
                                "status": state,
                                "reason": "Accepted" if route_accepted else "NotAllowedByListeners",
                                "message": "" if route_accepted else "listener web allows Same",
                                "observedGeneration": 1,
                                "lastTransitionTime": time,
                            },
                            {
                                "type": "ResolvedRefs",
                                "status": "True",
                                "reason": "ResolvedRefs",
                                "message": "",
                                "observedGeneration": 1,
                                "lastTransitionTime": time,
                            },
                        ],
                    }
                ]
            }
        name = meta["name"] if v1_keys else f"{meta['namespace']}/{meta['name']}"
        children.setdefault(_key(child), {})[name] = live
    return children


def sync_request(
    parent: dict[str, Any], children: dict[str, dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    """A whole CompositeController sync request."""
    return {
        "controller": CONTROLLER,
        "parent": parent,
        "children": children
        or {
            "HTTPRoute.gateway.networking.k8s.io/v1": {},
            "Middleware.traefik.io/v1alpha1": {},
            "ConfigMap.v1": {},
            "Service.v1": {},
        },
        "related": {},
        "finalizing": False,
        **extra,
    }

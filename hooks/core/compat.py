"""Living next to obol-stack's own ServiceOffer controller: what this hook notices and says.

Both controllers serve ``serviceoffers.obol.org`` and name their children ``so-<name>``
(docs/obol-stack.md, "Migrating from obol-stack's controller"):

* :func:`foreign_controllers` names the children another controller also writes (obol-stack's
  field manager in ``managedFields``, or a controller ownerReference that is not the offer);
  the sync then reports ``Ready=False/ControllerConflict`` instead of fighting it for ever.
* :func:`leftover_finalizer_warning` gives, in status, the command that removes obol-stack's
  finalizer: Metacontroller cannot remove another controller's finalizer, and once that
  controller is scaled to 0 nothing else will.

Pure: reads the request's objects only; no I/O, no clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

OBOL_FINALIZER: Final = "monetize.obol.org/finalizer"
OBOL_FIELD_MANAGER: Final = "serviceoffer-controller"
REASON_CONTROLLER_CONFLICT: Final = "ControllerConflict"


def finalizer_patch_command(namespace: str, name: str, index: int) -> str:
    """The kubectl command that removes obol-stack's finalizer (and only it) from one offer.

    A JSON patch with a ``test`` first: if the finalizer list changed since it was read, the
    patch fails instead of removing another controller's finalizer.
    """
    path = f"/metadata/finalizers/{index}"
    patch = json.dumps(
        [{"op": "test", "path": path, "value": OBOL_FINALIZER}, {"op": "remove", "path": path}],
        separators=(",", ":"),
    )
    return f"kubectl patch serviceoffers.obol.org {name} -n {namespace} --type=json -p '{patch}'"


def leftover_finalizer_warning(parent: Mapping[str, Any], namespace: str, name: str) -> str | None:
    """A status warning when the offer still carries obol-stack's finalizer, else None."""
    meta = parent.get("metadata")
    finalizers = meta.get("finalizers") if isinstance(meta, dict) else None
    if not isinstance(finalizers, list) or OBOL_FINALIZER not in finalizers:
        return None
    command = finalizer_patch_command(namespace, name, finalizers.index(OBOL_FINALIZER))
    return (
        f"finalizer {OBOL_FINALIZER} from obol-stack's serviceoffer-controller is set: once that"
        " controller is scaled to 0 nothing removes it and deleting this offer waits for ever;"
        f" remove it with: {command}"
    )


def foreign_controllers(children: Iterable[Mapping[str, Any]], parent_uid: str | None) -> list[str]:
    """``Kind name (why)`` for every observed child another controller also writes."""
    found: list[str] = []
    for child in children:
        meta = child.get("metadata")
        if not isinstance(meta, dict):
            continue
        why = _foreign_manager(meta) or _foreign_owner(meta, parent_uid)
        if why is not None:
            found.append(f"{child.get('kind')} {meta.get('name')} ({why})")
    return found


def _foreign_manager(meta: Mapping[str, Any]) -> str | None:
    entries = meta.get("managedFields")
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and entry.get("manager") == OBOL_FIELD_MANAGER:
            return f"field manager {OBOL_FIELD_MANAGER}"
    return None


def _foreign_owner(meta: Mapping[str, Any], parent_uid: str | None) -> str | None:
    owners = meta.get("ownerReferences")
    for owner in owners if isinstance(owners, list) else ():
        if not isinstance(owner, dict) or owner.get("controller") is not True:
            continue
        uid = owner.get("uid")
        if parent_uid is not None and isinstance(uid, str) and uid != parent_uid:
            return f"controlled by {owner.get('kind')} {owner.get('name')} uid {uid}"
    return None


def conflict_message(found: list[str]) -> str:
    """The Ready message when another controller writes our children."""
    return (
        "another controller also writes this offer's children: "
        + ", ".join(found)
        + "; obol-stack's serviceoffer-controller and this hook must not both run (scale it to"
        " 0: kubectl -n x402 scale deployment serviceoffer-controller --replicas=0)"
    )

"""A small Metacontroller stand-in that drives the real sync hook against the real API server.

Why a stand-in
    Metacontroller itself cannot be built here (it is not published as a Go module the build can
    fetch, and the e2e harness builds everything from the module proxy), so the e2e tests need
    something that plays its part. This module does exactly what one CompositeController sync
    does with the default ``dynamic-apply`` strategy, for the controller in
    ``metacontroller/compositecontroller.yaml`` (``generateSelector: true``, every child
    ``InPlace``, hook ``v2``), following shared/reference/metacontroller.md sections 1 and 2.3
    and Metacontroller's ``pkg/controller/common/manage_children.go`` and
    ``pkg/dynamic/apply/apply.go``:

    1. read the parent (a ServiceOffer) and its owned children: the four child types of
       :data:`hooks.core.api.CHILD_TYPES`, selected by the label ``controller-uid=<parent uid>`` in
       the parent's namespace; an orphan with that label is adopted (ownerReference added), a
       child controlled by another owner is ignored;
    2. get the related objects through the customize hook (below), then POST a v2 sync request
       ``{controller, parent, children: {"Kind.apiVersion": {"ns/name": obj}}, related: {...},
       finalizing: false}`` to the hook; anything but a 200 whose JSON has
       only ``status``, ``children``, ``resyncAfterSeconds`` and ``finalized`` changes nothing
       and raises :class:`HookError` (Metacontroller would record a SyncError event and retry);
    3. check the desired children (known type, parent namespace, no foreign ``controller-uid``)
       and stamp ``controller-uid``; one bad child fails the whole sync before any write;
    4. delete owned children that are no longer desired (UID precondition, background
       propagation), create missing ones (last-applied annotation, then an ownerReference with
       ``controller`` and ``blockOwnerDeletion``), and update existing ones with the three-way
       merge (observed, last-applied, desired), sending a PUT only when the merged object
       differs from the observed one; NotFound/Conflict/AlreadyExists are swallowed as
       Metacontroller does;
    5. write ``status`` (the hook's, plus ``observedGeneration`` = the parent's generation) to
       the status subresource, only when it differs from the live status.

    Every write is counted in :class:`SyncResult`, so a test can prove that a second sync of an
    unchanged offer writes nothing.

The customize hook and related objects
    As Metacontroller v4.17.2 does it, for a CompositeController with ``hooks.customize``
    (``pkg/controller/common/customize/manager.go``, request and response types in
    ``pkg/controller/common/customize/api/v2/hooks.go``, the map in
    ``pkg/controller/common/api/v2/common.go``, the call from ``syncParentObject`` in
    ``pkg/controller/composite/controller.go``):

    - the customize request is ``{controller, parent}``; its answer is cached per parent
      (uid, generation), so the hook is asked again only when the spec changes; a v2 answer is
      parsed strictly (``relatedResources`` only); a failed call fails the sync;
    - each rule selects by ``determineSelectionType``: ``names`` cannot go with a selector, nor
      ``namespace`` with ``namespaceSelector``; then labels only (v2: every namespace; v1: the
      parent's), namespace and labels, namespace and names, or a namespaceSelector (v2 only);
    - ``related`` maps ``Kind.apiVersion`` (initialised even when nothing matches) to
      ``namespace/name`` (``name`` for cluster-scoped objects), the parent itself included;
    - a change to any object makes Metacontroller enqueue every parent one of whose cached rules
      matches it (``findRelatedParents`` / ``matchesRelatedRule``): :meth:`Driver.related_parents`
      answers that question, so a test syncs exactly the parents Metacontroller would.

    Differences: objects are listed live from the API server, not from an informer cache (so a
    sync never sees a stale or not-yet-synced list), and the 20-minute expiry of the cache is
    not modelled.

What it is not
    Not Metacontroller: no informers or watches (tests call :meth:`Driver.sync` or
    :meth:`Driver.converge` instead of reacting to events), no work queue, backoff, events or
    resyncs (a test syncs the parents :meth:`Driver.related_parents` names), no finalize hook
    (the controller has none), no Rolling/Recreate/OnDelete strategies, no server-side-apply
    mode, and no release of children whose labels stop matching. JSON numbers are compared as
    Python values (Go's ``reflect.DeepEqual`` would tell ``1`` from ``1.0``; the API server never
    returns floats for these children).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import yaml

from hooks.core import api

from .kube import ApiError, KubeClient, collection_path, object_path
from .stack import REPO_ROOT, StackTimeout

CONTROLLER_MANIFEST = REPO_ROOT / "metacontroller" / "compositecontroller.yaml"
CONTROLLER_UID_LABEL = "controller-uid"
LAST_APPLIED = api.LAST_APPLIED_ANNOTATION
HOOK_TIMEOUT = 5.0  # the CompositeController's webhook timeout
RESPONSE_KEYS = frozenset({"status", "children", "resyncAfterSeconds", "finalized"})
# Metacontroller's knownMergeKeys, in precedence order (pkg/dynamic/apply/apply.go).
MERGE_KEYS = ("containerPort", "port", "mountPath", "name", "uid", "ip", "path")
# ObjectMeta fields Metacontroller reverts to the observed values before comparing.
SYSTEM_METADATA = (
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)

Obj = dict[str, Any]
StatusPredicate = Callable[[Mapping[str, Any]], bool]


class HookError(RuntimeError):
    """The hook did not answer 200 with a valid v2 response; nothing was changed."""

    def __init__(self, offer: str, message: str, status: int | None = None, body: str = "") -> None:
        self.offer = offer
        self.status = status
        self.body = body
        super().__init__(f"sync hook failed for {offer}: {message}")


class SyncFailed(RuntimeError):
    """The hook answered, but the desired children were rejected or a write failed."""

    def __init__(self, result: SyncResult) -> None:
        self.result = result
        super().__init__(
            f"sync of {result.namespace}/{result.name} failed: " + "; ".join(result.errors)
        )


@dataclass
class SyncResult:
    """What one sync did: the exchange with the hook and every write it caused."""

    namespace: str
    name: str
    request: Obj
    response: Obj
    status: Obj  # the status as written (or as found unchanged), with observedGeneration
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    # For each update: what it changed in the observed object (the last-applied annotation left
    # out), like Metacontroller's "Diff between observed and desired" log line.
    diffs: dict[str, list[str]] = field(default_factory=dict)
    status_written: bool = False
    errors: list[str] = field(default_factory=list)
    skipped_children: bool = False  # the parent is being deleted: children were left alone

    @property
    def child_writes(self) -> int:
        """Creates + updates (PUTs) + deletes + adoptions of children."""
        return len(self.created) + len(self.updated) + len(self.deleted) + len(self.adopted)

    @property
    def writes(self) -> int:
        """Every write, the status subresource included."""
        return self.child_writes + int(self.status_written)

    def describe(self) -> str:
        """One line for assertion messages."""
        text = (
            f"{self.namespace}/{self.name}: created={self.created} updated={self.updated}"
            f" deleted={self.deleted} adopted={self.adopted} status_written={self.status_written}"
        )
        if self.diffs:
            text += f" changes={self.diffs}"
        return text


# ---------------------------------------------------------------------------------------------
# dynamic-apply: a faithful port of Metacontroller's client-side three-way merge


def go_json(obj: Any) -> str:
    """JSON as Go's ``encoding/json`` writes it: sorted keys, compact, HTML characters escaped."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def merge(destination: Any, last_applied: Any, desired: Any) -> Any:
    """Apply the change from ``last_applied`` to ``desired`` onto ``destination`` (mutated)."""
    if isinstance(destination, dict):
        if not isinstance(desired, dict):
            raise ValueError(f"desired: expecting an object, got {type(desired).__name__}")
        return _merge_object(destination, last_applied or {}, desired)
    if isinstance(destination, list):
        if not isinstance(desired, list):
            raise ValueError(f"desired: expecting a list, got {type(desired).__name__}")
        return _merge_list(destination, last_applied or [], desired)
    # A scalar or null: take the desired value.
    return copy.deepcopy(desired)


def _merge_object(destination: Obj, last_applied: Mapping[str, Any], desired: Obj) -> Obj:
    for key in last_applied:
        if key not in desired:
            destination.pop(key, None)  # we set it before and no longer want it
    for key, value in desired.items():
        destination[key] = merge(destination.get(key), last_applied.get(key), value)
    return destination


def _merge_list(destination: list[Any], last_applied: list[Any], desired: list[Any]) -> list[Any]:
    key = _list_map_key(destination, last_applied, desired)
    if key is None:
        return copy.deepcopy(desired)  # not a list map: replaced wholesale
    dest_map = {_merge_key(item[key]): item for item in destination}
    last_map = {_merge_key(item[key]): item for item in last_applied}
    desired_map = {_merge_key(item[key]): item for item in desired}
    _merge_object(dest_map, last_map, desired_map)
    merged: list[Any] = []
    added: set[str] = set()
    for item in [*destination, *desired]:  # existing order first, then new desired items
        k = _merge_key(item[key])
        if k in dest_map and k not in added:
            merged.append(dest_map[k])
            added.add(k)
    return merged


def _list_map_key(*lists: list[Any]) -> str | None:
    common: set[str] | None = None
    for items in lists:
        for item in items:
            if not isinstance(item, dict):
                return None
            common = set(item) if common is None else common & set(item)
    return next((key for key in MERGE_KEYS if common and key in common), None)


def _merge_key(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def last_applied_of(obj: Mapping[str, Any]) -> Obj | None:
    """The object's last-applied annotation, parsed (None when absent or empty)."""
    text = (obj.get("metadata", {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return None
    parsed = json.loads(text)
    return parsed if isinstance(parsed, dict) else None


def set_last_applied(obj: Obj, applied: Mapping[str, Any]) -> None:
    """Store ``applied`` (as Go JSON) in the object's last-applied annotation."""
    text = go_json(applied)
    meta = obj.setdefault("metadata", {})
    annotations = meta.get("annotations") or {}
    meta["annotations"] = {**annotations, LAST_APPLIED: text}


def apply_update(observed: Obj, desired: Obj) -> Obj:
    """Metacontroller's ``ApplyUpdate``: the object to PUT (equal to ``observed`` if no-op)."""
    last = last_applied_of(observed)
    update = copy.deepcopy(desired)
    annotations = update.get("metadata", {}).get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        annotations[LAST_APPLIED] = ""
    merged = merge(copy.deepcopy(observed), last, update)
    for name in SYSTEM_METADATA:
        _revert(merged, observed, ("metadata", name))
    _revert(merged, observed, ("status",))
    set_last_applied(merged, update)
    return merged  # type: ignore[no-any-return]


def changes(old: Any, new: Any, path: str = "") -> list[str]:
    """Every leaf that differs between ``old`` and ``new``, as ``path: old -> new`` lines
    (``<absent>`` for a missing field), for readable failure messages."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[str] = []
        for key in sorted(old.keys() | new.keys()):
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                found.append(f"{sub}: {go_json(old[key])} -> <absent>")
            elif key not in old:
                found.append(f"{sub}: <absent> -> {go_json(new[key])}")
            else:
                found += changes(old[key], new[key], sub)
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            c
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for c in changes(a, b, f"{path}[{i}]")
        ]
    return [] if old == new else [f"{path}: {go_json(old)} -> {go_json(new)}"]


def _without_last_applied(obj: Obj) -> Obj:
    copied = copy.deepcopy(obj)
    (copied.get("metadata", {}).get("annotations") or {}).pop(LAST_APPLIED, None)
    return copied


def _revert(new: Obj, old: Mapping[str, Any], path: tuple[str, ...]) -> None:
    source: Any = old
    for part in path:
        source = source.get(part) if isinstance(source, Mapping) else None
        if source is None:
            break
    target = new
    for part in path[:-1]:
        target = target.setdefault(part, {})
    if source is None:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = copy.deepcopy(source)


# ---------------------------------------------------------------------------------------------
# the driver


def controller_object(path: Path = CONTROLLER_MANIFEST) -> Obj:
    """The CompositeController as Metacontroller sends it in ``controller`` (with ``status``)."""
    loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict) or loaded.get("kind") != "CompositeController":
        raise ValueError(f"{path}: not a CompositeController")
    return {**loaded, "status": {}}


def _controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") is True:
            return ref  # type: ignore[no-any-return]
    return None


def _describe(kind: str, obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{kind} {meta.get('namespace')}/{meta.get('name')}"


class Driver:
    """Syncs ServiceOffers through the real hook, as Metacontroller's dynamic-apply would.

    ``hook_url`` is the hook's ``/sync`` URL. :attr:`history` keeps every :class:`SyncResult`
    and :attr:`hook_errors` every failed hook call, for diagnostics.
    """

    def __init__(
        self,
        client: KubeClient,
        hook_url: str,
        *,
        controller: Obj | None = None,
        hook_timeout: float = HOOK_TIMEOUT,
    ) -> None:
        self.client = client
        self.hook_url = hook_url
        self.controller = controller if controller is not None else controller_object()
        self.hook_timeout = hook_timeout
        customize = self.controller.get("spec", {}).get("hooks", {}).get("customize")
        # The customize hook on the same server as the sync hook, at the manifest's path.
        self.customize_hook: Obj | None = customize
        self.customize_url = (
            urljoin(hook_url, urlsplit(customize["webhook"]["url"]).path) if customize else None
        )
        self.customize_calls = 0
        self._customize_cache: dict[tuple[str, Any], list[Obj]] = {}
        self.history: list[SyncResult] = []
        self.hook_errors: list[HookError] = []
        self._types = {
            api.children_key(kind, version): (version, kind, plural)
            for version, kind, plural in api.CHILD_TYPES
        }

    # -- reading ---------------------------------------------------------------------------------

    def parent_path(self, namespace: str, name: str) -> str:
        return object_path(api.API_VERSION, api.PLURAL, namespace, name)

    def get_parent(self, namespace: str, name: str) -> Obj:
        parent = self.client.get(self.parent_path(namespace, name))
        if parent is None:
            raise LookupError(f"ServiceOffer {namespace}/{name} not found")
        return parent

    def observed_children(self, parent: Obj, result: SyncResult | None = None) -> dict[str, Obj]:
        """``children`` of the sync request: owned children per type, keyed ``ns/name``."""
        meta = parent["metadata"]
        namespace, uid = meta["namespace"], meta["uid"]
        children: dict[str, Obj] = {}
        for key, (version, kind, plural) in self._types.items():
            group: Obj = {}
            path = collection_path(version, plural, namespace)
            for obj in self.client.list(path, f"{CONTROLLER_UID_LABEL}={uid}"):
                ref = _controller_ref(obj)
                if ref is not None and ref.get("uid") != uid:
                    continue  # controlled by someone else: not ours to manage
                if ref is None:
                    obj = self._adopt(parent, version, plural, obj)
                    if result is not None:
                        result.adopted.append(_describe(kind, obj))
                group[f"{namespace}/{obj['metadata']['name']}"] = obj
            children[key] = group
        return children

    def _adopt(self, parent: Obj, version: str, plural: str, obj: Obj) -> Obj:
        meta = obj["metadata"]
        refs = [*(meta.get("ownerReferences") or []), self._owner_ref(parent)]
        path = object_path(version, plural, meta["namespace"], meta["name"])
        return self.client.merge_patch(
            path,
            {"metadata": {"ownerReferences": refs, "resourceVersion": meta["resourceVersion"]}},
        )

    @staticmethod
    def _owner_ref(parent: Mapping[str, Any]) -> Obj:
        meta = parent["metadata"]
        return {
            "apiVersion": parent["apiVersion"],
            "kind": parent["kind"],
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    # -- the hook --------------------------------------------------------------------------------

    def call_hook(self, request: Obj, offer: str) -> Obj:
        """POST the sync request; return the response or raise :class:`HookError`."""
        response = self._post(self.hook_url, request, offer)
        unknown = set(response) - RESPONSE_KEYS
        if unknown:  # v2 responses are parsed strictly
            raise self._hook_error(
                offer, f"strict validation failed: unknown fields {sorted(unknown)}", 200
            )
        return response

    def _post(self, url: str, request: Obj, offer: str) -> Obj:
        """POST a hook request (webhook.go ``Call``): the JSON object answered with 200."""
        try:
            reply = requests.post(url, json=request, timeout=self.hook_timeout)
        except requests.RequestException as exc:
            raise self._hook_error(offer, f"http error: {exc}") from exc
        if reply.status_code != 200:
            raise self._hook_error(
                offer,
                f"unsupported status code: {reply.status_code} body: {reply.text[:500]}",
                reply.status_code,
                reply.text,
            )
        try:
            response = reply.json()
        except ValueError as exc:
            raise self._hook_error(offer, f"can't unmarshal response: {exc}", 200) from exc
        if not isinstance(response, dict):
            raise self._hook_error(offer, "response is not a JSON object", 200, reply.text)
        return response

    def _hook_error(
        self, offer: str, message: str, status: int | None = None, body: str = ""
    ) -> HookError:
        error = HookError(offer, message, status, body)
        self.hook_errors.append(error)
        return error

    # -- one sync --------------------------------------------------------------------------------

    def sync(self, namespace: str, name: str) -> SyncResult:
        """One full sync of ``namespace/name``; raises :class:`HookError` or :class:`SyncFailed`."""
        parent = self.get_parent(namespace, name)
        offer = f"{namespace}/{name}"
        result = SyncResult(namespace, name, {}, {}, {})
        children = self.observed_children(parent, result)
        request = {
            "controller": self.controller,
            "parent": parent,
            "children": children,
            "related": self.related_objects(parent),
            "finalizing": False,
        }
        result.request = request
        response = self.call_hook(request, offer)
        result.response = response
        desired = self._desired_children(parent, response.get("children"), result)
        if result.errors:
            self.history.append(result)
            raise SyncFailed(result)  # like Metacontroller: a bad child fails the sync, no writes
        if parent["metadata"].get("deletionTimestamp"):
            result.skipped_children = True  # without a finalize hook, children are ignored
        else:
            self._manage_children(parent, children, desired, result)
        self._write_status(parent, response.get("status"), result)
        self.history.append(result)
        if result.errors:
            raise SyncFailed(result)
        return result

    def _desired_children(self, parent: Obj, raw: Any, result: SyncResult) -> dict[str, Obj]:
        meta = parent["metadata"]
        namespace, uid = meta["namespace"], meta["uid"]
        desired: dict[str, Obj] = {key: {} for key in self._types}
        for child in raw or []:
            if not isinstance(child, dict):
                result.errors.append(f"desired child is not an object: {child!r}")
                continue
            child = copy.deepcopy(child)
            key = api.children_key(str(child.get("kind")), str(child.get("apiVersion")))
            if key not in self._types:
                result.errors.append(f"{key} is not one of the controller's child types")
                continue
            child_meta = child.setdefault("metadata", {})
            child_namespace = child_meta.get("namespace") or namespace
            if child_namespace != namespace:
                result.errors.append(f"{_describe(child['kind'], child)}: not in {namespace}")
                continue
            child_meta["namespace"] = namespace
            labels = child_meta.setdefault("labels", {})
            if labels.get(CONTROLLER_UID_LABEL, uid) != uid:
                result.errors.append(
                    f"labels on desired child {_describe(child['kind'], child)}"
                    " don't match parent selector"
                )
                continue
            labels[CONTROLLER_UID_LABEL] = uid
            desired[key][f"{namespace}/{child_meta.get('name')}"] = child
        return desired

    def _manage_children(
        self, parent: Obj, observed: dict[str, Obj], desired: dict[str, Obj], result: SyncResult
    ) -> None:
        # Delete first, then create or update (ManageChildren's order).
        for key, group in observed.items():
            version, kind, plural = self._types[key]
            for child_key, obj in group.items():
                meta = obj["metadata"]
                if meta.get("deletionTimestamp") or child_key in desired[key]:
                    continue
                path = object_path(version, plural, meta["namespace"], meta["name"])
                try:
                    self.client.delete(path, uid=meta["uid"])
                except ApiError as exc:
                    if not exc.not_found:
                        result.errors.append(f"can't delete {_describe(kind, obj)}: {exc}")
                    continue
                result.deleted.append(_describe(kind, obj))
        for key, group in desired.items():
            version, kind, plural = self._types[key]
            for child_key, obj in group.items():
                old = observed[key].get(child_key)
                if old is None:
                    self._create(parent, version, plural, kind, obj, result)
                else:
                    self._update(version, plural, kind, old, obj, result)

    def _create(
        self, parent: Obj, version: str, plural: str, kind: str, desired: Obj, result: SyncResult
    ) -> None:
        new = copy.deepcopy(desired)
        set_last_applied(new, desired)  # before anything else is added, as Metacontroller does
        meta = new["metadata"]
        meta["ownerReferences"] = [*(meta.get("ownerReferences") or []), self._owner_ref(parent)]
        try:
            self.client.create(collection_path(version, plural, meta["namespace"]), new)
        except ApiError as exc:
            if not exc.already_exists:
                result.errors.append(f"can't create {_describe(kind, new)}: {exc}")
            return
        result.created.append(_describe(kind, new))

    def _update(
        self, version: str, plural: str, kind: str, old: Obj, desired: Obj, result: SyncResult
    ) -> None:
        new = apply_update(old, desired)
        if new == old or old["metadata"].get("deletionTimestamp"):
            return
        meta = new["metadata"]
        try:
            self.client.update(object_path(version, plural, meta["namespace"], meta["name"]), new)
        except ApiError as exc:
            if not (exc.not_found or exc.conflict):
                result.errors.append(f"can't update {_describe(kind, new)}: {exc}")
            return
        result.updated.append(_describe(kind, new))
        result.diffs[_describe(kind, new)] = changes(
            _without_last_applied(old), _without_last_applied(new)
        )

    def _write_status(self, parent: Obj, status: Any, result: SyncResult) -> None:
        wanted: Obj = dict(status) if isinstance(status, Mapping) else {}
        wanted["observedGeneration"] = parent["metadata"].get("generation")
        result.status = wanted
        meta = parent["metadata"]
        path = self.parent_path(meta["namespace"], meta["name"])
        live = self.client.get(path)  # a live GET, as AtomicStatusUpdate does
        if live is None or live.get("status") == wanted:
            return
        live["status"] = wanted
        try:
            self.client.update(path + "/status", live)
        except ApiError as exc:
            if not (exc.not_found or exc.conflict):
                result.errors.append(f"can't update status: {exc}")
            return
        result.status_written = True

    # -- the customize hook and related objects ----------------------------------------------------

    def customize_rules(self, parent: Obj) -> list[Obj]:
        """The parent's related-resource rules: the customize hook's answer, cached per
        (uid, generation) as ``getCustomizeHookResponse`` does; [] without a customize hook."""
        if self.customize_hook is None or self.customize_url is None:
            return []
        meta = parent["metadata"]
        key = (meta["uid"], meta.get("generation"))
        if key not in self._customize_cache:
            offer = f"{meta['namespace']}/{meta['name']}"
            request = {"controller": self.controller, "parent": parent}
            response = self._post(self.customize_url, request, offer)
            self.customize_calls += 1
            unknown = set(response) - {"relatedResources"}
            if unknown and self.customize_hook.get("version") == "v2":  # strict for v2
                raise self._hook_error(
                    offer, f"strict validation failed: unknown fields {sorted(unknown)}", 200
                )
            self._customize_cache[key] = list(response.get("relatedResources") or [])
        return self._customize_cache[key]

    def _hook_version(self) -> str:
        return str((self.customize_hook or {}).get("version", "v1"))

    def related_objects(self, parent: Obj) -> Obj:
        """``related`` of the sync request, listed per rule (``GetRelatedObjects``)."""
        related: Obj = {}
        v1 = self._hook_version() == "v1"
        parent_ns = parent["metadata"].get("namespace") or ""
        for rule in self.customize_rules(parent):
            kind, namespaced = self._resource(rule["apiVersion"], rule["resource"])
            group: Obj = related.setdefault(api.children_key(kind, rule["apiVersion"]), {})
            selection = selection_type(rule)
            labels = label_selector(rule.get("labelSelector"))
            namespace = rule.get("namespace") or None
            if selection == "Labels":
                namespaces = [parent_ns if v1 and namespaced else None]
            elif selection == "NamespaceSelector":
                if v1 or not namespaced:
                    raise ValueError(f"namespaceSelector not allowed here: {rule}")
                namespaces = self._namespaces(label_selector(rule.get("namespaceSelector")))
            else:  # NamespaceAndLabels, NamespacesAndNames
                if v1 and namespaced and namespace and namespace != parent_ns:
                    raise ValueError(f"related namespace {namespace} differs from {parent_ns}")
                namespaces = [namespace if namespaced else None]
                if selection == "NamespacesAndNames":
                    labels = None
            names = set(rule.get("names") or [])
            for ns in namespaces:
                path = collection_path(rule["apiVersion"], rule["resource"], ns)
                for obj in self.client.list(path, labels):
                    if names and obj["metadata"]["name"] not in names:
                        continue
                    group[_qualified_name(obj)] = obj
        return related

    def related_parents(self, obj: Obj) -> list[tuple[str, str]]:
        """The parents (namespace, name) Metacontroller enqueues when ``obj`` is added, changed
        or deleted: those with a cached rule that matches it (``findRelatedParents``)."""
        parents = self.client.list(collection_path(api.API_VERSION, api.PLURAL, None))
        found = []
        for parent in parents:
            for rule in self.customize_rules(parent):
                if self._rule_matches(parent, obj, rule):
                    found.append((parent["metadata"]["namespace"], parent["metadata"]["name"]))
                    break
        return sorted(found)

    def _rule_matches(self, parent: Obj, obj: Obj, rule: Obj) -> bool:
        # matchesRelatedRule, for a namespaced parent.
        kind, namespaced = self._resource(rule["apiVersion"], rule["resource"])
        if obj.get("apiVersion") != rule["apiVersion"] or obj.get("kind") != kind:
            return False
        v1 = self._hook_version() == "v1"
        meta = obj["metadata"]
        same_ns = meta.get("namespace") == parent["metadata"]["namespace"]
        selection = selection_type(rule)
        if selection in ("Labels", "NamespaceAndLabels", "NamespaceSelector"):
            if not labels_match(rule.get("labelSelector"), meta.get("labels") or {}):
                return False
        if selection == "Labels":
            return not (v1 and namespaced and not same_ns)
        if selection == "NamespaceAndLabels":
            if v1 and namespaced and not same_ns:
                return False
            return not namespaced or meta.get("namespace") == rule.get("namespace")
        if selection == "NamespaceSelector":
            ns = self.client.get(f"/api/v1/namespaces/{meta.get('namespace')}")
            return ns is not None and labels_match(
                rule.get("namespaceSelector"), ns["metadata"].get("labels") or {}
            )
        if v1 and namespaced and not same_ns:
            return False
        if not v1 and namespaced and rule.get("namespace") and not same_ns:
            if meta.get("namespace") != rule.get("namespace"):
                return False
        return not rule.get("names") or meta.get("name") in rule["names"]

    def _resource(self, api_version: str, resource: str) -> tuple[str, bool]:
        # Kind and scope from API discovery, as Metacontroller's dynamic clientset learns them.
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        listing = self.client.get(base) or {}
        for item in listing.get("resources") or []:
            if item.get("name") == resource:
                return str(item["kind"]), bool(item["namespaced"])
        raise LookupError(f"unknown related resource {api_version}/{resource}")

    def _namespaces(self, selector: str | None) -> list[str | None]:
        return [n["metadata"]["name"] for n in self.client.list("/api/v1/namespaces", selector)]

    def collect_garbage(self, owner_uid: str, namespace: str) -> list[str]:
        """Delete the children an owner left behind once it is gone, as Kubernetes' garbage
        collector does for background propagation (``pkg/controller/garbagecollector`` in
        kubernetes/kubernetes); the e2e API server runs no controller-manager."""
        deleted = []
        for version, kind, plural in api.CHILD_TYPES:
            for obj in self.client.list(collection_path(version, plural, namespace)):
                refs = obj["metadata"].get("ownerReferences") or []
                if any(ref.get("uid") == owner_uid for ref in refs):
                    meta = obj["metadata"]
                    path = object_path(version, plural, meta["namespace"], meta["name"])
                    self.client.delete(path, uid=meta["uid"])
                    deleted.append(_describe(kind, obj))
        return deleted

    # -- helpers for tests -------------------------------------------------------------------------

    def sync_all(self, namespace: str | None = None) -> list[SyncResult]:
        """Sync every ServiceOffer (in one namespace, or in all)."""
        offers = self.client.list(collection_path(api.API_VERSION, api.PLURAL, namespace))
        return [
            self.sync(o["metadata"]["namespace"], o["metadata"]["name"])
            for o in sorted(
                offers, key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"])
            )
        ]

    def converge(
        self,
        namespace: str,
        name: str,
        until: StatusPredicate = lambda status: True,
        *,
        timeout: float = 30.0,
        interval: float = 0.3,
    ) -> SyncResult:
        """Sync repeatedly until ``until(status)`` holds (Traefik writes the HTTPRoute status
        asynchronously, so RoutePublished needs a sync after that write). Hook errors and
        failed writes are raised at once; running out of time raises :class:`StackTimeout`
        with the last status."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.sync(namespace, name)
            if until(result.status):
                return result
            if time.monotonic() >= deadline:
                raise StackTimeout(
                    f"ServiceOffer {namespace}/{name} did not converge within {timeout:.0f}s;"
                    f" last status: {json.dumps(result.status, indent=1)[:4000]}"
                )
            time.sleep(interval)

    def diagnostics(self, last: int = 5) -> str:
        """The last syncs and hook errors, for failure output."""
        lines = ["---- driver: last syncs"]
        lines += [f"  {r.describe()} errors={r.errors}" for r in self.history[-last:]]
        lines += [f"  hook error: {e}" for e in self.hook_errors[-last:]]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# related-resource rules (pkg/controller/common/customize/manager.go)


def selection_type(rule: Mapping[str, Any]) -> str:
    """``determineSelectionType``: how a related-resource rule selects objects."""
    has_labels = rule.get("labelSelector") is not None
    has_ns_selector = rule.get("namespaceSelector") is not None
    has_namespace = bool(rule.get("namespace"))
    has_names = bool(rule.get("names"))
    if has_names and (has_labels or has_ns_selector):
        raise ValueError(f"related rule cannot have both names and a selector: {rule}")
    if has_namespace and has_ns_selector:
        raise ValueError(f"related rule cannot have both namespace and namespaceSelector: {rule}")
    if has_ns_selector:
        return "NamespaceSelector"
    if has_labels and has_namespace:
        return "NamespaceAndLabels"
    if has_namespace or has_names:
        return "NamespacesAndNames"
    return "Labels"


def label_selector(selector: Mapping[str, Any] | None) -> str | None:
    """A metav1.LabelSelector as the API server's ``labelSelector`` query (None: everything)."""
    if not selector:
        return None
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], ",".join(expr.get("values") or [])
        parts.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})"}.get(
                op, key if op == "Exists" else f"!{key}"
            )
        )
    return ",".join(parts) or None


def labels_match(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` match a metav1.LabelSelector (nil and empty match everything)."""
    if not selector:
        return True
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and key in labels and labels[key] in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


def _qualified_name(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


# ---------------------------------------------------------------------------------------------
# status predicates


def condition(status: Mapping[str, Any], ctype: str) -> Mapping[str, Any]:
    """The condition of type ``ctype`` in a status (empty mapping when absent)."""
    for item in status.get("conditions") or []:
        if isinstance(item, Mapping) and item.get("type") == ctype:
            return item
    return {}


def condition_is(ctype: str, value: str, reason: str | None = None) -> StatusPredicate:
    """A predicate: condition ``ctype`` has status ``value`` (and ``reason``, when given)."""

    def check(status: Mapping[str, Any]) -> bool:
        found = condition(status, ctype)
        return found.get("status") == value and (reason is None or found.get("reason") == reason)

    return check


ready = condition_is("Ready", "True")

"""A thin offline check of Kubernetes objects against a CRD: JSON Schema plus its CEL rules.

What it is for
    Fast feedback without a cluster in unit and property tests: the hook's children against the
    upstream CRDs (exported by ``tests/e2e/build.sh``, found by ``upstream_crds.py``),
    ServiceOffers and the status the hook writes against ``crds/serviceoffer.yaml``. The
    authority is the real kube-apiserver: ``tests/e2e/test_crd_validation.py`` sends the same
    kinds of objects there and checks its own messages, defaulting and pruning.

What it does, and nothing more
    1. Fills ``default`` values into missing properties of objects that are present, because the
       CRDs' CEL rules read defaulted fields (``payment.maxTimeoutSeconds``, for one).
    2. Validates with ``jsonschema`` (Draft 4, as OpenAPI 3.0) a direct translation of the
       ``openAPIV3Schema``: ``nullable``, ``x-kubernetes-int-or-string``, and objects closed to
       undeclared fields unless ``x-kubernetes-preserve-unknown-fields`` or
       ``additionalProperties`` opens them, so a field the API server would prune is reported
       (for a Metacontroller child, a pruned field is an update on every sync).
    3. When the schema holds, evaluates each ``x-kubernetes-validations`` rule with cel-python
       where it applies, ``self`` converted as Kubernetes does it (property names escaped, e.g.
       ``__namespace__``; ``number`` values as doubles). A false rule gives its ``message`` at its
       ``fieldPath``; a rule that cel-python cannot compile or evaluate gives a violation saying
       so, never a pass. Transition rules (they use ``oldSelf``) are skipped: no old object.

What it must never do
    Pass for the API server: messages are jsonschema's and the rules' own; ObjectMeta, string
    formats, list-type uniqueness, CEL cost limits and the CRD's own validity are not checked.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import celpy
import jsonschema  # type: ignore[import-untyped]
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from tests.support.upstream_crds import (
    UpstreamCrdsMissing,
    find_upstream_crds,
    upstream_crds_or_skip,
)

__all__ = [
    "REPO_ROOT",
    "SERVICEOFFER_CRD",
    "Crd",
    "Violation",
    "ViolationKind",
    "assert_valid",
    "crd_for",
    "format_violations",
    "load_crd",
    "validate_object",
    "validate_status",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICEOFFER_CRD = REPO_ROOT / "crds" / "serviceoffer.yaml"

ViolationKind = Literal["schema", "cel", "unknown-field"]


@dataclass(frozen=True)
class Violation:
    """One reason the object does not fit the CRD."""

    path: str
    """Field path like ``spec.rules[0].filters``; ``""`` for the object itself."""
    message: str
    kind: ViolationKind
    rule: str | None = field(default=None, compare=False)
    """The CEL rule, for kind ``"cel"``."""

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: [{self.kind}] {self.message}"


# --------------------------------------------------------------------------------------------
# 1. defaults
# --------------------------------------------------------------------------------------------


def _apply_defaults(value: Any, node: Mapping[str, Any]) -> None:
    if isinstance(value, dict):
        properties = node.get("properties") or {}
        for name, sub in properties.items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _apply_defaults(value[name], sub)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for name, item in value.items():
                if name not in properties:
                    _apply_defaults(item, extra)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for item in value:
            _apply_defaults(item, node["items"])


# --------------------------------------------------------------------------------------------
# 2. JSON Schema
# --------------------------------------------------------------------------------------------

_IMPLICIT = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {}}
_DROPPED = ("description", "example", "externalDocs", "format", "default", "nullable")


def _json_schema(node: Mapping[str, Any], *, closed: bool = True, root: bool = False) -> Any:
    """The openAPIV3Schema node as Draft 4 JSON Schema (``closed``: undeclared fields fail)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {n: _json_schema(s, closed=closed) for n, s in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _json_schema(value, closed=closed and key != "not")
        elif key in ("allOf", "anyOf", "oneOf"):
            # Junctor branches only add value checks to the node's own declared fields.
            out[key] = [_json_schema(s, closed=False) for s in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        out["type"] = [*([out["type"]] if isinstance(out["type"], str) else out["type"]), "null"]
    if root or node.get("x-kubernetes-embedded-resource"):
        out["properties"] = {**out.get("properties", {}), **_IMPLICIT}  # ObjectMeta: not here
    opened = node.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in node
    if closed and node.get("type") == "object" and not opened:
        out["additionalProperties"] = False
    return out


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def _schema_violations(value: Any, validator: Any, path: str) -> list[Violation]:
    out: list[Violation] = []
    for error in validator.iter_errors(value):
        where = path
        for part in error.absolute_path:
            where = _join(where, part)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            declared = error.schema.get("properties") or {}
            for name in error.instance:
                if name not in declared:
                    out.append(Violation(_join(where, name), "unknown field", "unknown-field"))
        else:
            out.append(Violation(where, error.message, "schema"))
    return out


# --------------------------------------------------------------------------------------------
# 3. CEL
# --------------------------------------------------------------------------------------------

_CEL_RESERVED = frozenset(
    {
        "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
        "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
        "void", "while",
    }
)  # fmt: skip
_ESCAPES = {"__": "__underscores__", ".": "__dot__", "-": "__dash__", "/": "__slash__"}


def _cel_name(name: str) -> str:
    """Kubernetes' escaping of a property name for CEL (``namespace`` -> ``__namespace__``)."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    return re.sub(r"__|[-./]", lambda m: _ESCAPES[m.group(0)], name)


def _to_cel(value: Any, node: Mapping[str, Any]) -> Any:
    properties = node.get("properties") or {}
    if isinstance(value, dict) and properties:
        return celtypes.MapType(
            {
                celtypes.StringType(_cel_name(k) if k in properties else k): (
                    _to_cel(v, properties[k]) if k in properties else json_to_cel(v)
                )
                for k, v in value.items()
            }
        )
    if isinstance(value, dict) and isinstance(node.get("additionalProperties"), dict):
        extra = node["additionalProperties"]
        return celtypes.MapType(
            {celtypes.StringType(k): _to_cel(v, extra) for k, v in value.items()}
        )
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return celtypes.ListType([_to_cel(item, node["items"]) for item in value])
    if node.get("type") == "number" and type(value) in (int, float):
        return celtypes.DoubleType(float(value))
    return json_to_cel(value)


@functools.cache
def _program(rule: str) -> Any:
    """A compiled cel-python program, or the text of why it cannot be compiled."""
    environment = celpy.Environment()
    try:
        return environment.program(environment.compile(rule))
    except Exception as exc:  # cel-python raises several types for an uncompilable rule
        return f"{type(exc).__name__}: {exc}"


def _evaluate(rule: str, self_value: Any) -> bool | str:
    """True/False, or the text of why the rule could not be evaluated."""
    program = _program(rule)
    if isinstance(program, str):
        return f"cannot compile with cel-python: {program}"
    try:
        result = program.evaluate({"self": self_value})
    except Exception as exc:  # an evaluation error rejects the object on the API server too
        return f"evaluation error: {exc}"
    if isinstance(result, CELEvalError):
        return f"evaluation error: {result}"
    if isinstance(result, (bool, celtypes.BoolType)):
        return bool(result)
    return f"the rule gave {result!r}, not a bool"


def _cel_violations(value: Any, node: Mapping[str, Any], path: str, out: list[Violation]) -> None:
    rules = node.get("x-kubernetes-validations") or []
    if rules:
        self_value = _to_cel(value, node)
        for spec in rules:
            rule = spec["rule"]
            if re.search(r"\boldSelf\b", rule):
                continue
            outcome = _evaluate(rule, self_value)
            if outcome is True:
                continue
            if outcome is False:
                where = path
                for part in str(spec.get("fieldPath", "")).strip(".").split("."):
                    where = _join(where, part) if part else where
                message = spec.get("message") or f"failed rule: {rule}"
                out.append(Violation(where, message, "cel", rule))
            else:
                out.append(Violation(path, f"rule not checked offline: {outcome}", "cel", rule))
    properties = node.get("properties") or {}
    if isinstance(value, dict):
        extra = node.get("additionalProperties")
        for name, item in value.items():
            sub = properties.get(name, extra if isinstance(extra, dict) else None)
            if sub is not None:
                _cel_violations(item, sub, _join(path, name), out)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for index, item in enumerate(value):
            _cel_violations(item, node["items"], _join(path, index), out)


# --------------------------------------------------------------------------------------------
# CRDs
# --------------------------------------------------------------------------------------------


class Crd:
    """A CustomResourceDefinition loaded from YAML."""

    def __init__(self, path: Path, raw: Mapping[str, Any]) -> None:
        if raw.get("kind") != "CustomResourceDefinition":
            raise ValueError(f"{path} is not a CustomResourceDefinition")
        self.path = path
        spec = raw["spec"]
        self.name: str = raw["metadata"]["name"]
        self.group: str = spec["group"]
        self.kind: str = spec["names"]["kind"]
        self.schemas: dict[str, Mapping[str, Any]] = {
            v["name"]: v["schema"]["openAPIV3Schema"] for v in spec["versions"] if v.get("served")
        }
        self.storage: str = next(v["name"] for v in spec["versions"] if v.get("storage"))
        self._validators: dict[tuple[str, str], Any] = {}

    def __repr__(self) -> str:
        return f"Crd({self.name})"

    def _node(self, version: str, subtree: str) -> Mapping[str, Any]:
        node = self.schemas[version]
        return node["properties"][subtree] if subtree else node

    def _check(self, value: Any, version: str, subtree: str) -> list[Violation]:
        node = self._node(version, subtree)
        key = (version, subtree)
        if key not in self._validators:
            self._validators[key] = jsonschema.Draft4Validator(_json_schema(node, root=not subtree))
        work = copy.deepcopy(value)
        _apply_defaults(work, node)
        out = _schema_violations(work, self._validators[key], subtree)
        if not out:  # like the API server, no CEL over a value of the wrong shape
            _cel_violations(work, node, subtree, out)
        return out

    def validate(self, obj: Any) -> list[Violation]:
        """Check a whole object, with the schema of the version its apiVersion names."""
        api_version = obj.get("apiVersion") if isinstance(obj, dict) else None
        group, _, version = str(api_version).rpartition("/")
        if group != self.group or version not in self.schemas:
            served = ", ".join(f"{self.group}/{v}" for v in self.schemas)
            return [Violation("apiVersion", f"{api_version!r} is not served ({served})", "schema")]
        if obj.get("kind") != self.kind:
            return [Violation("kind", f"{obj.get('kind')!r} is not {self.kind!r}", "schema")]
        return self._check(obj, version, "")

    def validate_status(self, status: Any) -> list[Violation]:
        """Check a ``.status`` value alone against the storage version's status schema."""
        return self._check(status, self.storage, "status")


def _resolve(path: str | Path) -> Path:
    candidate = Path(path)
    return (candidate if candidate.is_absolute() else REPO_ROOT / candidate).resolve()


@functools.cache
def _load_crd(resolved: Path) -> Crd:
    return Crd(resolved, yaml.safe_load(resolved.read_text(encoding="utf-8")))


def load_crd(path: str | Path) -> Crd:
    """Load (once per path) a CRD; a relative path is taken from the repository root."""
    return _load_crd(_resolve(path))


@functools.cache
def _registry() -> dict[tuple[str, str], Path]:
    try:
        upstream = find_upstream_crds().files()
    except UpstreamCrdsMissing:
        upstream = []  # crd_for() skips the test that asks for an upstream kind
    registry: dict[tuple[str, str], Path] = {}
    for candidate in [*upstream, SERVICEOFFER_CRD]:
        crd = load_crd(candidate)
        registry[(crd.group, crd.kind)] = candidate
    return registry


def crd_for(api_version: str, kind: str) -> Crd:
    """The CRD (upstream or ours) that defines ``apiVersion``/``kind``; skips the calling test
    when it is an upstream kind and the upstream CRDs are not exported; ``LookupError`` for a
    kind no CRD defines (core kinds included)."""
    path = _registry().get((api_version.rpartition("/")[0], kind))
    if path is None:
        upstream_crds_or_skip()
        known = sorted(f"{group}/{name}" for group, name in _registry())
        raise LookupError(f"no CRD for {api_version} {kind}; known: {', '.join(known)}")
    return load_crd(path)


def validate_object(obj: Mapping[str, Any]) -> list[Violation]:
    """Check ``obj`` against the CRD its apiVersion and kind name."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise LookupError("object has no apiVersion/kind")
    return crd_for(api_version, kind).validate(dict(obj))


def format_violations(violations: Sequence[Violation]) -> str:
    return "\n".join(f"  - {violation}" for violation in violations)


def assert_valid(obj: Mapping[str, Any]) -> None:
    """Raise AssertionError listing every violation when ``obj`` does not fit its CRD."""
    violations = validate_object(obj)
    if violations:
        metadata = obj.get("metadata") or {}
        raise AssertionError(
            f"{obj.get('kind')} {metadata.get('name', '?')} ({obj.get('apiVersion')}): "
            f"{len(violations)} violation(s):\n{format_violations(violations)}"
        )


def validate_status(status: Any, crd_path: str | Path = SERVICEOFFER_CRD) -> list[Violation]:
    """Check a ``.status`` value against the CRD's storage-version status schema."""
    return load_crd(crd_path).validate_status(status)

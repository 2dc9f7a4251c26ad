"""Validate Kubernetes objects against a CRD's ``openAPIV3Schema`` the way the API server would.

What it is for
    Unit and property tests use it to prove, offline, that (a) every child object the sync hook
    generates (Gateway API ``HTTPRoute``, Traefik ``Middleware``, ...) is accepted by the upstream
    CRDs exported by ``tests/e2e/build.sh`` (``tests/support/upstream_crds.py``), (b)
    ``crds/serviceoffer.yaml`` accepts and rejects example ServiceOffers with the right
    messages, and (c) the status the hook writes fits the
    ServiceOffer status schema exactly. A field the API server would silently prune is reported,
    because for Metacontroller children and status a pruned field means an endless update loop.

What it models of the API server (in this order, on a deep copy of the object)
    1. Structural defaulting: nulls in non-nullable properties are dropped, then ``default``
       values are filled in for missing properties of objects that are present, recursively
       (into array items and map values too, and into freshly defaulted objects).
    2. Pruning: a field not declared in the schema is reported as kind ``"unknown-field"`` and
       removed (as the API server would) before the later steps. ``apiVersion``, ``kind`` and
       ``metadata`` are implicit at the root and in ``x-kubernetes-embedded-resource`` objects;
       ``x-kubernetes-preserve-unknown-fields: true`` and ``additionalProperties`` keep fields.
       Root ``metadata`` is checked as ObjectMeta: known keys only, ``name`` or ``generateName``
       required, ``name`` a DNS-1123 subdomain, label keys/values and annotation keys valid.
    3. OpenAPI v3 validation with ``jsonschema`` (Draft 4 semantics, as OpenAPI 3.0 uses:
       boolean ``exclusiveMinimum``/``exclusiveMaximum``). ``nullable``,
       ``x-kubernetes-int-or-string`` and whole-number floats for ``integer`` are handled,
       ``pattern`` uses RE2 (Go's regexp semantics, unanchored), formats are checked like
       kube-openapi (``date-time``, ``ipv4``, ``ipv6``, ``cidr``, ``uuid``, ``byte``); unknown
       formats, and ``int32``/``int64``, are NOT validated, exactly as the API server ignores
       them. ``x-kubernetes-list-type: set|map`` uniqueness is checked (``Duplicate value``).
    4. CEL: every ``x-kubernetes-validations`` rule is evaluated with cel-python at every node it
       applies to (per item for ``items`` rules, per value for ``additionalProperties`` rules),
       with ``self`` bound to the defaulted, pruned value converted to CEL like Kubernetes does:
       property names are escaped (``namespace`` -> ``__namespace__``, ``a-b`` -> ``a__dash__b``),
       ``number`` values are doubles, ``date-time`` strings are timestamps, root ``metadata``
       exposes only ``name`` and ``generateName``. ``has(self.f)`` means "f is present" and is an
       error when ``self`` is not a map; reading an absent field without ``has()`` is the
       evaluation error ``no such key: f`` (reported as a ``"cel"`` violation). A false rule
       yields its ``message`` (or ``messageExpression``, falling back like Kubernetes), at the
       rule's ``fieldPath`` when given. Like the API server, CEL rules are not run when schema
       validation found a "blocking" error (wrong type, required, enum, maxLength, maxItems,
       maxProperties); a violation saying so is added instead.

Kubernetes CEL library functions that cel-python lacks are provided (see
``CEL_EXTENSION_FUNCTIONS``): the strings extension (``split``, ``join``, ``lowerAscii``,
``upperAscii``, ``trim``, ``replace``, ``substring``, ``charAt``, ``indexOf``, ``lastIndexOf``),
the Kubernetes lists library (``isSorted``, ``sum``, ``min``, ``max``, list ``indexOf``/
``lastIndexOf``), the regex library (``find``, ``findAll``) and Go-faithful ``duration()`` and
``string()`` conversions. Every rule is compiled once per CRD version (and cached by text); a rule
that cel-python cannot parse, or that names a function or variable this validator does not
provide (``url``, ``isURL``, ``quantity``, ``ip``, ``cidr``, ``format``, ``sets.*`` ...), is listed
by ``Crd.unsupported_rules()`` and reported as a ``"cel"`` violation whenever it would apply, so
it never passes silently. Evaluation errors that are limitations of cel-python are reported as
``"cel"`` violations starting with ``validator limitation:``.

Usage
    ``validate_object(obj)`` / ``assert_valid(obj)`` pick the CRD by apiVersion and kind (upstream
    schemas plus ``crds/serviceoffer.yaml``; ``LookupError`` for anything else, core kinds
    included); ``validate_status(status)`` checks a ServiceOffer ``.status`` alone;
    ``load_crd(path).validate(obj)`` and ``.defaulted(obj)`` work for any CRD file. Programs are
    compiled once per rule text and outcomes are memoized per (rule, value), so property tests
    can call the validator hundreds of times.

What it does NOT model
    * Transition rules: rules that reference ``oldSelf`` are skipped (there is no old object);
      ``Crd.skipped_rules()`` lists them. Ratcheting of unchanged invalid fields is not modelled.
    * CEL cost estimation and runtime cost budgets, and CEL compile-time type checking (a rule
      that is ill-typed for the schema fails at evaluation here, at CRD creation there).
    * cel-go's heterogeneous equality/comparison (``1 == 1.0``): cel-python raises instead.
    * Most validation of the CRD itself: ``Crd.definition_problems()`` covers only rule
      ``reason``/``message``/``fieldPath``, a missing ``type``, list-map keys that are neither
      required nor defaulted, and ``default`` values that fail their schema.
    * Admission webhooks and ValidatingAdmissionPolicies, server-side apply/managed fields,
      ``status`` subresource resets, conversion between versions, ``metadata`` beyond the checks
      listed above, and nanosecond precision of durations and timestamps (microseconds here).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import decimal
import functools
import ipaddress
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import celpy
import jsonschema  # type: ignore[import-untyped]
import lark
import re2  # type: ignore[import-untyped]
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError, Evaluator, base_functions

from tests.support.upstream_crds import (
    UpstreamCrdsMissing,
    find_upstream_crds,
    upstream_crds_or_skip,
)

__all__ = [
    "CEL_EXTENSION_FUNCTIONS",
    "REPO_ROOT",
    "SERVICEOFFER_CRD",
    "Crd",
    "CrdProblem",
    "CrdVersion",
    "SkippedRule",
    "UnsupportedRule",
    "Violation",
    "ViolationKind",
    "assert_valid",
    "crd_for",
    "escape_cel_property",
    "evaluate_cel",
    "format_violations",
    "load_crd",
    "validate_object",
    "validate_status",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICEOFFER_CRD = REPO_ROOT / "crds" / "serviceoffer.yaml"

ViolationKind = Literal["schema", "cel", "unknown-field"]

NOT_CHECKED_MESSAGE = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


@dataclass(frozen=True)
class Violation:
    """One reason the API server would reject (or silently change) the object."""

    path: str
    """Field path like ``spec.rules[0].filters``; ``""`` for the object itself."""
    message: str
    kind: ViolationKind
    rule: str | None = field(default=None, compare=False)
    """The CEL rule, for kind ``"cel"``."""

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: [{self.kind}] {self.message}"


@dataclass(frozen=True)
class UnsupportedRule:
    """A CEL rule (or messageExpression) this validator cannot evaluate faithfully."""

    version: str
    path: str
    """Schema path of the node that carries the rule, like ``spec.rules[]``."""
    rule: str
    reason: str


@dataclass(frozen=True)
class CrdProblem:
    """Something in the CRD itself that the API server would reject when the CRD is applied."""

    version: str
    path: str
    """Schema path of the node, like ``spec.capacity``."""
    message: str


@dataclass(frozen=True)
class SkippedRule:
    """A transition rule (it references ``oldSelf``), skipped because there is no old object."""

    version: str
    path: str
    rule: str


# --------------------------------------------------------------------------------------------
# Kubernetes CEL library functions missing from cel-python
# --------------------------------------------------------------------------------------------

_UNICODE_WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _str_arg(*values: Any) -> None:
    for value in values:
        if not isinstance(value, str):
            raise TypeError(f"no such overload for {type(value).__name__}")


def _int_arg(*values: Any) -> None:
    for value in values:
        if not isinstance(value, int) or isinstance(value, (bool, celtypes.BoolType)):
            raise TypeError(f"no such overload for {type(value).__name__}")


def _list_arg(value: Any) -> None:
    if not isinstance(value, list):
        raise TypeError(f"no such overload for {type(value).__name__}")


def _range_error(index: int) -> CELEvalError:
    return CELEvalError(f"index out of range: {index}", IndexError, (index,))


def cel_split(text: Any, separator: Any, limit: Any = None) -> Any:
    """``string.split(sep)`` / ``split(sep, n)``: Go's ``strings.SplitN`` on code points."""
    _str_arg(text, separator)
    n = -1
    if limit is not None:
        _int_arg(limit)
        n = int(limit)
    if n == 0:
        return celtypes.ListType([])
    if separator == "":
        parts = list(str(text))
        if 0 < n < len(parts):
            parts = [*parts[: n - 1], "".join(parts[n - 1 :])]
    elif n < 0:
        parts = str(text).split(str(separator))
    else:
        parts = str(text).split(str(separator), n - 1)
    return celtypes.ListType([celtypes.StringType(part) for part in parts])


def cel_join(items: Any, separator: Any = "") -> Any:
    """``list(string).join()`` / ``join(sep)``."""
    _list_arg(items)
    _str_arg(separator, *items)
    return celtypes.StringType(str(separator).join(str(item) for item in items))


def cel_lower_ascii(text: Any) -> Any:
    """``string.lowerAscii()``: only ASCII letters change."""
    _str_arg(text)
    return celtypes.StringType(
        "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in str(text))
    )


def cel_upper_ascii(text: Any) -> Any:
    """``string.upperAscii()``: only ASCII letters change."""
    _str_arg(text)
    return celtypes.StringType(
        "".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in str(text))
    )


def cel_trim(text: Any) -> Any:
    """``string.trim()``: strips Unicode White_Space (not zero-width spaces), like Go."""
    _str_arg(text)
    return celtypes.StringType(str(text).strip(_UNICODE_WHITESPACE))


def cel_replace(text: Any, old: Any, new: Any, limit: Any = None) -> Any:
    """``string.replace(old, new)`` / ``replace(old, new, n)``: Go's ``strings.Replace``."""
    _str_arg(text, old, new)
    n = -1
    if limit is not None:
        _int_arg(limit)
        n = int(limit)
    return celtypes.StringType(str(text).replace(str(old), str(new), n if n >= 0 else -1))


def cel_substring(text: Any, start: Any, end: Any = None) -> Any:
    """``string.substring(start)`` / ``substring(start, end)`` on code points."""
    _str_arg(text)
    _int_arg(start)
    length = len(text)
    stop = length if end is None else end
    _int_arg(stop)
    if start < 0 or start > length:
        return _range_error(int(start))
    if stop < 0 or stop > length:
        return _range_error(int(stop))
    if start > stop:
        return CELEvalError(
            f"invalid substring range. start: {start}, end: {stop}", ValueError, None
        )
    return celtypes.StringType(str(text)[int(start) : int(stop)])


def cel_char_at(text: Any, index: Any) -> Any:
    """``string.charAt(i)``: the code point at i, ``""`` at the end, an error beyond."""
    _str_arg(text)
    _int_arg(index)
    if index < 0 or index > len(text):
        return _range_error(int(index))
    return celtypes.StringType(str(text)[int(index) : int(index) + 1])


def cel_index_of(target: Any, needle: Any, offset: Any = None) -> Any:
    """``string.indexOf(s[, offset])`` (strings ext) and ``list.indexOf(x)`` (lists lib)."""
    if isinstance(target, list):
        if offset is not None:
            raise TypeError("no such overload")
        for index, item in enumerate(target):
            if type(item) is type(needle) and item == needle:
                return celtypes.IntType(index)
        return celtypes.IntType(-1)
    _str_arg(target, needle)
    start = 0 if offset is None else offset
    _int_arg(start)
    if start < 0 or start > len(target):
        return _range_error(int(start))
    return celtypes.IntType(str(target).find(str(needle), int(start)))


def cel_last_index_of(target: Any, needle: Any, offset: Any = None) -> Any:
    """``string.lastIndexOf(s[, offset])`` (strings ext) and ``list.lastIndexOf(x)``."""
    if isinstance(target, list):
        if offset is not None:
            raise TypeError("no such overload")
        for index in range(len(target) - 1, -1, -1):
            item = target[index]
            if type(item) is type(needle) and item == needle:
                return celtypes.IntType(index)
        return celtypes.IntType(-1)
    _str_arg(target, needle)
    text = str(target)
    start = len(text) if offset is None else offset
    _int_arg(start)
    if start < 0 or start > len(text):
        return _range_error(int(start))
    if needle == "":
        return celtypes.IntType(int(start))
    return celtypes.IntType(text.rfind(str(needle), 0, int(start) + len(needle)))


def cel_is_sorted(items: Any) -> Any:
    """``list.isSorted()`` (Kubernetes lists library)."""
    _list_arg(items)
    return celtypes.BoolType(all(a <= b for a, b in itertools.pairwise(items)))


def cel_sum(items: Any) -> Any:
    """``list.sum()`` (Kubernetes lists library); ``0`` for an empty list."""
    _list_arg(items)
    if not items:
        return celtypes.IntType(0)
    total = items[0]
    for item in items[1:]:
        total = total + item
    return total


def cel_min(items: Any) -> Any:
    """``list.min()`` (Kubernetes lists library); an error for an empty list."""
    _list_arg(items)
    if not items:
        return CELEvalError("min called on empty list", ValueError, None)
    return functools.reduce(lambda a, b: b if b < a else a, items)


def cel_max(items: Any) -> Any:
    """``list.max()`` (Kubernetes lists library); an error for an empty list."""
    _list_arg(items)
    if not items:
        return CELEvalError("max called on empty list", ValueError, None)
    return functools.reduce(lambda a, b: b if b > a else a, items)


def cel_find(text: Any, pattern: Any) -> Any:
    """``string.find(regex)`` (Kubernetes regex library): first match or ``""``."""
    _str_arg(text, pattern)
    try:
        match = _re2(str(pattern)).search(str(text))
    except re2.error as error:
        return CELEvalError(f"invalid regex: {error}", ValueError, None)
    return celtypes.StringType(match.group(0) if match else "")


def cel_find_all(text: Any, pattern: Any, limit: Any = None) -> Any:
    """``string.findAll(regex[, n])`` (Kubernetes regex library)."""
    _str_arg(text, pattern)
    n = -1
    if limit is not None:
        _int_arg(limit)
        n = int(limit)
    try:
        compiled = _re2(str(pattern))
    except re2.error as error:
        return CELEvalError(f"invalid regex: {error}", ValueError, None)
    found = [match.group(0) for match in compiled.finditer(str(text))]
    if n >= 0:
        found = found[:n]
    return celtypes.ListType([celtypes.StringType(item) for item in found])


_GO_DURATION = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION_UNITS = {
    "ns": decimal.Decimal("1e-9"),
    "us": decimal.Decimal("1e-6"),
    "µs": decimal.Decimal("1e-6"),
    "μs": decimal.Decimal("1e-6"),
    "ms": decimal.Decimal("1e-3"),
    "s": decimal.Decimal(1),
    "m": decimal.Decimal(60),
    "h": decimal.Decimal(3600),
}


def cel_duration(value: Any) -> Any:
    """``duration(string)`` with Go's ``time.ParseDuration`` grammar (``1h30m``, ``500ms``)."""
    if isinstance(value, celtypes.DurationType):
        return value
    _str_arg(value)
    text = str(value)
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return celtypes.DurationType(0)
    position = 0
    total = decimal.Decimal(0)
    while position < len(body):
        match = _GO_DURATION.match(body, position)
        if match is None:
            break
        total += decimal.Decimal(match.group(1)) * _GO_DURATION_UNITS[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        return CELEvalError(f"invalid duration {text!r}", ValueError, None)
    seconds = sign * total
    try:
        return celtypes.DurationType(dt.timedelta(seconds=float(seconds)))
    except (ValueError, OverflowError):
        return CELEvalError(f"duration out of range: {text!r}", ValueError, None)


def _go_format_double(value: float) -> str:
    """Go's ``fmt.Sprintf("%g", value)``, which cel-go uses for ``string(double)``."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    shortest = decimal.Decimal(repr(value)).normalize()
    sign, digits, exponent = shortest.as_tuple()
    assert isinstance(exponent, int)
    text = "".join(str(d) for d in digits)
    exp10 = exponent + len(text) - 1
    if exp10 < -4 or exp10 >= 6:  # strconv 'g' with the shortest precision uses 6 here
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{'-' if sign else ''}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    return format(shortest, "f")


def cel_string(value: Any) -> Any:
    """``string(x)`` with cel-go's spelling of booleans and doubles (``true``, ``1e+06``)."""
    if isinstance(value, (bool, celtypes.BoolType)):  # celpy's BoolType subclasses int
        return celtypes.StringType("true" if value else "false")
    if isinstance(value, float):
        return celtypes.StringType(_go_format_double(float(value)))
    if isinstance(value, bytes):
        return celtypes.StringType(value.decode("utf-8"))
    return celtypes.StringType(value)


CEL_EXTENSION_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "split": cel_split,
    "join": cel_join,
    "lowerAscii": cel_lower_ascii,
    "upperAscii": cel_upper_ascii,
    "trim": cel_trim,
    "replace": cel_replace,
    "substring": cel_substring,
    "charAt": cel_char_at,
    "indexOf": cel_index_of,
    "lastIndexOf": cel_last_index_of,
    "isSorted": cel_is_sorted,
    "sum": cel_sum,
    "min": cel_min,
    "max": cel_max,
    "find": cel_find,
    "findAll": cel_find_all,
    "duration": cel_duration,
    "string": cel_string,
}
"""Kubernetes CEL functions cel-python lacks (or gets wrong), by name, as celpy functions."""

# Macros, which the parser and evaluator handle themselves (not functions).
_GLOBAL_MACROS = frozenset({"has", "dyn"})
_METHOD_MACROS = {"all": 2, "exists": 2, "exists_one": 2, "filter": 2, "map": 2}
# celpy-only extensions that Kubernetes CEL does not have.
_CELPY_ONLY = frozenset({"reduce"})
_KNOWN_FUNCTIONS = frozenset(
    name
    for name in (*base_functions, *CEL_EXTENSION_FUNCTIONS)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name not in _CELPY_ONLY
)


# --------------------------------------------------------------------------------------------
# cel-python with Kubernetes semantics for has() and field selection
# --------------------------------------------------------------------------------------------


def _token_text(node: Any) -> str:
    """The text of a lark Token child (IDENT)."""
    return str(node.value) if isinstance(node, lark.Token) else str(node)


def _unwrap_single(node: Any) -> Any:
    while isinstance(node, lark.Tree) and node.data != "member_dot":
        children = [child for child in node.children if child is not None]
        if len(children) != 1:
            return node
        node = children[0]
    return node


class _KubeEvaluator(Evaluator):
    """celpy's interpreter with Kubernetes' ``has()`` and absent-field semantics."""

    def sub_evaluator(self, ast: lark.Tree[Any]) -> Evaluator:
        return _KubeEvaluator(ast, activation=self.activation)

    def macro_has_eval(self, exprlist: lark.Tree[Any]) -> Any:
        node = _unwrap_single(exprlist)
        if not isinstance(node, lark.Tree) or node.data != "member_dot":
            return CELEvalError("invalid argument to has() macro", TypeError, None)
        operand_tree, name_token = node.children
        operand = self.visit(operand_tree)
        if isinstance(operand, CELEvalError):
            return operand
        if isinstance(operand, celtypes.MapType):
            return celtypes.BoolType(celtypes.StringType(_token_text(name_token)) in operand)
        return CELEvalError(
            f"invalid type for field selection: {type(operand).__name__}", TypeError, None
        )

    def member_dot(self, tree: lark.Tree[Any]) -> Any:
        member_tree, name_token = tree.children
        member = self.visit(member_tree)
        if isinstance(member, celtypes.MapType) and not isinstance(member, celtypes.MessageType):
            key = celtypes.StringType(_token_text(name_token))
            if key in member:
                return member[key]
            return CELEvalError(f"no such key: {key}", KeyError, None, tree=tree)
        return super().member_dot(tree)

    def member_dot_arg(self, tree: lark.Tree[Any]) -> Any:
        # celpy treats ``.min()`` as its own macro; Kubernetes has the lists library's min().
        if _token_text(tree.children[1]) == "min":
            values: list[Any] = self.visit_children(tree)
            return self.method_eval(*values)
        return super().member_dot_arg(tree)


class _KubeRunner(celpy.InterpretedRunner):
    _base_activation: Any = None

    def evaluate(self, context: Any) -> Any:
        # The evaluator clones this activation before binding ``self``, so one is enough.
        if self._base_activation is None:
            self._base_activation = self.new_activation()
        return _KubeEvaluator(ast=self.ast, activation=self._base_activation).evaluate(context)


_ENV = celpy.Environment(runner_class=_KubeRunner)


@dataclass(frozen=True)
class _Program:
    runner: Any | None
    error: str | None
    uses_old_self: bool


def _static_problems(ast: lark.Tree[Any]) -> tuple[list[str], bool]:
    """Functions and variables the expression uses that this validator does not provide."""
    problems: list[str] = []
    bound: set[str] = set()
    used_idents: list[str] = []
    for node in ast.iter_subtrees():
        if node.data == "ident_arg":
            name = _token_text(node.children[0])
            if name not in _GLOBAL_MACROS and name not in _KNOWN_FUNCTIONS:
                problems.append(f"function {name}() is not provided")
        elif node.data == "member_dot_arg":
            name = _token_text(node.children[1])
            args = node.children[2] if len(node.children) > 2 else None
            argc = len(args.children) if isinstance(args, lark.Tree) else 0
            if name in _METHOD_MACROS:
                if argc != _METHOD_MACROS[name]:
                    problems.append(f"macro {name}() with {argc} arguments is not supported")
                elif isinstance(args, lark.Tree) and isinstance(args.children[0], lark.Tree):
                    idents = list(args.children[0].find_data("ident"))
                    if len(idents) == 1:
                        bound.add(_token_text(idents[0].children[0]))
                    else:
                        problems.append(f"macro {name}() needs a variable name first")
            elif name not in _KNOWN_FUNCTIONS:
                problems.append(f"function .{name}() is not provided")
        elif node.data == "ident":
            used_idents.append(_token_text(node.children[0]))
        elif node.data in ("dot_ident", "dot_ident_arg", "member_object"):
            problems.append(f"{node.data} expressions are not supported")
    allowed = {"self", "oldSelf", *bound, *_KNOWN_FUNCTIONS, "null_type", "type", "dyn"}
    for name in used_idents:
        if name not in allowed:
            problems.append(f"undeclared reference to {name!r}")
    return sorted(set(problems)), "oldSelf" in used_idents


@functools.cache
def _compile(text: str) -> _Program:
    try:
        ast = _ENV.compile(text)
    except Exception as error:  # celpy raises several parse error types
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return _Program(None, f"cel-python cannot parse it: {first_line}", False)
    problems, uses_old_self = _static_problems(ast)
    if problems:
        return _Program(None, "; ".join(problems), uses_old_self)
    runner = _ENV.program(_collapse(ast), functions=CEL_EXTENSION_FUNCTIONS)
    return _Program(runner, None, uses_old_self)


# Grammar levels that, with a single child, only pass their child's value through.
_PASS_THROUGH = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication"}
    | {"unary", "member"}
)


def _collapse(tree: lark.Tree[Any]) -> lark.Tree[Any]:
    """Drop single-child pass-through levels (about 8 per operand); evaluation is unchanged
    and about twice as fast, because celpy visits every level."""
    while tree.data in _PASS_THROUGH:
        children = [child for child in tree.children if child is not None]
        if len(children) != 1 or not isinstance(children[0], lark.Tree):
            break
        tree = children[0]
    tree.children = [
        _collapse(child) if isinstance(child, lark.Tree) else child for child in tree.children
    ]
    return tree


def evaluate_cel(expression: str, self_value: Any) -> Any:
    """Evaluate one CEL expression with Kubernetes semantics; ``self_value`` is plain JSON.

    Raises ``ValueError`` for an expression this validator cannot compile and
    ``celpy.evaluation.CELEvalError`` for an evaluation error. Meant for tests of the
    extension functions; JSON objects are converted without escaping property names.
    """
    program = _compile(expression)
    if program.runner is None:
        raise ValueError(program.error)
    return program.runner.evaluate({"self": json_to_cel(self_value)})


def _eval_error_text(error: CELEvalError) -> str:
    text = str(error.args[0]) if error.args else str(error)
    return text.split(" (in activation", 1)[0]


def _is_limitation(text: str) -> bool:
    return text.startswith(("undeclared reference", "Attempt to reduce"))


# --------------------------------------------------------------------------------------------
# Schema tree
# --------------------------------------------------------------------------------------------

_CEL_RESERVED = frozenset(
    {
        "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
        "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
        "void", "while",
    }
)  # fmt: skip
_ESCAPE_MATCHER = re.compile(r"(__|[-./]|[^a-zA-Z0-9\-./_])")
_ESCAPES = {"__": "__underscores__", ".": "__dot__", "-": "__dash__", "/": "__slash__"}


def escape_cel_property(name: str) -> str | None:
    """Kubernetes' escaping of a property name for CEL; ``None`` if it is not accessible."""
    if not name or name[0].isdigit():
        return None
    if name in _CEL_RESERVED:
        return f"__{name}__"
    unsupported = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unsupported
        if match.group(0) in _ESCAPES:
            return _ESCAPES[match.group(0)]
        unsupported = True
        return ""

    escaped = _ESCAPE_MATCHER.sub(replace, name)
    return None if unsupported else escaped


_RULE_SERIALS = itertools.count()


@dataclass
class _Rule:
    rule: str
    message: str | None
    message_expression: str | None
    field_path: str | None
    schema_path: str
    program: _Program
    message_program: _Program | None
    problem: str | None
    serial: int = field(default_factory=lambda: next(_RULE_SERIALS))
    """Identity for the outcome memo (``id()`` could be reused after garbage collection)."""


@dataclass
class _Node:
    raw: Mapping[str, Any]
    schema_path: str
    type: str | None = None
    format: str | None = None
    nullable: bool = False
    has_default: bool = False
    default: Any = None
    properties: dict[str, _Node] = field(default_factory=dict)
    cel_names: dict[str, str | None] = field(default_factory=dict)
    items: _Node | None = None
    additional: _Node | None = None
    additional_allowed: bool = False
    preserve_unknown: bool = False
    embedded: bool = False
    int_or_string: bool = False
    list_type: str | None = None
    list_map_keys: tuple[str, ...] = ()
    rules: list[_Rule] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    definition_problems: list[str] = field(default_factory=list)
    _validator: Any = None

    def validator(self) -> Any:
        if self._validator is None:
            self._validator = _SchemaValidator(
                _to_json_schema(self.raw), format_checker=_FORMAT_CHECKER
            )
        return self._validator

    def walk(self) -> Iterator[_Node]:
        yield self
        for child in self.properties.values():
            yield from child.walk()
        if self.items is not None:
            yield from self.items.walk()
        if self.additional is not None:
            yield from self.additional.walk()


def _parse_field_path(field_path: str) -> list[str] | None:
    """``.a.b['c.d']`` -> ``['a', 'b', 'c.d']``; ``None`` if it is not a valid fieldPath."""
    segments: list[str] = []
    position = 0
    token = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['((?:[^'\\]|\\.)*)'\]")
    while position < len(field_path):
        match = token.match(field_path, position)
        if match is None:
            return None
        segments.append(match.group(1) if match.group(1) is not None else match.group(2))
        position = match.end()
    return segments


def _build_node(raw: Mapping[str, Any], schema_path: str) -> _Node:
    node = _Node(raw=raw, schema_path=schema_path)
    node.type = raw.get("type")
    node.format = raw.get("format")
    node.nullable = bool(raw.get("nullable", False))
    if "default" in raw:
        node.has_default = True
        node.default = raw["default"]
    node.preserve_unknown = bool(raw.get("x-kubernetes-preserve-unknown-fields", False))
    node.embedded = bool(raw.get("x-kubernetes-embedded-resource", False))
    node.int_or_string = bool(raw.get("x-kubernetes-int-or-string", False))
    node.list_type = raw.get("x-kubernetes-list-type")
    node.list_map_keys = tuple(raw.get("x-kubernetes-list-map-keys", ()))
    for name, child in (raw.get("properties") or {}).items():
        node.properties[name] = _build_node(child, _join(schema_path, name))
        node.cel_names[name] = escape_cel_property(name)
    items = raw.get("items")
    if isinstance(items, Mapping):
        node.items = _build_node(items, f"{schema_path}[]")
    additional = raw.get("additionalProperties")
    if isinstance(additional, Mapping):
        node.additional = _build_node(additional, f"{schema_path}{{}}")
        node.additional_allowed = True
    elif additional is True:
        node.additional_allowed = True
    if node.type is None and not (node.int_or_string or node.preserve_unknown):
        node.definition_problems.append(
            "type: Required value: must not be empty for specified object fields"
        )
    if node.list_type == "map" and node.items is not None:
        required = set(node.items.raw.get("required") or ())
        for key in node.list_map_keys:
            key_node = node.items.properties.get(key)
            if key_node is None or (key not in required and not key_node.has_default):
                node.definition_problems.append(
                    f"x-kubernetes-list-map-keys: Invalid value: {key!r}: a map key must be "
                    "a required or defaulted scalar property of the items"
                )
    for index, entry in enumerate(raw.get("x-kubernetes-validations") or ()):
        text = str(entry["rule"])
        where = f"x-kubernetes-validations[{index}]"
        node.definition_problems.extend(f"{where}.{p}" for p in _rule_definition_problems(entry))
        field_path = entry.get("fieldPath")
        if field_path and not _field_path_exists(node, field_path):
            node.definition_problems.append(
                f"{where}.fieldPath: Invalid value: {field_path!r}: does not name a field of "
                "this schema node"
            )
        program = _compile(text)
        if program.uses_old_self:
            node.skipped.append(text)
            continue
        message_expression = entry.get("messageExpression")
        message_program = _compile(message_expression) if message_expression else None
        problem = program.error
        if problem is None and message_program is not None and message_program.error:
            problem = f"messageExpression: {message_program.error}"
        node.rules.append(
            _Rule(
                rule=text,
                message=entry.get("message"),
                message_expression=message_expression,
                field_path=field_path,
                schema_path=schema_path,
                program=program,
                message_program=message_program,
                problem=problem,
            )
        )
    return node


_SUPPORTED_REASONS: tuple[str, ...] = (
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
)


def _rule_definition_problems(entry: Mapping[str, Any]) -> list[str]:
    """What the API server's CRD validation says about one x-kubernetes-validations entry."""
    problems: list[str] = []
    if not str(entry.get("rule", "")).strip():
        problems.append("rule: Required value")
    reason = entry.get("reason")
    if reason is not None and reason not in _SUPPORTED_REASONS:
        supported = ", ".join(f'"{r}"' for r in _SUPPORTED_REASONS)
        problems.append(f'reason: Unsupported value: "{reason}": supported values: {supported}')
    message = entry.get("message")
    if message is not None:
        if not str(message).strip():
            problems.append("message: Required value: message must be non-empty if specified")
        elif "\n" in str(message):
            problems.append("message: Invalid value: message must not contain line breaks")
    expression = entry.get("messageExpression")
    if expression is not None and not str(expression).strip():
        problems.append(
            "messageExpression: Required value: messageExpression must be non-empty if specified"
        )
    return problems


def _field_path_exists(node: _Node, field_path: str) -> bool:
    segments = _parse_field_path(field_path)
    if segments is None:
        return False
    current: _Node | None = node
    for segment in segments:
        if current is None:
            return False
        if segment in current.properties:
            current = current.properties[segment]
        elif current.additional is not None:
            current = current.additional
        else:
            return False
    return True


# --------------------------------------------------------------------------------------------
# OpenAPI v3 -> JSON Schema (Draft 4), and the jsonschema validator
# --------------------------------------------------------------------------------------------

_DROPPED_KEYWORDS = frozenset(
    {"description", "default", "example", "externalDocs", "title", "nullable", "$schema"}
)


def _to_json_schema(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith("x-kubernetes-") or key in _DROPPED_KEYWORDS:
            continue
        if key == "properties":
            out[key] = {name: _to_json_schema(child) for name, child in value.items()}
        elif key in ("items", "not", "additionalProperties") and isinstance(value, Mapping):
            out[key] = _to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_to_json_schema(child) for child in value]
        else:
            out[key] = value
    if raw.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
        # The conventional anyOf [{type: integer}, {type: string}] only restates that.
        if out.get("anyOf") == [{"type": "integer"}, {"type": "string"}]:
            del out["anyOf"]
    if raw.get("nullable"):
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


@functools.cache
def _re2(pattern: str) -> Any:
    return re2.compile(pattern)


def _pattern_keyword(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if not isinstance(instance, str):
        return
    try:
        matched = _re2(pattern).search(instance) is not None
    except re2.error:
        matched = re.search(pattern, instance) is not None
    if not matched:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _is_integer(checker: Any, instance: Any) -> bool:
    if isinstance(instance, bool):
        return False
    return isinstance(instance, int) or (isinstance(instance, float) and instance.is_integer())


_SchemaValidator = jsonschema.validators.extend(
    jsonschema.Draft4Validator,
    validators={"pattern": _pattern_keyword},
    type_checker=jsonschema.Draft4Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)

_FORMAT_CHECKER = jsonschema.FormatChecker(formats=())
_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$"
)


def _check_date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    match = _DATE_TIME.match(instance)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    dt.datetime(year, month, day, hour, minute, second)  # raises ValueError when impossible
    return True


def _check_ipv4(instance: object) -> bool:
    return not isinstance(instance, str) or bool(ipaddress.IPv4Address(instance))


def _check_ipv6(instance: object) -> bool:
    return not isinstance(instance, str) or bool(ipaddress.IPv6Address(instance))


def _check_cidr(instance: object) -> bool:
    return not isinstance(instance, str) or bool(ipaddress.ip_network(instance, strict=False))


def _check_uuid(instance: object) -> bool:
    uuid = r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"
    return not isinstance(instance, str) or re.match(uuid, instance) is not None


def _check_byte(instance: object) -> bool:
    return not isinstance(instance, str) or bool(base64.b64decode(instance, validate=True) or 1)


_FORMAT_CHECKER.checks("date-time", raises=ValueError)(_check_date_time)
_FORMAT_CHECKER.checks("ipv4", raises=ValueError)(_check_ipv4)
_FORMAT_CHECKER.checks("ipv6", raises=ValueError)(_check_ipv6)
_FORMAT_CHECKER.checks("cidr", raises=ValueError)(_check_cidr)
_FORMAT_CHECKER.checks("uuid")(_check_uuid)
_FORMAT_CHECKER.checks("byte", raises=ValueError)(_check_byte)


# jsonschema keywords whose failure the API server treats as "blocking" for CEL.
_BLOCKING = frozenset({"type", "required", "enum", "maxLength", "maxItems", "maxProperties"})


def _short(value: Any, limit: int = 80) -> str:
    if isinstance(value, (dict, list)):
        return f"<{type(value).__name__} of {len(value)}>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _go_value(value: Any) -> str:
    """A value the way Kubernetes field errors print it (``"text"``, ``42``, ``"object"``)."""
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 120 else text[:116] + '..."'
    return str(value)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _schema_message(error: Any, path: str) -> str:
    """kube-openapi's wording, e.g. ``Invalid value: 70000: spec.upstream.port in body should
    be less than or equal to 65535`` (the path is repeated, as the API server does)."""
    keyword, expected, instance = error.validator, error.validator_value, error.instance
    invalid = f"Invalid value: {_go_value(instance)}: {path or '<root>'} in body"
    if keyword == "type":  # kube-openapi prints the JSON kind of the value, not the value
        types = ",".join(expected if isinstance(expected, list) else [expected])
        kind = f'"{_json_kind(instance)}"'
        return f"Invalid value: {kind}: {path or '<root>'} in body must be of type {types}: {kind}"
    if keyword == "required":
        return "Required value"
    if keyword == "enum":
        supported = ", ".join(_go_value(v) for v in expected)
        return f"Unsupported value: {_go_value(instance)}: supported values: {supported}"
    if keyword == "pattern":
        return f"{invalid} should match '{expected}'"
    if keyword == "maxLength":
        return f"Too long: may not be more than {expected} bytes"
    if keyword == "minLength":
        return f"{invalid} should be at least {expected} chars long"
    if keyword == "maxItems":
        return f"Too many: {len(instance)}: must have at most {expected} items"
    if keyword == "minItems":
        return f"{invalid} should have at least {expected} items"
    if keyword == "maxProperties":
        return f"Too many: {len(instance)}: must have at most {expected} properties"
    if keyword == "minProperties":
        return f"{invalid} should have at least {expected} properties"
    if keyword == "minimum":
        exclusive = bool(error.schema.get("exclusiveMinimum"))
        return f"{invalid} should be greater than {'' if exclusive else 'or equal to '}{expected}"
    if keyword == "maximum":
        exclusive = bool(error.schema.get("exclusiveMaximum"))
        return f"{invalid} should be less than {'' if exclusive else 'or equal to '}{expected}"
    if keyword == "multipleOf":
        return f"{invalid} should be a multiple of {expected}"
    if keyword == "format":
        return f"{invalid} must be of type {expected}: {_go_value(instance)}"
    message = str(error.message)
    return message if len(message) <= 300 else message[:297] + "..."


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _key(path: str, key: str) -> str:
    return f"{path}[{key}]"


def _error_path(base: str, parts: Sequence[Any]) -> str:
    path = base
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, str(part))
    return path


# --------------------------------------------------------------------------------------------
# ObjectMeta
# --------------------------------------------------------------------------------------------

_OBJECT_META_FIELDS = frozenset(
    {
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
        "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
        "annotations", "ownerReferences", "finalizers", "managedFields",
    }
)  # fmt: skip
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _qualified_name_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain of at most 253 characters"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return (
            "name part must consist of at most 63 alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return None


def _check_object_meta(meta: Any, path: str, out: list[Violation]) -> bool:
    """ObjectMeta checks; returns True when a blocking (Required) error was found."""
    if not isinstance(meta, dict):
        out.append(Violation(path, f"Invalid value: {_short(meta)}: must be an object", "schema"))
        return True
    blocking = False
    for key in list(meta):
        if key not in _OBJECT_META_FIELDS:
            out.append(
                Violation(
                    _join(path, key),
                    "unknown field (the API server would prune it from ObjectMeta)",
                    "unknown-field",
                )
            )
    name, generate_name = meta.get("name"), meta.get("generateName")
    if not name and not generate_name:
        out.append(Violation(_join(path, "name"), "name or generateName is required", "schema"))
        blocking = True
    for key in ("name", "namespace", "generateName"):
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            out.append(Violation(_join(path, key), "must be a string", "schema"))
            continue
        checked = value.rstrip("-") if key == "generateName" else value
        if key == "namespace":
            ok = len(value) <= 63 and _DNS1123_LABEL.match(value) is not None
            rule = "a lowercase RFC 1123 label of at most 63 characters"
        else:
            ok = not checked or (
                len(value) <= 253 and _DNS1123_SUBDOMAIN.match(checked) is not None
            )
            rule = "a lowercase RFC 1123 subdomain of at most 253 characters"
        if not ok:
            out.append(
                Violation(_join(path, key), f"Invalid value: {value!r}: must be {rule}", "schema")
            )
    for key in ("labels", "annotations"):
        mapping = meta.get(key)
        if mapping is None:
            continue
        if not isinstance(mapping, dict):
            out.append(Violation(_join(path, key), "must be a map of strings", "schema"))
            continue
        for item_key, item_value in mapping.items():
            item_path = _key(_join(path, key), item_key)
            checked_key = item_key.lower() if key == "annotations" else item_key
            problem = _qualified_name_problem(checked_key)
            if problem:
                out.append(
                    Violation(item_path, f"Invalid value: {item_key!r}: {problem}", "schema")
                )
            if not isinstance(item_value, str):
                out.append(Violation(item_path, "value must be a string", "schema"))
            elif key == "labels" and (len(item_value) > 63 or not _LABEL_VALUE.match(item_value)):
                out.append(
                    Violation(
                        item_path,
                        f"Invalid value: {item_value!r}: a label value must be empty or at most "
                        "63 alphanumeric characters, '-', '_' or '.', starting and ending with "
                        "an alphanumeric character",
                        "schema",
                    )
                )
        if key == "annotations":
            size = sum(len(str(k)) + len(str(v)) for k, v in mapping.items())
            if size > 256 * 1024:
                out.append(
                    Violation(
                        _join(path, key), "Too long: must have at most 262144 bytes", "schema"
                    )
                )
    for key in ("ownerReferences", "finalizers"):
        value = meta.get(key)
        if value is not None and not isinstance(value, list):
            out.append(Violation(_join(path, key), "must be a list", "schema"))
    return blocking


# --------------------------------------------------------------------------------------------
# The walks: defaulting, pruning, list types, CEL
# --------------------------------------------------------------------------------------------

_IMPLICIT_ROOT_FIELDS = frozenset({"apiVersion", "kind", "metadata"})


def _apply_defaults(value: Any, node: _Node) -> None:
    if isinstance(value, dict):
        for name, child in node.properties.items():
            if name in value and value[name] is None and not child.nullable:
                del value[name]
            if name not in value and child.has_default:
                value[name] = copy.deepcopy(child.default)
        for name, child_value in value.items():
            declared = node.properties.get(name)
            if declared is not None:
                _apply_defaults(child_value, declared)
            elif node.additional is not None:
                _apply_defaults(child_value, node.additional)
    elif isinstance(value, list) and node.items is not None:
        for item in value:
            _apply_defaults(item, node.items)


def _prune(value: Any, node: _Node, path: str, out: list[Violation], *, root: bool) -> None:
    if isinstance(value, dict):
        implicit = _IMPLICIT_ROOT_FIELDS if (root or node.embedded) else frozenset()
        for name in list(value):
            child = node.properties.get(name)
            if name in implicit and (name == "metadata" or child is None):
                continue  # ObjectMeta is checked separately; apiVersion/kind are always kept
            if child is not None:
                _prune(value[name], child, _join(path, name), out, root=False)
            elif node.additional is not None:
                _prune(value[name], node.additional, _key(path, name), out, root=False)
            elif not (node.additional_allowed or node.preserve_unknown):
                out.append(
                    Violation(
                        _join(path, name),
                        "unknown field (not in the schema; the API server would prune it)",
                        "unknown-field",
                    )
                )
                del value[name]
    elif isinstance(value, list) and node.items is not None:
        for index, item in enumerate(value):
            _prune(item, node.items, f"{path}[{index}]", out, root=False)


def _check_list_types(value: Any, node: _Node, path: str, out: list[Violation]) -> None:
    if isinstance(value, list):
        if node.list_type in ("set", "map"):
            seen: dict[str, int] = {}
            for index, item in enumerate(value):
                if node.list_type == "map" and isinstance(item, dict):
                    key_value: Any = {k: item.get(k) for k in node.list_map_keys}
                else:
                    key_value = item
                marker = repr(_canonical(key_value))
                if marker in seen:
                    shown = json.dumps(key_value, separators=(",", ":"), sort_keys=True)
                    out.append(Violation(f"{path}[{index}]", f"Duplicate value: {shown}", "schema"))
                else:
                    seen[marker] = index
        if node.items is not None:
            for index, item in enumerate(value):
                _check_list_types(item, node.items, f"{path}[{index}]", out)
    elif isinstance(value, dict):
        for name, child_value in value.items():
            child = node.properties.get(name)
            if child is not None:
                _check_list_types(child_value, child, _join(path, name), out)
            elif node.additional is not None:
                _check_list_types(child_value, node.additional, _key(path, name), out)


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted((k, _canonical(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return (type(value).__name__, value)


def _to_cel_scalar(value: Any, node: _Node) -> Any:
    if isinstance(value, bool) or value is None:
        return json_to_cel(value)
    if node.type == "number" and isinstance(value, (int, float)):
        return celtypes.DoubleType(float(value))
    if node.type == "integer" and isinstance(value, float) and value.is_integer():
        return celtypes.IntType(int(value))
    if isinstance(value, str) and node.format in ("date-time", "datetime"):
        try:
            return celtypes.TimestampType(value)
        except (ValueError, TypeError):
            return celtypes.StringType(value)
    if isinstance(value, str) and node.format == "duration":
        converted = cel_duration(value)
        if not isinstance(converted, CELEvalError):
            return converted
    return json_to_cel(value)


# Outcome of one rule on one value: None when it holds, else (message, at_field_path).
_Outcome = tuple[str, bool] | None
_OUTCOMES: dict[tuple[int, Any], _Outcome] = {}
_OUTCOMES_LIMIT = 200_000


def _frozen_scalar(value: Any) -> Any:
    return (type(value).__name__, value)


class _CelWalk:
    """Converts the value to CEL bottom-up and runs each node's rules on it.

    Rules are pure functions of ``self``, so outcomes are memoized by (rule, value): property
    tests that validate many similar objects evaluate each distinct subtree once.
    """

    def __init__(self, out: list[Violation]) -> None:
        self.out = out

    def visit(self, value: Any, node: _Node, path: str, *, root: bool = False) -> tuple[Any, Any]:
        position = len(self.out)
        cel_value: Any
        frozen: Any
        if isinstance(value, dict):
            entries: dict[Any, Any] = {}
            frozen_entries: list[tuple[str, Any]] = []
            for name, child_value in value.items():
                child = node.properties.get(name)
                if root and name == "metadata":
                    if isinstance(child_value, dict):
                        visible = {
                            k: child_value[k] for k in ("name", "generateName") if k in child_value
                        }
                        entries[celtypes.StringType(name)] = json_to_cel(visible)
                        frozen_entries.append((name, repr(sorted(visible.items()))))
                    continue
                if child is not None:
                    converted, child_frozen = self.visit(child_value, child, _join(path, name))
                    cel_name = node.cel_names.get(name)
                    if cel_name is not None:
                        entries[celtypes.StringType(cel_name)] = converted
                elif node.additional is not None:
                    converted, child_frozen = self.visit(
                        child_value, node.additional, _key(path, name)
                    )
                    entries[celtypes.StringType(name)] = converted
                else:
                    entries[celtypes.StringType(name)] = json_to_cel(child_value)
                    child_frozen = repr(_canonical(child_value))
                frozen_entries.append((name, child_frozen))
            cel_value = celtypes.MapType(entries)
            frozen = ("map", tuple(sorted(frozen_entries)))
        elif isinstance(value, list) and node.items is not None:
            visited = [
                self.visit(item, node.items, f"{path}[{index}]") for index, item in enumerate(value)
            ]
            cel_value = celtypes.ListType([converted for converted, _ in visited])
            frozen = ("list", tuple(item_frozen for _, item_frozen in visited))
        elif isinstance(value, list):
            cel_value = json_to_cel(value)
            frozen = repr(_canonical(value))
        else:
            cel_value = _to_cel_scalar(value, node)
            frozen = _frozen_scalar(value)
        if node.rules and value is not None:
            own: list[Violation] = []
            for rule in node.rules:
                self._check(rule, cel_value, frozen, path, own)
            self.out[position:position] = own
        return cel_value, frozen

    @staticmethod
    def _check(rule: _Rule, cel_self: Any, frozen: Any, path: str, out: list[Violation]) -> None:
        key = (rule.serial, frozen)
        if key in _OUTCOMES:
            outcome = _OUTCOMES[key]
        else:
            outcome = _CelWalk._outcome(rule, cel_self)
            if len(_OUTCOMES) >= _OUTCOMES_LIMIT:
                _OUTCOMES.clear()
            _OUTCOMES[key] = outcome
        if outcome is None:
            return
        message, at_field_path = outcome
        target = path
        if at_field_path and rule.field_path:
            for segment in _parse_field_path(rule.field_path) or ():
                target = _join(target, segment)
        out.append(Violation(target, message, "cel", rule.rule))

    @staticmethod
    def _outcome(rule: _Rule, cel_self: Any) -> _Outcome:
        if rule.problem is not None or rule.program.runner is None:
            return f"validator limitation: rule not evaluated ({rule.problem}): {rule.rule}", False
        try:
            result = rule.program.runner.evaluate({"self": cel_self})
        except CELEvalError as error:
            text = _eval_error_text(error)
            prefix = "validator limitation: " if _is_limitation(text) else ""
            return f"{prefix}{text} evaluating rule: {rule.rule}", False
        except Exception as error:  # a cel-python bug, never a verdict about the object
            return (
                f"validator limitation: cel-python raised {type(error).__name__}: {error} "
                f"evaluating rule: {rule.rule}",
                False,
            )
        if not isinstance(result, celtypes.BoolType):
            return f"rule did not evaluate to a bool: {rule.rule}", False
        if result:
            return None
        return _CelWalk._message(rule, cel_self), True

    @staticmethod
    def _message(rule: _Rule, cel_self: Any) -> str:
        if rule.message_program is not None and rule.message_program.runner is not None:
            try:
                text = rule.message_program.runner.evaluate({"self": cel_self})
            except Exception:  # Kubernetes logs it and falls back to message
                text = None
            if isinstance(text, str) and text.strip() and "\n" not in text:
                return str(text)
        if rule.message:
            return rule.message
        return f"failed rule: {rule.rule}"


# --------------------------------------------------------------------------------------------
# CRDs
# --------------------------------------------------------------------------------------------


class CrdVersion:
    """One version of a CRD: its schema, compiled once."""

    def __init__(self, crd: Crd, raw: Mapping[str, Any]) -> None:
        self.crd = crd
        self.name: str = raw["name"]
        self.served: bool = bool(raw.get("served", False))
        self.storage: bool = bool(raw.get("storage", False))
        self.schema: Mapping[str, Any] = raw.get("schema", {}).get("openAPIV3Schema", {})
        self._root: _Node | None = None

    def __repr__(self) -> str:
        return f"CrdVersion({self.crd.name}/{self.name})"

    @property
    def root(self) -> _Node:
        if self._root is None:
            self._root = _build_node(self.schema, "")
        return self._root

    def node(self, subpath: Sequence[str]) -> _Node:
        current = self.root
        for name in subpath:
            if name not in current.properties:
                raise KeyError(f"{self!r} has no schema for {'.'.join(subpath)}")
            current = current.properties[name]
        return current

    def defaulted(self, obj: Any) -> Any:
        """A deep copy of a whole object with the schema's defaults applied (step 1 only)."""
        work = copy.deepcopy(obj)
        _apply_defaults(work, self.root)
        return work

    def validate(self, obj: Any) -> list[Violation]:
        """Validate a whole object (apiVersion/kind are not checked against the CRD here)."""
        return self._validate(obj, self.root, "", root=True)

    def validate_subtree(self, value: Any, subpath: Sequence[str]) -> list[Violation]:
        """Validate the value of one field (``["status"]``) against its schema alone."""
        return self._validate(value, self.node(subpath), ".".join(subpath), root=False)

    def _validate(self, value: Any, node: _Node, path: str, *, root: bool) -> list[Violation]:
        work = copy.deepcopy(value)
        _apply_defaults(work, node)
        out: list[Violation] = []
        _prune(work, node, path, out, root=root)
        blocking = False
        if root and isinstance(work, dict):
            if "metadata" in work:
                blocking |= _check_object_meta(work["metadata"], "metadata", out)
            else:
                out.append(Violation("metadata.name", "name or generateName is required", "schema"))
                blocking = True
        for error in node.validator().iter_errors(work):
            error_path = _error_path(path, list(error.absolute_path))
            if error.validator == "required":
                missing = [
                    name
                    for name in error.validator_value
                    if isinstance(error.instance, dict)
                    and name not in error.instance
                    and repr(name) in error.message
                ]
                error_path = _join(error_path, missing[0]) if missing else error_path
            out.append(Violation(error_path, _schema_message(error, error_path), "schema"))
            blocking |= error.validator in _BLOCKING
        _check_list_types(work, node, path, out)
        if blocking:
            if any(n.rules for n in node.walk()):
                out.append(Violation("", NOT_CHECKED_MESSAGE, "cel"))
        else:
            _CelWalk(out).visit(work, node, path, root=root)
        return out

    def unsupported_rules(self) -> list[UnsupportedRule]:
        return [
            UnsupportedRule(self.name, rule.schema_path, rule.rule, rule.problem)
            for node in self.root.walk()
            for rule in node.rules
            if rule.problem is not None
        ]

    def definition_problems(self) -> list[CrdProblem]:
        problems = [
            CrdProblem(self.name, node.schema_path, message)
            for node in self.root.walk()
            for message in node.definition_problems
        ]
        for node in self.root.walk():
            if node.has_default:
                where = f"{node.schema_path}.default"
                for violation in self._validate(node.default, node, where, root=False):
                    problems.append(
                        CrdProblem(self.name, violation.path or where, violation.message)
                    )
        return problems

    def skipped_rules(self) -> list[SkippedRule]:
        return [
            SkippedRule(self.name, node.schema_path, text)
            for node in self.root.walk()
            for text in node.skipped
        ]

    def rule_count(self) -> int:
        return sum(len(node.rules) for node in self.root.walk())


class Crd:
    """A CustomResourceDefinition loaded from YAML."""

    def __init__(self, path: Path, raw: Mapping[str, Any]) -> None:
        if raw.get("kind") != "CustomResourceDefinition":
            raise ValueError(f"{path} is not a CustomResourceDefinition")
        self.path = path
        self.raw = raw
        spec = raw["spec"]
        self.name: str = raw["metadata"]["name"]
        self.group: str = spec["group"]
        self.kind: str = spec["names"]["kind"]
        self.namespaced: bool = spec.get("scope", "Namespaced") == "Namespaced"
        self.versions: dict[str, CrdVersion] = {
            v["name"]: CrdVersion(self, v) for v in spec["versions"]
        }

    def __repr__(self) -> str:
        return f"Crd({self.name})"

    def version(self, name: str | None = None) -> CrdVersion:
        """The served version ``name``; by default the storage version."""
        if name is None:
            for version in self.versions.values():
                if version.storage:
                    return version
            raise LookupError(f"{self.name} has no storage version")
        named = self.versions.get(name)
        if named is None or not named.served:
            served = [v.name for v in self.versions.values() if v.served]
            raise LookupError(f"{self.name} does not serve {name!r} (served: {served})")
        return named

    def validate(self, obj: Any, *, version: str | None = None) -> list[Violation]:
        """Validate a whole object: the version is ``version``, else the object's apiVersion
        version, else the storage version."""
        out: list[Violation] = []
        if version is None and isinstance(obj, dict):
            api_version = obj.get("apiVersion")
            group, _, name = str(api_version).rpartition("/")
            if api_version is None:
                out.append(Violation("apiVersion", "Required value", "schema"))
            elif group != self.group:
                out.append(
                    Violation(
                        "apiVersion",
                        f"Invalid value: {api_version!r}: the group of {self.name} is "
                        f"{self.group!r}",
                        "schema",
                    )
                )
            elif name not in self.versions or not self.versions[name].served:
                out.append(
                    Violation(
                        "apiVersion",
                        f"Invalid value: {api_version!r}: {self.name} does not serve {name!r}",
                        "schema",
                    )
                )
            else:
                version = name
        if isinstance(obj, dict):
            if "kind" not in obj:
                out.append(Violation("kind", "Required value", "schema"))
            elif obj["kind"] != self.kind:
                out.append(
                    Violation(
                        "kind", f"Invalid value: {obj['kind']!r}: expected {self.kind!r}", "schema"
                    )
                )
        return out + self.version(version).validate(obj)

    def defaulted(self, obj: Any, *, version: str | None = None) -> Any:
        """``obj`` with defaults applied as the API server would (no validation)."""
        if version is None and isinstance(obj, dict):
            group, _, name = str(obj.get("apiVersion")).rpartition("/")
            if group == self.group and name in self.versions and self.versions[name].served:
                version = name
        return self.version(version).defaulted(obj)

    def validate_status(self, status: Any, *, version: str | None = None) -> list[Violation]:
        """Validate only the ``.status`` subtree."""
        return self.version(version).validate_subtree(status, ["status"])

    def unsupported_rules(self) -> list[UnsupportedRule]:
        """Rules (in every version) this validator cannot evaluate faithfully, with why."""
        return [r for v in self.versions.values() for r in v.unsupported_rules()]

    def definition_problems(self) -> list[CrdProblem]:
        """What the API server would reject in this CRD when it is applied (a subset of its CRD
        validation: rule ``reason``/``message``/``fieldPath``, structural ``type``, list-map keys,
        and ``default`` values that fail their own schema)."""
        return [p for v in self.versions.values() for p in v.definition_problems()]

    def skipped_rules(self) -> list[SkippedRule]:
        """Transition rules (they use ``oldSelf``), which are never evaluated here."""
        return [r for v in self.versions.values() for r in v.skipped_rules()]


def _resolve(path: str | Path) -> Path:
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = REPO_ROOT / candidate
    return candidate.resolve()


@functools.cache
def _load_crd(resolved: Path) -> Crd:
    with resolved.open(encoding="utf-8") as handle:
        return Crd(resolved, yaml.safe_load(handle))


def load_crd(path: str | Path) -> Crd:
    """Load (once per path) a CRD; a relative path is taken from the repository root."""
    return _load_crd(_resolve(path))


@functools.cache
def _registry() -> dict[tuple[str, str], Path]:
    registry: dict[tuple[str, str], Path] = {}
    try:
        upstream = find_upstream_crds().files()
    except UpstreamCrdsMissing:
        upstream = []  # crd_for() skips the test that asks for an upstream kind
    for candidate in [*upstream, SERVICEOFFER_CRD]:
        with candidate.open(encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
        if isinstance(raw, dict) and raw.get("kind") == "CustomResourceDefinition":
            spec = raw["spec"]
            registry[(spec["group"], spec["names"]["kind"])] = candidate.resolve()
    return registry


def crd_for(api_version: str, kind: str) -> Crd:
    """The CRD (shared upstream schemas or ours) that defines ``apiVersion``/``kind``."""
    group = api_version.rpartition("/")[0]
    path = _registry().get((group, kind))
    if path is None:
        upstream_crds_or_skip()
        known = sorted(f"{g}/{k}" for g, k in _registry())
        raise LookupError(f"no CRD for {api_version} {kind}; known: {', '.join(known)}")
    return load_crd(path)


def validate_object(obj: Mapping[str, Any]) -> list[Violation]:
    """Validate ``obj`` against the CRD chosen by its apiVersion and kind.

    Raises ``LookupError`` when no known CRD defines that kind (core kinds included).
    """
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise LookupError(f"object has no apiVersion/kind: {_short(dict(obj))}")
    return crd_for(api_version, kind).validate(dict(obj))


def format_violations(violations: Sequence[Violation]) -> str:
    return "\n".join(f"  - {violation}" for violation in violations)


def assert_valid(obj: Mapping[str, Any]) -> None:
    """Raise AssertionError listing every violation when ``obj`` is not valid."""
    violations = validate_object(obj)
    if violations:
        metadata = obj.get("metadata") or {}
        name = f"{metadata.get('namespace', '')}/{metadata.get('name', '?')}".lstrip("/")
        raise AssertionError(
            f"{obj.get('kind')} {name} ({obj.get('apiVersion')}) is not valid, "
            f"{len(violations)} violation(s):\n{format_violations(violations)}"
        )


def validate_status(
    status: Any, crd_path: str | Path = "crds/serviceoffer.yaml"
) -> list[Violation]:
    """Validate only a ``.status`` value against the CRD's storage-version status schema."""
    return load_crd(crd_path).validate_status(status)

"""YAML a person wrote (offers, asset-registry files, stdin), parsed into plain JSON values.

Every YAML document the product reads from a user goes through :func:`parse_user_yaml`. It exists
because plain ``yaml.safe_load`` trusts its input more than a seller's or an operator's file
deserves:

* **Aliases are refused.** ``*name`` references let a few hundred bytes stand for gigabytes once
  the document is walked or serialised ("billion laughs"). Kubernetes manifests never need them.
  Nesting deeper than :data:`MAX_DEPTH` is refused too (Python's recursion would fail first).
* **The input is bounded** (:data:`MAX_BYTES` by default), so parsing one file is bounded in time
  and memory. The caller reads at most ``limit + 1`` bytes and passes them here.
* **Only JSON-shaped values come out**: text keys, no duplicate keys, no ``!!binary``/``!!set``
  or other non-JSON tags, no infinities, integers within 64 bits. Dates stay text, as Kubernetes
  reads them.
* **Numbers YAML invents are refused at their field**: an unquoted ``0x4A6f...`` (an address) is
  a hex *integer* to YAML 1.1, ``0755`` is octal and ``1:30`` is base 60. Each is reported at its
  path with a hint to quote it.

Errors are :class:`UserYamlError`: the source (a file name or ``-``), the line, the path inside
the document (``spec.payment.payTo``) and the reason, never an internal path.

Pure: parses the text it is given; never reads a file, the environment or the clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# A ServiceOffer is a few KB and a registry file rarely more; 64 KiB of the worst-case shape
# (a long list of tiny items) parses in a fraction of a second.
MAX_BYTES = 1 << 16
MAX_DEPTH = 64

_TAG = "tag:yaml.org,2002:"
_DECIMAL = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_HEX = re.compile(r"^[-+]?0x[0-9a-fA-F_]+$")
_INT64 = (1 << 63) - 1
_NON_FINITE = re.compile(r"^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$")


class UserYamlError(ValueError):
    """A user's YAML cannot be used: where (source, line, path) and why."""

    def __init__(
        self, source: str, reason: str, *, line: int | None = None, path: str = ""
    ) -> None:
        self.source = source
        self.reason = reason
        self.line = line
        self.path = path
        super().__init__(f"{source}: {self.detail}")

    @property
    def detail(self) -> str:
        """Line, path and reason, without the source (for callers that name the file)."""
        where = [f"line {self.line}"] if self.line is not None else []
        if self.path:
            where.append(self.path)
        return ": ".join([*where, self.reason])


# libyaml's parser when PyYAML was built with it (several times faster); the events are the same.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Refused(Exception):
    def __init__(self, mark: Any, reason: str) -> None:
        super().__init__(reason)
        self.mark = mark
        self.reason = reason


def _documents(loader: Any) -> Iterator[Node]:
    """Compose nodes from parser events without recursion, refusing aliases and deep nesting.

    PyYAML's own composers recurse once per nesting level (libyaml's crashes the process on
    deep input) and follow aliases; this one does neither.
    """
    loader.get_event()  # StreamStart
    while not loader.check_event(yaml.StreamEndEvent):
        loader.get_event()  # DocumentStart
        root: Node | None = None
        # Open collections, each with the key waiting for its value (mappings only).
        stack: list[list[Any]] = []
        while True:
            event = loader.get_event()
            if isinstance(event, yaml.DocumentEndEvent):
                break
            if isinstance(event, yaml.AliasEvent):
                raise _Refused(
                    event.start_mark,
                    "YAML aliases (*name) are not accepted: write the value out in full",
                )
            if isinstance(event, yaml.CollectionEndEvent):
                stack.pop()
                continue
            node = _node(loader, event)
            if stack:
                frame = stack[-1]
                parent = frame[0]
                if isinstance(parent, SequenceNode):
                    parent.value.append(node)
                elif frame[1] is None:
                    frame[1] = node
                else:
                    parent.value.append((frame[1], node))
                    frame[1] = None
            else:
                root = node
            if isinstance(node, SequenceNode | MappingNode):
                if len(stack) >= MAX_DEPTH:
                    raise _Refused(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
                stack.append([node, None])
        if root is not None:
            yield root


def _node(loader: Any, event: Any) -> Node:
    tag = event.tag
    # libyaml's marks are its own type, which the stubs do not accept for a node.
    start: Any = event.start_mark
    end: Any = event.end_mark
    if isinstance(event, yaml.ScalarEvent):
        if tag is None or tag == "!":
            tag = loader.resolve(ScalarNode, event.value, event.implicit)
        return ScalarNode(tag, event.value, start, end, style=event.style)
    kind = SequenceNode if isinstance(event, yaml.SequenceStartEvent) else MappingNode
    if tag is None or tag == "!":
        tag = loader.resolve(kind, None, event.implicit)
    return kind(tag, [], start, end, flow_style=event.flow_style)


def parse_user_yaml(data: bytes | str, source: str, *, limit: int = MAX_BYTES) -> list[Any]:
    """Every non-empty document in ``data``, as JSON values; :class:`UserYamlError` otherwise."""
    if len(data) > limit:
        raise UserYamlError(source, f"is larger than {limit} bytes")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UserYamlError(source, "is not UTF-8 text") from None
    else:
        text = data
    loader = _Loader(text)
    documents: list[Any] = []
    try:
        for node in _documents(loader):
            _check(node, "", source)
            value = loader.construct_document(node)
            if value is not None:
                documents.append(value)
    except _Refused as refused:
        raise UserYamlError(source, refused.reason, line=refused.mark.line + 1) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = f"not valid YAML: {exc.problem or exc.context}"
        raise UserYamlError(source, reason, line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise UserYamlError(source, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return documents


def _check(node: Node, path: str, source: str) -> None:
    """Refuse what is not JSON-shaped; retag dates as text. Iterative: depth is bounded above."""
    stack: list[tuple[Node, str]] = [(node, path)]
    while stack:
        current, where = stack.pop()
        if isinstance(current, ScalarNode):
            _check_scalar(current, where, source)
        elif isinstance(current, SequenceNode):
            _expect_tag(current, "seq", where, source)
            for index, item in enumerate(current.value):
                stack.append((item, f"{where}[{index}]"))
        elif isinstance(current, MappingNode):
            _expect_tag(current, "map", where, source)
            seen: set[str] = set()
            for key, value in current.value:
                name = _key(key, where, source)
                child = f"{where}.{name}" if where else name
                if name in seen:
                    raise _problem(source, key, child, "is given twice (duplicate key)")
                seen.add(name)
                stack.append((value, child))


def _key(key: Node, where: str, source: str) -> str:
    if not isinstance(key, ScalarNode):
        raise _problem(source, key, where, "keys must be text, not a collection")
    if key.tag == _TAG + "merge":
        raise _problem(source, key, where, "merge keys (<<) are not accepted")
    if key.tag != _TAG + "str":
        raise _problem(source, key, where, f"keys must be text; quote the key {key.value!r}")
    return str(key.value)


def _expect_tag(node: Node, kind: str, where: str, source: str) -> None:
    if node.tag != _TAG + kind:
        raise _problem(source, node, where, f"the tag {_tag(node.tag)} is not accepted")


def _check_scalar(node: ScalarNode, where: str, source: str) -> None:
    tag, text = node.tag, node.value
    if tag == _TAG + "timestamp":
        node.tag = _TAG + "str"
    elif tag == _TAG + "int":
        if not _DECIMAL.fullmatch(text):
            kind = "a hex number" if _HEX.fullmatch(text) else "a number in a non-decimal notation"
            raise _problem(
                source,
                node,
                where,
                f"YAML reads the unquoted value {text} as {kind}; quote it"
                f' ("{text}") if it is an address or text, or write the number in decimal',
            )
        digits = text.lstrip("+-").replace("_", "")
        if len(digits) > 19 or int(digits) > _INT64:
            raise _problem(source, node, where, f"the number {_short(text)} is too large")
    elif tag == _TAG + "float":
        if ":" in text:
            raise _problem(
                source,
                node,
                where,
                f"YAML reads the unquoted value {text} as a base-60 number;"
                f' quote it ("{text}") if it is text, or write the number in decimal',
            )
        if _NON_FINITE.fullmatch(text) or not math.isfinite(float(text.replace("_", ""))):
            raise _problem(source, node, where, f"{_short(text)} is not a finite number")
    elif tag not in (_TAG + "str", _TAG + "bool", _TAG + "null"):
        raise _problem(source, node, where, f"the tag {_tag(tag)} is not accepted")


def _tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _problem(source: str, node: Node, path: str, reason: str) -> UserYamlError:
    return UserYamlError(source, reason, line=node.start_mark.line + 1, path=path or "<document>")

"""The two kinds of failure this project distinguishes.

* :class:`SpecError` -- *the input is wrong*. Retrying cannot help; the message names the field
  path, the offending value and the reason, so a seller can act on it. The sync hook turns it
  into ``Ready=False/InvalidSpec`` (HTTP 200, existing children kept); the CLI prints it and
  exits non-zero.
* :class:`HookFailure` -- *we failed*. A bug or an impossible state inside the hook. The server
  answers a JSON 500 so Metacontroller keeps the current children and retries.

This module must stay dependency-free: every other module imports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def format_value(value: Any) -> str:
    """Render an offending value compactly for an error message."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


class FieldProblem:
    """One invalid field: where it is, what it was and why it is wrong."""

    __slots__ = ("path", "reason", "value")

    def __init__(self, path: str, reason: str, value: Any = None) -> None:
        self.path = path
        self.reason = reason
        self.value = value

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.path}: {self.reason}"
        return f"{self.path}: {self.reason} (got {format_value(self.value)})"

    def __repr__(self) -> str:
        return f"FieldProblem({self.path!r}, {self.reason!r}, {self.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldProblem) and (self.path, self.reason, self.value) == (
            other.path,
            other.reason,
            other.value,
        )

    def __hash__(self) -> int:
        return hash((self.path, self.reason, repr(self.value)))


class SpecError(ValueError):
    """The input is wrong: one or more field problems, each with path, value and reason."""

    def __init__(self, problems: FieldProblem | Iterable[FieldProblem]) -> None:
        self.problems: tuple[FieldProblem, ...] = (
            (problems,) if isinstance(problems, FieldProblem) else tuple(problems)
        )
        if not self.problems:
            raise ValueError("SpecError needs at least one problem")
        super().__init__("; ".join(str(p) for p in self.problems))

    @classmethod
    def at(cls, path: str, reason: str, value: Any = None) -> SpecError:
        """Shorthand for a single problem."""
        return cls(FieldProblem(path, reason, value))


class HookFailure(RuntimeError):
    """We failed: an internal error. Never caused by a bad spec; never retried into success."""

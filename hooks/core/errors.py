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
from dataclasses import dataclass
from typing import Any, Self


def format_value(value: Any) -> str:
    """Render an offending value compactly for an error message."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One invalid field: where it is, why it is wrong and what it was (None: not shown)."""

    path: str
    reason: str
    value: Any = None

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.path}: {self.reason}"
        return f"{self.path}: {self.reason} (got {format_value(self.value)})"


class ProblemsError(ValueError):
    """One or more field problems; the message lists them all. Base of :class:`SpecError` and
    the configuration's ``ConfigError``."""

    def __init__(self, problems: FieldProblem | Iterable[FieldProblem]) -> None:
        self.problems: tuple[FieldProblem, ...] = (
            (problems,) if isinstance(problems, FieldProblem) else tuple(problems)
        )
        if not self.problems:
            raise ValueError(f"{type(self).__name__} needs at least one problem")
        super().__init__("; ".join(str(p) for p in self.problems))

    @classmethod
    def at(cls, path: str, reason: str, value: Any = None) -> Self:
        """Shorthand for a single problem."""
        return cls(FieldProblem(path, reason, value))


class SpecError(ProblemsError):
    """The input is wrong: one or more field problems, each with path, value and reason."""


class HookFailure(RuntimeError):
    """We failed: an internal error. Never caused by a bad spec; never retried into success."""

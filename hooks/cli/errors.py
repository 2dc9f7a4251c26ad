"""One error class and one table of exit codes for every ``obol`` command.

A failure is ONE line on stderr (``Error: ...``) and one of these exit codes, never a traceback:

====  ================================================================================
0     success
1     kubectl failed for another reason (its error line is shown), or printed non-JSON
2     usage error: unknown or missing flag, conflicting flags, unknown preset (click's own)
3     invalid input: an offer, a request or a file, with field path, value and reason (from
      the model, the asset registry or the API server's own validation)
4     kubectl not found (not on PATH, or --kubectl / OBOL_KUBECTL points nowhere)
5     cluster unreachable (connection refused, unable to connect, timeout, no kubeconfig)
6     the ServiceOffer CRD is not installed in the cluster
7     the named offer was not found
8     configuration: an ``OBOL_*`` variable (or a file it names) is wrong
9     internal error: a bug in this program; the message says where to look
10    the output could not be written (stdout closed, full, or a reader that went away)
130   interrupted (Ctrl-C), as shells report a SIGINT
====  ================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

import click

from hooks.config import ConfigError

T = TypeVar("T")

EXIT_KUBECTL_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INVALID: Final = 3
EXIT_NO_KUBECTL: Final = 4
EXIT_UNREACHABLE: Final = 5
EXIT_NO_CRD: Final = 6
EXIT_NOT_FOUND: Final = 7
EXIT_CONFIG: Final = 8
EXIT_INTERNAL: Final = 9
EXIT_OUTPUT: Final = 10
EXIT_INTERRUPTED: Final = 130


class CliError(click.ClickException):
    """A failure shown as ``Error: <one line>`` on stderr, with its documented exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(" ".join(message.split()))
        # An instance value; click >= 8.5 declares exit_code as a class variable.
        vars(self)["exit_code"] = exit_code


def configured(read: Callable[[], T]) -> T:
    """``read()`` (a configuration reader), its :class:`ConfigError` as one line and exit 8."""
    try:
        return read()
    except ConfigError as problem:
        raise CliError(f"configuration: {problem}", EXIT_CONFIG) from None

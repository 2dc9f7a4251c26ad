"""The ``obol`` command: ``obol hook ...`` runs the controller, ``obol sell ...`` drives offers.

A thin shell. The subcommand groups live in :mod:`hooks.cli.hook` (serve, sync, render) and
:mod:`hooks.cli.sell` (inference, http, presets, status, list); this module assembles them, and
:func:`main` keeps the one promise every command makes: a failure is one ``Error:`` line on
stderr and an exit code of :mod:`hooks.cli.errors`, never a traceback, also when stdout is
closed or full or its reader went away (exit 10).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence

import click

from hooks.cli.crd import crd
from hooks.cli.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OUTPUT
from hooks.cli.hook import hook
from hooks.cli.sell import sell


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="obol-serviceoffer-hook", prog_name="obol")
def obol() -> None:
    """Sell x402-paid access to inference servers that run outside Kubernetes."""


obol.add_command(hook)
obol.add_command(crd)
obol.add_command(sell)


def main() -> None:
    """Console-script entry point."""
    sys.exit(run(sys.argv[1:]))


def run(args: Sequence[str]) -> int:
    """Run ``obol`` with ``args``; return the exit code (failures already reported)."""
    if sys.stdout is None:
        # Python found descriptor 1 closed: whatever the command prints would vanish.
        return _fail("cannot write the output: stdout is closed", EXIT_OUTPUT)
    try:
        try:
            with obol.make_context("obol", list(args)) as context:
                obol.invoke(context)
        except click.exceptions.Exit as done:  # --help, --version
            _flush_stdout()
            return done.exit_code
        _flush_stdout()
    except click.ClickException as problem:
        problem.show()
        return problem.exit_code
    except (click.Abort, KeyboardInterrupt):
        return _fail("interrupted", EXIT_INTERRUPTED)
    except OSError as problem:
        if problem.errno not in _OUTPUT_ERRORS:
            return _fail(f"internal error: {type(problem).__name__}: {problem}", EXIT_INTERNAL)
        # Input is read (and its failures reported, exit 3) where it is read: what escapes
        # with these is the output.
        _silence_stdout()
        return _fail(f"cannot write the output: {problem.strerror}", EXIT_OUTPUT)
    except Exception as problem:  # a bug: one line, never a traceback
        return _fail(f"internal error: {type(problem).__name__}: {problem}", EXIT_INTERNAL)
    return 0


_OUTPUT_ERRORS = frozenset(
    {errno.EPIPE, errno.ENOSPC, errno.EBADF, errno.EIO, errno.EDQUOT, errno.EFBIG}
)


def _flush_stdout() -> None:
    # Flushed here, not at interpreter exit, where a failure (a full disk, a closed pipe)
    # would be a traceback-like "Exception ignored" and exit 120.
    sys.stdout.flush()


def _silence_stdout() -> None:
    # What is still buffered would fail again at exit: send it nowhere.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _fail(message: str, code: int) -> int:
    click.echo(f"Error: {' '.join(message.split())}", err=True)
    return code

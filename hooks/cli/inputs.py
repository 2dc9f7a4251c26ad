"""What a user hands the CLI: files, directories, FIFOs and stdin, read with bounds.

Every command reads its input through :func:`read_source`: at most ``limit`` bytes (one more is
read only to know the input is over), and from a FIFO or a pipe no longer than
:data:`READ_TIMEOUT_SECONDS` without data, so ``-f`` on a FIFO nobody writes to ends with one
line instead of waiting forever. A closed stdin is an error naming it, not a traceback.
:func:`expand_sources` turns ``-f`` arguments into files the way ``kubectl -f`` does (a
directory gives its ``.yaml``, ``.yml`` and ``.json`` files, sorted; ``-R`` descends).

Every failure is a :class:`~hooks.cli.errors.CliError` with exit code 3 (invalid input).
"""

from __future__ import annotations

import io
import os
import select
import stat
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from hooks.cli.errors import EXIT_INVALID, CliError

STDIN: Final = "-"
# How long a FIFO, a pipe or a terminal may stay silent before the read gives up.
READ_TIMEOUT_SECONDS: Final = 30.0
MANIFEST_SUFFIXES: Final = (".yaml", ".yml", ".json")
_CHUNK: Final = 64 * 1024


def expand_sources(arguments: Sequence[str], recursive: bool = False) -> list[str]:
    """The files ``-f`` names: files as given, directories as their manifest files, sorted."""
    sources: list[str] = []
    for argument in arguments:
        if argument == STDIN or not os.path.isdir(argument):
            sources.append(argument)
            continue
        pattern = "**/*" if recursive else "*"
        found = sorted(
            str(path)
            for path in Path(argument).glob(pattern)
            if path.suffix in MANIFEST_SUFFIXES and path.is_file()
        )
        if not found:
            raise CliError(
                f"{argument}: no {', '.join(MANIFEST_SUFFIXES)} files in this directory"
                + ("" if recursive else " (-R descends into subdirectories)"),
                EXIT_INVALID,
            )
        sources.extend(found)
    if sources.count(STDIN) > 1:
        raise CliError("-f -: stdin can be read only once", EXIT_INVALID)
    return sources


def read_source(source: str, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes of ``source`` (a path, or ``-`` for stdin).

    Regular files are read at once; anything else (stdin, a FIFO, a terminal, a character
    device) a chunk at a time, each within :data:`READ_TIMEOUT_SECONDS`.
    """
    if source == STDIN:
        stdin = sys.stdin
        if stdin is None:  # Python's own reading of a closed descriptor 0
            raise CliError("stdin is closed: nothing to read", EXIT_INVALID)
        try:
            descriptor = os.dup(stdin.fileno())
        except io.UnsupportedOperation:
            # Not an operating-system stream (an in-memory one, as in click's test runner).
            return stdin.buffer.read(limit + 1)
        except OSError:
            raise CliError("stdin is closed: nothing to read", EXIT_INVALID) from None
    else:
        try:
            # Non-blocking, so opening a FIFO nobody writes to returns at once.
            descriptor = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise CliError(f"{source}: cannot read: {exc.strerror}", EXIT_INVALID) from None
    try:
        return _read(descriptor, source, limit)
    except OSError as exc:
        name = "stdin" if source == STDIN else source
        raise CliError(f"{name}: cannot read: {exc.strerror}", EXIT_INVALID) from None
    finally:
        os.close(descriptor)


def _read(descriptor: int, source: str, limit: int) -> bytes:
    timeout = READ_TIMEOUT_SECONDS
    mode = os.fstat(descriptor).st_mode
    if stat.S_ISDIR(mode):
        raise CliError(f"{source}: is a directory", EXIT_INVALID)
    if stat.S_ISREG(mode):
        os.set_blocking(descriptor, True)
        return os.read(descriptor, limit + 1)
    chunks: list[bytes] = []
    size = 0
    poller = select.poll()
    poller.register(descriptor, select.POLLIN)
    while size <= limit:
        deadline = time.monotonic() + timeout
        while not poller.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            if time.monotonic() >= deadline:
                name = "stdin" if source == STDIN else source
                raise CliError(
                    f"{name}: no data for {timeout:g} s (a FIFO or pipe nobody writes to?)",
                    EXIT_INVALID,
                )
        try:
            chunk = os.read(descriptor, min(_CHUNK, limit + 1 - size))
        except BlockingIOError:
            continue
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)

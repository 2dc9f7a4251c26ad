"""A process's resident memory, read from /proc: now, and its peak while something runs."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except OSError:
        return 0


@dataclass
class Peak:
    """RSS before the block and the highest seen while it ran (sampled every 20 ms)."""

    before: int
    peak: int


@contextlib.contextmanager
def peak_rss(pid: int) -> Iterator[Peak]:
    """Sample ``pid``'s RSS while the block runs."""
    seen = Peak(rss_bytes(pid), rss_bytes(pid))
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            seen.peak = max(seen.peak, rss_bytes(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield seen
    finally:
        done.set()
        sampler.join()

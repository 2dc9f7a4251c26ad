"""Run the obol-stack decode check (``tests/obol_decode``, a Go program) on ServiceOffers.

What it is for
    obol-stack's x402 verifier decodes every ServiceOffer in the cluster with k8s.io/apimachinery's
    ``runtime.DefaultUnstructuredConverter.FromUnstructured`` into its Go types, and one offer that
    does not decode stops the route reload for every offer. :func:`decode` asks the real
    converter, built by ``bash tests/e2e/build.sh --decode-check`` into the e2e cache, whether
    each given object decodes, and returns one :class:`Verdict` per object, in order.

What it must never do
    Build or download anything (``make unit`` and ``make test`` build the program first), or
    judge an object itself: the verdicts are the Go converter's.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.upstream_crds import BUILD_SH, build_paths

HOW_TO_BUILD = "run `bash tests/e2e/build.sh --decode-check` (`make unit` and `make test` do it)"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    error: str = ""


def decoder_or_skip() -> Path:
    """The built program, or skip the test saying how to build it."""
    try:
        _, paths = build_paths()
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot run {BUILD_SH} --print: {exc}")
    binary = Path(paths.get("OBOL_DECODE", ""))
    if not binary.is_file():
        pytest.skip(f"the obol-stack decode check is not built ({binary}); {HOW_TO_BUILD}")
    return binary


def decode(objects: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """One verdict per object, from obol-stack's decoding (the real converter)."""
    binary = decoder_or_skip()
    proc = subprocess.run(
        [str(binary)],
        input=json.dumps(list(objects)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"{binary} failed ({proc.returncode}): {proc.stderr}"
    verdicts = [Verdict(**json.loads(line)) for line in proc.stdout.splitlines()]
    assert len(verdicts) == len(objects), proc.stdout
    return verdicts

"""``obol hook ...``: run and exercise the sync hook (placeholder until the shell lands)."""

from __future__ import annotations

import click


@click.group()
def hook() -> None:
    """Run the Metacontroller sync hook."""

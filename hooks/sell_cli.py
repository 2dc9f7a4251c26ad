"""``obol sell ...``: write and inspect ServiceOffers (placeholder until the CLI lands)."""

from __future__ import annotations

import click


@click.group()
def sell() -> None:
    """Create and inspect ServiceOffers with kubectl."""

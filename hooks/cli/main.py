"""The ``obol`` command: ``obol hook ...`` runs the controller, ``obol sell ...`` drives offers.

A thin shell. The subcommand groups live in :mod:`hooks.cli.hook` (serve, sync, render) and
:mod:`hooks.cli.sell` (inference, http, presets, status, list); this module only assembles them.
"""

from __future__ import annotations

import click

from hooks.cli.crd import crd
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
    obol()

"""``obol crd ...``: the ServiceOffer CRD this package ships, printed or applied with kubectl.

The CRD travels inside the package (``hooks/data/serviceoffer-crd.yaml``, a copy of the
repository's ``crds/serviceoffer.yaml``, which stays the source; a unit test keeps the two
identical), so a seller who installed the package with pip can install the CRD the CLI and the
hook expect without a checkout. ``apply`` goes through :class:`hooks.cli.kubectl.Kubectl` like
every other cluster call, with the same "is a cluster configured at all" check first.

This module must never change the CRD it ships.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import click
import yaml

from hooks.cli.kubectl import Kubectl
from hooks.cli.sell import kubectl_options

CRD_RESOURCE = "data/serviceoffer-crd.yaml"


@cache
def crd_text() -> str:
    """The packaged CRD, as shipped."""
    return resources.files("hooks").joinpath(CRD_RESOURCE).read_text(encoding="utf-8")


@click.group(
    epilog="""\b
Examples:
  obol crd print > serviceoffer-crd.yaml
  obol crd apply --context my-cluster
"""
)
def crd() -> None:
    """Print or install the ServiceOffer CRD that ships with this package."""


@crd.command("print")
def print_crd() -> None:
    """Print the ServiceOffer CRD (YAML), e.g. to pipe into kubectl apply -f -."""
    click.echo(crd_text(), nl=False)


@crd.command("apply")
@kubectl_options
def apply_crd(kubectl_path: str, kube_context: str | None) -> None:
    """Install or update the ServiceOffer CRD in the cluster with kubectl apply."""
    document: Any = yaml.safe_load(crd_text())
    applied = Kubectl(kubectl_path, kube_context).apply(document)
    click.echo(
        applied or "customresourcedefinition.apiextensions.k8s.io/serviceoffers.obol.org applied"
    )

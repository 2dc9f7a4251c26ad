"""What an offer's name and spec decide on their own, whatever was observed.

:func:`plan_offer` validates the spec, works out the limits the gateway will enforce, resolves
the payment terms and builds the desired children. :mod:`hooks.core.sync` answers with the plan's
children; :mod:`hooks.core.status` reports on it; the CLI previews it.

Pure: no I/O. Raises :class:`~hooks.core.errors.SpecError` with every problem's field path, or
:class:`NotRendered` for a valid offer this controller keeps but does not render (obol-stack's
``agent``, ``fine-tuning``, ``dataset`` and ``skill`` types, and card payments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hooks.core.admission import EnforcedLimits, Manifest, enforced_limits
from hooks.core.children import desired_children, rendered_upstream
from hooks.core.errors import FieldProblem, SpecError
from hooks.core.models import RENDERED_TYPES, ServiceOfferSpec, parse_spec
from hooks.core.names import ChildNames, offer_names, upstream_url
from hooks.core.observation import UpstreamTarget
from hooks.core.payment import ResolvedPayment, resolve_payment
from hooks.core.settings import Settings


@dataclass(frozen=True, slots=True)
class OfferPlan:
    """A valid offer's spec, enforced limits, payment terms, child names and children."""

    namespace: str
    spec: ServiceOfferSpec
    limits: EnforcedLimits
    payment: ResolvedPayment
    names: ChildNames
    children: list[Manifest]

    @property
    def upstream(self) -> UpstreamTarget:
        """The upstream as the observer probes it and the status shows it."""
        upstream = rendered_upstream(self.spec)
        return UpstreamTarget(
            upstream_url(self.namespace, upstream.service, upstream.namespace, upstream.port),
            # Empty means "/", as obol-stack's EffectiveHealthPath reads it.
            upstream.health_path or "/",
            # Engine gauges are read only where they can say Saturated.
            wants_metrics=self.spec.type == "inference" and self.spec.capacity is not None,
        )


def plan_offer(namespace: str, name: str, raw_spec: Any, settings: Settings) -> OfferPlan:
    """The plan of the offer ``namespace/name`` with spec ``raw_spec``."""
    spec = parse_spec(raw_spec)
    _check_rendered(spec)
    limits = enforced_limits(spec, settings)
    payment = resolve_payment(spec.payment, settings.asset_registry)
    names = offer_names(namespace, name, spec.path)
    children = desired_children(namespace, name, spec, names, limits, payment, settings)
    return OfferPlan(namespace, spec, limits, payment, names, children)


class NotRendered(SpecError):
    """A valid offer this controller keeps but does not render children for."""


_KEPT_AS_IS = "the offer and any children it has are left as they are"


def _check_rendered(spec: ServiceOfferSpec) -> None:
    if spec.type not in RENDERED_TYPES:
        raise NotRendered(
            FieldProblem(
                "spec.type",
                "is kept but not rendered by this controller, which renders inference and http"
                f" offers; {_KEPT_AS_IS}",
                spec.type,
            )
        )
    if spec.payment.method == "card":
        raise NotRendered(
            FieldProblem(
                "spec.payment.method",
                "is kept but not rendered: this controller's gate takes x402 crypto payments"
                f" only; {_KEPT_AS_IS}",
                "card",
            )
        )

"""Builders for the offer's HTTPRoute and pricing ConfigMap, and the full desired child set.

The Middlewares and Services of the admission chain are built in :mod:`hooks.core.admission`.
Every child is built fresh on each call with only the fields we own, server defaults written out
(so Metacontroller's three-way merge is a no-op on the next sync; hence the one empty string, a
core backendRef's ``group: ""``), no nulls, no ownerReferences, and always in the offer's
namespace.

Pure: no I/O; the same inputs give the same dicts.
"""

from __future__ import annotations

from typing import Any

import orjson

from hooks.core import api
from hooks.core.admission import (
    EnforcedLimits,
    Manifest,
    chain_middlewares,
    chain_services,
    route_filters,
)
from hooks.core.errors import HookFailure
from hooks.core.models import ServiceOfferSpec, Upstream
from hooks.core.names import ChildNames, child, upstream_url
from hooks.core.payment import ResolvedPayment
from hooks.core.settings import Settings

# The verifier's route list as JSON (a subset of YAML, so a YAML route loader reads it too).
PRICING_KEY = "routes.json"


def rendered_upstream(spec: ServiceOfferSpec) -> Upstream:
    """The upstream of an offer that is rendered (the model requires one for those types)."""
    if spec.upstream is None:
        raise HookFailure("an offer without an upstream is never rendered")
    return spec.upstream


def build_httproute(
    namespace: str,
    spec: ServiceOfferSpec,
    names: ChildNames,
    filters: list[Manifest],
    settings: Settings,
) -> Manifest:
    """The offer's HTTPRoute: one parentRef, one rule, one PathPrefix match, one backend.

    One rule with one match on one listener means one Traefik router, hence one in-flight
    counter per gateway replica.
    """
    # group "" is the API server's default for a core Service. It is the one empty string we
    # emit: Metacontroller replaces the rules list wholesale, so an omitted default would make
    # every sync write the HTTPRoute again.
    backend: dict[str, Any]
    if settings.seller_proxy:
        # The verifier's proxy, through the offer's TraefikService (see hooks.core.admission).
        backend = {
            "group": "traefik.io",
            "kind": api.TRAEFIKSERVICE_KIND,
            "name": names.verifier_backend,
            "weight": 1,
        }
    else:
        upstream = rendered_upstream(spec)
        backend = {
            "group": "",
            "kind": "Service",
            "name": upstream.service,
            "port": upstream.port,
            "weight": 1,
        }
        if upstream.namespace is not None and upstream.namespace != namespace:
            backend["namespace"] = upstream.namespace
    rule: dict[str, Any] = {"matches": [{"path": {"type": "PathPrefix", "value": names.path}}]}
    if filters:
        rule["filters"] = filters
    rule["backendRefs"] = [backend]
    return {
        **child(api.HTTPROUTE_KIND, names.route, namespace, names, "route"),
        "spec": {
            "parentRefs": [
                {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "name": settings.gateway_name,
                    "namespace": settings.gateway_namespace,
                    "sectionName": settings.gateway_listener,
                }
            ],
            "rules": [rule],
        },
    }


def build_pricing_configmap(
    namespace: str,
    offer: str,
    spec: ServiceOfferSpec,
    names: ChildNames,
    payment: ResolvedPayment,
    settings: Settings,
) -> Manifest:
    """ConfigMap carrying the offer's entry in the x402 verifier's route format, labelled so a
    verifier can select all of them.

    With the seller-proxy gate the verifier also proxies, so the route says where to
    (``upstreamURL``), what to strip (``stripPrefix``, the verifier sees the public path) and,
    when declared, the per-buyer limit only the verifier can enforce (``perBuyerMaxInFlight``,
    answered with 429 and ``retryAfterSeconds`` before any settlement).

    The pattern is the route path without a trailing ``/``, plus ``/*`` (obol-stack's rule), and
    obol-stack's ``spec.model.name`` is passed on as ``model``.
    """
    asset = payment.asset
    route: dict[str, Any] = {
        "pattern": f"{names.path.rstrip('/')}/*",
        "price": payment.quote_amount,
        "description": f"ServiceOffer {namespace}/{offer}",
        "payTo": payment.pay_to,
        "network": payment.network.caip2,
        "assetAddress": asset.address,
        "assetSymbol": asset.symbol,
        "assetDecimals": asset.decimals,
        "assetTransferMethod": asset.transfer_method,
        "eip712Name": asset.eip712_name,
        "eip712Version": asset.eip712_version,
        "maxTimeoutSeconds": payment.max_timeout_seconds,
        "priceModel": payment.price_model,
        "offerNamespace": namespace,
        "offerName": offer,
    }
    if payment.price_model == "perMTok":
        route["perMTok"] = payment.per_mtok_amount
    if spec.model is not None:
        route["model"] = spec.model.name
    if settings.seller_proxy:
        upstream = rendered_upstream(spec)
        route["upstreamURL"] = upstream_url(
            namespace, upstream.service, upstream.namespace, upstream.port
        )
        route["stripPrefix"] = names.path
        capacity = spec.capacity
        if capacity is not None and capacity.per_buyer_max_in_flight is not None:
            route["perBuyerMaxInFlight"] = capacity.per_buyer_max_in_flight
            route["retryAfterSeconds"] = capacity.retry_after_seconds
    configmap = child(api.CONFIGMAP_KIND, names.pricing, namespace, names, "pricing")
    configmap["metadata"]["labels"][api.LABEL_PRICING] = "true"
    options = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
    document = orjson.dumps({"routes": [route]}, option=options).decode()
    return {**configmap, "data": {PRICING_KEY: document}}


def desired_children(
    namespace: str,
    offer: str,
    spec: ServiceOfferSpec,
    names: ChildNames,
    limits: EnforcedLimits,
    payment: ResolvedPayment,
    settings: Settings,
) -> list[Manifest]:
    """Every child of a valid offer: route, admission chain, pricing."""
    middlewares = chain_middlewares(namespace, offer, spec, names, limits, settings)
    filters = route_filters(middlewares, names, limits, settings)
    return [
        build_httproute(namespace, spec, names, filters, settings),
        *middlewares,
        *chain_services(namespace, names, settings, spec.capacity is not None),
        build_pricing_configmap(namespace, offer, spec, names, payment, settings),
    ]

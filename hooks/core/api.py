"""API identities shared by the code, the CRD and the Metacontroller manifests.

Every group, version, kind and label key this project writes lives here, so the
CompositeController's ``childResources`` and the objects the hook returns can never disagree
(an apiVersion mismatch makes Metacontroller delete and recreate a child on every sync); and the
API server's name rules, which every check of a namespace or object name uses.

Constants and one-line predicates: no imports beyond the standard library.
"""

from __future__ import annotations

import re
from typing import Final

GROUP: Final = "obol.org"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "ServiceOffer"
PLURAL: Final = "serviceoffers"

HTTPROUTE_API_VERSION: Final = "gateway.networking.k8s.io/v1"
HTTPROUTE_KIND: Final = "HTTPRoute"
MIDDLEWARE_API_VERSION: Final = "traefik.io/v1alpha1"
MIDDLEWARE_KIND: Final = "Middleware"
CONFIGMAP_API_VERSION: Final = "v1"
CONFIGMAP_KIND: Final = "ConfigMap"
SERVICE_API_VERSION: Final = "v1"
SERVICE_KIND: Final = "Service"
TRAEFIKSERVICE_API_VERSION: Final = "traefik.io/v1alpha1"
TRAEFIKSERVICE_KIND: Final = "TraefikService"


def children_key(kind: str, api_version: str) -> str:
    """The key Metacontroller uses for one child type in a sync request (``Kind.group/version``)."""
    return f"{kind}.{api_version}"


# The child types, in the order the CompositeController lists them.
CHILD_TYPES: Final = (
    (HTTPROUTE_API_VERSION, HTTPROUTE_KIND, "httproutes"),
    (MIDDLEWARE_API_VERSION, MIDDLEWARE_KIND, "middlewares"),
    (CONFIGMAP_API_VERSION, CONFIGMAP_KIND, "configmaps"),
    (SERVICE_API_VERSION, SERVICE_KIND, "services"),
    # Only in the seller-proxy gate: the route's backend (Traefik's Gateway provider refuses an
    # ExternalName Service as a backendRef, its CRD provider accepts one inside a TraefikService).
    (TRAEFIKSERVICE_API_VERSION, TRAEFIKSERVICE_KIND, "traefikservices"),
)
CHILD_KINDS: Final = frozenset(kind for _, kind, _ in CHILD_TYPES)

# Labels stamped on every child. Metacontroller adds its own `controller-uid` label.
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "serviceoffer-hook"
LABEL_OFFER_NAME: Final = "obol.org/serviceoffer-name"
LABEL_OFFER_NAMESPACE: Final = "obol.org/serviceoffer-namespace"
LABEL_COMPONENT: Final = "obol.org/component"
# Pricing ConfigMaps carry this label so an x402 verifier can select all of them.
LABEL_PRICING: Final = "obol.org/x402-pricing"

# What the API server allows: a namespace (or a Service) is a DNS-1123 label, an object name a
# DNS-1123 subdomain. The label pattern is also a pydantic field pattern (a whole-string match
# there); in Python it is only ever used through fullmatch, since "$" also matches before a "\n".
DNS1123_LABEL: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_LABEL: Final = re.compile(DNS1123_LABEL)
_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def is_dns_label(value: str) -> bool:
    """True for a DNS-1123 label of at most 63 characters (a namespace, a Service name)."""
    return len(value) <= 63 and _LABEL.fullmatch(value) is not None


def is_dns_subdomain(value: str) -> bool:
    """True for a DNS-1123 subdomain of at most 253 characters (an object name)."""
    return len(value) <= 253 and _SUBDOMAIN.fullmatch(value) is not None


# Metacontroller's dynamic-apply annotation: the last desired object it applied.
LAST_APPLIED_ANNOTATION: Final = "metacontroller.k8s.io/last-applied-configuration"

"""The ServiceOffer resource as typed pydantic models, mirroring ``crds/serviceoffer.yaml``.

Strict on the spec we own (unknown fields, wrong types and out-of-range values are errors),
lenient on Kubernetes metadata and on everything else in a request (extra fields ignored).
The hook and the CLI both parse offers through :func:`parse_offer` / :func:`parse_spec`, so a
seller sees the same message from ``obol sell`` as from the controller's status.

Field rules that need outside knowledge (is this network known, does this token exist there,
does this price fit the token's decimals) live in :mod:`hooks.core.payment`; this module checks only
what the CRD itself can check.

The spec is a superset of obol-stack's ``ServiceOffer`` (both of its code lines): an offer that
obol-stack's CRD stored parses here too. Fields this controller acts upon are typed
(``model``, ``path``, ``limits``, the asset object, ``price.perHour``/``perEpoch``/``perMB``);
the ones it keeps but does not act upon (``registration``, ``routes``, ``payments``, ``hostname``,
``drainAt`` ...) are kept as plain JSON and listed in status by :func:`not_acted_upon`.

Pure: no I/O, no environment, no clock. Every error becomes a :class:`~hooks.core.errors.SpecError`
whose problems carry the field path, the value and the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, cast

from Crypto.Hash import keccak
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from hooks.core import api
from hooks.core.assets import ZERO_ADDRESS, TransferMethod
from hooks.core.errors import FieldProblem, SpecError

DNS1123_LABEL = api.DNS1123_LABEL
EVM_ADDRESS = r"^0x[0-9a-fA-F]{40}$"
DECIMAL_STRING = r"^[0-9]+(\.[0-9]+)?$"
NETWORK_ID = r"^([a-z0-9]+(-[a-z0-9]+)*|eip155:[0-9]+)$"
ASSET_REF = r"^(usdc|obol|0x[0-9a-fA-F]{40})$"
HTTP_PATH = r"^/[^\s?#]*$"
HEALTH_PATH = r"^(/[^\s?#]*)?$"
# obol-stack's spec.path pattern.
OFFER_PATH = r"^/[a-zA-Z0-9/_.-]*$"

OfferType = Literal["inference", "http", "agent", "fine-tuning", "dataset", "skill"]
# The types this controller renders children for; the others are kept with Ready=False.
RENDERED_TYPES: frozenset[str] = frozenset({"inference", "http"})
ModelRuntime = Literal["ollama", "vllm", "tgi"]
PaymentMethod = Literal["crypto", "card"]
# obol-stack's default upstream port (its EffectivePort) when spec.upstream.port is omitted.
DEFAULT_UPSTREAM_PORT = 11434
# Paths obol-stack keeps for itself (its ReservedPathConflict): the exact ones, and the prefixes
# under which nothing may be published.
RESERVED_EXACT_PATHS = ("/", "/services")
RESERVED_PATH_PREFIXES = ("/api", "/openapi.json", "/skill.md", "/rpc", "/.well-known")
Protocol = Literal["openai-chat", "openai-completions", "openai-embeddings", "http"]
# Upper bounds of the spec's integers, the same as the CRD's `maximum`s (a unit test compares
# them). Generous, so no realistic offer stored before they existed becomes invalid; their point
# is that no value reaches Traefik, JSON or the CLI's output that the hook would refuse.
MAX_TOKENS = 1_000_000_000
MAX_BODY_BYTES = 1 << 30
MAX_GPUS = 65_536
MAX_IN_FLIGHT = 1_000_000
MAX_RPS = 1_000_000
CapacityMode = Literal["external-static"]
Scheme = Literal["exact"]


class CrossFieldError(ValueError):
    """A rule across fields failed; ``field`` is the sub-path the message is about."""

    def __init__(self, field: str, reason: str, value: Any = None) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.value = value


class _Strict(BaseModel):
    """Base for the spec we own: camelCase on the wire, unknown fields and coercion refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        frozen=True,
    )


class Upstream(_Strict):
    """The in-cluster Service that fronts the external inference server."""

    service: Annotated[str, Field(max_length=63, pattern=DNS1123_LABEL)]
    namespace: Annotated[str | None, Field(max_length=63, pattern=DNS1123_LABEL)] = None
    port: Annotated[int, Field(ge=1, le=65535)] = DEFAULT_UPSTREAM_PORT
    # Empty means "/" (obol-stack's EffectiveHealthPath); the CRD stores any string.
    health_path: Annotated[str, Field(max_length=1024, pattern=HEALTH_PATH)] = "/health"


class Capabilities(_Strict):
    """What the upstream speaks; advertised to buyers."""

    protocol: Protocol | None = None
    streaming: bool = False
    context_window_tokens: Annotated[int | None, Field(ge=1, le=MAX_TOKENS)] = None


class RequestLimits(_Strict):
    """Per-request limits; which ones the gateway enforces is reported in status."""

    max_input_tokens: Annotated[int | None, Field(ge=1, le=MAX_TOKENS)] = None
    max_output_tokens: Annotated[int | None, Field(ge=1, le=MAX_TOKENS)] = None
    max_body_bytes: Annotated[int | None, Field(ge=1, le=MAX_BODY_BYTES)] = None


class Capacity(_Strict):
    """The static, seller-declared capacity envelope. Never a scaling instruction."""

    mode: CapacityMode
    gpu_count: Annotated[int | None, Field(ge=0, le=MAX_GPUS)] = None
    max_in_flight: Annotated[int, Field(ge=1, le=MAX_IN_FLIGHT)]
    per_buyer_max_in_flight: Annotated[int | None, Field(ge=1, le=MAX_IN_FLIGHT)] = None
    max_queue_depth: Annotated[int, Field(ge=0, le=MAX_IN_FLIGHT)] = 0
    retry_after_seconds: Annotated[int, Field(ge=1, le=3600)] = 2

    @model_validator(mode="after")
    def _envelope_is_consistent(self) -> Capacity:
        buyer = self.per_buyer_max_in_flight
        if buyer is not None and buyer > self.max_in_flight:
            raise CrossFieldError(
                "perBuyerMaxInFlight",
                f"must be <= maxInFlight ({buyer} > {self.max_in_flight})",
            )
        if self.max_queue_depth != 0:
            raise CrossFieldError(
                "maxQueueDepth",
                "must be 0: queueing is not supported for external-static capacity"
                " (a saturated offer answers 429 at once)",
                self.max_queue_depth,
            )
        return self


class Price(_Strict):
    """Prices as decimal strings in whole token units (e.g. ``"0.001"`` USDC).

    ``perHour``, ``perEpoch`` and ``perMB`` are obol-stack's; :mod:`hooks.core.payment` says how
    each is quoted (obol-stack's verifier charges ``perHour`` and ``perMB`` as flat per-request
    prices and never quotes ``perEpoch``).
    """

    per_request: Annotated[str | None, Field(max_length=64, pattern=DECIMAL_STRING)] = None
    per_m_tok: Annotated[
        str | None, Field(alias="perMTok", max_length=64, pattern=DECIMAL_STRING)
    ] = None
    per_hour: Annotated[str | None, Field(max_length=64, pattern=DECIMAL_STRING)] = None
    per_epoch: Annotated[str | None, Field(max_length=64, pattern=DECIMAL_STRING)] = None
    per_mb: Annotated[str | None, Field(alias="perMB", max_length=64, pattern=DECIMAL_STRING)] = (
        None
    )

    @model_validator(mode="after")
    def _at_least_one(self) -> Price:
        prices = (self.per_request, self.per_m_tok, self.per_hour, self.per_epoch, self.per_mb)
        if all(price is None for price in prices):
            raise CrossFieldError("", "must set perRequest, perMTok or both")
        return self


class AssetObject(_Strict):
    """obol-stack's token override: the token spelled out instead of named by symbol."""

    address: Annotated[str | None, Field(pattern=EVM_ADDRESS)] = None
    symbol: Annotated[str | None, Field(min_length=1, max_length=16)] = None
    decimals: Annotated[int | None, Field(ge=0, le=255)] = None
    transfer_method: TransferMethod | None = None
    eip712_name: Annotated[str | None, Field(alias="eip712Name", min_length=1, max_length=128)] = (
        None
    )
    eip712_version: Annotated[
        str | None, Field(alias="eip712Version", min_length=1, max_length=32)
    ] = None


def _asset_form(value: Any) -> str:
    # A mapping when validating, the model itself when serialising.
    return "asset-object" if isinstance(value, dict | AssetObject) else "asset-ref"


# spec.payment.asset: a symbol or address (this project's form) or an object (obol-stack's form).
# The tags never appear in field paths (see _ASSET_TAGS).
AssetRef = Annotated[
    Annotated[Annotated[str, Field(pattern=ASSET_REF)], Tag("asset-ref")]
    | Annotated[AssetObject, Tag("asset-object")],
    Discriminator(_asset_form),
]
_ASSET_TAGS = frozenset({"asset-ref", "asset-object"})


class Payment(_Strict):
    """x402 payment terms."""

    method: PaymentMethod | None = None
    network: Annotated[str | None, Field(max_length=64, pattern=NETWORK_ID)] = None
    asset: AssetRef = "usdc"
    pay_to: Annotated[str | None, Field(pattern=EVM_ADDRESS)] = None
    scheme: Scheme = "exact"
    max_timeout_seconds: Annotated[int, Field(ge=1, le=86400)] = 300
    price: Price
    card: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _crypto_terms(self) -> Payment:
        # obol-stack's rule: network and payTo are needed unless the buyer pays by card.
        if self.method != "card":
            for name, value in (("network", self.network), ("payTo", self.pay_to)):
                if value is None:
                    raise CrossFieldError(name, "required field is missing")
        return self

    @model_validator(mode="after")
    def _pay_to_can_receive(self) -> Payment:
        # A payment sent to a wrong address is lost, silently: refuse the addresses that are
        # certainly wrong. (A token contract of the registry is refused in hooks.core.payment.)
        problem = None if self.pay_to is None else pay_to_problem(self.pay_to)
        if problem is not None:
            raise CrossFieldError("payTo", problem, self.pay_to)
        return self


def pay_to_problem(address: str) -> str | None:
    """Why ``address`` (0x + 40 hex digits) cannot receive payments, or None."""
    if address.lower() == ZERO_ADDRESS:
        return "must not be the zero address: payments sent there are lost"
    if not eip55_checksum_ok(address):
        return (
            "mixes upper and lower case but its EIP-55 checksum is wrong, so a character is"
            " likely mistyped: copy the address again from the wallet"
        )
    return None


def eip55_checksum_ok(address: str) -> bool:
    """True unless ``address`` mixes cases and the cases disagree with its EIP-55 checksum.

    EIP-55: the i-th hex letter is upper case exactly when the i-th nibble of
    keccak-256(lower-case hex digits) is >= 8. A single-case address carries no checksum.
    """
    digits = address[2:]
    if digits == digits.lower() or digits == digits.upper():
        return True
    lower = digits.lower()
    digest = keccak.new(digest_bits=256, data=lower.encode("ascii")).hexdigest()
    # A hex digit >= "8" compares greater as text too ("9" < "a" in ASCII).
    expected = "".join([c.upper() if n >= "8" else c for c, n in zip(lower, digest, strict=False)])
    return expected == digits


class ModelRef(_Strict):
    """obol-stack's ``spec.model``: which model the upstream serves (shown in status)."""

    name: Annotated[str, Field(min_length=1, max_length=256)]
    runtime: ModelRuntime | None = None


class Limits(_Strict):
    """obol-stack's ``spec.limits`` (0 = no cap).

    ``maxInFlight`` is the same ceiling as ``capacity.maxInFlight``; ``rps`` becomes a Traefik
    rateLimit placed before the payment gate.
    """

    max_in_flight: Annotated[int | None, Field(ge=0, le=MAX_IN_FLIGHT)] = None
    rps: Annotated[int | None, Field(ge=0, le=MAX_RPS)] = None


def route_path_reason(path: str) -> str | None:
    """Why Gateway API would refuse ``path`` as an HTTPRoute ``PathPrefix`` value, or None.

    The rules of Gateway API v1.5.1's HTTPRoute CRD (its CEL on ``matches[].path``) that
    :data:`OFFER_PATH`'s characters leave open: no empty and no dot segments. The CRD carries the
    same two rules, with the same words.
    """
    if "//" in path:
        return "must not contain '//' (Gateway API refuses it in an HTTPRoute path)"
    if "/./" in path or "/../" in path or path.endswith(("/.", "/..")):
        return (
            "must not contain a '.' or '..' segment (Gateway API refuses it in an HTTPRoute path)"
        )
    return None


def reserved_path_reason(path: str) -> str | None:
    """Why obol-stack reserves ``path`` (its ReservedPathConflict), or None when it is free."""
    if path in RESERVED_EXACT_PATHS:
        return "is reserved (the gateway's root and /services itself cannot be sold)"
    for prefix in RESERVED_PATH_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return f"is reserved: nothing may be published at or under {prefix}"
    return None


class ServiceOfferSpec(_Strict):
    """``spec`` of a ServiceOffer. Omitting capacity, requestLimits and capabilities is valid."""

    type: OfferType = "http"
    model: ModelRef | None = None
    upstream: Upstream | None = None
    capabilities: Capabilities | None = None
    request_limits: RequestLimits | None = None
    capacity: Capacity | None = None
    payment: Payment
    path: Annotated[str | None, Field(max_length=512, pattern=OFFER_PATH)] = None
    limits: Limits | None = None
    # Kept and listed in status, not acted upon (see not_acted_upon).
    payments: list[dict[str, Any]] | None = None
    routes: list[dict[str, Any]] | None = None
    hostname: Annotated[str | None, Field(max_length=253)] = None
    branding: dict[str, Any] | None = None
    listing: dict[str, Any] | None = None
    async_: dict[str, Any] | None = Field(default=None, alias="async")
    provenance: dict[str, str] | None = None
    registration: dict[str, Any] | None = None
    agent: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None
    skill: dict[str, Any] | None = None
    drain_at: str | None = None
    drain_grace_period: str | None = None

    @model_validator(mode="after")
    def _fields_agree(self) -> ServiceOfferSpec:
        if self.upstream is None and self.type in RENDERED_TYPES:
            raise CrossFieldError("upstream", f"required field is missing (type {self.type})")
        if self.path is not None:
            # Dot segments first: "/x/../api" is "/api", which the reserved rule must not judge
            # by its text.
            reason = route_path_reason(self.path) or reserved_path_reason(self.path)
            if reason is not None:
                raise CrossFieldError("path", reason, self.path)
        window = self.capabilities.context_window_tokens if self.capabilities else None
        limits = self.request_limits
        if window is not None and limits is not None:
            for name, value in (
                ("maxInputTokens", limits.max_input_tokens),
                ("maxOutputTokens", limits.max_output_tokens),
            ):
                if value is not None and value > window:
                    raise CrossFieldError(
                        f"requestLimits.{name}",
                        f"must be <= capabilities.contextWindowTokens ({value} > {window})",
                    )
        ceiling = self.limits.max_in_flight if self.limits else None
        if ceiling and self.capacity is not None and ceiling != self.capacity.max_in_flight:
            raise CrossFieldError(
                "limits.maxInFlight",
                "must equal capacity.maxInFlight when both are set: they are the same ceiling"
                f" ({ceiling} != {self.capacity.max_in_flight})",
            )
        if self.capacity is not None:
            retry = self.capacity.retry_after_seconds
            timeout = self.payment.max_timeout_seconds
            if retry >= timeout:
                raise CrossFieldError(
                    "capacity.retryAfterSeconds",
                    f"must be < payment.maxTimeoutSeconds ({retry} >= {timeout}):"
                    " a buyer told to wait must still be able to use its signed payment",
                )
        return self

    @property
    def streams(self) -> bool:
        """True when the offer streams responses (buffering must then stay off)."""
        return self.capabilities is not None and self.capabilities.streaming


class ObjectMeta(BaseModel):
    """The metadata fields the hook reads; everything else is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=253)]
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class ServiceOffer(BaseModel):
    """A whole ServiceOffer: lenient metadata and status, strict spec."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    api_version: str = Field(default=api.API_VERSION, alias="apiVersion")
    kind: str = api.KIND
    metadata: ObjectMeta
    spec: ServiceOfferSpec


_PYDANTIC_REASONS: Mapping[str, str] = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
}

_COMPARISONS: Mapping[str, str] = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}


def _camel_path(loc: tuple[int | str, ...], prefix: str) -> str:
    parts = [prefix] if prefix else []
    for item in loc:
        if item in _ASSET_TAGS:
            continue
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
        else:
            parts.append(item)
    return ".".join(parts)


_PATTERN_REASONS: Mapping[str, str] = {
    DNS1123_LABEL: "must be a DNS-1123 label (lower-case letters, digits and '-')",
    EVM_ADDRESS: "must be an EVM address: 0x followed by 40 hex digits",
    DECIMAL_STRING: 'must be a plain decimal string such as "0.001" (no sign, no exponent)',
    NETWORK_ID: "must be a network name such as base or a CAIP-2 id such as eip155:8453",
    ASSET_REF: "must be usdc, obol or a token address (0x followed by 40 hex digits)",
    HTTP_PATH: "must be an absolute path starting with / (no spaces, query or fragment)",
    HEALTH_PATH: "must be empty (meaning /) or an absolute path starting with / (no spaces,"
    " query or fragment)",
}


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _PYDANTIC_REASONS:
        return _PYDANTIC_REASONS[kind]
    if kind in _COMPARISONS:
        return f"must be {_COMPARISONS[kind]} {next(iter(ctx.values()))}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}".replace("'", "")
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return _PATTERN_REASONS.get(pattern, f"must match {pattern}")
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return f"must be at least {ctx.get('min_length')} characters"
    return str(error["msg"])


def problems_from_validation(exc: ValidationError, prefix: str) -> list[FieldProblem]:
    """Turn pydantic's errors into field problems with camelCase paths under ``prefix``."""
    problems: list[FieldProblem] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, CrossFieldError):
            sub = tuple(p for p in cause.field.split(".") if p)
            path = _camel_path(loc + sub, prefix)
            problems.append(FieldProblem(path, cause.reason, cause.value))
            continue
        value = None if error["type"] == "missing" else error.get("input")
        if isinstance(value, Mapping | list):
            value = None
        problems.append(FieldProblem(_camel_path(loc, prefix), _reason(error), value))
    return problems


_SPEC_VALIDATOR = ServiceOfferSpec.__pydantic_validator__

# Fields kept in the spec (obol-stack's) that this controller does not act upon, by attribute
# and wire name.
_KEPT_FIELDS: tuple[tuple[str, str], ...] = tuple(
    (name, str(ServiceOfferSpec.model_fields[name].alias))
    for name in (
        "payments routes hostname branding listing async_ provenance registration agent dataset"
        " skill drain_at drain_grace_period"
    ).split()
)


def not_acted_upon(spec: ServiceOfferSpec) -> list[str]:
    """Paths of the fields the offer sets that this controller keeps but does not act upon.

    Prices that the quote does not use are added by :mod:`hooks.core.payment`.
    """
    found = [f"spec.{wire}" for attr, wire in _KEPT_FIELDS if getattr(spec, attr) is not None]
    if spec.payment.card is not None:
        found.append("spec.payment.card")
    return found


def parse_spec(spec: Any) -> ServiceOfferSpec:
    """Validate a ``spec`` mapping; raise :class:`SpecError` listing every problem."""
    if not isinstance(spec, Mapping):
        raise SpecError.at(
            "spec", "must be an object", None if spec is None else type(spec).__name__
        )
    try:
        # The model's pydantic-core validator, called directly: the same validation as
        # ServiceOfferSpec.model_validate without its per-call keyword handling (the hook parses
        # a spec on every sync).
        parsed = cast(ServiceOfferSpec, _SPEC_VALIDATOR.validate_python(spec))
    except ValidationError as exc:
        raise SpecError(problems_from_validation(exc, "spec")) from None
    return _with_limits_ceiling(parsed)


def _with_limits_ceiling(spec: ServiceOfferSpec) -> ServiceOfferSpec:
    """obol-stack's ``limits.maxInFlight`` is the same ceiling as ``capacity.maxInFlight``: an
    offer that sets only the former gets the equivalent envelope (same 429 path, same status)."""
    ceiling = spec.limits.max_in_flight if spec.limits else None
    if not ceiling or spec.capacity is not None:
        return spec
    # The default Retry-After, lowered only if the payment's validity window is shorter.
    retry = min(2, max(1, spec.payment.max_timeout_seconds - 1))
    capacity = Capacity(mode="external-static", max_in_flight=ceiling, retry_after_seconds=retry)
    return spec.model_copy(update={"capacity": capacity})


def parse_offer(obj: Any) -> ServiceOffer:
    """Validate a whole ServiceOffer object (as read from the API server or a YAML file)."""
    if not isinstance(obj, Mapping):
        raise SpecError.at("<object>", "must be a mapping")
    problems: list[FieldProblem] = []
    if obj.get("apiVersion", api.API_VERSION) != api.API_VERSION:
        problems.append(FieldProblem("apiVersion", f"must be {api.API_VERSION}", obj["apiVersion"]))
    if obj.get("kind", api.KIND) != api.KIND:
        problems.append(FieldProblem("kind", f"must be {api.KIND}", obj["kind"]))
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not name:
        problems.append(FieldProblem("metadata.name", "required field is missing"))
    elif not api.is_dns_subdomain(name):
        problems.append(
            FieldProblem("metadata.name", "must be a DNS-1123 subdomain (lower-case)", name)
        )
    spec: ServiceOfferSpec | None = None
    try:
        spec = parse_spec(obj.get("spec"))
    except SpecError as exc:
        problems.extend(exc.problems)
    if problems or spec is None:
        raise SpecError(problems)
    return ServiceOffer(metadata=ObjectMeta.model_validate(meta), spec=spec)

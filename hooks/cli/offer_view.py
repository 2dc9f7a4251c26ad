"""Turn ServiceOffer objects (spec + status, as kubectl returns them) into display rows.

Used by ``obol sell status`` and ``obol sell list``. The view reads ``status`` first, because
that is what the hook resolved and observed, and falls back to ``spec`` for anything the hook has
not reported yet (a new offer, or a hook that is not running). Values that are not known are shown
as such (``Unknown``, ``-``), never guessed: current in-flight use in particular is ``Unknown``
unless the status carries an observed ``inFlight``.

The objects come from the API server and may be anything a user managed to store, so this module
reads them leniently: it never raises on a missing or odd field and never validates the spec (that
is :mod:`hooks.core.models`' job).

Pure: no I/O, no kubectl, no environment, no clock. The functions return strings and plain data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

UNKNOWN = "Unknown"
NONE_SHOWN = "-"
NO_CAPACITY_MODE = "none"
SCALING_NOTE = "capacity is declared by the seller; nothing is autoscaled"
# A status without paymentGate comes from the default gate (the hook writes the block otherwise).
DEFAULT_GATE = "forward-auth"
SETTLEMENT_TEXT = {
    "after-upstream": "the verifier settles after the upstream answered below 400",
    "on-verify": "the verifier settles during /verify, before the upstream answers",
    "deferred": "not by the gateway: /verify only verifies",
}

# ``obol sell list``: (column, -o json|yaml key, OfferView attribute) of each field.
_LIST_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("NAMESPACE", "namespace", "namespace"),
    ("NAME", "name", "name"),
    ("TYPE", "type", "type"),
    ("PRICE", "price", "price"),
    ("NETWORK", "network", "network"),
    ("MAX-IN-FLIGHT", "maxInFlight", "max_in_flight"),
    ("CAPACITY", "capacity", "capacity_state"),
    ("READY", "ready", "ready"),
)
LIST_COLUMNS: tuple[str, ...] = tuple(column for column, _, _ in _LIST_FIELDS)


@dataclass(frozen=True, slots=True)
class ConditionView:
    """One status condition, as shown to a seller."""

    type: str
    status: str
    reason: str
    message: str

    def line(self) -> str:
        """``Type=Status`` and, unless it is True, the reason and message."""
        text = f"{self.type}={self.status}"
        if self.status == "True":
            return text
        detail = ": ".join(part for part in (self.reason, self.message) if part)
        return f"{text} ({detail})" if detail else text


@dataclass(frozen=True, slots=True)
class OfferView:
    """Everything ``obol sell status`` and ``obol sell list`` show about one offer."""

    namespace: str
    name: str
    type: str
    endpoint: str | None
    price: str
    network: str
    quote: str | None
    capacity_mode: str
    scaling_controlled: bool
    gpu_count: int | None
    max_in_flight: int | None
    per_buyer_max_in_flight: int | None
    in_flight: int | None
    capacity_state: str
    payment_gate: str
    settlement: str
    per_buyer_enforced_by: str | None
    ready: str
    conditions: tuple[ConditionView, ...]
    warnings: tuple[str, ...]
    # obol-stack's spec.model.name, and the spec fields the controller keeps but ignores.
    model: str | None = None
    not_acted_upon: tuple[str, ...] = ()


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _first_integer(*values: Any) -> int | None:
    for value in values:
        number = _integer(value)
        if number is not None:
            return number
    return None


def offer_view(obj: Mapping[str, Any]) -> OfferView:
    """Build the view of one ServiceOffer object (status preferred, spec as the fallback)."""
    meta = _mapping(obj.get("metadata"))
    spec = _mapping(obj.get("spec"))
    status = _mapping(obj.get("status"))
    declared = _mapping(spec.get("capacity"))
    reported = _mapping(status.get("capacity"))
    conditions = _conditions(status.get("conditions"))
    ready = next((c.status for c in conditions if c.type == "Ready"), UNKNOWN)
    gate = _mapping(status.get("paymentGate"))
    per_buyer = _first_integer(
        reported.get("perBuyerMaxInFlight"), declared.get("perBuyerMaxInFlight")
    )
    enforced_by: str | None
    if gate:
        enforced_by = _text(gate.get("perBuyerLimit")) or UNKNOWN
    else:
        enforced_by = "gateway" if per_buyer is not None else None
    return OfferView(
        namespace=_text(meta.get("namespace")) or "default",
        name=_text(meta.get("name")) or NONE_SHOWN,
        type=_text(spec.get("type")) or "http",
        endpoint=_text(status.get("endpoint")),
        price=_price(spec, status),
        network=_network(spec, status),
        quote=_quote(status),
        capacity_mode=(
            _text(reported.get("mode")) or _text(declared.get("mode")) or NO_CAPACITY_MODE
        ),
        scaling_controlled=reported.get("scalingControlled") is True,
        gpu_count=_first_integer(reported.get("gpuCount"), declared.get("gpuCount")),
        max_in_flight=_first_integer(reported.get("maxInFlight"), declared.get("maxInFlight")),
        per_buyer_max_in_flight=per_buyer,
        in_flight=_integer(reported.get("inFlight")),
        capacity_state=_text(reported.get("state")) or UNKNOWN,
        payment_gate=_text(gate.get("mode")) or DEFAULT_GATE,
        settlement=_text(gate.get("settlement")) or "deferred",
        per_buyer_enforced_by=enforced_by if per_buyer is not None else None,
        ready=ready,
        conditions=conditions,
        warnings=tuple(w for w in _items(status.get("warnings")) if isinstance(w, str)),
        model=(
            _text(_mapping(status.get("model")).get("name"))
            or _text(_mapping(spec.get("model")).get("name"))
        ),
        not_acted_upon=tuple(f for f in _items(status.get("notActedUpon")) if isinstance(f, str)),
    )


def _conditions(raw: Any) -> tuple[ConditionView, ...]:
    return tuple(
        ConditionView(
            type=_text(item.get("type")) or NONE_SHOWN,
            status=_text(item.get("status")) or UNKNOWN,
            reason=_text(item.get("reason")) or "",
            message=" ".join((_text(item.get("message")) or "").split()),
        )
        for item in _items(raw)
        if isinstance(item, Mapping)
    )


def _price(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    summary = _text(_mapping(status.get("payment")).get("summary"))
    if summary:
        return summary
    payment = _mapping(spec.get("payment"))
    price = _mapping(payment.get("price"))
    symbol = _symbol(_text(payment.get("asset")) or "usdc")
    parts = []
    if _text(price.get("perRequest")):
        parts.append(f"{price['perRequest']} {symbol}/request")
    if _text(price.get("perMTok")):
        parts.append(f"{price['perMTok']} {symbol}/MTok")
    return " + ".join(parts) or NONE_SHOWN


def _symbol(asset: str) -> str:
    """A spec asset as a seller reads it: symbols upper-cased, addresses as they are."""
    return asset if asset.lower().startswith("0x") else asset.upper()


def _network(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    resolved = _text(_mapping(status.get("payment")).get("network"))
    return resolved or _text(_mapping(spec.get("payment")).get("network")) or NONE_SHOWN


def _quote(status: Mapping[str, Any]) -> str | None:
    payment = _mapping(status.get("payment"))
    quote = _mapping(payment.get("quote"))
    amount = _text(quote.get("amount"))
    if amount is None:
        return None
    symbol = _text(_mapping(payment.get("asset")).get("symbol")) or ""
    basis = _text(quote.get("basis"))
    text = f"{amount} {symbol}".strip() + " per request"
    return f"{text} ({basis})" if basis else text


def _shown(value: int | str | None) -> str:
    return NONE_SHOWN if value is None else str(value)


def status_lines(view: OfferView) -> list[str]:
    """The ``obol sell status`` block for one offer, one line per fact."""
    price = f"{view.price} on {view.network}"
    facts: list[tuple[str, str]] = [("Type", view.type)]
    if view.model:
        facts.append(("Model", view.model))
    facts += [
        ("Endpoint", view.endpoint or "(not reported yet)"),
        ("Price", price),
    ]
    if view.quote:
        facts.append(("Quote", view.quote))
    settles = SETTLEMENT_TEXT.get(view.settlement, view.settlement)
    facts.append(("Payment gate", f"{view.payment_gate} (settlement: {settles})"))
    facts += [
        ("Capacity mode", view.capacity_mode),
        ("Scaling", f"scalingControlled={str(view.scaling_controlled).lower()} ({SCALING_NOTE})"),
        ("GPU count", _shown(view.gpu_count)),
        ("Max in-flight", _shown(view.max_in_flight)),
        ("Per-buyer max in-flight", _per_buyer(view)),
        ("In flight", UNKNOWN if view.in_flight is None else str(view.in_flight)),
        ("Capacity state", view.capacity_state),
    ]
    if view.not_acted_upon:
        facts.append(("Not acted upon", ", ".join(view.not_acted_upon)))
    facts.append(("Ready", view.ready))
    width = max(len(label) for label, _ in facts) + 2
    lines = [f"ServiceOffer {view.namespace}/{view.name}"]
    lines += [f"  {label + ':':<{width}}{value}" for label, value in facts]
    lines.append("  Conditions:" if view.conditions else "  Conditions: (none reported yet)")
    lines += [f"    {condition.line()}" for condition in view.conditions]
    lines += [f"  Warning: {warning}" for warning in view.warnings]
    return lines


def _per_buyer(view: OfferView) -> str:
    if view.per_buyer_max_in_flight is None:
        return NONE_SHOWN
    return f"{view.per_buyer_max_in_flight} (enforced by: {view.per_buyer_enforced_by})"


def status_text(views: Sequence[OfferView]) -> str:
    """The whole ``obol sell status`` table output: one block per offer, blank-line separated."""
    return "\n\n".join("\n".join(status_lines(view)) for view in views) + "\n"


def status_record(view: OfferView) -> dict[str, Any]:
    """The ``obol sell status -o json|yaml`` record for one offer (camelCase, stable order)."""
    capacity: dict[str, Any] = {
        "mode": view.capacity_mode,
        "scalingControlled": view.scaling_controlled,
        "gpuCount": view.gpu_count,
        "maxInFlight": view.max_in_flight,
        "perBuyerMaxInFlight": view.per_buyer_max_in_flight,
        "inFlight": UNKNOWN if view.in_flight is None else view.in_flight,
        "state": view.capacity_state,
    }
    return {
        "namespace": view.namespace,
        "name": view.name,
        "type": view.type,
        "endpoint": view.endpoint,
        "price": view.price,
        "network": view.network,
        "quote": view.quote,
        "paymentGate": {
            "mode": view.payment_gate,
            "settlement": view.settlement,
            "perBuyerLimit": view.per_buyer_enforced_by or "none",
        },
        "capacity": capacity,
        "ready": view.ready,
        "conditions": [asdict(condition) for condition in view.conditions],
        "warnings": list(view.warnings),
    }


def list_row(view: OfferView) -> list[str]:
    """One ``obol sell list`` row, in :data:`LIST_COLUMNS` order."""
    return [_shown(getattr(view, attribute)) for _, _, attribute in _LIST_FIELDS]


def list_record(view: OfferView) -> dict[str, Any]:
    """One ``obol sell list -o json|yaml`` record."""
    return {key: getattr(view, attribute) for _, key, attribute in _LIST_FIELDS}


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, like kubectl's tables."""
    table = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    return "\n".join(lines) + "\n"

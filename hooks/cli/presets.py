"""Capacity presets: named sets of static, seller-declared limits, kept as data.

The presets live in ``hooks/data/presets.yaml`` (packaged with the code). A preset expands into
``spec.capacity`` (always ``mode: external-static``) and ``spec.requestLimits``, and into nothing
else: it never names a runtime, a price or a scaling policy. Explicit CLI flags override any
value a preset supplies (:func:`expand_limits`). Nothing here implies autoscaling; the numbers
are declared by the seller and enforced by the gateway with 429 + Retry-After.

:func:`parse_presets` validates a presets document through the same pydantic models the hook
uses (:class:`hooks.core.models.Capacity`, :class:`hooks.core.models.RequestLimits`), so a preset
can never
expand into an offer the hook would refuse on its own account. Problems raise
:class:`~hooks.core.errors.SpecError` with paths such as ``presets[2].capacity.maxInFlight``.

Only :func:`load_presets` does I/O (it reads the packaged file, once). Everything else is pure.
This module must never reach a cluster, read the environment, or decide anything about an
offer beyond the static limits listed in a preset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from hooks.core import api
from hooks.core.errors import FieldProblem, SpecError
from hooks.core.models import Capacity, RequestLimits, problems_from_validation

PRESETS_RESOURCE = "data/presets.yaml"
CAPACITY_MODE = "external-static"

NO_AUTOSCALING_NOTE = (
    "Presets expand into static, seller-declared limits only (spec.capacity with mode"
    " external-static, and spec.requestLimits); explicit flags override preset values."
    " Nothing is autoscaled: excess requests get 429 with Retry-After."
)


class _Shape(BaseModel):
    """Strict shape of the presets file: camelCase keys, every key required, no extras."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True, frozen=True
    )


class _CapacityShape(_Shape):
    gpu_count: int
    max_in_flight: int
    per_buyer_max_in_flight: int
    retry_after_seconds: int


class _RequestLimitsShape(_Shape):
    max_input_tokens: int
    max_output_tokens: int
    max_body_bytes: int


def _keys(shape: type[_Shape]) -> tuple[str, ...]:
    return tuple(str(field.alias) for field in shape.model_fields.values())


# The keys a preset supplies, in the CRD's order. A preset must set every one of them.
CAPACITY_KEYS = _keys(_CapacityShape)
REQUEST_LIMIT_KEYS = _keys(_RequestLimitsShape)


class _PresetShape(_Shape):
    name: Annotated[str, Field(max_length=63, pattern=api.DNS1123_LABEL)]
    description: Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[^\n]+$")]
    capacity: _CapacityShape
    request_limits: _RequestLimitsShape


class _PresetsFileShape(_Shape):
    presets: Annotated[list[_PresetShape], Field(min_length=1)]


@dataclass(frozen=True, slots=True)
class Preset:
    """One validated preset: a description and the static limits it expands into."""

    name: str
    description: str
    capacity: Mapping[str, int]
    request_limits: Mapping[str, int]

    def as_document(self) -> dict[str, Any]:
        """The preset as it appears in the presets file (for ``-o yaml|json`` listings)."""
        return {
            "name": self.name,
            "description": self.description,
            "capacity": dict(self.capacity),
            "requestLimits": dict(self.request_limits),
        }


def parse_presets(document: Any) -> dict[str, Preset]:
    """Validate a parsed presets document; return the presets by name, in file order."""
    try:
        shape = _PresetsFileShape.model_validate(document)
    except ValidationError as exc:
        raise SpecError(problems_from_validation(exc, "")) from None
    problems: list[FieldProblem] = []
    presets: dict[str, Preset] = {}
    for index, entry in enumerate(shape.presets):
        path = f"presets[{index}]"
        if entry.name in presets:
            reason = "is used by an earlier preset"
            problems.append(FieldProblem(f"{path}.name", reason, entry.name))
            continue
        capacity = entry.capacity.model_dump(by_alias=True)
        limits = entry.request_limits.model_dump(by_alias=True)
        declared: dict[str, Any] = {"mode": CAPACITY_MODE, **capacity}
        problems.extend(_model_problems(Capacity, declared, f"{path}.capacity"))
        problems.extend(_model_problems(RequestLimits, limits, f"{path}.requestLimits"))
        presets[entry.name] = Preset(entry.name, entry.description, capacity, limits)
    if problems:
        raise SpecError(problems)
    return presets


def _model_problems(
    model: type[Capacity] | type[RequestLimits], values: Mapping[str, Any], path: str
) -> list[FieldProblem]:
    try:
        model.model_validate(values)
    except ValidationError as exc:
        return problems_from_validation(exc, path)
    return []


@lru_cache(maxsize=1)
def load_presets() -> dict[str, Preset]:
    """The packaged presets (read and validated once per process)."""
    text = resources.files("hooks").joinpath(PRESETS_RESOURCE).read_text(encoding="utf-8")
    return parse_presets(yaml.safe_load(text))


def expand_limits(
    preset: Preset | None,
    capacity_flags: Mapping[str, int | None],
    request_limit_flags: Mapping[str, int | None],
) -> tuple[dict[str, Any] | None, dict[str, int] | None]:
    """Merge a preset with explicit flags (flags win) into ``(capacity, requestLimits)``.

    The flag mappings are keyed by CRD field name; ``None`` means "flag not given". Without a
    preset and without any capacity flag there is no capacity envelope (``None``), exactly as
    for an offer written without one; the same holds for request limits.
    """
    capacity = _merge(preset.capacity if preset else {}, capacity_flags, CAPACITY_KEYS)
    limits = _merge(
        preset.request_limits if preset else {}, request_limit_flags, REQUEST_LIMIT_KEYS
    )
    envelope = {"mode": CAPACITY_MODE, **capacity} if capacity or preset else None
    return envelope, (limits or None)


def _merge(
    base: Mapping[str, int], overrides: Mapping[str, int | None], order: tuple[str, ...]
) -> dict[str, int]:
    unknown = set(overrides) - set(order)
    if unknown:
        raise ValueError(f"not a preset field: {', '.join(sorted(unknown))}")
    merged = dict(base)
    merged.update({key: value for key, value in overrides.items() if value is not None})
    return {key: merged[key] for key in order if key in merged}


def preset_rows(presets: Mapping[str, Preset]) -> list[list[str]]:
    """Table rows for ``obol sell presets``; the header is :data:`PRESET_COLUMNS`."""
    rows = []
    for preset in presets.values():
        values = [preset.capacity[key] for key in CAPACITY_KEYS]
        values += [preset.request_limits[key] for key in REQUEST_LIMIT_KEYS]
        rows.append([preset.name, *(str(value) for value in values), preset.description])
    return rows


PRESET_COLUMNS: tuple[str, ...] = (
    "NAME",
    "GPUS",
    "MAX-IN-FLIGHT",
    "PER-BUYER",
    "RETRY-AFTER",
    "MAX-INPUT-TOKENS",
    "MAX-OUTPUT-TOKENS",
    "MAX-BODY-BYTES",
    "DESCRIPTION",
)

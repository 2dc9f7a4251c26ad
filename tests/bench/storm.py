"""Generate a resync storm: N distinct offers' sync requests, as Metacontroller would send them.

Metacontroller re-sends every parent at once on its start, on every edit of the
CompositeController and at each informer resync (shared/reference/metacontroller.md §2.2). In
such a storm almost every offer already exists, so most requests carry the offer's 4-8 live
children with server-populated fields, and the parent carries the status of its previous sync.

The mix (deterministic in the offer's index ``i``):

* the three valid examples as templates: the full envelope (``inference-qwen36-fast``, 50 %),
  a plain paid HTTP API without capacity (``http-weather-api``, 30 %) and a non-streaming OBOL
  offer with a global limit only (``inference-obol-ethereum``, 20 %);
* a distinct name (``<stem>-<i>``), one of 250 namespaces, and a varied envelope (limits,
  prices, context window, streaming);
* 90 % existing offers (children observed, previous status on the parent, generation 2) and
  10 % new offers (no children); 2 % of the existing ones had a bad edit (per-buyer limit above
  the global one), which keeps their children and reports InvalidSpec.

Every request is answered once in-process through :func:`hooks.server.app.handle_sync_body` while
generating, which checks the generator (200 and children for every existing offer) and gives
the ``status.endpoint`` the server must answer it with.
"""

from __future__ import annotations

import copy
import functools
import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from hooks.server.app import handle_sync_body
from tests.support.observed import observed_children, parent_object, sync_request

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ("inference-qwen36-fast.yaml", "http-weather-api.yaml", "inference-obol-ethereum.yaml")
NAMESPACES = 250


@dataclass(frozen=True)
class StormOffer:
    """One generated request and what it must be answered with."""

    body: bytes
    endpoint: str
    existing: bool
    invalid: bool


@functools.cache
def _example(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "examples" / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def _template(index: int) -> dict[str, Any]:
    slot = index % 10
    return _example(TEMPLATES[0] if slot < 5 else TEMPLATES[1] if slot < 8 else TEMPLATES[2])


def _vary(offer: dict[str, Any], index: int, *, invalid: bool) -> dict[str, Any]:
    offer = copy.deepcopy(offer)
    stem = offer["metadata"]["name"]
    namespace = f"tenant-{index % NAMESPACES:03d}"
    offer["metadata"] = {"name": f"{stem}-{index:05d}", "namespace": namespace}
    spec = offer["spec"]
    price = spec["payment"]["price"]
    if "perRequest" in price:
        price["perRequest"] = f"0.{index % 997 + 1:04d}"
    capacity = spec.get("capacity")
    if capacity is not None:
        capacity["maxInFlight"] = 1 + index % 32
        capacity["retryAfterSeconds"] = 1 + index % 10
        if "perBuyerMaxInFlight" in capacity:
            capacity["perBuyerMaxInFlight"] = 1 + index % capacity["maxInFlight"]
        if invalid:
            capacity["perBuyerMaxInFlight"] = capacity["maxInFlight"] + 1
    capabilities = spec.get("capabilities")
    if capabilities is not None:
        capabilities["contextWindowTokens"] *= 1 + index % 4
        if capabilities.get("protocol") == "openai-chat":
            capabilities["streaming"] = index % 7 != 0
    return offer


def storm_offer(index: int) -> StormOffer:
    """The ``index``-th offer of the storm (deterministic)."""
    settings = Settings()
    template = _template(index)
    existing = index % 10 != 0
    invalid = existing and index % 50 == 3  # a full-envelope offer
    offer = _vary(template, index, invalid=False)
    if not existing:
        request = sync_request(parent_object(offer))
    else:
        first = sync(parse_request(sync_request(parent_object(offer))), settings).response
        live = observed_children(first["children"])
        changed = _vary(template, index, invalid=True) if invalid else offer
        parent = parent_object(changed, generation=2, status=first["status"])
        parent["metadata"]["uid"] = f"5b1c0e9e-0000-4000-8000-{index:012d}"
        request = sync_request(parent, live)
    body = orjson.dumps(request)
    answer = handle_sync_body(body, settings)
    response = orjson.loads(answer.body)
    if answer.status != 200 or (existing and not response["children"]):
        raise RuntimeError(f"storm offer {index}: {answer.status} {answer.detail}")
    if (answer.outcome == "invalid_spec") != invalid:
        raise RuntimeError(f"storm offer {index}: invalid={invalid} but got {response['status']}")
    return StormOffer(body, response["status"]["endpoint"], existing, invalid)


def generate(count: int, bodies: Path, endpoints: Path, processes: int = 2) -> dict[str, Any]:
    """Write ``count`` request bodies (one per line) and their endpoints; return the mix."""
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        offers = pool.map(storm_offer, range(count), chunksize=250)
    if len({offer.endpoint for offer in offers}) != count:
        raise RuntimeError("storm endpoints are not distinct")
    with bodies.open("wb") as out:
        for offer in offers:
            if b"\n" in offer.body:
                raise RuntimeError("compact JSON with a raw newline")
            out.write(offer.body + b"\n")
    endpoints.write_text("".join(offer.endpoint + "\n" for offer in offers))
    sizes = sorted(len(offer.body) for offer in offers)
    return {
        "offers": count,
        "existing": sum(offer.existing for offer in offers),
        "invalid_spec_keeping_children": sum(offer.invalid for offer in offers),
        "body_bytes_median": sizes[len(sizes) // 2],
        "body_bytes_total": sum(sizes),
    }

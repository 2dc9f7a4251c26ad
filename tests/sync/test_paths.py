"""One owner per public path: the claims read from ``related`` and the owner the sync picks.

Design notes:
- The offers in ``related`` are written here as the API server stores them (metadata with
  creationTimestamp, a status as this hook or obol-stack's controller wrote it), since ownership
  reads only those fields.
- The rule is obol-stack's pathconflict.go (oldest claimant, then namespace/name; deleting
  offers claim nothing; one trailing slash ignored) plus one refinement: a claimant that
  publishes the path keeps it against an older offer edited onto it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.core.errors import SpecError
from hooks.core.paths import (
    MAX_RELATED_OFFERS,
    RELATED_KEY,
    PathClaim,
    parse_claims,
    path_owner,
)
from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from tests.support.observed import observed_children, parent_object, sync_request

ROOT = Path(__file__).resolve().parents[2]
WEATHER: dict[str, Any] = yaml.safe_load((ROOT / "examples/http-weather-api.yaml").read_text())
OLDER = "2026-11-01T09:00:00Z"  # the parent (tests.support.observed) is 2026-11-20T10:00:00Z
NEWER = "2026-12-01T09:00:00Z"


def stored(
    name: str,
    namespace: str,
    created: str,
    *,
    path: str | None = None,
    status: dict[str, Any] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    """A ServiceOffer as the API server lists it (only what ownership may read is varied)."""
    obj = copy.deepcopy(WEATHER)
    obj["metadata"] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{namespace}-{name}",
        "creationTimestamp": created,
        "generation": 1,
        "resourceVersion": "77",
    }
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    if path is not None:
        obj["spec"]["path"] = path
    if status is not None:
        obj["status"] = status
    return obj


def published(path: str, reason: str = "Accepted", status: str = "True") -> dict[str, Any]:
    return {
        "endpoint": path,
        "conditions": [{"type": "RoutePublished", "status": status, "reason": reason}],
    }


def related(*offers: dict[str, Any]) -> dict[str, Any]:
    return {
        RELATED_KEY: {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in offers}
    }


def run(
    *others: dict[str, Any],
    offer: dict[str, Any] = WEATHER,
    status: Any = None,
    children: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    parent = parent_object(offer, status=status)
    # Metacontroller lists the parent itself among the related offers.
    body = sync_request(parent, children, related=related(parent, *others))
    return sync(parse_request(body), settings or Settings()).response


def conditions(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in response["status"]["conditions"]}


def kinds(response: dict[str, Any]) -> list[str]:
    return sorted(c["kind"] for c in response["children"])


# --- the sync's answer ---------------------------------------------------------------------------


def test_a_younger_claimant_gets_path_conflict_naming_the_owner_and_no_route() -> None:
    owner = stored("weather-api", "tenant-z", OLDER)  # same name in another namespace
    response = run(owner)
    found = conditions(response)
    for kind in ("Ready", "RoutePublished", "PaymentGateReady"):
        assert found[kind]["status"] == "False", kind
        assert found[kind]["reason"] == "PathConflict", kind
    message = found["Ready"]["message"]
    assert "path /services/weather-api is owned by ServiceOffer tenant-z/weather-api" in message
    assert OLDER in message
    # No route and no pricing route entry; the gate's Middleware is inert without a route.
    assert kinds(response) == ["Middleware"]


def test_the_oldest_claimant_renders_its_route_as_if_alone() -> None:
    alone = run()
    younger = stored("weather-api", "tenant-b", NEWER)
    other_path = stored("x", "tenant-c", OLDER, path="/elsewhere")
    assert run(younger, other_path) == alone
    assert kinds(alone) == ["ConfigMap", "HTTPRoute", "Middleware"]


def test_equal_creation_times_fall_back_to_namespace_then_name() -> None:
    same_time = stored("weather-api", "aaa", "2026-11-20T10:00:00Z")
    assert conditions(run(same_time))["Ready"]["reason"] == "PathConflict"
    later_namespace = stored("weather-api", "zzz", "2026-11-20T10:00:00Z")
    assert conditions(run(later_namespace))["Ready"]["reason"] != "PathConflict"


def test_an_explicit_path_conflicts_with_a_default_one_and_a_trailing_slash_is_ignored() -> None:
    owner = stored("other", "default", OLDER, path="/services/weather-api/")
    assert conditions(run(owner))["Ready"]["reason"] == "PathConflict"
    nested = stored("other", "default", OLDER, path="/services/weather-api/v2")
    assert conditions(run(nested))["Ready"]["reason"] != "PathConflict"


def test_an_offer_being_deleted_claims_nothing_so_the_next_claimant_takes_the_path() -> None:
    going = stored("weather-api", "tenant-z", OLDER, deleting=True)
    assert kinds(run(going)) == ["ConfigMap", "HTTPRoute", "Middleware"]


def test_an_offer_being_deleted_keeps_the_path_while_it_still_publishes_it() -> None:
    # A finalizer holds it: its route stays until it is gone, so the path is not handed over.
    lingering = published("/services/weather-api")
    going = stored("weather-api", "tenant-z", OLDER, status=lingering, deleting=True)
    found = conditions(run(going))
    assert found["Ready"]["reason"] == "PathConflict"
    assert (
        "tenant-z/weather-api, which publishes it until its deletion completes"
        in (found["Ready"]["message"])
    )


def test_a_published_route_is_not_taken_by_an_older_offer_edited_onto_its_path() -> None:
    # The parent publishes /services/weather-api; an older offer is edited to claim it too.
    live = published("/services/weather-api")
    older_editor = stored("moved", "tenant-z", OLDER, path="/services/weather-api")
    assert kinds(run(older_editor, status=live)) == ["ConfigMap", "HTTPRoute", "Middleware"]
    # ... and the older offer itself waits, told who publishes the path.
    younger_holder = stored("weather-api", "tenant-b", NEWER, status=live)
    found = conditions(run(younger_holder))
    assert found["Ready"]["reason"] == "PathConflict"
    assert "tenant-b/weather-api, which publishes it now" in found["Ready"]["message"]


def test_a_conflicted_status_is_no_claim_to_publish() -> None:
    # The loser's own status says PathConflict: it holds nothing, the oldest claimant wins.
    loser = published("/services/weather-api", reason="PathConflict", status="False")
    older = stored("weather-api", "tenant-z", OLDER)
    assert conditions(run(older, status=loser))["Ready"]["reason"] == "PathConflict"
    younger = stored("weather-api", "tenant-b", NEWER, status=loser)
    assert conditions(run(younger))["Ready"]["reason"] != "PathConflict"


def test_the_endpoint_is_read_under_the_public_base_url() -> None:
    settings = Settings(public_base_url="https://sell.example.com")
    live = published("https://sell.example.com/services/weather-api")
    younger_holder = stored("weather-api", "tenant-b", NEWER, status=live)
    found = conditions(run(younger_holder, settings=settings))
    assert "publishes it now" in found["Ready"]["message"]


def test_a_conflicted_offer_loses_its_route_and_keeps_the_rest() -> None:
    # It published before (e.g. its path was edited onto an owned one): the route and the
    # pricing ConfigMap go, the rest stays, so the answer is never an empty child list.
    rendered = run()
    observed = observed_children(rendered["children"])
    owner = stored("weather-api", "tenant-z", OLDER)
    response = run(owner, children=observed)
    assert kinds(response) == ["Middleware"]
    assert response["status"]["endpoint"] == "/services/weather-api"


def test_capacity_reports_the_conflict_when_an_envelope_is_declared() -> None:
    offer = yaml.safe_load((ROOT / "examples/inference-qwen36-fast.yaml").read_text())
    name, namespace = offer["metadata"]["name"], offer["metadata"]["namespace"]
    owner = stored("first", "default", OLDER, path=f"/services/{name}")
    found = conditions(run(owner, offer=offer))
    assert found["CapacityEnforced"]["reason"] == "PathConflict"
    assert f"{namespace}/" not in found["Ready"]["message"]  # names the owner, not itself
    without = conditions(run(stored("first", "default", OLDER, path="/services/weather-api")))
    assert without["CapacityEnforced"]["reason"] == "NotConfigured"


def test_the_answer_is_the_same_whatever_the_order_of_related_offers() -> None:
    offers = [stored(f"o{i}", f"ns{i}", OLDER, path="/services/weather-api") for i in range(5)]
    assert run(*offers) == run(*reversed(offers))
    assert "ns0/o0" in conditions(run(*reversed(offers)))["Ready"]["message"]


# --- reading the claims ---------------------------------------------------------------------------


def test_claims_read_only_what_ownership_needs() -> None:
    (claim,) = parse_claims(related(stored("a", "ns", OLDER, status=published("/p/"))))
    assert claim == PathClaim("ns", "a", OLDER, "/services/a", "/p/", False)
    assert claim.held("") == "/p"
    (pending,) = parse_claims(related(stored("a", "ns", OLDER, status={"endpoint": "/p"})))
    assert pending.endpoint is None  # no RoutePublished condition: nothing was rendered


def test_no_related_map_means_no_other_claims() -> None:
    assert parse_claims(None) == ()
    assert parse_claims({}) == ()
    assert parse_claims({"ConfigMap.v1": {"ns/x": {}}}) == ()


@pytest.mark.parametrize(
    ("related_map", "where"),
    [
        ([], "related"),
        ({RELATED_KEY: []}, f"related[{RELATED_KEY!r}]"),
        ({RELATED_KEY: {"ns/a": "x"}}, f"related[{RELATED_KEY!r}]['ns/a']"),
        ({RELATED_KEY: {"ns/a": {"metadata": {"name": "a"}}}}, "metadata.namespace"),
    ],
)
def test_a_malformed_related_map_is_a_malformed_request(related_map: Any, where: str) -> None:
    body = sync_request(parent_object(WEATHER), related=related_map)
    with pytest.raises(SpecError, match=None) as caught:
        parse_request(body)
    assert where in str(caught.value)


def test_too_many_related_offers_are_refused_before_they_are_read() -> None:
    offers = dict.fromkeys((f"ns/o{i}" for i in range(MAX_RELATED_OFFERS + 1)), "not read")
    with pytest.raises(SpecError, match=f"more than {MAX_RELATED_OFFERS}"):
        parse_claims({RELATED_KEY: offers})


def test_an_unknown_creation_time_counts_as_the_youngest() -> None:
    me = PathClaim("b", "x", None, "/p", None, False)
    other = PathClaim("a", "x", OLDER, "/p", None, False)
    assert path_owner(me, [other], "") is other
    assert path_owner(other, [me], "") is other

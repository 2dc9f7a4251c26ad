"""What an invalid or not-rendered offer keeps comes from trusted state, never from its children.

Test design notes:
- The attack: a tenant who can edit one of their own children (its fields, or Metacontroller's
  last-applied annotation on it) writes an object in another namespace, another backend or
  another payTo there, then makes the offer's spec invalid. The hook must answer with the
  children of the last valid spec, re-rendered, exactly as a valid sync rendered them.
- Trusted state: ``status.renderedSpec`` (recorded by every sync of a rendered offer), or for a
  status written before it existed, the spec rebuilt from that status's blocks, kept only when
  it quotes exactly the terms that status reports. Every example offer is checked both ways.
- Whatever the status holds is validated again like a spec: a record the rules refuse keeps
  nothing, and no record can name a namespace or child name other than the offer's.
- The record stays small: its fields are all bounded by the schema.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

import hooks.core.sync
from hooks.core import api
from hooks.core.errors import HookFailure
from hooks.core.kept import RENDERED_SPEC, rendered_spec, spec_from_status
from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from tests.support.observed import observed_children, parent_object, sync_request
from tests.sync.test_paths import OLDER, published, related, stored

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RENDERED_EXAMPLES = [
    path
    for path in sorted(EXAMPLES.glob("*.yaml"))
    if yaml.safe_load(path.read_text())["spec"].get("type", "http") in ("http", "inference")
]
ATTACKER_PAY_TO = "0x1111111111111111111111111111111111111111"
LAST_APPLIED = api.LAST_APPLIED_ANNOTATION


def example(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def qwen() -> dict[str, Any]:
    return example(EXAMPLES / "inference-qwen36-fast.yaml")


def answer(
    offer: dict[str, Any],
    status: dict[str, Any] | None = None,
    children: dict[str, dict[str, Any]] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    parent = parent_object(offer, status=status)
    return sync(parse_request(sync_request(parent, children)), settings or Settings()).response


def broken(offer: dict[str, Any]) -> dict[str, Any]:
    edited = copy.deepcopy(offer)
    edited["spec"]["payment"]["payTo"] = "nope"
    return edited


def ready(response: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in response["status"]["conditions"] if c["type"] == "Ready")


def forge(children: dict[str, dict[str, Any]], kind: str, change: Any) -> None:
    """Apply ``change`` to the live object of ``kind`` and to its last-applied annotation."""
    for objects in children.values():
        for live in objects.values():
            if live["kind"] != kind:
                continue
            annotations = live["metadata"]["annotations"]
            applied = orjson.loads(annotations[LAST_APPLIED])
            change(applied)
            change(live)
            annotations[LAST_APPLIED] = orjson.dumps(applied).decode()


def into_victim_namespace(obj: dict[str, Any]) -> None:
    obj["metadata"]["namespace"] = "victim-ns"


def to_attackers_backend(obj: dict[str, Any]) -> None:
    backend = obj["spec"]["rules"][0]["backendRefs"][0]
    backend.update(name="attacker-svc", namespace="attacker-ns", port=9999)


def to_attackers_wallet(obj: dict[str, Any]) -> None:
    routes = orjson.loads(obj["data"]["routes.json"])
    routes["routes"][0]["payTo"] = ATTACKER_PAY_TO
    obj["data"]["routes.json"] = orjson.dumps(routes).decode()


FORGERIES = [
    pytest.param(api.HTTPROUTE_KIND, into_victim_namespace, id="route-in-another-namespace"),
    pytest.param(api.MIDDLEWARE_KIND, into_victim_namespace, id="middleware-in-another-ns"),
    pytest.param(api.HTTPROUTE_KIND, to_attackers_backend, id="route-to-another-backend"),
    pytest.param(api.CONFIGMAP_KIND, to_attackers_wallet, id="pricing-with-another-payto"),
]


@pytest.mark.parametrize("recorded", [True, False], ids=["rendered-spec", "older-status"])
@pytest.mark.parametrize(("kind", "change"), FORGERIES)
def test_forged_children_are_ignored_by_an_invalid_offer(
    kind: str, change: Any, recorded: bool
) -> None:
    good = answer(qwen())
    status = copy.deepcopy(good["status"])
    if not recorded:
        del status[RENDERED_SPEC]
    live = observed_children(good["children"])
    forge(live, kind, change)
    response = answer(broken(qwen()), status, live)
    assert ready(response)["reason"] == "InvalidSpec"
    assert response["children"] == good["children"]
    text = orjson.dumps(response).decode()
    assert "victim-ns" not in text and "attacker" not in text and ATTACKER_PAY_TO not in text


def test_a_not_rendered_offer_keeps_the_children_of_its_last_rendered_spec() -> None:
    good = answer(qwen())
    live = observed_children(good["children"])
    forge(live, api.HTTPROUTE_KIND, into_victim_namespace)
    agent = copy.deepcopy(qwen())
    agent["spec"]["type"] = "agent"
    response = answer(agent, good["status"], live)
    assert ready(response)["reason"] == "NotRendered"
    assert response["children"] == good["children"]
    assert response["status"][RENDERED_SPEC] == good["status"][RENDERED_SPEC]


@pytest.mark.parametrize("path", RENDERED_EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("settings", [Settings(), Settings(payment_gate="seller-proxy")])
def test_every_example_keeps_exactly_its_children_from_either_kind_of_status(
    path: Path, settings: Settings
) -> None:
    offer = example(path)
    good = answer(offer, settings=settings)
    assert good["status"][RENDERED_SPEC] == rendered_spec(offer["spec"])
    live = observed_children(good["children"])
    kept = answer(broken(offer), good["status"], live, settings)
    assert kept["children"] == good["children"]
    older = {k: v for k, v in good["status"].items() if k != RENDERED_SPEC}
    rebuilt = answer(broken(offer), older, live, settings)
    without_rps = copy.deepcopy(offer)
    # limits.rps is not in a status written before renderedSpec: its rateLimit goes.
    without_rps["spec"].get("limits", {}).pop("rps", None)
    assert rebuilt["children"] == answer(without_rps, settings=settings)["children"]
    assert RENDERED_SPEC in rebuilt["status"]  # the next sync takes the recorded path


def test_an_older_status_whose_terms_do_not_rebuild_keeps_nothing() -> None:
    good = answer(qwen())
    older = {k: v for k, v in good["status"].items() if k != RENDERED_SPEC}
    older["payment"] = {**older["payment"], "quote": {**older["payment"]["quote"], "atomic": "1"}}
    response = answer(broken(qwen()), older, observed_children(good["children"]))
    assert response["children"] == []
    assert RENDERED_SPEC not in response["status"]
    assert "payment" not in response["status"]  # no longer describes any child


@pytest.mark.parametrize(
    "record",
    [
        pytest.param({"type": "http"}, id="incomplete"),
        pytest.param("not an object", id="not-an-object"),
        pytest.param({**rendered_spec(qwen()["spec"]), "metadata": {"namespace": "x"}}, id="extra"),
    ],
)
def test_a_record_the_rules_refuse_keeps_nothing(record: Any) -> None:
    good = answer(qwen())
    status = {**good["status"], RENDERED_SPEC: record}
    response = answer(broken(qwen()), status, observed_children(good["children"]))
    assert response["children"] == []
    assert RENDERED_SPEC not in response["status"]


def test_a_record_can_only_ever_render_the_offers_own_children() -> None:
    # Even a record naming another upstream namespace renders the offer's own names, in the
    # offer's namespace (the backend reference is what a valid spec could say too).
    record = rendered_spec(qwen()["spec"])
    record["upstream"] = {**record["upstream"], "namespace": "elsewhere"}
    response = answer(broken(qwen()), {RENDERED_SPEC: record})
    assert response["children"]
    for child in response["children"]:
        assert child["metadata"]["namespace"] == "llm-sellers"
        assert child["metadata"]["name"].startswith("so-qwen36-fast")


def test_the_record_leaves_out_what_never_changes_a_child() -> None:
    spec = copy.deepcopy(qwen()["spec"])
    spec["registration"] = {"enabled": True, "description": "x" * 10_000}
    spec["payment"]["card"] = {"provider": "stripe"}
    record = rendered_spec(spec)
    assert "registration" not in record and "card" not in record["payment"]
    assert record == rendered_spec(qwen()["spec"])


def test_the_largest_record_stays_small() -> None:
    # Every recorded field is bounded by the schema; the largest record is a few kilobytes.
    spec = {
        "type": "inference",
        "model": {"name": "m" * 256, "runtime": "vllm"},
        "upstream": {
            "service": "s" * 63,
            "namespace": "n" * 63,
            "port": 65535,
            "healthPath": "/" + "h" * 1023,
        },
        "capabilities": {"protocol": "openai-chat", "streaming": True, "contextWindowTokens": 1},
        "requestLimits": {"maxInputTokens": 1, "maxOutputTokens": 1, "maxBodyBytes": 1 << 30},
        "capacity": {"mode": "external-static", "maxInFlight": 1_000_000, "gpuCount": 65536},
        "path": "/" + "p" * 511,
        "limits": {"maxInFlight": 1_000_000, "rps": 1_000_000},
        "payment": {
            "network": "n" * 64,
            "payTo": "0x" + "a" * 40,
            "maxTimeoutSeconds": 86400,
            "asset": {
                "address": "0x" + "b" * 40,
                "symbol": "S" * 16,
                "decimals": 255,
                "transferMethod": "eip3009",
                "eip712Name": "e" * 128,
                "eip712Version": "v" * 32,
            },
            "price": {
                f: "9" * 64 for f in ("perRequest", "perMTok", "perHour", "perEpoch", "perMB")
            },
        },
    }
    assert len(orjson.dumps(rendered_spec(spec))) < 4096


def test_spec_from_status_needs_the_route_the_upstream_and_the_terms() -> None:
    status = answer(qwen())["status"]
    assert spec_from_status(status, Settings()) is not None
    for missing in ("endpoint", "upstream", "payment"):
        partial = {k: v for k, v in status.items() if k != missing}
        assert spec_from_status(partial, Settings()) is None
    # A status obol-stack's controller wrote (the endpoint path, no terms) rebuilds nothing.
    assert spec_from_status({"endpoint": "/services/qwen36-fast"}, Settings()) is None
    moved = Settings(public_base_url="https://other.example.com")
    assert spec_from_status(status, moved) is None


def test_a_kept_route_still_needs_its_path_and_never_leaves_the_offers_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The last valid spec's path is owned (published) by another offer now: the kept children
    # lose the route and the pricing ConfigMap, like a valid offer in conflict.
    good = answer(qwen())
    holder = stored("other", "tenant-z", OLDER, path="/services/qwen36-fast")
    holder["status"] = published("/services/qwen36-fast")
    parent = parent_object(broken(qwen()), status=good["status"])
    body = sync_request(parent, observed_children(good["children"]), related=related(holder))
    kept = sync(parse_request(body), Settings()).response["children"]
    assert {c["kind"] for c in kept} == {api.MIDDLEWARE_KIND, api.SERVICE_KIND}
    # A child in another namespace is a bug the core refuses to answer with.
    first_child_planned_with(monkeypatch, "namespace", "victim-ns")
    with pytest.raises(HookFailure, match="not in the offer's namespace llm-sellers"):
        answer(qwen())


def first_child_planned_with(monkeypatch: pytest.MonkeyPatch, field: str, value: str) -> None:
    """Make the core's plan carry a first child whose ``metadata.<field>`` is ``value``."""
    plan_offer = hooks.core.sync.plan_offer

    def tampered(*args: Any) -> Any:
        plan = plan_offer(*args)
        plan.children[0]["metadata"][field] = value
        return plan

    monkeypatch.setattr(hooks.core.sync, "plan_offer", tampered)


def test_a_child_this_offer_would_not_render_is_refused_as_a_bug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first_child_planned_with(monkeypatch, "name", "someone-elses-route")
    with pytest.raises(HookFailure, match="HTTPRoute someone-elses-route is not a child of this"):
        answer(qwen())

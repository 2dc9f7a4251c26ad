"""The optional ValidatingAdmissionPolicy for platforms on obol-stack's verifier, on the real
API server (CEL, Kubernetes >= 1.30): metacontroller/components/obol-stack-verifier.

obol-stack's verifier cannot decode an offer whose ``payment.asset`` is the string form, and one
such offer stops its route reloads for every offer (tests/e2e/test_obol_verifier.py shows it).
The hook still accepts the string form; the policy refuses it at ``kubectl apply``:

* a new offer with a string asset is refused with the policy's message; the object form, as
  ``obol sell`` writes it, is accepted;
* an offer stored before the policy is not stuck: an update that leaves its asset unchanged
  passes (a label, the hook's finalizer), writing another string is refused, writing the object
  form passes; status writes (the status subresource) never match.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli.sell_helpers import USDC_BASE

from .kube import ApiError, KubeClient, collection_path, object_path
from .stack import REPO_ROOT, Stack, wait_until

pytestmark = pytest.mark.e2e

NS = "asset-policy"
API = "obol.org/v1alpha1"
POLICY = REPO_ROOT / "metacontroller/components/obol-stack-verifier/asset-object-policy.yaml"


def _offer(name: str, asset: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ServiceOffer",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "type": "http",
            "upstream": {"service": "api", "port": 8080},
            "payment": {
                "network": "base",
                "asset": asset,
                "payTo": "0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31",
                "price": {"perRequest": "0.001"},
            },
        },
    }


def _refusal(call: Any) -> str | None:
    try:
        call()
    except ApiError as exc:
        return exc.message
    return None


@pytest.fixture(scope="module")
def stored(stack: Stack, kube: KubeClient) -> Iterator[dict[str, Any]]:
    """An offer with a string asset, stored before the policy; then the policy, in force."""
    stack.ensure_namespace(NS)
    offer = kube.create(collection_path(API, "serviceoffers", NS), _offer("legacy", "usdc"))
    stack.kubectl("apply", "-f", str(POLICY))
    probe = _offer("probe", "usdc")
    wait_until(
        lambda: _refusal(lambda: kube.create(collection_path(API, "serviceoffers", NS), probe,
                                              dry_run=True)),
        timeout=60,
        what="the ValidatingAdmissionPolicy in force",
    )  # fmt: skip
    yield offer
    stack.kubectl("delete", "-f", str(POLICY), "--ignore-not-found")
    kube.delete(object_path(API, "serviceoffers", NS, "legacy"))


def test_a_new_string_asset_is_refused_and_the_object_form_accepted(
    kube: KubeClient, stored: dict[str, Any]
) -> None:
    path = collection_path(API, "serviceoffers", NS)
    for asset in ("usdc", "obol", USDC_BASE["address"]):
        message = _refusal(lambda a=asset: kube.create(path, _offer("new", a), dry_run=True))
        assert message is not None and "serviceoffer-asset-object-form" in message, message
        assert f"spec.payment.asset: the string form '{asset}'" in message
        assert "obol-stack's x402 verifier" in message
    assert _refusal(lambda: kube.create(path, _offer("new", USDC_BASE), dry_run=True)) is None
    bare = _offer("bare", USDC_BASE)
    del bare["spec"]["payment"]["asset"]  # the chain's USDC, for both verifiers
    assert _refusal(lambda: kube.create(path, bare, dry_run=True)) is None


def test_an_offer_stored_before_the_policy_is_never_stuck(
    kube: KubeClient, stored: dict[str, Any]
) -> None:
    path = object_path(API, "serviceoffers", NS, "legacy")
    current = kube.get(path)
    assert current is not None
    labelled = copy.deepcopy(current)
    labelled["metadata"].setdefault("labels", {})["team"] = "a"
    labelled["metadata"]["finalizers"] = ["metacontroller.io/compositecontroller-serviceoffer"]
    assert _refusal(lambda: kube.update(path, labelled, dry_run=True)) is None
    other = copy.deepcopy(current)
    other["spec"]["payment"]["asset"] = "obol"
    message = _refusal(lambda: kube.update(path, other, dry_run=True))
    assert message is not None and "the string form 'obol'" in message
    fixed = copy.deepcopy(current)
    fixed["spec"]["payment"]["asset"] = USDC_BASE
    assert _refusal(lambda: kube.update(path, fixed, dry_run=True)) is None
    status = {**current, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    assert _refusal(lambda: kube.update(f"{path}/status", status, dry_run=True)) is None

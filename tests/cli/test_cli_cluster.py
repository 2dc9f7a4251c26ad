"""The CLI never mistakes a local process for a cluster, and ships the CRD it needs.

Test-design notes: the fake kubectl (tests/cli/sell_helpers.py) answers ``config view`` like
real kubectl, with a context or, after ``without_cluster()``, with kubectl's own error for a
missing kubeconfig; the real kubectl with no kubeconfig and a listener on localhost:8080 is
exercised in tests/e2e/test_cli_no_cluster.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hooks.cli.crd import crd_text
from hooks.cli.errors import EXIT_UNREACHABLE
from tests.cli.sell_helpers import FakeKubectl, Runner, offer_args

ROOT = Path(__file__).resolve().parents[2]
NO_CLUSTER = "cannot reach the cluster: kubectl has no cluster configured"


@pytest.mark.parametrize(
    "args",
    [
        offer_args(),
        ["sell", "list", "-A"],
        ["sell", "status", "qwen", "-n", "llm"],
        ["crd", "apply"],
    ],
    ids=["sell inference", "sell list", "sell status", "crd apply"],
)
def test_without_a_kubeconfig_every_cluster_command_says_so_and_calls_nothing(
    run: Runner, fake_kubectl: FakeKubectl, args: list[str]
) -> None:
    fake_kubectl.answer(stdout='{"items": []}').without_cluster()
    result = run([*args, "--kubectl", str(fake_kubectl.path)])
    assert result.exit_code == EXIT_UNREACHABLE, result.output
    assert result.stderr.startswith(f"Error: {NO_CLUSTER}")
    assert "http://localhost:8080" in result.stderr and "--context" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert fake_kubectl.calls() == [], "kubectl was asked to talk to a cluster it does not have"


def test_the_packaged_crd_is_the_repository_crd() -> None:
    # crds/serviceoffer.yaml is the source; after editing it: cp crds/serviceoffer.yaml
    # hooks/data/serviceoffer-crd.yaml
    assert crd_text() == (ROOT / "crds/serviceoffer.yaml").read_text(encoding="utf-8")


def test_crd_print_prints_the_packaged_crd(run: Runner) -> None:
    result = run(["crd", "print"])
    assert result.exit_code == 0
    assert result.stdout == crd_text()
    assert yaml.safe_load(result.stdout)["metadata"]["name"] == "serviceoffers.obol.org"


def test_crd_apply_sends_the_crd_to_kubectl_apply(run: Runner, fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer(stdout="customresourcedefinition.apiextensions.k8s.io/x created\n")
    result = run(["crd", "apply", "--kubectl", str(fake_kubectl.path), "--context", "prod"])
    assert result.exit_code == 0, result.output
    (call,) = fake_kubectl.calls()
    assert call["argv"] == ["--context", "prod", "apply", "-f", "-"]
    assert yaml.safe_load(call["stdin"]) == yaml.safe_load(crd_text())


def test_the_crd_missing_hint_names_the_packaged_crd(
    run: Runner, fake_kubectl: FakeKubectl
) -> None:
    fake_kubectl.answer(
        stderr='error: the server doesn\'t have a resource type "serviceoffers"\n', exit_code=1
    )
    result = run(["sell", "list", "--kubectl", str(fake_kubectl.path)])
    assert "install the one this package ships with: obol crd apply" in result.stderr

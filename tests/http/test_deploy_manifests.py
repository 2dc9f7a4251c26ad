"""The deployment manifests (metacontroller/, crds/kustomization.yaml) agree with the code.

Test-design notes:

* Plain YAML tests need nothing installed: every manifest parses, the CompositeController's
  child types equal ``hooks.core.api.CHILD_TYPES`` (an apiVersion mismatch makes Metacontroller
  delete and recreate children forever), and the names that tie objects together agree: hook
  URL, Service, ``OBOL_BUSY_HOST``, busy port, container ports, NetworkPolicy ports.
* The kustomize test renders ``kubectl kustomize metacontroller/`` with a kubectl from PATH or
  from the e2e cache (``~/.cache/obol-e2e/bin/kubectl-*``) and skips, saying so, without one.
* These live with the HTTP tests because they describe how the HTTP server is deployed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from hooks.config import ENVIRONMENT, SHELL_ENVIRONMENT
from hooks.core import api
from hooks.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "metacontroller"
NAMESPACE = "obol-system"
SERVICE = "serviceoffer-hook"


def documents(path: Path) -> list[dict[str, Any]]:
    loaded = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert all(isinstance(doc, dict) for doc in loaded), path
    return loaded


def one(kind: str, docs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    found = [d for d in docs or all_documents() if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def all_documents() -> list[dict[str, Any]]:
    return [doc for path in sorted(MANIFESTS.glob("*.yaml")) for doc in documents(path)
            if path.name != "kustomization.yaml"]  # fmt: skip


def containers() -> dict[str, dict[str, Any]]:
    """The Pod's containers by name: exactly ``sync`` and ``busy``."""
    found = {c["name"]: c for c in one("Deployment")["spec"]["template"]["spec"]["containers"]}
    assert sorted(found) == ["busy", "sync"]
    return found


def env_values(name: str = "sync") -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in containers()[name]["env"]}


@pytest.mark.parametrize(
    "path",
    [*sorted(MANIFESTS.glob("*.yaml")), ROOT / "crds" / "kustomization.yaml"],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_every_manifest_parses_with_api_version_and_kind(path: Path) -> None:
    for doc in documents(path):
        assert doc.get("apiVersion") and doc.get("kind"), path


def test_kustomizations_list_existing_files() -> None:
    for kustomization in (MANIFESTS / "kustomization.yaml", ROOT / "crds" / "kustomization.yaml"):
        for resource in one("Kustomization", documents(kustomization))["resources"]:
            assert (kustomization.parent / resource).exists(), resource
    resources = one("Kustomization", documents(MANIFESTS / "kustomization.yaml"))["resources"]
    assert "../crds" in resources


def test_child_resources_equal_the_code_child_types() -> None:
    spec = one("CompositeController")["spec"]
    declared = [(c["apiVersion"], c["resource"]) for c in spec["childResources"]]
    assert declared == [(version, plural) for version, _, plural in api.CHILD_TYPES]
    assert all(c["updateStrategy"]["method"] == "InPlace" for c in spec["childResources"])


def test_the_parent_and_hook_are_configured_as_the_hook_expects() -> None:
    controller = one("CompositeController")
    spec = controller["spec"]
    assert controller["metadata"]["name"] == "serviceoffer-controller"
    assert spec["generateSelector"] is True
    assert spec["parentResource"] == {
        "apiVersion": api.API_VERSION, "resource": api.PLURAL, "ignoreStatusChanges": True,
    }  # fmt: skip
    # customize: the related offers of every namespace need v2 (v1 lists only the parent's).
    assert set(spec["hooks"]) == {"sync", "customize"}
    service_ports = {p["name"]: p["port"] for p in one("Service")["spec"]["ports"]}
    for hook, path in (("sync", "/sync"), ("customize", "/customize")):
        assert spec["hooks"][hook]["version"] == "v2"
        assert spec["hooks"][hook]["webhook"]["timeout"] == "5s"
        url = urlsplit(spec["hooks"][hook]["webhook"]["url"])
        assert (url.scheme, url.hostname, url.path) == (
            "http", f"{SERVICE}.{NAMESPACE}.svc.cluster.local", path,
        )  # fmt: skip
        assert url.port == service_ports["sync"]


def test_the_busy_host_default_is_this_service() -> None:
    service = one("Service")
    fqdn = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    assert Settings().busy_host == fqdn
    assert env_values()["OBOL_BUSY_HOST"] == fqdn


def test_each_container_runs_its_own_server_on_its_own_port() -> None:
    commands = {"sync": ["serve"], "busy": ["busy"]}  # after the image's `obol hook` entrypoint
    for name, container in containers().items():
        assert container["args"] == commands[name]
        assert [p["name"] for p in container["ports"]] == [name]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["port"] == name
            assert container[probe]["timeoutSeconds"] == 1
    busy = containers()["busy"]["resources"]
    assert busy["limits"]["cpu"] and containers()["sync"]["resources"]["requests"]["cpu"]


def test_ports_line_up_from_container_to_service() -> None:
    container_ports = {
        p["name"]: p["containerPort"] for c in containers().values() for p in c["ports"]
    }
    assert container_ports == {"sync": 8080, "busy": 8081}
    service_ports = {
        p["name"]: (p["port"], p["targetPort"]) for p in one("Service")["spec"]["ports"]
    }
    assert service_ports == {"sync": (8080, "sync"), "busy": (Settings().busy_port, "busy")}


def test_deployment_env_names_are_known_settings() -> None:
    known = {s.variable for s in ENVIRONMENT} | {s.variable for s in SHELL_ENVIRONMENT}
    assert set(env_values()) <= known and set(env_values("busy")) <= known
    for platform_setting in ("OBOL_PUBLIC_BASE_URL", "OBOL_GATEWAY_NAME", "OBOL_GATEWAY_NAMESPACE",
                             "OBOL_GATEWAY_LISTENER", "OBOL_GATEWAY_REPLICAS", "OBOL_VERIFIER_URL",
                             "OBOL_BUSY_HOST"):  # fmt: skip
        assert platform_setting in env_values()
    # The values shown are the embedded defaults, so applying the manifest changes nothing.
    defaults = {s.variable: getattr(Settings(), s.attribute) for s in ENVIRONMENT}
    for name, value in [*env_values().items(), *env_values("busy").items()]:
        if name in defaults and value != "":
            assert value == str(defaults[name]), name


def test_the_pod_is_hardened_and_highly_available() -> None:
    deployment = one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["automountServiceAccountToken"] is False
    assert one("ServiceAccount")["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for hook in containers().values():
        assert hook["securityContext"]["readOnlyRootFilesystem"] is True
        assert hook["securityContext"]["allowPrivilegeEscalation"] is False
        assert hook["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert hook["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert hook["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert hook["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
        assert hook["resources"]["requests"] and hook["resources"]["limits"]["memory"]
    # gunicorn's worker heartbeat is the only file either server writes.
    assert {m["mountPath"] for m in containers()["sync"]["volumeMounts"]} == {"/tmp"}
    assert one("PodDisruptionBudget")["spec"]["minAvailable"] == 1
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    assert one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"] == selector


def test_network_policy_admits_metacontroller_to_sync_and_traefik_to_busy() -> None:
    rules = {}
    for rule in one("NetworkPolicy")["spec"]["ingress"]:
        (source,) = rule["from"]
        namespace = source["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        rules[namespace] = [port["port"] for port in rule["ports"]]
    assert rules == {"metacontroller": [8080], "traefik": [Settings().busy_port]}


def test_rbac_lets_metacontroller_manage_every_child_type() -> None:
    rules = one("ClusterRole")["rules"]
    for version, _, plural in api.CHILD_TYPES:
        group = version.rpartition("/")[0]
        verbs = {v for r in rules if group in r["apiGroups"] and plural in r["resources"]
                 for v in r["verbs"]}  # fmt: skip
        assert {"get", "list", "watch", "create", "update", "patch", "delete"} <= verbs, plural
    for resource in (api.PLURAL, f"{api.PLURAL}/status"):
        assert any(api.GROUP in r["apiGroups"] and resource in r["resources"] for r in rules)
    binding = one("ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "metacontroller", "namespace": "metacontroller"}
    ]


def find_kubectl() -> str | None:
    on_path = shutil.which("kubectl")
    if on_path:
        return on_path
    cached = sorted((Path.home() / ".cache" / "obol-e2e" / "bin").glob("kubectl-*"))
    return str(cached[-1]) if cached else None


def kustomize(tree: Path = ROOT) -> list[dict[str, Any]]:
    """``kubectl kustomize tree/metacontroller``, as documents (skips without a kubectl)."""
    kubectl = find_kubectl()
    if kubectl is None:
        pytest.skip("no kubectl on PATH or in ~/.cache/obol-e2e/bin (run tests/e2e/build.sh)")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(tree / "metacontroller")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rendered.returncode == 0, rendered.stderr
    return [d for d in yaml.safe_load_all(rendered.stdout) if d]


def test_kustomize_renders_the_whole_install() -> None:
    docs = kustomize()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted([
        "Namespace", "CustomResourceDefinition", "ServiceAccount", "Deployment", "Service",
        "PodDisruptionBudget", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
        "NetworkPolicy", "CompositeController",
    ])  # fmt: skip
    crd = one("CustomResourceDefinition", docs)
    assert crd["metadata"]["name"] == f"{api.PLURAL}.{api.GROUP}"
    # Nothing is published: a name that can only fail at the pull, never look real.
    for container in one("Deployment", docs)["spec"]["template"]["spec"]["containers"]:
        assert container["image"].startswith("registry.invalid/") and ":" in container["image"]
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole",
                      "ClusterRoleBinding", "CompositeController"}  # fmt: skip
    for doc in docs:
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]


def rendered_namespaces(tree: Path) -> dict[str, set[str]]:
    """``kubectl kustomize`` of ``tree/metacontroller``: the namespaces the policy admits per
    port and the namespaces of the bound ServiceAccounts."""
    docs = kustomize(tree)
    assert not [d for d in docs if d["metadata"]["name"] == "serviceoffer-hook-platform"]
    ports: dict[str, set[str]] = {}
    for rule in one("NetworkPolicy", docs)["spec"]["ingress"]:
        (source,) = rule["from"]
        namespace = source["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        ports.setdefault(str(rule["ports"][0]["port"]), set()).add(namespace)
    bindings = [d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    ports["service accounts"] = {s["namespace"] for b in bindings for s in b["subjects"]}
    return ports


def copy_of_the_install(tmp_path: Path, platform: dict[str, str] | None = None) -> Path:
    for directory in ("metacontroller", "crds"):
        shutil.copytree(ROOT / directory, tmp_path / directory)
    if platform is not None:
        path = tmp_path / "metacontroller" / "platform.yaml"
        values = yaml.safe_load(path.read_text())
        values["data"] = platform
        path.write_text(yaml.safe_dump(values))
    return tmp_path


def test_the_shipped_namespaces_are_obol_stacks() -> None:
    assert rendered_namespaces(ROOT) == {
        "8080": {"metacontroller"},
        "8081": {"traefik"},
        "service accounts": {"metacontroller"},
    }


def test_the_platform_values_are_the_one_place_to_set_both_namespaces(tmp_path: Path) -> None:
    tree = copy_of_the_install(
        tmp_path, {"metacontrollerNamespace": "mc-system", "traefikNamespace": "edge"}
    )
    assert rendered_namespaces(tree) == {
        "8080": {"mc-system"},
        "8081": {"edge"},
        "service accounts": {"mc-system"},
    }


def with_component(tmp_path: Path, name: str) -> Path:
    """A copy of the install with one of the components its kustomization names enabled, as a
    user would: uncomment ``components:`` and that component's line."""
    tree = copy_of_the_install(tmp_path)
    kustomization = tree / "metacontroller" / "kustomization.yaml"
    text = kustomization.read_text()
    enabled = text.replace("# components:\n", "components:\n").replace(
        f"#   - components/{name}\n", f"  - components/{name}\n"
    )
    assert enabled.count("\ncomponents:\n") == 1 and f"\n  - components/{name}\n" in enabled
    kustomization.write_text(enabled)
    return tree


def test_the_k3s_component_admits_traefik_from_kube_system(tmp_path: Path) -> None:
    assert rendered_namespaces(with_component(tmp_path, "k3s")) == {
        "8080": {"metacontroller"},
        "8081": {"kube-system"},
        "service accounts": {"metacontroller"},
    }


def test_the_obol_stack_verifier_component_adds_the_asset_policy(tmp_path: Path) -> None:
    # Its behaviour on a real API server: tests/e2e/test_asset_policy.py.
    docs = kustomize(with_component(tmp_path, "obol-stack-verifier"))
    policy = one("ValidatingAdmissionPolicy", docs)
    binding = one("ValidatingAdmissionPolicyBinding", docs)
    assert binding["spec"] == {
        "policyName": policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["serviceoffers"]

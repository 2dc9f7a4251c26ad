"""Shared pytest helpers for the e2e tests: start a :class:`~.stack.Stack` for a test module.

Never starts a build: when the binaries are missing the tests are skipped with the command to
run (``bash tests/e2e/build.sh``).

``print_diagnostics_on_failure(request, stack)`` (call it from an autouse fixture) prints the
stack's diagnostics (log tails of Traefik, the API server, etcd, the hook and the stand-ins,
plus whatever the module registered with ``Stack.add_diagnostics``) right after a failed test,
so they appear in that test's report instead of only at module teardown.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from .driver import Driver
from .hook_process import HookServer, start_hook
from .kube import KubeClient
from .stack import REPO_ROOT, Binaries, BinariesMissing, Netns, Stack
from .verifier_stub import VerifierStub


@contextlib.contextmanager
def e2e_stack(request: pytest.FixtureRequest, **kwargs: Any) -> Iterator[Stack]:
    """A running Stack for the life of a (module- or session-scoped) fixture.

    Skips when ``tests/e2e/build.sh`` has not been run, or when network namespaces cannot be
    made here (not root, or no iproute2). If any test failed while the stack was
    up, the stack is marked failed, so that teardown prints the log tails and keeps the logs.
    ``kwargs`` go to :class:`Stack` (e.g. ``extra_crds=[...]``).
    """
    try:
        binaries = Binaries.find()
    except BinariesMissing as exc:
        pytest.skip(str(exc))
    if kwargs.get("use_netns", True) and (reason := Netns.unavailable_reason()):
        pytest.skip(f"e2e stack needs a network namespace for upstreams: {reason}")
    failed_before = request.session.testsfailed
    with Stack(binaries=binaries, **kwargs) as stack:
        try:
            yield stack
        finally:
            if request.session.testsfailed != failed_before:
                stack.mark_failed()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item (``item.e2e_reports[when]``) for teardown code."""
    report = yield
    reports = item.__dict__.setdefault("e2e_reports", {})
    reports[report.when] = report
    return report


def phase_failed(request: pytest.FixtureRequest) -> bool:
    """True when the running test's setup or call phase failed (use in fixture teardown)."""
    reports = request.node.__dict__.get("e2e_reports", {})
    return any(r.failed for r in reports.values())


def print_diagnostics_on_failure(request: pytest.FixtureRequest, stack: Stack) -> None:
    """After a failed test, print the stack's diagnostics into that test's report."""
    if phase_failed(request):
        print(stack.diagnostics(lines=60))


# The product modules share one kind of stack (one per module: fixtures are module-scoped) with
# our CRD installed, and a REST client on it; a module may define its own ``stack`` instead.
@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A Stack with crds/serviceoffer.yaml installed, for one test module."""
    with e2e_stack(request, extra_crds=[REPO_ROOT / "crds" / "serviceoffer.yaml"]) as s:
        yield s


@pytest.fixture(scope="module")
def kube(stack: Stack) -> Iterator[KubeClient]:
    """A REST client on the module's Stack."""
    client = KubeClient(stack.api_url, stack.token, stack.ca_file)
    yield client
    client.close()


@pytest.fixture(scope="module")
def hook(stack: Stack, verifier: VerifierStub) -> HookServer:
    """The hook's two servers with the forwardAuth pointed at the module's ``verifier`` fixture."""
    return start_hook(stack, verifier_url=verifier.verify_url)


@pytest.fixture(scope="module")
def driver(stack: Stack, kube: KubeClient, hook: HookServer) -> Driver:
    """The Metacontroller stand-in on the module's Stack and its ``hook`` fixture."""
    d = Driver(kube, hook.sync_endpoint)
    stack.add_diagnostics(d.diagnostics)
    return d

"""Bearer-token authentication on /sync, /finalize and /customize, through a real server.

Test-design notes:

* One module-scoped server reads its token from ``OBOL_HOOK_TOKEN_FILE`` (with a trailing
  newline, as ``kubectl create secret --from-file`` leaves it); the shared session server covers
  the token-less case (see test_http_sync.py).
* Refusals are checked for status, JSON body, ``WWW-Authenticate`` and for never echoing the
  token; the busy responder and probes must stay open (Traefik and the kubelet have no token).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.http.http_harness import HookServer, LaunchHook

TOKEN = "s3cret-Token_0123456789"


@pytest.fixture(scope="module")
def token_server(
    launch_hook: LaunchHook, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HookServer]:
    token_file = Path(tmp_path_factory.mktemp("token")) / "token"
    token_file.write_text(TOKEN + "\n")
    with launch_hook({"OBOL_HOOK_TOKEN_FILE": str(token_file)}) as server:
        yield server


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("Bearer wrong-token", id="wrong"),
        pytest.param(f"Bearer {TOKEN}x", id="longer"),
        pytest.param(f"Bearer {TOKEN[:-1]}", id="shorter"),
        pytest.param(f"Basic {TOKEN}", id="other-scheme"),
        pytest.param(TOKEN, id="no-scheme"),
        pytest.param("Bearer", id="scheme-only"),
    ],
)
def test_a_missing_or_wrong_token_is_401_json(
    token_server: HookServer, valid_body: bytes, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in ("/sync", "/finalize", "/customize"):
        response = token_server.post_sync(valid_body, path=path, headers=headers)
        assert response.status_code == 401
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert orjson.loads(response.content)["error"] == "unauthorized"
        assert TOKEN.encode() not in response.content


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_right_token_is_accepted(
    token_server: HookServer, valid_body: bytes, scheme: str
) -> None:
    response = token_server.post_sync(valid_body, headers={"Authorization": f"{scheme} {TOKEN}"})
    assert response.status_code == 200
    assert orjson.loads(response.content)["children"]


def test_the_token_is_checked_before_the_body_is_read(token_server: HookServer) -> None:
    # Garbage without a token is refused as unauthorized, not parsed into a 400.
    assert token_server.post_sync(b"{not json").status_code == 401


def test_busy_responder_and_probes_need_no_token(token_server: HookServer) -> None:
    assert (
        token_server.get(token_server.busy_url + "/busy/ns/offer?retryAfter=3").status_code == 429
    )
    assert token_server.get(token_server.sync_url + "/healthz").status_code == 200
    assert token_server.get(token_server.sync_url + "/readyz").status_code == 200


def test_refusals_are_counted_as_unauthorized(token_server: HookServer) -> None:
    token_server.post_sync(b"{}")
    metrics = token_server.get(token_server.sync_url + "/metrics").text
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith('obol_hook_sync_requests_total{outcome="unauthorized"}')
    )
    assert float(line.split()[-1]) >= 1

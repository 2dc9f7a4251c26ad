"""Bearer-token authentication on /sync, /finalize and /customize (the app in-process).

Test-design notes:

* The app is built from a configuration that reads its token from ``OBOL_HOOK_TOKEN_FILE`` (with
  a trailing newline, as ``kubectl create secret --from-file`` leaves it); the shared client
  covers the token-less case (see test_http_sync.py).
* Refusals are checked for status, JSON body, ``WWW-Authenticate`` and for never echoing the
  token; the probes must stay open (the kubelet has no token). The busy responder, in its own
  container, has no token to check at all.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.http.http_harness import AppClient, app_client

TOKEN = "s3cret-Token_0123456789"


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> AppClient:
    token_file = Path(tmp_path_factory.mktemp("token")) / "token"
    token_file.write_text(TOKEN + "\n")
    return app_client({"OBOL_HOOK_TOKEN_FILE": str(token_file)})


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
    token_server: AppClient, valid_body: bytes, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in ("/sync", "/finalize", "/customize"):
        response = token_server.post_sync(valid_body, path=path, headers=headers)
        assert response.status_code == 401
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert orjson.loads(response.data)["error"] == "unauthorized"
        assert TOKEN.encode() not in response.data


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_right_token_is_accepted(
    token_server: AppClient, valid_body: bytes, scheme: str
) -> None:
    response = token_server.post_sync(valid_body, headers={"Authorization": f"{scheme} {TOKEN}"})
    assert response.status_code == 200
    assert orjson.loads(response.data)["children"]


def test_the_token_is_checked_before_the_body_is_read(token_server: AppClient) -> None:
    # Garbage without a token is refused as unauthorized, not parsed into a 400.
    assert token_server.post_sync(b"{not json").status_code == 401


def test_probes_need_no_token(token_server: AppClient) -> None:
    assert token_server.client.get("/healthz").status_code == 200
    assert token_server.client.get("/readyz").status_code == 200


def test_refusals_are_counted_as_unauthorized(token_server: AppClient) -> None:
    token_server.post_sync(b"{}")
    metrics = token_server.client.get("/metrics").get_data(as_text=True)
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith('obol_hook_sync_requests_total{outcome="unauthorized"}')
    )
    assert float(line.split()[-1]) >= 1

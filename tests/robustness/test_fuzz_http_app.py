"""Property-based fuzzing of the HTTP shell in-process (Flask test client): hostile bodies and
headers never give a 5xx (but the guard's, below), and every answer is JSON.

Design notes:

* Bodies: random bytes, invalid UTF-8 and BOMs, truncated realistic requests, realistic requests
  with random edits (serialised by orjson, as Metacontroller's Go client would send them), and
  arbitrary JSON; sent with random content types (JSON, none, text, form, multipart with a
  broken boundary), since the hook must read the raw body whatever the header claims.
* Oracle: the status is 200 or 400 (413 is tests/http/test_http_sync.py's topic), the content
  type is ``application/json`` and the body parses; a 200 has only the v2 keys and a list of
  children, and never an empty list while the request observed children of ours (finalizing
  aside); a 400 is ``{"error", "detail"}``. The one 500 allowed is the shell's guard: an invalid
  offer with children but nothing trusted to re-render them from, which the core answers with
  no children (Metacontroller then leaves the live children alone).
* The answer cache must be invisible: the same body twice through an app with a cache and once
  through an app without one gives the same status and the same bytes.
"""

from __future__ import annotations

import orjson
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks.config import ShellConfig
from hooks.core.request import parse_request
from hooks.core.settings import Settings
from hooks.core.sync import sync
from hooks.server.app import create_app
from tests.robustness.strategies import (
    FIXTURES,
    RESPONSE_KEYS,
    json_values,
    mutated,
    observed_managed_children,
)

FAST = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
SLOW = settings(FAST, max_examples=1200)
BUDGETS = [pytest.param(FAST, id="fast"), pytest.param(SLOW, id="long", marks=pytest.mark.slow)]
CAP = 256 * 1024
FIXTURE_BODIES = [path.read_bytes() for path in sorted(FIXTURES.glob("*.json"))]
REQUESTS = [orjson.loads(body) for body in FIXTURE_BODIES]
CONTENT_TYPES = (
    "application/json",
    None,
    "text/plain",
    "application/json; charset=latin-1",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
    "*/*;;;=",
)


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    """The shell with a small size cap."""
    return create_app(ShellConfig(Settings(), max_request_bytes=CAP)).test_client()


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    body = orjson.dumps(orjson.loads(draw(st.sampled_from(FIXTURE_BODIES))))
    return body[: draw(st.integers(0, len(body) - 1))]


@st.composite
def edited_requests(draw: st.DrawFn) -> bytes:
    return orjson.dumps(draw(mutated(draw(st.sampled_from(REQUESTS)), max_edits=6)))


bodies = st.one_of(
    st.binary(max_size=512),
    st.binary(max_size=64).map(lambda raw: b"\xef\xbb\xbf" + raw),
    truncated(),
    edited_requests(),
    json_values.map(orjson.dumps),
    st.sampled_from(FIXTURE_BODIES).map(lambda body: b"\xef\xbb\xbf" + body),
)


def post(client: FlaskClient, body: bytes, content_type: str | None) -> tuple[int, bytes, str]:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = client.post("/sync", data=body, headers=headers)
    return response.status_code, response.data, response.headers.get("Content-Type", "")


def check_answer(body: bytes, status: int, payload: bytes, content_type: str) -> None:
    assert status in (200, 400, 500), (status, payload[:300])
    assert content_type == "application/json"
    answer = orjson.loads(payload)
    assert isinstance(answer, dict)
    if status == 400:
        assert set(answer) == {"error", "detail"} and answer["detail"]
        return
    request = orjson.loads(body)
    if status == 500:
        # Only the guard: the core kept nothing (no trusted state) while children exist.
        assert answer["error"] == "internal_error"
        assert observed_managed_children(request) and request.get("finalizing") is not True
        assert sync(parse_request(request), Settings()).response["children"] == []
        return
    assert set(answer) <= RESPONSE_KEYS and isinstance(answer.get("children"), list)
    if request.get("finalizing") is not True and observed_managed_children(request):
        assert answer["children"], "children: [] while children exist"


@pytest.mark.parametrize("budget", BUDGETS)
def test_hostile_bodies_get_json_and_only_the_guards_5xx(
    budget: settings, client: FlaskClient
) -> None:
    @budget
    @given(bodies, st.sampled_from(CONTENT_TYPES))
    def check(body: bytes, content_type: str | None) -> None:
        first = post(client, body, content_type)
        check_answer(body, *first)
        assert post(client, body, content_type) == first, "the same body got another answer"

    check()


# Children observed, an invalid spec and no status to re-render them from: the guard's 500.
GUARDED = {"13-invalid-spec-without-last-applied"}


def test_fixtures_pass_the_oracle(client: FlaskClient) -> None:
    # Guards the oracle itself: every realistic request is answered through the shell.
    for path in sorted(FIXTURES.glob("*.json")):
        body = path.read_bytes()
        status, payload, content_type = post(client, body, "application/json")
        assert status == (500 if path.stem in GUARDED else 200), path.name
        check_answer(body, status, payload, content_type)

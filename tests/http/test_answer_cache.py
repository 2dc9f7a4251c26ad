"""The per-worker answer cache: identical request bodies skip the work, nothing else changes.

Design notes:
- The cache is observable only through call counts and bytes: a hit must return exactly the
  bytes a miss would, only 200 answers are remembered, the LRU bound holds, and the cache is
  off while an observer runs (observations are an input the body does not show).
- The doorkeeper: a body is admitted on its second sight, so the core runs twice and the third
  request is the first hit; a fingerprint collision (forced here) must never return another
  body's answer, since answers are found by SHA-256 only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import hooks.app
from hooks.app import AnswerCache, SyncAnswer, create_app
from hooks.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BODY = (ROOT / "tests/fixtures/sync/02-full-envelope-existing-children.json").read_bytes()


def counting(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    calls: list[bytes] = []
    real = hooks.app.handle_sync_body

    def spy(body: bytes, *args: Any, **kwargs: Any) -> SyncAnswer:
        calls.append(body)
        return real(body, *args, **kwargs)

    monkeypatch.setattr(hooks.app, "handle_sync_body", spy)
    return calls


def test_identical_bodies_are_answered_from_the_third_on_with_identical_bytes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    calls = counting(monkeypatch)
    client = create_app(Settings(), cache_entries=8).test_client()
    answers = [client.post("/sync", data=BODY, content_type="application/json") for _ in range(4)]
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.data for answer in answers}) == 1
    assert len(calls) == 2  # first sight, then admitted on the second; hits from the third


def test_errors_are_not_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    calls = counting(monkeypatch)
    client = create_app(Settings(), cache_entries=8).test_client()
    for _ in range(2):
        answer = client.post("/sync", data=b"{nope", content_type="application/json")
        assert answer.status_code == 400
    assert len(calls) == 2


def test_cache_can_be_disabled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    calls = counting(monkeypatch)
    client = create_app(Settings(), cache_entries=0).test_client()
    for _ in range(2):
        client.post("/sync", data=BODY, content_type="application/json")
    assert len(calls) == 2


def test_least_recently_used_answer_is_dropped_first() -> None:
    cache = AnswerCache(2)
    answers = {key: SyncAnswer(200, key, "ok") for key in (b"a", b"b", b"c")}
    cache.put(b"a", answers[b"a"])
    cache.put(b"b", answers[b"b"])
    assert cache.get(b"a") is answers[b"a"]  # a is now the most recent
    cache.put(b"c", answers[b"c"])
    assert cache.get(b"b") is None
    assert cache.get(b"a") is answers[b"a"] and cache.get(b"c") is answers[b"c"]


def test_first_sights_cost_no_sha256_and_are_not_admitted(monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[bytes] = []
    real_key = AnswerCache.key
    monkeypatch.setattr(
        AnswerCache, "key", staticmethod(lambda body: hashed.append(body) or real_key(body))
    )
    cache = AnswerCache(4)
    bodies = [b"body-%d" % index for index in range(20)]
    for body in bodies:
        assert cache.lookup(body) == (None, None)
    assert hashed == []
    key, answer = cache.lookup(bodies[-1])
    assert key == real_key(bodies[-1]) and answer is None
    cache.put(key, SyncAnswer(200, b"answer", "ok"))
    assert cache.lookup(bodies[-1]) == (key, SyncAnswer(200, b"answer", "ok"))


def test_the_fingerprint_set_is_bounded() -> None:
    cache = AnswerCache(2)
    for index in range(100):
        cache.lookup(b"body-%d" % index)
    assert cache.lookup(b"body-0")[0] is None  # long forgotten: a first sight again
    assert cache.lookup(b"body-99")[0] is not None


def test_a_fingerprint_collision_never_returns_another_bodys_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(hooks.app.zlib, "crc32", lambda body: 7)  # every body collides
    client = create_app(Settings(), cache_entries=8).test_client()
    request = orjson.loads(BODY)
    request["parent"]["metadata"]["name"] = "qwen36-other"
    other = orjson.dumps(request)
    for _ in range(3):
        mine = client.post("/sync", data=BODY, content_type="application/json")
        theirs = client.post("/sync", data=other, content_type="application/json")
        assert mine.status_code == theirs.status_code == 200
        assert b"qwen36-other" not in mine.data and b"qwen36-other" in theirs.data

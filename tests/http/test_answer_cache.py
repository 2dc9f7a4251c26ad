"""The per-worker answer cache: identical request bodies skip the work, nothing else changes.

Design notes:
- The cache is observable only through call counts and bytes: a hit must return exactly the
  bytes a miss would, only 200 answers are remembered, the LRU bound holds, and the cache is
  off while an observer runs (observations are an input the body does not show).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest

import hooks.server.app
from hooks.core.settings import Settings
from hooks.server.app import AnswerCache, SyncAnswer, create_app

ROOT = Path(__file__).resolve().parents[2]
BODY = (ROOT / "tests/fixtures/sync/02-full-envelope-existing-children.json").read_bytes()


def counting(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    calls: list[bytes] = []
    real = hooks.server.app.handle_sync_body

    def spy(body: bytes, *args: Any, **kwargs: Any) -> SyncAnswer:
        calls.append(body)
        return real(body, *args, **kwargs)

    monkeypatch.setattr(hooks.server.app, "handle_sync_body", spy)
    return calls


def test_identical_bodies_are_answered_once_with_identical_bytes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    calls = counting(monkeypatch)
    client = create_app(Settings(), cache_entries=8).test_client()
    first = client.post("/sync", data=BODY, content_type="application/json")
    second = client.post("/sync", data=BODY, content_type="application/json")
    assert first.status_code == second.status_code == 200
    assert first.data == second.data
    assert len(calls) == 1


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
    assert cache.get(b"a") == answers[b"a"]  # a is now the most recent
    cache.put(b"c", answers[b"c"])
    assert cache.get(b"b") is None
    assert cache.get(b"a") == answers[b"a"] and cache.get(b"c") == answers[b"c"]


def test_a_remembered_body_takes_only_its_own_length() -> None:
    # orjson's bytes keep their whole write buffer (4 KiB at least); the cache keeps a copy.
    cache = AnswerCache(100)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(100):
            cache.put(b"%d" % index, SyncAnswer(200, orjson.dumps({"n": index}), "ok"))
        per_answer = (tracemalloc.get_traced_memory()[0] - before) / 100
    finally:
        tracemalloc.stop()
    assert per_answer < 1024, per_answer

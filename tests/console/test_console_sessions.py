"""Console sessions (gateway.console.sessions): opaque ids, idle and absolute expiry, a bounded
store, constant-time CSRF comparison."""

from __future__ import annotations

import pytest

from gateway.auth import DEFAULT_SCOPES, Principal
from gateway.console.sessions import SessionStore

ALICE = Principal("alice", DEFAULT_SCOPES, "tok-00000000")


def test_sessions_new_session_is_found_by_its_id_and_never_by_another() -> None:
    store = SessionStore(idle_s=60)
    session_id, session = store.create(ALICE, now=0)
    assert len(session_id) >= 43 and session.csrf_token != session_id
    assert store.get(session_id, now=1) is session
    assert store.get(session_id + "x", now=1) is None
    assert store.get("", now=1) is None and store.get(None, now=1) is None
    assert store.get("x" * 10_000, now=1) is None


def test_sessions_unused_past_idle_time_expire_and_use_extends_them() -> None:
    store = SessionStore(idle_s=60, max_age_s=1000)
    session_id, _ = store.create(ALICE, now=0)
    assert store.get(session_id, now=59) is not None
    assert store.get(session_id, now=118) is not None  # used at 59: alive until 119
    assert store.get(session_id, now=178) is None
    assert len(store) == 0


def test_sessions_past_max_age_expire_however_used() -> None:
    store = SessionStore(idle_s=60, max_age_s=100)
    session_id, _ = store.create(ALICE, now=0)
    for now in range(0, 100, 30):
        assert store.get(session_id, now=now) is not None
    assert store.get(session_id, now=100) is None


def test_sessions_beyond_capacity_end_the_least_recently_used() -> None:
    store = SessionStore(idle_s=600, capacity=2)
    first, _ = store.create(ALICE, now=0)
    second, _ = store.create(ALICE, now=1)
    store.get(first, now=2)  # first is now the most recently used
    third, _ = store.create(ALICE, now=3)
    assert len(store) == 2
    assert store.get(second, now=4) is None
    assert store.get(first, now=4) is not None and store.get(third, now=4) is not None


def test_sessions_end_forgets_the_session() -> None:
    store = SessionStore(idle_s=60)
    session_id, _ = store.create(ALICE, now=0)
    assert store.end(session_id) is True
    assert store.get(session_id, now=1) is None
    assert store.end(session_id) is False and store.end(None) is False


def test_sessions_csrf_token_matches_only_itself() -> None:
    _, session = SessionStore(idle_s=60).create(ALICE, now=0)
    assert session.csrf_matches(session.csrf_token)
    assert not session.csrf_matches(None) and not session.csrf_matches("") and not session.csrf_matches("é")


def test_sessions_store_with_no_lifetime_is_refused() -> None:
    with pytest.raises(ValueError):
        SessionStore(idle_s=0)

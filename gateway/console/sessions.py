"""Console sessions: an opaque random id in the cookie, mapped in memory to who signed in.

Why server-side ids and not a signed cookie: sign-out and expiry take effect at once (the id is
forgotten), the cookie carries nothing worth stealing but the id itself, and the per-session CSRF
token never leaves the server but in the pages it renders. The cost: sessions live in one gateway
process (a restart signs everyone out; several instances behind one address need sticky routing).

The store is bounded: at most `capacity` sessions (signing in past it ends the one used least
recently); a session ends after `idle_s` unused and after `max_age_s` whatever its use. Ids and
CSRF tokens are 256-bit `secrets.token_urlsafe` values; ids are looked up by their SHA-256, so
the dict never holds a usable cookie value. Pure: the clock is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from gateway.auth import Principal

DEFAULT_CAPACITY = 1000
DEFAULT_MAX_AGE_S = 12 * 3600.0


@dataclass(slots=True)
class Session:
    principal: Principal
    csrf_token: str = field(repr=False)
    created_at: float
    last_used_at: float

    def csrf_matches(self, offered: str | None) -> bool:
        """Whether a form's token is this session's (constant time)."""
        return offered is not None and hmac.compare_digest(offered.encode(), self.csrf_token.encode())


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).digest()


class SessionStore:
    def __init__(self, *, idle_s: float, max_age_s: float = DEFAULT_MAX_AGE_S, capacity: int = DEFAULT_CAPACITY) -> None:
        if idle_s <= 0 or max_age_s <= 0 or capacity <= 0:
            raise ValueError("session lifetimes and capacity must be > 0")
        self.idle_s = idle_s
        self.max_age_s = max_age_s
        self.capacity = capacity
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()  # least recently used first

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, principal: Principal, now: float) -> tuple[str, Session]:
        """A new session (a new id: never one the browser offered); returns (cookie value, session)."""
        self._expire(now)
        while len(self._sessions) >= self.capacity:
            self._sessions.popitem(last=False)
        session_id = secrets.token_urlsafe(32)
        session = Session(principal, secrets.token_urlsafe(32), now, now)
        self._sessions[_digest(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None, now: float) -> Session | None:
        """The live session of a cookie value, its use recorded; None if unknown or expired."""
        if not session_id or len(session_id) > 128:
            return None
        key = _digest(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None
        if self._expired(session, now):
            del self._sessions[key]
            return None
        session.last_used_at = now
        self._sessions.move_to_end(key)
        return session

    def end(self, session_id: str | None) -> bool:
        if not session_id:
            return False
        return self._sessions.pop(_digest(session_id), None) is not None

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_used_at >= self.idle_s or now - session.created_at >= self.max_age_s

    def _expire(self, now: float) -> None:
        """Drop expired sessions from the least recently used end (each is looked at once)."""
        while self._sessions:
            key, session = next(iter(self._sessions.items()))
            if not self._expired(session, now):
                break
            del self._sessions[key]

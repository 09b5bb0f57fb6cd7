"""Bearer-token authentication of the advisor API (RFC 6750 `Authorization: Bearer <token>`).

Tokens come from configuration. A presented token is hashed and compared with every
configured token's hash in constant time (`hmac.compare_digest`, no early exit), so neither
the content nor the position of a token leaks through timing. Tokens are never logged; a
request is attributed to `client`, a short hash of its token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

CHALLENGE = 'Bearer realm="execution-integration"'


def token_fingerprint(token: str) -> str:
    """A short, non-reversible name for a token, for logs and metrics."""
    return "tok-" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:8]


class BearerAuth:
    def __init__(self, tokens: Iterable[str]) -> None:
        self._digests = tuple(hashlib.sha256(token.encode("utf-8")).digest() for token in tokens)

    @property
    def configured(self) -> bool:
        return bool(self._digests)

    def authenticate(self, authorization: str | None) -> str | None:
        """The client fingerprint for a valid `Authorization` header, else None."""
        token = parse_bearer(authorization)
        if token is None:
            return None
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(presented, digest)
        return token_fingerprint(token) if matched else None


def parse_bearer(authorization: str | None) -> str | None:
    """The token of `Bearer <token>` (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token

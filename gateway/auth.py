"""Bearer-token authentication of the advisor API (RFC 6750 `Authorization: Bearer <token>`):
who is calling (a principal) and what they may do (scopes).

Each configured token belongs to a principal (the identity recorded as `actor.requested_by`)
and carries scopes:

| scope | allows |
| --- | --- |
| `executions:read` | GET an execution, list executions, the OpenAPI document |
| `executions:write` | create and cancel executions |
| `artifacts:inline` | a create with the proposal artifact inline (with `GATEWAY_INLINE_ARTIFACTS=true`) |

A token configured without scopes gets `executions:read` and `executions:write`: the advisor
API, never inline artifacts. Tokens come from a principals file (TOML, `load_principals_file`),
or, for setups that predate principals, as bare tokens (`GATEWAY_API_TOKENS`,
`GATEWAY_API_TOKENS_FILE`) whose principal is their fingerprint `tok-<8 hex>`.

A presented token is hashed and compared with every configured token's hash in constant time
(`hmac.compare_digest`, no early exit), so neither the content nor the position of a token
leaks through timing. Only SHA-256 digests are held; the principals file may hold just the
digest (`token_sha256`), so it need not be secret. Tokens must be random (128 bits or more):
an unsalted digest is safe only for tokens nobody can guess.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CHALLENGE = 'Bearer realm="execution-integration"'
PRINCIPAL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class Scope(StrEnum):
    READ = "executions:read"
    WRITE = "executions:write"
    INLINE_ARTIFACTS = "artifacts:inline"


DEFAULT_SCOPES = frozenset({Scope.READ, Scope.WRITE})


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def token_fingerprint(token: str) -> str:
    """A short, non-reversible name for a token, for logs and metrics."""
    return fingerprint_of_digest(token_digest(token))


def fingerprint_of_digest(digest: bytes) -> str:
    return "tok-" + digest.hex()[:8]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token speaks for."""

    name: str
    scopes: frozenset[Scope]
    token: str  # the token's fingerprint (tok-<8 hex>), for logs; never the token

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One configured token: its SHA-256 digest, its principal, its scopes."""

    principal: str
    digest: bytes = field(repr=False)
    scopes: frozenset[Scope] = DEFAULT_SCOPES

    @classmethod
    def bare(cls, token: str) -> TokenEntry:
        """A token configured without an identity: its principal is its fingerprint."""
        digest = token_digest(token)
        return cls(fingerprint_of_digest(digest), digest, DEFAULT_SCOPES)


class BearerAuth:
    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self._entries = tuple(entries)

    @property
    def configured(self) -> bool:
        return bool(self._entries)

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The principal of a valid `Authorization` header, else None."""
        token = parse_bearer(authorization)
        if token is None:
            return None
        presented = token_digest(token)
        found: TokenEntry | None = None
        for entry in self._entries:  # every comparison runs, whatever matches
            if hmac.compare_digest(presented, entry.digest):
                found = entry
        if found is None:
            return None
        return Principal(found.principal, found.scopes, fingerprint_of_digest(presented))


def parse_bearer(authorization: str | None) -> str | None:
    """The token of `Bearer <token>` (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def insufficient_scope_challenge(scope: Scope) -> str:
    """RFC 6750 §3.1: the challenge of a 403 for a token that lacks `scope`."""
    return f'{CHALLENGE}, error="insufficient_scope", scope="{scope.value}"'


# -- the principals file --------------------------------------------------------------------------


class PrincipalsFileError(ValueError):
    """The principals file cannot be used; the message names the entry and the problem."""


class _TokenSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    principal: Annotated[str, Field(pattern=PRINCIPAL_PATTERN)]
    token: Annotated[str | None, Field(min_length=16, max_length=512, pattern=r"^[!-~]+$")] = None
    token_sha256: Annotated[str | None, Field(pattern=r"^[0-9a-fA-F]{64}$")] = None
    scopes: Annotated[list[Scope] | None, Field(min_length=1)] = None

    @model_validator(mode="after")
    def _one_token(self) -> _TokenSpec:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give exactly one of token or token_sha256")
        return self

    def entry(self) -> TokenEntry:
        digest = token_digest(self.token) if self.token is not None else bytes.fromhex(self.token_sha256 or "")
        return TokenEntry(self.principal, digest, frozenset(self.scopes) if self.scopes else DEFAULT_SCOPES)


class _PrincipalsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: list[_TokenSpec] = Field(default_factory=list)


def load_principals_file(path: Path) -> tuple[TokenEntry, ...]:
    """The tokens of a TOML principals file:

        [[tokens]]
        principal = "advisor-app"
        token_sha256 = "<hex sha256 of the token>"   # or: token = "<the token>"
        scopes = ["executions:read", "executions:write"]   # optional; this is the default
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PrincipalsFileError(f"cannot read {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise PrincipalsFileError(f"{path} is not TOML: {error}") from None
    try:
        parsed = _PrincipalsFile.model_validate(document)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PrincipalsFileError(f"{path}: {where}: {first['msg']}") from None
    return tuple(spec.entry() for spec in parsed.tokens)


def merge_entries(*groups: Iterable[TokenEntry]) -> tuple[TokenEntry, ...]:
    """All entries once; the same token under two principals (or with other scopes) is an error."""
    by_digest: dict[bytes, TokenEntry] = {}
    for entry in (entry for group in groups for entry in group):
        held = by_digest.get(entry.digest)
        if held is None:
            by_digest[entry.digest] = entry
        elif held != entry:
            raise PrincipalsFileError(
                f"token {fingerprint_of_digest(entry.digest)} is configured twice, for {held.principal!r} "
                f"and {entry.principal!r} (or with other scopes)")
    return tuple(by_digest.values())

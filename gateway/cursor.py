"""Opaque list cursors: the sort key of the last item of a page, bound to the query's filters.

A cursor is base64url (no padding) of a small JSON array `[version, created_at_us, execution_id,
filters_digest]`. Clients must treat it as opaque. Keyset paging on the immutable key
(created_at, execution_id) is what makes paging return every matching execution exactly once
while new executions arrive: a page starts strictly after the last key returned, whatever was
inserted meanwhile. A cursor presented with other filters (proposal_id, status, from, to) is
refused, since its position would mean something else; `limit` may change between pages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

import orjson

_VERSION = 1
MAX_CURSOR_LENGTH = 512


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Cursor:
    created_us: int
    execution_id: str


def filters_digest(*filters: object) -> str:
    return hashlib.sha256(orjson.dumps([None if f is None else str(f) for f in filters])).hexdigest()[:16]


def encode_cursor(cursor: Cursor, digest: str) -> str:
    raw = orjson.dumps([_VERSION, cursor.created_us, cursor.execution_id, digest])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(text: str, digest: str) -> Cursor:
    if not text or len(text) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("cursor is empty or too long")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise InvalidCursor("cursor is not one this service issued") from None
    if (
        not isinstance(value, list)
        or len(value) != 4
        or value[0] != _VERSION
        or type(value[1]) is not int
        or not isinstance(value[2], str)
        or not isinstance(value[3], str)
    ):
        raise InvalidCursor("cursor is not one this service issued")
    if value[3] != digest:
        raise InvalidCursor("cursor belongs to a query with other filters")
    return Cursor(value[1], value[2])

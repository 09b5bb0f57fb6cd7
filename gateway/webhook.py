"""The OMS webhook's signature (HMAC-SHA256) and the translation of a verified report into an
`OrderEvent` record.

Signature header, one line:

    X-Signature: t=<unix seconds>,v1=<hex hmac>[,v1=<hex hmac>...]

where each `v1` is `hex(HMAC-SHA256(secret, "<t>." + raw body))`. A request is authentic when
`t` is within ±tolerance (300 s) of the gateway's clock and some `v1` matches some configured
secret. Several secrets may be active at once (rotation: add the new one, move the OMS over,
remove the old one); a sender in the middle of a rotation may send one `v1` per secret. Every
comparison is `hmac.compare_digest`, and all of them run (no early exit). Unknown keys in the
header (`v0=...`) are ignored, so the scheme can evolve.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from enum import StrEnum
from typing import Any

from execution_domain.events import NO_DETAILS, EventDetails, OrderEvent, OrderEventType
from gateway.models import OrderEventRequest
from wire import records as translate

SIGNATURE_HEADER = "X-Signature"
SIGNATURE_SCHEME = "v1"
MAX_HEADER_LENGTH = 2048
MAX_SIGNATURES = 8
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_UNIX = re.compile(r"[0-9]{1,12}")


class SignatureFailure(StrEnum):
    MISSING = "missing"
    MALFORMED = "malformed"
    STALE = "stale"
    MISMATCH = "mismatch"


class SignatureError(Exception):
    def __init__(self, failure: SignatureFailure, message: str) -> None:
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    timestamp: int
    signatures: tuple[str, ...]  # lower-case hex


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """hex(HMAC-SHA256(secret, "<timestamp>." + body))."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()


def signature_header(secrets: str | Iterable[str], body: bytes, timestamp: int | None = None) -> str:
    """The X-Signature value a sender puts on `body` (one v1 per secret)."""
    at = int(time.time()) if timestamp is None else timestamp
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    return ",".join([f"t={at}", *(f"{SIGNATURE_SCHEME}={sign(key, at, body)}" for key in keys)])


def parse_signature_header(header: str | None) -> ParsedSignature:
    if header is None or not header.strip():
        raise SignatureError(SignatureFailure.MISSING, f"{SIGNATURE_HEADER} header required")
    if len(header) > MAX_HEADER_LENGTH:
        raise SignatureError(SignatureFailure.MALFORMED, f"{SIGNATURE_HEADER} header too long")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, separator, value = part.strip().partition("=")
        key, value = key.strip(), value.strip()
        if not separator:
            raise SignatureError(SignatureFailure.MALFORMED, f"{SIGNATURE_HEADER} items must be key=value")
        if key == "t":
            if timestamp is not None or not _UNIX.fullmatch(value):
                raise SignatureError(SignatureFailure.MALFORMED, "t must appear once, as unix seconds")
            timestamp = int(value)
        elif key == SIGNATURE_SCHEME:
            if not _HEX64.fullmatch(value):
                raise SignatureError(SignatureFailure.MALFORMED, "v1 must be 64 hex digits")
            signatures.append(value.lower())
    if timestamp is None:
        raise SignatureError(SignatureFailure.MALFORMED, "t= is missing")
    if not signatures:
        raise SignatureError(SignatureFailure.MALFORMED, "no v1= signature")
    if len(signatures) > MAX_SIGNATURES:
        raise SignatureError(SignatureFailure.MALFORMED, f"at most {MAX_SIGNATURES} v1 signatures")
    return ParsedSignature(timestamp, tuple(signatures))


class SignatureVerifier:
    def __init__(self, secrets: Iterable[str], tolerance_s: int = 300) -> None:
        self._keys = tuple(secret.encode("utf-8") for secret in secrets)
        self._tolerance_s = tolerance_s

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def verify(self, header: str | None, body: bytes, now: float | None = None) -> int:
        """The signed timestamp, or SignatureError saying why the request is not authentic."""
        parsed = self.check_header(header, now)
        self.verify_body(parsed, body)
        return parsed.timestamp

    def check_header(self, header: str | None, now: float | None = None) -> ParsedSignature:
        """What can be decided before the body is read: the header is present, well formed and
        fresh, and some secret is configured to check it with."""
        parsed = parse_signature_header(header)
        current = time.time() if now is None else now
        if abs(current - parsed.timestamp) > self._tolerance_s:
            raise SignatureError(SignatureFailure.STALE,
                                 f"signature timestamp is more than {self._tolerance_s}s from the server's clock")
        if not self._keys:
            raise SignatureError(SignatureFailure.MISMATCH, "no signature matches the body")
        return parsed

    def verify_body(self, parsed: ParsedSignature, body: bytes) -> None:
        """SignatureError unless some v1 of `parsed` is the HMAC of its timestamp and `body`."""
        message = f"{parsed.timestamp}.".encode("ascii") + body
        matched = False
        for key in self._keys:
            expected = hmac.new(key, message, hashlib.sha256).hexdigest().encode("ascii")
            for presented in parsed.signatures:
                matched |= hmac.compare_digest(expected, presented.encode("ascii"))
        if not matched:
            raise SignatureError(SignatureFailure.MISMATCH, "no signature matches the body")


def derived_event_id(raw_body: bytes) -> str:
    """The event id of a report that carries none: the same body always gets the same id, so a
    redelivered webhook is deduplicated by the processor."""
    return "wh-" + hashlib.sha256(raw_body).hexdigest()


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def order_event(request: OrderEventRequest, execution_id: str, raw_body: bytes) -> OrderEvent:
    """The domain OrderEvent of a validated webhook body."""
    details = request.details
    event_details = EventDetails(
        fill_id=details.fill_id,
        last_qty=_dec(details.last_qty),
        last_price=_dec(details.last_price),
        filled_qty=_dec(details.filled_qty),
        avg_price=_dec(details.avg_price),
        reason=details.reason,
    )
    return OrderEvent(
        event_id=request.event_id or derived_event_id(raw_body),
        execution_id=execution_id,
        ticket_id=request.ticket_id,
        source=request.source,
        event_type=OrderEventType(request.event_type),
        external_order_id=request.external_order_id,
        occurred_at=request.occurred_at.astimezone(UTC),
        details=NO_DETAILS if event_details == NO_DETAILS else event_details,
    )


def order_event_record(event: OrderEvent) -> dict[str, Any]:
    """The OrderEvent wire record, exactly as OMS adapters publish it."""
    return translate.order_event_to_record(event)

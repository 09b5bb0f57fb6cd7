"""Webhook signature verification: X-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from gateway.webhook import (
    SignatureError,
    SignatureFailure,
    SignatureVerifier,
    derived_event_id,
    parse_signature_header,
    sign,
    signature_header,
)

NOW = 1_771_408_800  # 2026-02-18T10:00:00Z
BODY = b'{"source":"OMS_X","event_type":"ORDER_ACCEPTED","ticket_id":"tkt_1","occurred_at":"2026-02-18T10:00:00Z"}'
SECRET = "whsec-current"
OLD_SECRET = "whsec-previous"


def verifier(*secrets: str) -> SignatureVerifier:
    return SignatureVerifier(secrets or (SECRET,), tolerance_s=300)


def failure_of(header: str | None, body: bytes = BODY, *secrets: str, now: float = NOW) -> SignatureFailure:
    with pytest.raises(SignatureError) as raised:
        verifier(*secrets).verify(header, body, now=now)
    return raised.value.failure


def test_signature_is_hmac_sha256_over_timestamp_dot_raw_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == expected
    assert signature_header(SECRET, BODY, NOW) == f"t={NOW},v1={expected}"


def test_valid_signature_is_accepted_and_returns_the_signed_time() -> None:
    assert verifier().verify(signature_header(SECRET, BODY, NOW), BODY, now=NOW) == NOW


def test_signature_with_a_wrong_secret_is_a_mismatch() -> None:
    assert failure_of(signature_header("not-the-secret", BODY, NOW)) is SignatureFailure.MISMATCH


def test_rotation_accepts_a_signature_made_with_any_active_secret() -> None:
    both = verifier(SECRET, OLD_SECRET)
    assert both.verify(signature_header(OLD_SECRET, BODY, NOW), BODY, now=NOW) == NOW
    assert both.verify(signature_header(SECRET, BODY, NOW), BODY, now=NOW) == NOW


def test_sender_mid_rotation_may_send_one_v1_per_secret_and_one_matching_is_enough() -> None:
    header = signature_header(["retired-secret", SECRET], BODY, NOW)
    assert header.count("v1=") == 2
    assert verifier().verify(header, BODY, now=NOW) == NOW


def test_retired_secret_is_refused_once_removed() -> None:
    assert failure_of(signature_header(OLD_SECRET, BODY, NOW), BODY, SECRET) is SignatureFailure.MISMATCH


@pytest.mark.parametrize("skew", [301, 3600, 10**6])
def test_stale_signature_is_refused(skew: int) -> None:
    assert failure_of(signature_header(SECRET, BODY, NOW - skew)) is SignatureFailure.STALE


@pytest.mark.parametrize("skew", [301, 86400])
def test_signature_from_the_future_is_refused(skew: int) -> None:
    assert failure_of(signature_header(SECRET, BODY, NOW + skew)) is SignatureFailure.STALE


@pytest.mark.parametrize("skew", [-300, -1, 0, 1, 300])
def test_signature_within_the_window_is_accepted(skew: int) -> None:
    assert verifier().verify(signature_header(SECRET, BODY, NOW + skew), BODY, now=NOW) == NOW + skew


def test_stale_signature_is_refused_even_when_the_hmac_is_right() -> None:
    header = signature_header(SECRET, BODY, NOW - 1000)
    assert failure_of(header) is SignatureFailure.STALE


def test_body_swapped_under_a_valid_signature_is_a_mismatch() -> None:
    header = signature_header(SECRET, BODY, NOW)
    assert failure_of(header, BODY.replace(b"ORDER_ACCEPTED", b"FILLED")) is SignatureFailure.MISMATCH
    assert failure_of(header, BODY + b" ") is SignatureFailure.MISMATCH  # raw bytes, not re-serialized JSON


def test_timestamp_swapped_under_a_valid_signature_is_a_mismatch() -> None:
    digest = sign(SECRET, NOW, BODY)
    assert failure_of(f"t={NOW + 1},v1={digest}") is SignatureFailure.MISMATCH


def test_missing_header_is_reported_as_missing() -> None:
    assert failure_of(None) is SignatureFailure.MISSING
    assert failure_of("   ") is SignatureFailure.MISSING


GOOD = sign(SECRET, NOW, BODY)


@pytest.mark.parametrize("header", [
    GOOD,  # no t=
    f"t={NOW}",  # no v1=
    f"v1={GOOD}",  # no t=
    f"t=soon,v1={GOOD}",  # t not a number
    f"t=-{NOW},v1={GOOD}",
    f"t={NOW},t={NOW},v1={GOOD}",  # t twice
    f"t={NOW},v1={GOOD[:-2]}",  # short digest
    f"t={NOW},v1={GOOD}zz",  # not hex
    f"t={NOW};v1={GOOD}",  # wrong separator
    f"t={NOW},v1=" + "0" * 64 * 2,
    f"t={NOW}," + ",".join(["v1=" + GOOD] * 9),  # too many signatures
    "t=" + "9" * 3000 + f",v1={GOOD}",  # oversized header
])
def test_malformed_header_is_refused(header: str) -> None:
    assert failure_of(header) is SignatureFailure.MALFORMED


def test_header_parsing_tolerates_spaces_upper_case_hex_and_unknown_schemes() -> None:
    parsed = parse_signature_header(f" t={NOW} , v0=legacy , v1={GOOD.upper()} ")
    assert parsed.timestamp == NOW and parsed.signatures == (GOOD,)
    assert verifier().verify(f"t={NOW}, v0=legacy, v1={GOOD.upper()}", BODY, now=NOW) == NOW


def test_no_configured_secret_accepts_nothing() -> None:
    empty = SignatureVerifier((), tolerance_s=300)
    assert not empty.configured
    with pytest.raises(SignatureError):
        empty.verify(signature_header(SECRET, BODY, NOW), BODY, now=NOW)


def test_comparison_uses_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("gateway.webhook.hmac.compare_digest", spy)
    header = signature_header(["other", SECRET], BODY, NOW)
    verifier(SECRET, OLD_SECRET).verify(header, BODY, now=NOW)
    assert len(calls) == 4  # every secret against every v1: no early exit on the first match


def test_derived_event_id_is_a_deterministic_function_of_the_raw_body() -> None:
    assert derived_event_id(BODY) == derived_event_id(bytes(BODY)) == "wh-" + hashlib.sha256(BODY).hexdigest()
    assert derived_event_id(BODY) != derived_event_id(BODY + b" ")

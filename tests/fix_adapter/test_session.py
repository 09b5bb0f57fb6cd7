"""The FIX session layer without I/O: logon, sequence gaps, resends, duplicates, heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime

from fix_adapter.codec import FixEncoder, FixMessage, MsgType, Tag, decode_one
from fix_adapter.session import FixSession, SessionConfig, SessionStatus

WALL = datetime(2026, 2, 18, 10, 0, tzinfo=UTC)
THEM = FixEncoder("FIX.4.4", "EXEC", "ADAPTER")


def incoming(msg_type: str, seq: int, body: list[tuple[int, str]] | None = None, *, poss_dup: bool = False) -> FixMessage:
    return decode_one(THEM.encode(msg_type, seq, body or [], sending_time=WALL, poss_dup=poss_dup))


def report(seq: int, exec_id: str, *, poss_dup: bool = False) -> FixMessage:
    return incoming(MsgType.EXECUTION_REPORT, seq, [(Tag.EXEC_ID, exec_id)], poss_dup=poss_dup)


def sent(session: FixSession) -> list[FixMessage]:
    return [decode_one(raw) for _, _, raw in session.take_outbox()]


def active(next_out: int = 1, next_in: int = 1) -> FixSession:
    session = FixSession(SessionConfig("ADAPTER", "EXEC", heartbeat_s=30), next_out_seq=next_out, next_in_seq=next_in)
    session.connected(0.0, WALL)
    session.receive(incoming(MsgType.LOGON, next_in, [(Tag.HEART_BT_INT, "30")]), 0.0, WALL)
    session.take_outbox()
    return session


def test_session_logon_then_messages_in_order_are_released() -> None:
    session = FixSession(SessionConfig("ADAPTER", "EXEC"), next_out_seq=5)
    session.connected(0.0, WALL)
    logon = sent(session)[0]
    assert (logon.msg_type, logon.seq_num, logon.get(Tag.HEART_BT_INT)) == ("A", 5, "30")
    session.receive(incoming(MsgType.LOGON, 1), 0.0, WALL)
    assert session.status is SessionStatus.ACTIVE and session.became_active
    assert [m.get(Tag.EXEC_ID) for m in session.receive(report(2, "X1"), 0.1, WALL)] == ["X1"]
    assert session.next_in_seq == 3


def test_session_gap_sends_resend_request_and_releases_in_order_once_filled() -> None:
    session = active()
    assert session.receive(report(4, "X4"), 0.1, WALL) == []  # 2 and 3 are missing
    request = sent(session)[0]
    assert (request.msg_type, request.get(Tag.BEGIN_SEQ_NO), request.get(Tag.END_SEQ_NO)) == ("2", "2", "0")
    assert [m.get(Tag.EXEC_ID) for m in session.receive(report(2, "X2", poss_dup=True), 0.2, WALL)] == ["X2"]
    gap_fill = incoming(MsgType.SEQUENCE_RESET, 3, [(Tag.GAP_FILL_FLAG, "Y"), (Tag.NEW_SEQ_NO, "4")], poss_dup=True)
    assert [m.get(Tag.EXEC_ID) for m in session.receive(gap_fill, 0.3, WALL)] == ["X4"]
    assert session.next_in_seq == 5 and sent(session) == []


def test_session_possdup_below_the_expected_number_is_dropped_and_without_possdup_is_fatal() -> None:
    session = active()
    session.receive(report(2, "X2"), 0.1, WALL)
    assert session.receive(report(2, "X2", poss_dup=True), 0.2, WALL) == []
    assert not session.close_requested
    session.receive(report(2, "X2"), 0.3, WALL)
    logout = sent(session)[-1]
    assert logout.msg_type == MsgType.LOGOUT and "MsgSeqNum too low" in (logout.get(Tag.TEXT) or "")
    assert session.close_requested


def test_session_resend_request_is_answered_with_a_gap_fill_up_to_this_connections_logon() -> None:
    session = active(next_out=40)  # restarted above the numbers of an earlier connection
    answer = session.receive(incoming(MsgType.RESEND_REQUEST, 2, [(Tag.BEGIN_SEQ_NO, "12"), (Tag.END_SEQ_NO, "0")]),
                             0.1, WALL)
    assert answer == []
    fill = sent(session)[0]
    assert (fill.msg_type, fill.seq_num, fill.poss_dup) == ("4", 12, True)
    assert (fill.get(Tag.GAP_FILL_FLAG), fill.get(Tag.NEW_SEQ_NO)) == ("Y", "40")


def test_session_test_request_is_answered_and_silence_sends_one() -> None:
    session = active()
    session.receive(incoming(MsgType.TEST_REQUEST, 2, [(Tag.TEST_REQ_ID, "T7")]), 1.0, WALL)
    heartbeat = sent(session)[0]
    assert (heartbeat.msg_type, heartbeat.get(Tag.TEST_REQ_ID)) == ("0", "T7")
    session.tick(31.0, WALL)  # nothing sent for 30 s: a heartbeat
    assert [m.msg_type for m in sent(session)] == ["0"]
    session.tick(38.0, WALL)  # nothing received for 1.2 intervals: a test request
    assert [m.msg_type for m in sent(session)] == ["1"]
    session.tick(69.0, WALL)  # unanswered for an interval: give up
    assert session.close_requested


def test_session_reject_is_passed_up_and_counterparty_logout_closes() -> None:
    session = active()
    reject = incoming(MsgType.REJECT, 2, [(Tag.REF_SEQ_NUM, "9"), (Tag.TEXT, "bad tag")])
    assert session.receive(reject, 0.1, WALL) == [reject]
    session.receive(incoming(MsgType.LOGOUT, 3, [(Tag.TEXT, "bye")]), 0.2, WALL)
    assert [m.msg_type for m in sent(session)] == ["5"] and session.close_requested
    assert session.logout_reason == "bye"


def test_session_wrong_comp_ids_log_out() -> None:
    session = active()
    stranger = decode_one(FixEncoder("FIX.4.4", "OTHER", "ADAPTER").encode("0", 2, [], sending_time=WALL))
    session.receive(stranger, 0.1, WALL)
    assert session.close_requested and "CompIDs" in (session.logout_reason or "")

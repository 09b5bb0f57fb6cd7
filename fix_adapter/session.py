"""The FIX session layer (FIX 4.4, initiator side) as a state machine without I/O.

The transport feeds it what it reads (`receive`) and the time (`tick`); it answers with bytes to
write (`take_outbox`) and the application messages to act on, in sequence order. It does logon
and logout, heartbeats and test requests, sequence numbers (a gap is queued and a ResendRequest
sent; a resent message with PossDupFlag is taken once; SequenceReset in both modes), answers a
ResendRequest with SequenceReset-GapFill, and drops garbled messages.

Why a gap fill and never a resend of our own messages: an order is sent once. An order the
counterparty may not have received is settled by an OrderStatusRequest (`fix_adapter.service`),
never by sending it again (docs/fix.md, "Exactly once").

Sequence numbers are persisted by the service, not here: `next_out_seq` and `next_in_seq` are
read and committed with the adapter's state; a restarted session starts at the numbers the
service restored. Session-level Reject (35=3) is passed up as well: it may refuse an order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from fix_adapter.codec import ADMIN_TYPES, FixEncoder, FixMessage, FrameError, MsgType, Tag

log = logging.getLogger(__name__)


class SessionStatus(StrEnum):
    DISCONNECTED = "DISCONNECTED"
    LOGON_SENT = "LOGON_SENT"
    ACTIVE = "ACTIVE"
    LOGOUT_SENT = "LOGOUT_SENT"


STATUS_GAUGE = {SessionStatus.DISCONNECTED: 0, SessionStatus.LOGON_SENT: 1, SessionStatus.ACTIVE: 2,
                SessionStatus.LOGOUT_SENT: 3}


@dataclass(frozen=True, slots=True)
class SessionConfig:
    sender_comp_id: str
    target_comp_id: str
    begin_string: str = "FIX.4.4"
    heartbeat_s: int = 30
    logon_timeout_s: float = 10.0
    logout_timeout_s: float = 2.0
    reset_on_logon: bool = False  # send ResetSeqNumFlag=Y: both sides start again at 1


@dataclass
class SessionObserver:
    """Counts what the session does (the service turns these into metrics)."""

    on_message: Callable[[str, str], None] = lambda direction, msg_type: None  # ("in"|"out", MsgType)
    on_resend_request: Callable[[str], None] = lambda direction: None
    on_garbled: Callable[[], None] = lambda: None


@dataclass
class _Resend:
    """A gap we asked the counterparty to fill: messages above it wait in `queued`."""

    begin: int
    queued: dict[int, FixMessage] = field(default_factory=dict)
    processed: set[int] = field(default_factory=set)  # queued but already acted on (Logon, ResendRequest)


class FixSession:
    def __init__(self, config: SessionConfig, *, next_out_seq: int = 1, next_in_seq: int = 1,
                 observer: SessionObserver | None = None) -> None:
        self.config = config
        self.next_out_seq = next_out_seq
        self.next_in_seq = next_in_seq
        self.status = SessionStatus.DISCONNECTED
        self.observer = observer or SessionObserver()
        self.close_requested = False  # the transport should close once the outbox is written
        self.logout_reason: str | None = None
        self.became_active = False  # set on each logon; the service reconciles, then clears it
        self._encoder = FixEncoder(config.begin_string, config.sender_comp_id, config.target_comp_id)
        self._outbox: list[tuple[int, str, bytes]] = []  # (seq, MsgType, bytes); seq 0 = a resend
        self._resend: _Resend | None = None
        self._last_sent = 0.0
        self._last_received = 0.0
        self._test_request_sent_at: float | None = None
        self._state_since = 0.0
        self._test_requests = 0
        self._connection_first_seq = next_out_seq  # our Logon's number on the current connection

    # -- transport events --------------------------------------------------------------------------

    def connected(self, now: float, wall: datetime) -> None:
        self.status = SessionStatus.LOGON_SENT
        self._state_since = now
        self._last_received = now
        self.close_requested = False
        self.logout_reason = None
        self._resend = None
        self._test_request_sent_at = None
        body = [(Tag.ENCRYPT_METHOD, "0"), (Tag.HEART_BT_INT, str(self.config.heartbeat_s))]
        if self.config.reset_on_logon:
            self.next_out_seq, self.next_in_seq = 1, 1
            body.append((Tag.RESET_SEQ_NUM_FLAG, "Y"))
        self._connection_first_seq = self._send(MsgType.LOGON, body, now, wall)

    def disconnected(self) -> None:
        self.status = SessionStatus.DISCONNECTED
        self._outbox.clear()
        self._resend = None
        self.close_requested = False

    def logout(self, now: float, wall: datetime, text: str = "") -> None:
        if self.status is SessionStatus.ACTIVE:
            self._send(MsgType.LOGOUT, [(Tag.TEXT, text)] if text else [], now, wall)
            self.status = SessionStatus.LOGOUT_SENT
            self._state_since = now
        else:
            self.close_requested = True

    # -- sending -----------------------------------------------------------------------------------

    def send_app(self, msg_type: str, body: Iterable[tuple[int, str]], now: float, wall: datetime) -> int:
        """Queue an application message; returns its MsgSeqNum."""
        if self.status is not SessionStatus.ACTIVE:
            raise RuntimeError(f"session {self.config.target_comp_id} is {self.status}, not ACTIVE")
        return self._send(msg_type, list(body), now, wall)

    def take_outbox(self) -> list[tuple[int, str, bytes]]:
        out, self._outbox = self._outbox, []
        return out

    @property
    def highest_queued_seq(self) -> int:
        return max((seq for seq, _, _ in self._outbox), default=0)

    def _send(self, msg_type: str, body: list[tuple[int, str]], now: float, wall: datetime) -> int:
        seq = self.next_out_seq
        self.next_out_seq += 1
        self._outbox.append((seq, msg_type, self._encoder.encode(msg_type, seq, body, sending_time=wall)))
        self._last_sent = now
        self.observer.on_message("out", msg_type)
        return seq

    def _gap_fill(self, begin: int, now: float, wall: datetime) -> None:
        """Answer a ResendRequest: one SequenceReset-GapFill from `begin`.

        A gap before this connection's Logon (what an earlier connection sent, or numbers skipped
        after a crash) is filled up to that Logon: everything since went over this connection and
        the counterparty holds it queued, so a fill beyond it would make it drop our orders. A gap
        inside this connection is filled to our next number.
        """
        end = self._connection_first_seq if begin < self._connection_first_seq else self.next_out_seq
        body = [(Tag.GAP_FILL_FLAG, "Y"), (Tag.NEW_SEQ_NO, str(end))]
        raw = self._encoder.encode(MsgType.SEQUENCE_RESET, begin, body, sending_time=wall, poss_dup=True,
                                   orig_sending_time=wall)
        self._outbox.append((0, MsgType.SEQUENCE_RESET, raw))
        self._last_sent = now
        self.observer.on_message("out", MsgType.SEQUENCE_RESET)

    # -- receiving ---------------------------------------------------------------------------------

    def receive(self, item: FixMessage | FrameError, now: float, wall: datetime) -> list[FixMessage]:
        """Handle one received message; returns the application messages it releases, in order."""
        if isinstance(item, FrameError):
            self.observer.on_garbled()
            log.warning("garbled FIX message ignored: %s", item)
            return []
        self._last_received = now
        self._test_request_sent_at = None
        message = item
        self.observer.on_message("in", message.msg_type)
        try:
            return self._receive(message, now, wall)
        except FrameError as error:
            log.warning("malformed FIX message ignored: %s (%s)", error, message.to_text()[:300])
            self.observer.on_garbled()
            return []

    def _receive(self, message: FixMessage, now: float, wall: datetime) -> list[FixMessage]:
        if (message.get(Tag.SENDER_COMP_ID) != self.config.target_comp_id
                or message.get(Tag.TARGET_COMP_ID) != self.config.sender_comp_id
                or message.get(Tag.BEGIN_STRING) != self.config.begin_string):
            self._fatal(f"wrong BeginString or CompIDs: {message.get(Tag.BEGIN_STRING)} "
                        f"{message.get(Tag.SENDER_COMP_ID)}->{message.get(Tag.TARGET_COMP_ID)}", now, wall)
            return []
        msg_type, seq = message.msg_type, message.seq_num
        if self.status is SessionStatus.LOGON_SENT and msg_type != MsgType.LOGON:
            self._fatal(f"expected Logon, got MsgType {msg_type}", now, wall)
            return []
        if msg_type == MsgType.LOGON:
            return self._on_logon(message, seq, now, wall)
        if msg_type == MsgType.SEQUENCE_RESET and message.get(Tag.GAP_FILL_FLAG) != "Y":
            return self._on_sequence_reset(message, now, wall)
        if seq < self.next_in_seq:
            if message.poss_dup:
                return []  # a resend of what we already have
            self._fatal(f"MsgSeqNum too low, expecting {self.next_in_seq} but received {seq}", now, wall)
            return []
        if seq > self.next_in_seq:
            return self._on_gap(message, seq, now, wall)
        released = self._process_in_order(message, now, wall)
        released += self._drain_queue(now, wall)
        return released

    def _on_logon(self, message: FixMessage, seq: int, now: float, wall: datetime) -> list[FixMessage]:
        if self.status is not SessionStatus.LOGON_SENT:
            self._fatal("unexpected Logon on an active session", now, wall)
            return []
        if message.get(Tag.RESET_SEQ_NUM_FLAG) == "Y" and not self.config.reset_on_logon:
            # The counterparty starts both sides again at 1 (typically its new session day).
            self.next_in_seq = 1
            log.warning("counterparty reset sequence numbers on logon")
        if seq < self.next_in_seq:
            self._fatal(f"MsgSeqNum too low on Logon, expecting {self.next_in_seq} but received {seq}", now, wall)
            return []
        self.status = SessionStatus.ACTIVE
        self.became_active = True
        self._state_since = now
        log.info("FIX session %s->%s logged on", self.config.sender_comp_id, self.config.target_comp_id)
        if seq > self.next_in_seq:
            self._request_resend(now, wall)
            assert self._resend is not None
            self._resend.processed.add(seq)
            self._resend.queued[seq] = message
            return []
        self.next_in_seq = seq + 1
        return []

    def _on_sequence_reset(self, message: FixMessage, now: float, wall: datetime) -> list[FixMessage]:
        new_seq = message.integer(Tag.NEW_SEQ_NO)
        if new_seq is None or new_seq < self.next_in_seq:
            log.warning("SequenceReset to %s refused (expecting %s)", new_seq, self.next_in_seq)
            return []
        self.next_in_seq = new_seq
        self._resend = None if self._resend is None or new_seq > max(self._resend.queued, default=0) else self._resend
        return self._drain_queue(now, wall)

    def _on_gap(self, message: FixMessage, seq: int, now: float, wall: datetime) -> list[FixMessage]:
        if self._resend is None:
            self._request_resend(now, wall)
        assert self._resend is not None
        if message.msg_type in (MsgType.LOGOUT, MsgType.RESEND_REQUEST, MsgType.TEST_REQUEST):
            # Acted on at once, as QuickFIX does: a counterparty may gap-fill over these very messages.
            self._process_admin(message, now, wall)
            self._resend.processed.add(seq)
        self._resend.queued.setdefault(seq, message)
        return []

    def _request_resend(self, now: float, wall: datetime) -> None:
        self._resend = _Resend(self.next_in_seq)
        self._send(MsgType.RESEND_REQUEST, [(Tag.BEGIN_SEQ_NO, str(self.next_in_seq)), (Tag.END_SEQ_NO, "0")], now, wall)
        self.observer.on_resend_request("out")
        log.info("sequence gap: asked for a resend from %d", self.next_in_seq)

    def _drain_queue(self, now: float, wall: datetime) -> list[FixMessage]:
        released: list[FixMessage] = []
        resend = self._resend
        while resend is not None and resend.queued:
            lowest = min(resend.queued)
            if lowest < self.next_in_seq:
                del resend.queued[lowest]
                continue
            if lowest != self.next_in_seq:
                break
            message = resend.queued.pop(lowest)
            if lowest in resend.processed:
                self.next_in_seq = lowest + 1
                continue
            released += self._process_in_order(message, now, wall)
        if resend is not None and not resend.queued and self._resend is resend:
            self._resend = None
        return released

    def _process_in_order(self, message: FixMessage, now: float, wall: datetime) -> list[FixMessage]:
        """A message whose MsgSeqNum is the one expected."""
        if message.msg_type == MsgType.SEQUENCE_RESET:  # GapFill
            new_seq = message.integer(Tag.NEW_SEQ_NO)
            if new_seq is None or new_seq <= self.next_in_seq:
                self.next_in_seq += 1
                return []
            self.next_in_seq = new_seq
            return []
        self.next_in_seq = message.seq_num + 1
        if message.msg_type in ADMIN_TYPES:
            self._process_admin(message, now, wall)
            return [message] if message.msg_type == MsgType.REJECT else []
        return [message]

    def _process_admin(self, message: FixMessage, now: float, wall: datetime) -> None:
        msg_type = message.msg_type
        if msg_type == MsgType.TEST_REQUEST:
            self._send(MsgType.HEARTBEAT, [(Tag.TEST_REQ_ID, message.get(Tag.TEST_REQ_ID) or "")], now, wall)
        elif msg_type == MsgType.RESEND_REQUEST:
            self.observer.on_resend_request("in")
            begin = message.integer(Tag.BEGIN_SEQ_NO) or 1
            self._gap_fill(begin, now, wall)
        elif msg_type == MsgType.LOGOUT:
            text = message.get(Tag.TEXT)
            self.logout_reason = text or "logout"
            if self.status is not SessionStatus.LOGOUT_SENT:
                self._send(MsgType.LOGOUT, [], now, wall)
            log.info("FIX session %s logged out by the counterparty: %s", self.config.target_comp_id, text)
            self.close_requested = True
        elif msg_type == MsgType.REJECT:
            log.warning("session-level Reject of our message %s: %s", message.get(Tag.REF_SEQ_NUM), message.get(Tag.TEXT))

    def _fatal(self, reason: str, now: float, wall: datetime) -> None:
        log.error("FIX session %s: %s; logging out", self.config.target_comp_id, reason)
        self.logout_reason = reason
        if self.status in (SessionStatus.ACTIVE, SessionStatus.LOGON_SENT):
            self._send(MsgType.LOGOUT, [(Tag.TEXT, reason)], now, wall)
        self.close_requested = True

    # -- timers ------------------------------------------------------------------------------------

    def tick(self, now: float, wall: datetime) -> None:
        interval = self.config.heartbeat_s
        if self.status is SessionStatus.LOGON_SENT and now - self._state_since > self.config.logon_timeout_s:
            self.logout_reason = "no Logon answer"
            self.close_requested = True
        elif self.status is SessionStatus.LOGOUT_SENT and now - self._state_since > self.config.logout_timeout_s:
            self.close_requested = True
        elif self.status is SessionStatus.ACTIVE:
            if now - self._last_sent >= interval:
                self._send(MsgType.HEARTBEAT, [], now, wall)
            if self._test_request_sent_at is not None:
                if now - self._test_request_sent_at >= interval:
                    self._fatal("no answer to TestRequest", now, wall)
            elif now - self._last_received >= interval * 1.2:
                self._test_requests += 1
                self._send(MsgType.TEST_REQUEST, [(Tag.TEST_REQ_ID, f"TEST{self._test_requests}")], now, wall)
                self._test_request_sent_at = now

"""FIX tag=value framing on `simplefix`: encode with header, body length and checksum; split a byte
stream into messages and check each one's BodyLength (9) and CheckSum (10), which simplefix does not.

simplefix is the codec; what it leaves out (validation of the frame, typed access to fields) is
here. Values are `str` (FIX is ASCII); a repeated tag keeps its first value in `get`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import simplefix
from simplefix import errors as simplefix_errors

SOH = b"\x01"


class Tag:
    """The FIX 4.4 tags this adapter reads or writes."""

    AVG_PX = 6
    BEGIN_SEQ_NO = 7
    BEGIN_STRING = 8
    BODY_LENGTH = 9
    CHECKSUM = 10
    CL_ORD_ID = 11
    CUM_QTY = 14
    CURRENCY = 15
    END_SEQ_NO = 16
    EXEC_ID = 17
    SECURITY_ID_SOURCE = 22
    LAST_PX = 31
    LAST_QTY = 32
    MSG_SEQ_NUM = 34
    MSG_TYPE = 35
    NEW_SEQ_NO = 36
    ORDER_ID = 37
    ORDER_QTY = 38
    ORD_STATUS = 39
    ORD_TYPE = 40
    ORIG_CL_ORD_ID = 41
    POSS_DUP_FLAG = 43
    REF_SEQ_NUM = 45
    SECURITY_ID = 48
    SENDER_COMP_ID = 49
    SENDING_TIME = 52
    SIDE = 54
    SYMBOL = 55
    TARGET_COMP_ID = 56
    TEXT = 58
    TIME_IN_FORCE = 59
    TRANSACT_TIME = 60
    POSS_RESEND = 97
    ENCRYPT_METHOD = 98
    CXL_REJ_REASON = 102
    ORD_REJ_REASON = 103
    HEART_BT_INT = 108
    TEST_REQ_ID = 112
    ORIG_SENDING_TIME = 122
    GAP_FILL_FLAG = 123
    RESET_SEQ_NUM_FLAG = 141
    EXEC_TYPE = 150
    LEAVES_QTY = 151
    CXL_REJ_RESPONSE_TO = 434
    PRODUCT = 460
    REF_TAG_ID = 371
    REF_MSG_TYPE = 372
    SESSION_REJECT_REASON = 373
    BUSINESS_REJECT_REF_ID = 379
    BUSINESS_REJECT_REASON = 380
    ORD_STATUS_REQ_ID = 790


class MsgType:
    HEARTBEAT = "0"
    TEST_REQUEST = "1"
    RESEND_REQUEST = "2"
    REJECT = "3"
    SEQUENCE_RESET = "4"
    LOGOUT = "5"
    EXECUTION_REPORT = "8"
    ORDER_CANCEL_REJECT = "9"
    LOGON = "A"
    NEW_ORDER_SINGLE = "D"
    ORDER_CANCEL_REQUEST = "F"
    ORDER_STATUS_REQUEST = "H"
    BUSINESS_MESSAGE_REJECT = "j"


ADMIN_TYPES = frozenset({MsgType.HEARTBEAT, MsgType.TEST_REQUEST, MsgType.RESEND_REQUEST, MsgType.REJECT,
                         MsgType.SEQUENCE_RESET, MsgType.LOGOUT, MsgType.LOGON})

MSG_TYPE_NAMES = {
    "0": "Heartbeat", "1": "TestRequest", "2": "ResendRequest", "3": "Reject", "4": "SequenceReset",
    "5": "Logout", "8": "ExecutionReport", "9": "OrderCancelReject", "A": "Logon", "D": "NewOrderSingle",
    "F": "OrderCancelRequest", "H": "OrderStatusRequest", "j": "BusinessMessageReject",
}

Fields = Sequence[tuple[int, str]]


class FrameError(ValueError):
    """Bytes that are not a well-formed FIX message (garbled): the session ignores them."""


def utc_timestamp(at: datetime) -> str:
    """FIX UTCTimestamp with milliseconds: YYYYMMDD-HH:MM:SS.sss."""
    at = at.astimezone(UTC)
    return at.strftime("%Y%m%d-%H:%M:%S.") + f"{at.microsecond // 1000:03d}"


def parse_utc_timestamp(text: str) -> datetime:
    for pattern in ("%Y%m%d-%H:%M:%S.%f", "%Y%m%d-%H:%M:%S"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"not a FIX UTCTimestamp: {text!r}")


@dataclass(frozen=True, slots=True)
class FixMessage:
    """One received (or built) message: its fields in wire order, header included."""

    fields: tuple[tuple[int, str], ...]
    raw: bytes = b""
    _index: dict[int, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for tag, value in self.fields:
            self._index.setdefault(tag, value)

    def get(self, tag: int) -> str | None:
        return self._index.get(tag)

    def require(self, tag: int) -> str:
        value = self._index.get(tag)
        if value is None:
            raise FrameError(f"{MSG_TYPE_NAMES.get(self.msg_type, self.msg_type)} lacks tag {tag}")
        return value

    def decimal(self, tag: int) -> Decimal | None:
        value = self._index.get(tag)
        if value is None:
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise FrameError(f"tag {tag} is not a number: {value!r}") from None
        if not number.is_finite():
            raise FrameError(f"tag {tag} is not a finite number: {value!r}")
        return number

    def integer(self, tag: int) -> int | None:
        value = self._index.get(tag)
        if value is None:
            return None
        if not value.isdigit():
            raise FrameError(f"tag {tag} is not a whole number: {value!r}")
        return int(value)

    @property
    def msg_type(self) -> str:
        return self._index.get(Tag.MSG_TYPE, "")

    @property
    def seq_num(self) -> int:
        value = self.integer(Tag.MSG_SEQ_NUM)
        if value is None:
            raise FrameError("message lacks MsgSeqNum (34)")
        return value

    @property
    def poss_dup(self) -> bool:
        return self._index.get(Tag.POSS_DUP_FLAG) == "Y"

    def to_text(self) -> str:
        return "|".join(f"{tag}={value}" for tag, value in self.fields)


class FixEncoder:
    """Builds complete messages of one session (BeginString, CompIDs)."""

    def __init__(self, begin_string: str, sender_comp_id: str, target_comp_id: str) -> None:
        self.begin_string = begin_string
        self.sender_comp_id = sender_comp_id
        self.target_comp_id = target_comp_id

    def encode(self, msg_type: str, seq_num: int, body: Iterable[tuple[int, str]], *, sending_time: datetime,
               poss_dup: bool = False, orig_sending_time: datetime | None = None) -> bytes:
        message = simplefix.FixMessage()
        message.append_pair(Tag.BEGIN_STRING, self.begin_string, header=True)
        message.append_pair(Tag.MSG_TYPE, msg_type, header=True)
        message.append_pair(Tag.SENDER_COMP_ID, self.sender_comp_id, header=True)
        message.append_pair(Tag.TARGET_COMP_ID, self.target_comp_id, header=True)
        message.append_pair(Tag.MSG_SEQ_NUM, seq_num, header=True)
        if poss_dup:
            message.append_pair(Tag.POSS_DUP_FLAG, "Y", header=True)
        message.append_pair(Tag.SENDING_TIME, utc_timestamp(sending_time), header=True)
        if orig_sending_time is not None:
            message.append_pair(Tag.ORIG_SENDING_TIME, utc_timestamp(orig_sending_time), header=True)
        for tag, value in body:
            if SOH in value.encode():
                raise ValueError(f"tag {tag}: a FIX value cannot contain SOH")
            message.append_pair(tag, value)
        encoded: bytes = message.encode()
        return encoded


def checksum(data: bytes) -> str:
    return f"{sum(data) % 256:03d}"


def check_frame(raw: bytes) -> None:
    """BodyLength and CheckSum of one complete message, as the FIX session layer defines them."""
    try:
        first = raw.index(SOH)
        second = raw.index(SOH, first + 1)
    except ValueError:
        raise FrameError("message too short") from None
    if not raw[first + 1:second].startswith(b"9="):
        raise FrameError("BodyLength (9) is not the second field")
    trailer = raw.rfind(SOH + b"10=", 0, len(raw) - 1)
    if trailer < 0:
        raise FrameError("no CheckSum (10)")
    declared_length = raw[first + 3:second]
    if not declared_length.isdigit() or int(declared_length) != trailer + 1 - (second + 1):
        raise FrameError(f"BodyLength {declared_length!r} does not match the body ({trailer + 1 - (second + 1)} bytes)")
    declared_sum = raw[trailer + 4:-1]
    if declared_sum != checksum(raw[:trailer + 1]).encode():
        raise FrameError(f"CheckSum {declared_sum!r} does not match {checksum(raw[:trailer + 1])}")


class FixStreamReader:
    """Splits received bytes into messages; a garbled message becomes a FrameError item, not an exception."""

    def __init__(self) -> None:
        self._parser = simplefix.FixParser()

    def feed(self, data: bytes) -> Iterator[FixMessage | FrameError]:
        self._parser.append_buffer(data)
        while True:
            try:
                parsed = self._parser.get_message()
            except simplefix_errors.ParsingError as error:
                # Unreadable bytes: skip to the next BeginString and go on from there.
                buffered = self._parser.get_buffer()
                self._parser.reset()
                restart = buffered.find(b"8=FIX", 1)
                if restart >= 0:
                    self._parser.append_buffer(buffered[restart:])
                yield FrameError(f"unparseable FIX data ({error!r})")
                if restart < 0:
                    return
                continue
            if parsed is None:
                return
            raw = parsed.encode(raw=True)
            fields = tuple((int(tag), value.decode("ascii", errors="replace")) for tag, value in parsed.pairs)
            try:
                check_frame(raw)
            except FrameError as error:
                yield FrameError(f"{error}: {raw!r}"[:500])
                continue
            yield FixMessage(fields, raw)


def decode_one(raw: bytes) -> FixMessage:
    """One complete message (tests, tools); raises FrameError if it is not exactly one valid message."""
    items = list(FixStreamReader().feed(raw))
    if len(items) != 1 or isinstance(items[0], FrameError):
        raise FrameError(f"not one valid FIX message: {items!r}")
    return items[0]

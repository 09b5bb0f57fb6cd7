"""The FIX framing on simplefix: what is encoded reads back; a garbled message is dropped, not fatal."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from fix_adapter.codec import FixEncoder, FixMessage, FixStreamReader, FrameError, Tag, decode_one

AT = datetime(2026, 2, 18, 10, 0, 1, 234000, tzinfo=UTC)
ENCODER = FixEncoder("FIX.4.4", "ADAPTER", "EXEC")
from simplefix.data import RAW_DATA_TAGS, RAW_LEN_TAGS  # noqa: E402

tags = st.integers(1000, 5000).filter(lambda tag: tag not in RAW_LEN_TAGS and tag not in RAW_DATA_TAGS)
values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(tags, values), max_size=8), st.integers(1, 10**9),
       st.lists(st.integers(1, 30), max_size=5))
def test_codec_encoded_messages_read_back_across_any_split(body: list[tuple[int, str]], seq: int,
                                                          cuts: list[int]) -> None:
    raw = ENCODER.encode("D", seq, body, sending_time=AT) * 2
    reader, items, position = FixStreamReader(), [], 0
    for cut in [*cuts, len(raw)]:
        items += list(reader.feed(raw[position:position + cut]))
        position += cut
    items += list(reader.feed(raw[position:]))
    assert len(items) == 2 and all(isinstance(item, FixMessage) for item in items)
    message = items[0]
    assert isinstance(message, FixMessage)
    assert (message.msg_type, message.seq_num, message.get(Tag.SENDING_TIME)) == ("D", seq, "20260218-10:00:01.234")
    assert [pair for pair in message.fields if pair[0] >= 1000] == body


def test_codec_bad_checksum_or_body_length_is_a_frame_error_and_the_next_message_reads() -> None:
    good = ENCODER.encode("0", 7, [], sending_time=AT)
    bad_sum = good[:-4] + b"999\x01"
    bad_length = good.replace(b"\x019=", b"\x019=1", 1)
    items = list(FixStreamReader().feed(bad_sum + bad_length + good))
    assert [type(item) for item in items] == [FrameError, FrameError, FixMessage]
    assert "CheckSum" in str(items[0]) and "BodyLength" in str(items[1])


def test_codec_unparseable_bytes_skip_to_the_next_begin_string() -> None:
    good = ENCODER.encode("0", 8, [], sending_time=AT)
    items = list(FixStreamReader().feed(b"x=1\x01garbage" + good))
    assert isinstance(items[-1], FixMessage) and items[-1].seq_num == 8


def test_codec_value_with_soh_is_refused() -> None:
    try:
        ENCODER.encode("D", 1, [(58, "a\x01b")], sending_time=AT)
    except ValueError as error:
        assert "SOH" in str(error)
    else:
        raise AssertionError("a value with SOH was encoded")


def test_codec_decode_one_gives_decimals_and_integers() -> None:
    message = decode_one(ENCODER.encode("8", 3, [(Tag.CUM_QTY, "100.50"), (Tag.REF_SEQ_NUM, "12")], sending_time=AT))
    assert str(message.decimal(Tag.CUM_QTY)) == "100.50" and message.integer(Tag.REF_SEQ_NUM) == 12
    assert message.decimal(Tag.AVG_PX) is None

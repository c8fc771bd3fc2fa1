from __future__ import annotations

import pytest
from aioquic.buffer import encode_uint_var
from hypothesis import given
from hypothesis import strategies as st

from wtframe.capsules import (
    CLOSE_WEBTRANSPORT_SESSION,
    DRAIN_WEBTRANSPORT_SESSION,
    MAX_CAPSULE_SIZE_DEFAULT,
    MAX_CLOSE_REASON_LENGTH,
    Capsule,
    CapsuleParser,
    decode_close,
    encode_capsule,
    encode_close,
    encode_drain,
)
from wtframe.exceptions import CapsuleError, ProtocolError

KNOWN = (CLOSE_WEBTRANSPORT_SESSION, DRAIN_WEBTRANSPORT_SESSION)

codes = st.integers(min_value=0, max_value=0xFFFFFFFF)
unknown_types = st.integers(min_value=0, max_value=2**62 - 1).filter(lambda t: t not in KNOWN)
capsules = st.tuples(st.one_of(st.sampled_from(KNOWN), unknown_types), st.binary(max_size=300))


def feed_all(parser: CapsuleParser, chunks: list[bytes]) -> list[Capsule]:
    out: list[Capsule] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


# -- encoding ------------------------------------------------------------------------------


def test_encode_capsule_layout() -> None:
    assert encode_capsule(CLOSE_WEBTRANSPORT_SESSION, b"ab") == b"\x68\x43\x02ab"
    assert encode_drain() == b"\x80\x00\x78\xae\x00"
    assert encode_close(7, "bye") == b"\x68\x43\x07\x00\x00\x00\x07bye"
    assert encode_close() == b"\x68\x43\x04\x00\x00\x00\x00"


@given(codes, st.text(max_size=300))
def test_close_round_trip(code: int, reason: str) -> None:
    capsules = CapsuleParser().feed(encode_close(code, reason))
    assert len(capsules) == 1
    assert capsules[0].type == CLOSE_WEBTRANSPORT_SESSION
    assert decode_close(capsules[0].data) == (code, reason)


def test_drain_round_trip() -> None:
    assert CapsuleParser().feed(encode_drain()) == [Capsule(DRAIN_WEBTRANSPORT_SESSION, b"")]


@pytest.mark.parametrize("code", [-1, 2**32])
def test_encode_close_rejects_codes_beyond_32_bits(code: int) -> None:
    with pytest.raises(ValueError, match="32-bit"):
        encode_close(code)


def test_long_reason_is_cut_at_a_character_boundary() -> None:
    reason = "x" + "€" * 400  # 1 + 1200 bytes; a 3-byte character straddles byte 1024
    data = CapsuleParser().feed(encode_close(1, reason))[0].data
    raw = data[4:]
    assert len(raw) == 1024
    assert raw.decode("utf-8") == "x" + "€" * 341

    reason = "€" * 400  # the cut falls after 341 characters, one byte short of 1024
    code, cut = decode_close(CapsuleParser().feed(encode_close(2, reason))[0].data)
    assert (code, cut) == (2, "€" * 341)
    assert len(cut.encode()) == 1023


@given(st.text(min_size=300, max_size=1200))
def test_any_reason_is_cut_to_its_longest_fitting_prefix(reason: str) -> None:
    _, cut = decode_close(CapsuleParser().feed(encode_close(0, reason))[0].data)
    size = len(cut.encode("utf-8"))
    assert size <= MAX_CLOSE_REASON_LENGTH
    assert reason.startswith(cut)
    if cut != reason:
        assert size + len(reason[len(cut)].encode("utf-8")) > MAX_CLOSE_REASON_LENGTH


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "shorter than 4 bytes"),
        (b"\x00\x00\x01", "shorter than 4 bytes"),
        (b"\x00\x00\x00\x01" + b"r" * 1025, "longer than 1024 bytes"),
        (b"\x00\x00\x00\x01\xc3", "not UTF-8"),
    ],
)
def test_decode_close_rejects_malformed_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(CapsuleError, match=message) as caught:
        decode_close(payload)
    assert isinstance(caught.value, ProtocolError)
    assert caught.value.code == 1002


def test_decode_close_limits() -> None:
    assert decode_close(b"\xff\xff\xff\xff") == (0xFFFFFFFF, "")
    assert decode_close(b"\x00\x00\x00\x00" + b"r" * 1024) == (0, "r" * 1024)


# -- parsing -------------------------------------------------------------------------------


@given(st.lists(capsules, max_size=12), st.lists(st.integers(min_value=0), max_size=30))
def test_known_capsules_come_out_in_order_whatever_the_chunks(
    sequence: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(encode_capsule(kind, payload) for kind, payload in sequence)
    parser = CapsuleParser()
    got = feed_all(parser, split(stream, cuts))
    assert got == [Capsule(kind, payload) for kind, payload in sequence if kind in KNOWN]
    assert parser.buffered == 0
    parser.eof()


def test_byte_by_byte() -> None:
    stream = encode_capsule(0x17, b"grease") + encode_drain() + encode_close(9, "done")
    parser = CapsuleParser()
    got = feed_all(parser, [bytes([byte]) for byte in stream])
    assert got == [
        Capsule(DRAIN_WEBTRANSPORT_SESSION, b""),
        Capsule(CLOSE_WEBTRANSPORT_SESSION, b"\x00\x00\x00\x09done"),
    ]


def test_empty_feed() -> None:
    parser = CapsuleParser()
    assert parser.feed(b"") == []
    parser.eof()


def test_large_unknown_capsule_is_skipped_without_buffering() -> None:
    parser = CapsuleParser(max_size=16)
    size = 10_000_000
    assert parser.feed(encode_uint_var(0x2A) + encode_uint_var(size) + b"\x00" * 10) == []
    assert parser.buffered == 0
    chunk = b"\x00" * 100_000
    for _ in range(size // len(chunk) - 1):
        assert parser.feed(chunk) == []
        assert parser.buffered == 0
    # The rest of the skipped payload and a drain, in the same chunk.
    tail = b"\x00" * (len(chunk) - 10)
    assert parser.feed(tail + encode_drain()) == [Capsule(DRAIN_WEBTRANSPORT_SESSION, b"")]
    parser.eof()


def test_oversize_known_capsule_fails_before_its_payload() -> None:
    parser = CapsuleParser(max_size=100)
    header = encode_uint_var(CLOSE_WEBTRANSPORT_SESSION) + encode_uint_var(101)
    with pytest.raises(CapsuleError, match="exceeds 100") as caught:
        parser.feed(header)
    assert parser.buffered == 0
    # The parser stays failed.
    with pytest.raises(CapsuleError) as again:
        parser.feed(b"\x00" * 101)
    assert again.value is caught.value
    with pytest.raises(CapsuleError) as at_eof:
        parser.eof()
    assert at_eof.value is caught.value


def test_known_capsule_of_exactly_max_size() -> None:
    payload = b"\x00\x00\x00\x00" + b"r" * (MAX_CAPSULE_SIZE_DEFAULT - 4)
    parser = CapsuleParser()
    assert parser.max_size == MAX_CAPSULE_SIZE_DEFAULT
    stream = encode_capsule(CLOSE_WEBTRANSPORT_SESSION, payload)
    assert parser.feed(stream[:-1]) == []
    assert parser.buffered == len(stream) - 1
    assert parser.feed(stream[-1:]) == [Capsule(CLOSE_WEBTRANSPORT_SESSION, payload)]
    assert parser.buffered == 0


@pytest.mark.parametrize(
    "stream",
    [
        encode_close(1, "abc")[:-1],  # inside a known payload
        encode_close(1, "abc")[:1],  # inside the type varint
        encode_close(1, "abc")[:2],  # before the length
        encode_capsule(0x17, b"grease")[:-1],  # inside a skipped payload
    ],
    ids=["payload", "type", "length", "unknown-payload"],
)
def test_truncated_stream_fails_at_eof(stream: bytes) -> None:
    parser = CapsuleParser()
    assert parser.feed(stream) == []
    with pytest.raises(CapsuleError, match="ended inside a capsule") as caught:
        parser.eof()
    with pytest.raises(CapsuleError) as again:
        parser.feed(b"")
    assert again.value is caught.value

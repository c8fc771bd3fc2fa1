from __future__ import annotations

import array
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wtframe.codecs import JSON
from wtframe.exceptions import ConfigurationError, MessageTooLarge, TruncatedMessage
from wtframe.framing import (
    HEADER_SIZE,
    MAX_FRAME_PAYLOAD,
    MAX_MESSAGE_SIZE_DEFAULT,
    FrameDecoder,
    encode_frame,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "js" / "vectors.json").read_text(encoding="utf-8")
)

payload_lists = st.lists(st.binary(max_size=300), max_size=20)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def decode_all(chunks: list[bytes], max_size: int = MAX_MESSAGE_SIZE_DEFAULT) -> list[bytes]:
    decoder = FrameDecoder(max_size)
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    decoder.eof()
    assert decoder.buffered == 0
    return out


def test_encode_frame_layout() -> None:
    assert encode_frame(b"") == b"\x00\x00\x00\x00"
    assert encode_frame(b"hi") == b"\x00\x00\x00\x02hi"
    assert encode_frame(bytes(70000))[:4] == bytes.fromhex("00011170")
    assert HEADER_SIZE == 4
    assert MAX_MESSAGE_SIZE_DEFAULT == 1 << 20


def test_encode_frame_accepts_buffers() -> None:
    assert encode_frame(bytearray(b"abc")) == b"\x00\x00\x00\x03abc"
    words = array.array("I", [1, 2])
    frame = encode_frame(memoryview(words))
    assert frame[:4] == (2 * words.itemsize).to_bytes(4, "big")
    assert frame[4:] == words.tobytes()


def test_encode_frame_refuses_what_the_length_field_cannot_hold() -> None:
    class Huge(bytes):
        def __len__(self) -> int:
            return MAX_FRAME_PAYLOAD + 1

    with pytest.raises(MessageTooLarge) as info:
        encode_frame(Huge())
    assert info.value.limit == MAX_FRAME_PAYLOAD


def test_shared_vectors_frames() -> None:
    for vector in VECTORS["frames"]:
        payload = bytes.fromhex(vector["payload"])
        frame = bytes.fromhex(vector["frame"])
        assert encode_frame(payload) == frame
        assert decode_all([frame]) == [payload]


def test_shared_vectors_patterned() -> None:
    for vector in VECTORS["patterned"]:
        payload = bytes(i % 251 for i in range(vector["length"]))
        frame = encode_frame(payload)
        assert frame[:4].hex() == vector["header"]
        assert decode_all(split(frame, [1, 3, 5, 4000, 65536])) == [payload]


def test_shared_vectors_stream() -> None:
    stream = VECTORS["stream"]
    payloads = [bytes.fromhex(p) for p in stream["payloads"]]
    data = bytes.fromhex(stream["bytes"])
    assert b"".join(encode_frame(p) for p in payloads) == data
    for i in range(len(data) + 1):
        assert decode_all([data[:i], data[i:]]) == payloads


def test_shared_vectors_json() -> None:
    for vector in VECTORS["json"]:
        assert JSON.encode(vector["value"]).hex() == vector["encoded"]
        assert JSON.decode(bytes.fromhex(vector["encoded"])) == vector["value"]


@given(payload_lists, st.lists(st.integers(min_value=0), max_size=30))
def test_any_chunking_yields_the_same_messages(payloads: list[bytes], cuts: list[int]) -> None:
    data = b"".join(encode_frame(p) for p in payloads)
    assert decode_all(split(data, cuts)) == payloads


@given(payload_lists)
def test_byte_by_byte(payloads: list[bytes]) -> None:
    data = b"".join(encode_frame(p) for p in payloads)
    assert decode_all([data[i : i + 1] for i in range(len(data))]) == payloads


@given(payload_lists, st.sampled_from([bytes, bytearray, memoryview]))
def test_accepts_any_bytes_like_chunk(payloads: list[bytes], kind: type[Any]) -> None:
    data = b"".join(encode_frame(p) for p in payloads)
    decoder = FrameDecoder()
    out = decoder.feed(kind(data[:7])) + decoder.feed(kind(data[7:]))
    assert out == payloads
    assert all(type(p) is bytes for p in out)


def test_split_payload_survives_reuse_of_a_bytearray_chunk() -> None:
    decoder = FrameDecoder()
    chunk = bytearray(b"\x00\x00\x00\x06abc")
    assert decoder.feed(chunk) == []
    chunk[:] = b"XYZ"
    assert decoder.feed(b"def") == [b"abcdef"]


def test_buffered_counts_the_incomplete_frame() -> None:
    decoder = FrameDecoder()
    assert decoder.buffered == 0
    assert decoder.feed(b"\x00\x00") == []
    assert decoder.buffered == 2
    assert decoder.feed(b"\x00\x05ab") == []
    assert decoder.buffered == 2
    assert decoder.feed(b"c") == []
    assert decoder.buffered == 3
    assert decoder.feed(b"de\x00") == [b"abcde"]
    assert decoder.buffered == 1


def test_message_of_exactly_max_size_is_accepted() -> None:
    assert decode_all([encode_frame(b"x" * 10)], max_size=10) == [b"x" * 10]
    assert decode_all([encode_frame(b"")], max_size=0) == [b""]


@given(
    st.lists(st.binary(max_size=50), max_size=5),
    st.integers(min_value=0, max_value=100),
    st.integers(min_value=1, max_value=1000),
    st.lists(st.integers(min_value=0), max_size=10),
)
def test_oversize_length_is_rejected_before_its_payload_is_buffered(
    good: list[bytes], limit_extra: int, excess: int, cuts: list[int]
) -> None:
    limit = 50 + limit_extra
    announced = limit + excess
    prefix = b"".join(encode_frame(p) for p in good)
    bad_header = announced.to_bytes(4, "big")
    data = prefix + bad_header + bytes(announced)
    header_end = len(prefix) + HEADER_SIZE
    decoder = FrameDecoder(limit)
    received: list[bytes] = []
    consumed = 0
    with pytest.raises(MessageTooLarge) as info:
        for chunk in split(data, cuts):
            consumed += len(chunk)
            received.extend(decoder.feed(chunk))
            assert decoder.buffered < HEADER_SIZE + 50
    # The error comes with the chunk that completes the bad length field.
    assert consumed >= header_end
    assert consumed - len(chunk) < header_end
    assert (info.value.size, info.value.limit) == (announced, limit)
    assert received == good[: len(received)]
    assert decoder.buffered == 0
    with pytest.raises(MessageTooLarge) as again:
        decoder.feed(b"")
    assert again.value is info.value
    with pytest.raises(MessageTooLarge):
        decoder.eof()


def test_oversize_header_split_across_chunks() -> None:
    decoder = FrameDecoder(max_size=255)
    assert decoder.feed(b"\x00\x00") == []
    assert decoder.feed(b"\x01") == []
    with pytest.raises(MessageTooLarge) as info:
        decoder.feed(b"\x00")
    assert info.value.size == 256
    assert decoder.buffered == 0


@given(st.lists(st.binary(min_size=1, max_size=100), min_size=1, max_size=10), st.data())
def test_truncated_stream_is_rejected_by_eof(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    boundaries = {0}
    for p in payloads:
        boundaries.add(max(boundaries) + HEADER_SIZE + len(p))
    cut = data.draw(
        st.integers(min_value=1, max_value=len(stream) - 1).filter(lambda c: c not in boundaries)
    )
    decoder = FrameDecoder()
    decoder.feed(stream[:cut])
    with pytest.raises(TruncatedMessage):
        decoder.eof()


def test_truncation_messages() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x00")
    with pytest.raises(TruncatedMessage, match=r"header \(2 of 4 bytes\)"):
        decoder.eof()
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x00\x00\x0aabc")
    with pytest.raises(TruncatedMessage, match=r"message \(3 of 10 bytes\)"):
        decoder.eof()


def test_empty_feed_and_clean_eof() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"") == []
    decoder.eof()
    assert decoder.max_size == MAX_MESSAGE_SIZE_DEFAULT
    assert "buffered=0" in repr(decoder)


def test_negative_limit_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        FrameDecoder(-1)

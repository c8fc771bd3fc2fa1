from __future__ import annotations

import dataclasses
import math
import socket
from typing import Annotated, Any, Literal

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typing_extensions import TypedDict

from wtframe.codecs import (
    BYTES,
    JSON,
    TEXT,
    BytesCodec,
    Codec,
    JSONCodec,
    PydanticCodec,
    TextCodec,
    codec_for,
    payload_type,
)
from wtframe.exceptions import ConfigurationError, DecodeError, EncodeError


class Increment(pydantic.BaseModel):
    type: Literal["inc"] = "inc"
    by: int


class Reset(pydantic.BaseModel):
    type: Literal["reset"] = "reset"
    to: int = 0
    note: str = ""


Command = Annotated[Increment | Reset, pydantic.Field(discriminator="type")]


class Aliased(pydantic.BaseModel):
    user_id: int = pydantic.Field(alias="userId")


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Move(TypedDict):
    dx: int
    dy: int


class Many(pydantic.BaseModel):
    a: int
    b: int
    c: int
    d: int
    e: int


class Broken(pydantic.BaseModel):
    thing: UndefinedName  # type: ignore[name-defined]  # noqa: F821


class Upper:
    def encode(self, obj: str) -> bytes:
        return obj.upper().encode()

    def decode(self, data: bytes) -> str:
        return data.decode().lower()


class Unhashable:
    __hash__ = None  # type: ignore[assignment]


class Hooks:
    async def on_datagram(self, msg: Increment) -> None: ...

    async def on_raw(self, msg) -> None:  # type: ignore[no-untyped-def]
        ...

    async def on_pair(self, first: str, second: Command) -> None: ...

    async def on_custom(self, msg: Annotated[str, Upper()]) -> None: ...

    async def on_missing(self, msg: NotDefinedAnywhere) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    async def on_nothing(self) -> None: ...


async def plain_hook(msg: list[int]) -> None: ...


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


# Round trips


@given(st.binary())
def test_bytes_round_trip(data: bytes) -> None:
    assert BYTES.decode(BYTES.encode(data)) == data


def test_bytes_passes_bytes_through_and_copies_other_buffers() -> None:
    data = b"abc"
    assert BYTES.encode(data) is data
    assert BYTES.decode(data) is data
    assert BYTES.encode(bytearray(b"abc")) == b"abc"
    assert type(BYTES.encode(memoryview(b"abc"))) is bytes
    with pytest.raises(EncodeError, match="expects bytes, not str"):
        BYTES.encode("abc")  # type: ignore[arg-type]


@given(st.text())
def test_text_round_trip(text: str) -> None:
    assert TEXT.decode(TEXT.encode(text)) == text
    assert TEXT.encode(text) == text.encode("utf-8")


def test_text_errors() -> None:
    with pytest.raises(DecodeError, match="invalid UTF-8 at byte 1") as info:
        TEXT.decode(b"a\xff")
    assert isinstance(info.value.__cause__, UnicodeDecodeError)
    with pytest.raises(EncodeError, match="UTF-8"):
        TEXT.encode("\ud800")
    with pytest.raises(EncodeError, match="expects str"):
        TEXT.encode(b"abc")  # type: ignore[arg-type]


@given(json_values)
def test_json_round_trip(value: Any) -> None:
    assert JSON.decode(JSON.encode(value)) == value


def test_json_is_compact_utf8() -> None:
    assert JSON.encode({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    assert JSON.decode(memoryview(b"[1]")) == [1]


def test_json_non_finite_floats_match_the_browser() -> None:
    assert JSON.encode([math.nan, math.inf, -math.inf]) == b"[null,null,null]"
    with pytest.raises(DecodeError):
        JSON.decode(b"NaN")


def test_json_garbage_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match=r"invalid JSON: .*line 1 column") as info:
        JSON.decode(b'{"a": ')
    assert info.value.__cause__ is not None
    with pytest.raises(DecodeError):
        JSON.decode(b"\xff")


def test_json_unencodable_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match="cannot encode object as JSON") as info:
        JSON.encode(object())
    assert info.value.__cause__ is not None


@given(st.builds(Increment, by=st.integers()))
def test_model_round_trip(msg: Increment) -> None:
    codec = codec_for(Increment)
    assert codec.decode(codec.encode(msg)) == msg


@given(
    st.one_of(
        st.builds(Increment, by=st.integers(min_value=-(2**63), max_value=2**63)),
        st.builds(Reset, to=st.integers(min_value=-(2**63), max_value=2**63), note=st.text()),
    )
)
def test_discriminated_union_round_trip(msg: Increment | Reset) -> None:
    codec = codec_for(Command)
    decoded = codec.decode(codec.encode(msg))
    assert type(decoded) is type(msg)
    assert decoded == msg


def test_discriminated_union_decodes_by_tag() -> None:
    codec = codec_for(Command)
    assert codec.decode(b'{"type":"reset","to":3}') == Reset(to=3)
    with pytest.raises(
        DecodeError,
        match=r"invalid Increment \| Reset: Input tag 'nope' found using 'type' does not match",
    ):
        codec.decode(b'{"type":"nope"}')


@given(
    st.builds(
        Point,
        x=st.floats(allow_nan=False, allow_infinity=False),
        y=st.floats(allow_nan=False, allow_infinity=False),
    ),
    st.lists(st.integers()),
    st.fixed_dictionaries({"dx": st.integers(), "dy": st.integers()}),
)
def test_other_pydantic_types_round_trip(point: Point, ints: list[int], move: Any) -> None:
    for tp, value in ((Point, point), (list[int], ints), (Move, move)):
        codec = codec_for(tp)
        assert codec.decode(codec.encode(value)) == value


def test_aliases_are_used_on_the_wire() -> None:
    codec = codec_for(Aliased)
    data = codec.encode(Aliased(userId=5))
    assert data == b'{"userId":5}'
    assert codec.decode(data) == Aliased(userId=5)


def test_invalid_model_message_names_the_fields() -> None:
    codec = codec_for(Increment)
    with pytest.raises(DecodeError) as info:
        codec.decode(b'{"by": "x"}')
    assert str(info.value) == (
        "invalid Increment: by: Input should be a valid integer, unable to parse string as an "
        "integer"
    )
    assert isinstance(info.value.__cause__, pydantic.ValidationError)


def test_invalid_model_message_is_short() -> None:
    with pytest.raises(DecodeError) as info:
        codec_for(Many).decode(b"{}")
    assert str(info.value) == (
        "invalid Many: a: Field required; b: Field required; c: Field required; and 2 more errors"
    )
    with pytest.raises(DecodeError, match=r"invalid list\[int\]: 1: Input should be"):
        codec_for(list[int]).decode(b"[1, []]")


def test_garbage_for_a_model_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="invalid Increment: Invalid JSON"):
        codec_for(Increment).decode(b"not json")


def test_encoding_the_wrong_type_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match="cannot encode dict as Increment"):
        codec_for(Increment).encode({"by": 1})
    with pytest.raises(EncodeError, match=r"cannot encode list as list\[int\]"):
        codec_for(list[int]).encode(["x"])


# codec_for


def test_codec_for_builtins() -> None:
    assert codec_for(bytes) is BYTES
    assert codec_for(bytearray) is BYTES
    assert codec_for(memoryview) is BYTES
    assert codec_for(str) is TEXT
    assert codec_for(Any) is JSON
    assert codec_for(object) is JSON


def test_codec_for_codec_instances() -> None:
    upper = Upper()
    assert codec_for(upper) is upper
    assert codec_for(Annotated[str, upper]) is upper
    assert codec_for(TEXT) is TEXT


def test_codec_for_shares_codecs() -> None:
    codec = codec_for(Increment)
    assert isinstance(codec, PydanticCodec)
    assert codec_for(Increment) is codec
    assert codec_for(Command) is codec_for(Command)
    assert codec_for(list[int]) is codec_for(list[int])
    unhashable = Annotated[int, Unhashable()]
    assert codec_for(unhashable) is codec_for(unhashable)
    assert codec_for(unhashable).decode(b"7") == 7
    assert repr(codec) == "PydanticCodec(Increment)"


def test_codec_for_rejects_what_pydantic_cannot_handle() -> None:
    with pytest.raises(ConfigurationError, match="cannot build a codec for socket"):
        codec_for(socket.socket)
    with pytest.raises(ConfigurationError, match="cannot build a codec for Broken"):
        codec_for(Broken)


def test_codec_protocol() -> None:
    for codec in (BYTES, TEXT, JSON, Upper(), codec_for(Increment)):
        assert isinstance(codec, Codec)
    assert not isinstance(object(), Codec)
    assert isinstance(BYTES, BytesCodec)
    assert isinstance(TEXT, TextCodec)
    assert isinstance(JSON, JSONCodec)
    assert [repr(c) for c in (BYTES, TEXT, JSON)] == ["BytesCodec()", "TextCodec()", "JSONCodec()"]


# payload_type


def test_payload_type_of_methods() -> None:
    hooks = Hooks()
    assert payload_type(Hooks.on_datagram) is Increment
    assert payload_type(hooks.on_datagram) is Increment
    assert payload_type(hooks.on_raw) is bytes
    assert payload_type(Hooks.on_raw) is bytes
    assert payload_type(hooks.on_pair) is str
    assert payload_type(hooks.on_pair, 1) == Command
    assert payload_type(plain_hook) == list[int]


def test_payload_type_keeps_annotated_codecs() -> None:
    codec = codec_for(payload_type(Hooks().on_custom))
    assert isinstance(codec, Upper)
    assert codec.decode(b"ABC") == "abc"


def test_payload_type_errors() -> None:
    with pytest.raises(ConfigurationError, match="no message parameter at position 0"):
        payload_type(Hooks().on_nothing)
    with pytest.raises(ConfigurationError, match="no message parameter at position 2"):
        payload_type(Hooks.on_pair, 2)
    with pytest.raises(ConfigurationError, match="cannot resolve the annotation of 'msg'"):
        payload_type(Hooks.on_missing)

"""Message codecs: how a typed message becomes bytes on the wire and back.

A [`Codec`][wtframe.codecs.Codec] turns one message into one `bytes` payload and back. A
payload travels as one datagram, as one frame of a framed stream (see
[`wtframe.framing`][wtframe.framing]) or as the whole content of a stream.

The built-in codecs:

- [`BYTES`][wtframe.codecs.BYTES]: the payload as it is.
- [`TEXT`][wtframe.codecs.TEXT]: a `str` as UTF-8.
- [`JSON`][wtframe.codecs.JSON]: any JSON value (`dict`, `list`, `str`, `int`, `float`,
  `bool`, `None`) as compact UTF-8 JSON. `NaN` and infinities are written as `null`, as
  the browser's `JSON.stringify` does, and are refused on input, as `JSON.parse` does.
- [`PydanticCodec`][wtframe.codecs.PydanticCodec]: anything a `pydantic.TypeAdapter`
  accepts: models, dataclasses, `TypedDict`s, `list[int]`, discriminated unions. Encoded
  as JSON using field aliases, decoded and validated with `validate_json`.

[`codec_for`][wtframe.codecs.codec_for] picks the codec a type annotation implies, and
[`payload_type`][wtframe.codecs.payload_type] reads that annotation from a hook such as
`async def on_datagram(self, msg: Increment)`.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import (
    Annotated,
    Any,
    Final,
    Generic,
    Protocol,
    TypeVar,
    Union,
    runtime_checkable,
)

import pydantic
import pydantic_core

from wtframe.exceptions import ConfigurationError, DecodeError, EncodeError

__all__ = [
    "BYTES",
    "JSON",
    "TEXT",
    "BytesCodec",
    "Codec",
    "JSONCodec",
    "PydanticCodec",
    "TextCodec",
    "codec_for",
    "payload_type",
]

T = TypeVar("T")

_UnionType: Any = getattr(types, "UnionType", None)

_MAX_REPORTED_ERRORS: Final = 3
_MAX_MESSAGE_CHARS: Final = 300


@runtime_checkable
class Codec(Protocol[T]):
    """Converts messages of type `T` to `bytes` payloads and back.

    Any object with these two methods is a codec; there is nothing to inherit.
    """

    def encode(self, obj: T) -> bytes:
        """Encode one message.

        Args:
            obj: The message.

        Returns:
            The payload.

        Raises:
            EncodeError: If `obj` cannot be encoded by this codec.
        """
        ...

    def decode(self, data: bytes) -> T:
        """Decode one payload.

        Args:
            data: The payload.

        Returns:
            The message.

        Raises:
            DecodeError: If `data` is not a valid message for this codec.
        """
        ...


class BytesCodec:
    """The identity codec: a message is its payload.

    Encoding accepts `bytes`, `bytearray` and `memoryview` (the last two are copied into
    `bytes`); `bytes` passes through without a copy.
    """

    __slots__ = ()

    def encode(self, obj: bytes | bytearray | memoryview) -> bytes:
        """Return `obj` as `bytes`.

        Args:
            obj: The message.

        Returns:
            The payload.

        Raises:
            EncodeError: If `obj` is not a bytes-like object.
        """
        if type(obj) is bytes:
            return obj
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return bytes(obj)
        raise EncodeError(f"BytesCodec expects bytes, not {type(obj).__name__}")

    def decode(self, data: bytes) -> bytes:
        """Return the payload unchanged.

        Args:
            data: The payload.

        Returns:
            The message.
        """
        return data

    def __repr__(self) -> str:
        return "BytesCodec()"


class TextCodec:
    """A `str` message encoded as UTF-8."""

    __slots__ = ()

    def encode(self, obj: str) -> bytes:
        """Encode `obj` as UTF-8.

        Args:
            obj: The message.

        Returns:
            The payload.

        Raises:
            EncodeError: If `obj` is not a `str` or holds lone surrogates.
        """
        if not isinstance(obj, str):
            raise EncodeError(f"TextCodec expects str, not {type(obj).__name__}")
        try:
            return obj.encode()
        except UnicodeEncodeError as exc:
            raise EncodeError(f"text cannot be encoded as UTF-8: {exc.reason}") from exc

    def decode(self, data: bytes | bytearray | memoryview) -> str:
        """Decode a UTF-8 payload.

        Args:
            data: The payload.

        Returns:
            The message.

        Raises:
            DecodeError: If `data` is not valid UTF-8.
        """
        try:
            return str(data, "utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"invalid UTF-8 at byte {exc.start}: {exc.reason}") from exc

    def __repr__(self) -> str:
        return "TextCodec()"


class JSONCodec:
    """Any JSON value, as compact UTF-8 JSON.

    Encoding writes `NaN` and infinities as `null`; decoding refuses them, so both sides
    agree with the browser's `JSON.stringify` and `JSON.parse`.
    """

    __slots__ = ()

    def encode(self, obj: Any) -> bytes:
        """Encode `obj` as JSON.

        Args:
            obj: The message: a JSON value (pydantic models and dataclasses also work).

        Returns:
            The payload.

        Raises:
            EncodeError: If `obj` cannot be represented as JSON.
        """
        try:
            return pydantic_core.to_json(obj, inf_nan_mode="null")
        except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as exc:
            raise EncodeError(
                f"cannot encode {type(obj).__name__} as JSON: {_short(exc)}"
            ) from exc

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        """Decode a JSON payload.

        Args:
            data: The payload.

        Returns:
            The decoded JSON value.

        Raises:
            DecodeError: If `data` is not valid UTF-8 JSON.
        """
        if isinstance(data, memoryview):
            data = data.tobytes()
        try:
            return pydantic_core.from_json(data, allow_inf_nan=False)
        except ValueError as exc:
            raise DecodeError(f"invalid JSON: {_short(exc)}") from exc

    def __repr__(self) -> str:
        return "JSONCodec()"


class PydanticCodec(Generic[T]):
    """Any type a `pydantic.TypeAdapter` accepts, encoded as JSON.

    Decoding validates with `TypeAdapter.validate_json`; encoding serializes with
    `TypeAdapter.dump_json` using field aliases, so whatever one side encodes the other
    decodes. Encoding an object of the wrong type raises instead of guessing.

    The adapter of each type is built once and shared; prefer
    [`codec_for`][wtframe.codecs.codec_for], which also shares the codec.

    Args:
        tp: The message type, e.g. a `BaseModel` subclass, a dataclass, `list[int]` or
            `Annotated[Union[A, B], Field(discriminator="type")]`.

    Raises:
        ConfigurationError: If pydantic cannot build a validator for `tp`.
    """

    __slots__ = ("_adapter", "_name", "type")

    def __init__(self, tp: Any) -> None:
        self.type: Any = tp
        self._name = _type_name(tp)
        self._adapter: pydantic.TypeAdapter[T] = _adapter_for(tp)

    def encode(self, obj: T) -> bytes:
        """Serialize `obj` to JSON.

        Args:
            obj: The message, an instance of the codec's type.

        Returns:
            The payload.

        Raises:
            EncodeError: If `obj` does not fit the codec's type.
        """
        try:
            return self._adapter.dump_json(obj, by_alias=True, warnings="error")
        except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as exc:
            raise EncodeError(
                f"cannot encode {type(obj).__name__} as {self._name}: {_short(exc)}"
            ) from exc

    def decode(self, data: bytes | bytearray | memoryview) -> T:
        """Parse and validate a JSON payload.

        Args:
            data: The payload.

        Returns:
            The validated message.

        Raises:
            DecodeError: If `data` is not JSON or does not validate, with the first few
                errors and their locations in the message.
        """
        if isinstance(data, memoryview):
            data = data.tobytes()
        try:
            return self._adapter.validate_json(data)
        except pydantic.ValidationError as exc:
            raise DecodeError(f"invalid {self._name}: {_describe(exc)}") from exc

    def __repr__(self) -> str:
        return f"PydanticCodec({self._name})"


BYTES: Final = BytesCodec()
"""The shared [`BytesCodec`][wtframe.codecs.BytesCodec]."""

TEXT: Final = TextCodec()
"""The shared [`TextCodec`][wtframe.codecs.TextCodec]."""

JSON: Final = JSONCodec()
"""The shared [`JSONCodec`][wtframe.codecs.JSONCodec]."""

_BUILTIN: Final[dict[Any, Codec[Any]]] = {
    bytes: BYTES,
    bytearray: BYTES,
    memoryview: BYTES,
    str: TEXT,
    Any: JSON,
    object: JSON,
}

_adapters: dict[Any, pydantic.TypeAdapter[Any]] = {}
_codecs: dict[Any, Codec[Any]] = {}
# Unhashable annotations are cached by identity; the entry keeps the key alive.
_adapters_by_id: dict[int, tuple[Any, pydantic.TypeAdapter[Any]]] = {}
_codecs_by_id: dict[int, tuple[Any, Codec[Any]]] = {}


def codec_for(tp: Any) -> Codec[Any]:
    """Return the codec a type annotation implies.

    | annotation                               | codec                           |
    |------------------------------------------|---------------------------------|
    | `bytes`, `bytearray`, `memoryview`       | [`BYTES`][wtframe.codecs.BYTES] |
    | `str`                                    | [`TEXT`][wtframe.codecs.TEXT]   |
    | `Any`, `object`                          | [`JSON`][wtframe.codecs.JSON]   |
    | a codec instance                         | that codec                      |
    | `Annotated[T, codec]`                    | that codec                      |
    | anything else (models, `list[int]`, ...) | a shared `PydanticCodec(tp)`    |

    `Annotated[T, codec]` lets a hook name its own codec while keeping a type that type
    checkers understand.

    Args:
        tp: The type annotation.

    Returns:
        The codec; the same object for the same annotation.

    Raises:
        ConfigurationError: If no codec can handle `tp`.
    """
    try:
        builtin = _BUILTIN.get(tp)
    except TypeError:
        builtin = None
    if builtin is not None:
        return builtin
    if not isinstance(tp, type) and isinstance(tp, Codec):
        return tp
    if typing.get_origin(tp) is Annotated:
        for meta in reversed(typing.get_args(tp)[1:]):
            if not isinstance(meta, type) and isinstance(meta, Codec):
                return meta
    try:
        codec = _codecs.get(tp)
    except TypeError:
        entry = _codecs_by_id.get(id(tp))
        if entry is None:
            entry = (tp, PydanticCodec[Any](tp))
            _codecs_by_id[id(tp)] = entry
        return entry[1]
    if codec is None:
        codec = _codecs[tp] = PydanticCodec[Any](tp)
    return codec


def payload_type(func: Callable[..., Any], param_index: int = 0) -> Any:
    """Return the message type a hook declares for one of its parameters.

    `self` (or `cls`) is skipped when `func` is a plain function whose first parameter has
    that name, so both `Session.on_datagram` and `session.on_datagram` work. Annotations
    written as strings (e.g. under `from __future__ import annotations`) are resolved.

    Args:
        func: The hook, e.g. `async def on_datagram(self, msg: Increment)`.
        param_index: Which positional parameter after `self`, counting from 0.

    Returns:
        The annotation, with `Annotated` extras kept; `bytes` if there is none.

    Raises:
        ConfigurationError: If `func` has no such parameter or its annotation cannot be
            resolved.
    """
    target = inspect.unwrap(getattr(func, "__func__", func))
    name = getattr(target, "__qualname__", repr(func))
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"cannot inspect the parameters of {name}: {exc}") from exc
    if params and not inspect.ismethod(func) and params[0].name in ("self", "cls"):
        params = params[1:]
    positional = [
        p
        for p in params
        if p.kind
        in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.VAR_POSITIONAL,
        )
    ]
    if not 0 <= param_index < len(positional):
        raise ConfigurationError(f"{name} has no message parameter at position {param_index}")
    param = positional[param_index]
    if param.annotation is inspect.Parameter.empty:
        return bytes
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception as exc:
        raise ConfigurationError(
            f"cannot resolve the annotation of {param.name!r} in {name}: {exc}"
        ) from exc
    return hints.get(param.name, bytes)


def _adapter_for(tp: Any) -> pydantic.TypeAdapter[Any]:
    """Return the shared TypeAdapter of `tp`, building it on first use."""
    try:
        adapter = _adapters.get(tp)
        hashable = True
    except TypeError:
        entry = _adapters_by_id.get(id(tp))
        adapter = entry[1] if entry is not None else None
        hashable = False
    if adapter is not None:
        return adapter
    try:
        adapter = pydantic.TypeAdapter(tp)
        if not adapter.pydantic_complete:
            adapter.rebuild(raise_errors=True)
    except (pydantic.PydanticUserError, TypeError, NameError) as exc:
        raise ConfigurationError(
            f"cannot build a codec for {_type_name(tp)}: {_short(exc)}"
        ) from exc
    if hashable:
        _adapters[tp] = adapter
    else:
        _adapters_by_id[id(tp)] = (tp, adapter)
    return adapter


def _type_name(tp: Any) -> str:
    """Return a short readable name for a type annotation."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _type_name(tp.__origin__)
    if origin is Union or (_UnionType is not None and origin is _UnionType):
        return " | ".join(_type_name(arg) for arg in typing.get_args(tp))
    if isinstance(tp, type) and origin is None:
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


def _short(exc: BaseException) -> str:
    """Return the first line of an exception message, cut to a readable length."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        first = f"{lines[0]} {lines[1]}"
    else:
        first = lines[0] if lines else type(exc).__name__
    if len(first) > _MAX_MESSAGE_CHARS:
        first = first[: _MAX_MESSAGE_CHARS - 3] + "..."
    return first


def _describe(exc: pydantic.ValidationError) -> str:
    """Summarize a validation error: the first few errors with their locations."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = []
    for error in errors[:_MAX_REPORTED_ERRORS]:
        loc = ".".join(str(part) for part in error["loc"])
        parts.append(f"{loc}: {error['msg']}" if loc else error["msg"])
    more = len(errors) - _MAX_REPORTED_ERRORS
    if more > 0:
        parts.append(f"and {more} more error{'s' if more > 1 else ''}")
    return "; ".join(parts)

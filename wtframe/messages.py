"""Typed messages on streams and datagrams, on top of codecs and framing.

Two ways to carry messages on streams:

* **Framed**, many messages on one long-lived stream: `await stream.send(obj)`,
  `await stream.receive(Model)`, `async for msg in stream.messages(Model)`. Each message is
  a 4-byte big-endian length followed by the payload (see [`wtframe.framing`][wtframe.framing]).
* **Whole stream**, one message per stream ended by FIN: `await stream.write_message(obj)`
  (writes and ends the stream) and `await stream.read_message(Model)` (reads up to FIN).
  `session.send_request(obj, Model)` opens a stream, sends one message and reads one
  answer this way.

What a type or an object turns into (for datagrams too):

| you pass | payload |
|---|---|
| `bytes`, `bytearray`, `memoryview` | the bytes themselves |
| `str` | UTF-8 text |
| anything else (pydantic models, dicts, lists, numbers...) | JSON, through pydantic-core |

On the receiving side a type decides: `bytes` stays raw, `str` is UTF-8, a pydantic model
(or any type a `TypeAdapter` accepts) is parsed from JSON and validated, `Any` is plain
JSON. A [`Codec`][wtframe.codecs.Codec] object can be passed instead of a type anywhere.
Messages over `max_message_size` bytes raise
[`MessageTooLarge`][wtframe.exceptions.MessageTooLarge] before more is buffered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .codecs import JSON, TEXT, Codec, codec_for
from .exceptions import IncompleteReadError, MessageTooLarge
from .framing import MAX_MESSAGE_SIZE_DEFAULT, FrameDecoder, encode_frame

if TYPE_CHECKING:
    from .streams import Stream

__all__ = ["MessageReader", "MessageWriter", "encode_message", "request_on_stream"]

T = TypeVar("T")
_CHUNK = 1 << 62


def encode_message(
    obj: Any, codec: Codec[Any] | None = None, default: Codec[Any] | None = None
) -> bytes:
    """Encode a message to its payload: raw bytes, UTF-8 text, or JSON.

    Args:
        obj: The message.
        codec: A codec to use instead of choosing by the object's type.
        default: The codec for objects that are neither bytes nor text (JSON if `None`).

    Returns:
        The payload.

    Raises:
        EncodeError: If the object cannot be encoded.
    """
    if codec is not None:
        return codec.encode(obj)
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, bytearray | memoryview):
        return bytes(obj)
    if isinstance(obj, str):
        return TEXT.encode(obj)
    return (default or JSON).encode(obj)


class MessageReader:
    """Message methods of receiving streams (part of [`ReceiveStream`][wtframe.ReceiveStream])."""

    max_message_size: int = MAX_MESSAGE_SIZE_DEFAULT
    """The largest message accepted on this stream, in bytes."""

    _frames: FrameDecoder | None = None
    _decoded: deque[bytes] | None = None

    if TYPE_CHECKING:

        async def read(self, n: int = -1) -> bytes:
            """Read bytes (provided by the stream)."""

    @overload
    async def receive(self) -> bytes: ...
    @overload
    async def receive(self, tp: type[T]) -> T: ...
    @overload
    async def receive(self, tp: Any) -> Any: ...

    async def receive(self, tp: Any = bytes) -> Any:
        """Receive the next framed message.

        Args:
            tp: The message type (or a codec); `bytes` by default.

        Returns:
            The decoded message.

        Raises:
            EOFError: If the stream ended cleanly before another message (an
                [`IncompleteReadError`][wtframe.exceptions.IncompleteReadError]).
            TruncatedMessage: If the stream ended inside a message.
            MessageTooLarge: If a message announces more than `max_message_size` bytes.
            DecodeError: If the payload does not decode or validate as `tp`.
        """
        return codec_for(tp).decode(await self._next_payload())

    async def messages(self, tp: Any = bytes) -> AsyncIterator[Any]:
        """Yield framed messages until the peer ends the stream.

        Args:
            tp: The message type (or a codec); `bytes` by default.

        Yields:
            Each decoded message, in order.

        Raises:
            TruncatedMessage: If the stream ended inside a message.
            MessageTooLarge: If a message is over `max_message_size`.
            DecodeError: If a payload does not decode or validate.
        """
        codec = codec_for(tp)
        while True:
            try:
                payload = await self._next_payload()
            except IncompleteReadError:
                return
            yield codec.decode(payload)

    async def read_message(self, tp: Any = bytes) -> Any:
        """Read the whole stream up to FIN as one message.

        Args:
            tp: The message type (or a codec); `bytes` by default.

        Returns:
            The decoded message.

        Raises:
            MessageTooLarge: If the stream carries more than `max_message_size` bytes.
            DecodeError: If the payload does not decode or validate.
        """
        codec = codec_for(tp)
        parts: list[bytes] = []
        size = 0
        while chunk := await self.read(_CHUNK):
            size += len(chunk)
            if size > self.max_message_size:
                raise MessageTooLarge(size, self.max_message_size)
            parts.append(chunk)
        return codec.decode(parts[0] if len(parts) == 1 else b"".join(parts))

    async def _next_payload(self) -> bytes:
        decoded = self._decoded
        if decoded is None:
            decoded = self._decoded = deque()
            self._frames = FrameDecoder(self.max_message_size)
        frames = self._frames
        assert frames is not None
        while not decoded:
            chunk = await self.read(_CHUNK)
            if not chunk:
                frames.eof()
                raise IncompleteReadError(b"", 4)
            decoded.extend(frames.feed(chunk))
        return decoded.popleft()


class MessageWriter:
    """Message methods of sending streams (part of [`SendStream`][wtframe.SendStream])."""

    if TYPE_CHECKING:

        async def write(self, data: bytes) -> None:
            """Write bytes (provided by the stream)."""

        async def close(self) -> None:
            """End the stream (provided by the stream)."""

    async def send(self, obj: Any, codec: Codec[Any] | None = None) -> None:
        """Send one framed message (length prefix + payload).

        Args:
            obj: The message: bytes, text, or anything JSON-serialisable (pydantic models).
            codec: A codec to use instead of choosing by the object's type.

        Raises:
            EncodeError: If the message cannot be encoded.
            StreamClosed: If the stream was closed for sending.
        """
        await self.write(encode_frame(encode_message(obj, codec)))

    async def write_message(
        self, obj: Any, codec: Codec[Any] | None = None, default: Codec[Any] | None = None
    ) -> None:
        """Send `obj` as the whole rest of the stream, then end it (FIN).

        Args:
            obj: The message.
            codec: A codec to use instead of choosing by the object's type.
            default: The codec for objects that are neither bytes nor text.
        """
        await self.write(encode_message(obj, codec, default))
        await self.close()


async def request_on_stream(
    open_stream: Callable[[], Awaitable[Stream]],
    obj: Any,
    tp: Any = bytes,
    *,
    max_message_size: int | None = None,
) -> Any:
    """Send one message on a new bidirectional stream and read one answer (up to FIN).

    Args:
        open_stream: Opens the stream (`session.open_stream`).
        obj: The request message.
        tp: The answer's type (or a codec).
        max_message_size: Limit on the answer's size.

    Returns:
        The decoded answer.
    """
    stream = await open_stream()
    if max_message_size is not None:
        stream.max_message_size = max_message_size
    await stream.write_message(obj)
    return await stream.read_message(tp)

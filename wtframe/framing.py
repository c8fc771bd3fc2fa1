"""Length-prefixed framing: many messages on one long-lived stream.

Wire format
-----------
A framed stream is a sequence of frames and nothing else. Each frame is:

    +--------------------------------+------------------------+
    | length N: 4 bytes, unsigned,   | payload: exactly N     |
    | big-endian (network order)     | bytes                  |
    +--------------------------------+------------------------+

- N counts the payload bytes only, not the 4 length bytes, and ranges from 0 to
  2**32 - 1. N = 0 is a valid, empty message.
- The payload is one encoded message (see [`wtframe.codecs`][wtframe.codecs]); for
  JSON messages it is the UTF-8 JSON text, with no terminator.
- There is no other header, no padding, no checksum and no trailer. Frames follow each
  other directly, and may be split across transport reads at any byte.
- A sender finishes the stream (FIN) only between frames. A stream that ends inside a
  length or inside a payload is truncated and is an error.
- A receiver sets a limit on N (1 MiB unless configured otherwise) and rejects a frame
  whose length field announces more, as soon as it reads that length, without waiting
  for or storing the payload.

Example: the messages `b"hi"` and `b""` are sent as the 10 bytes
`00 00 00 02 68 69 00 00 00 00`.

The other pattern, one message per stream, needs no framing: the message is the whole
content of the stream up to its FIN.
"""

from __future__ import annotations

import struct
from typing import Final, NoReturn

from wtframe.exceptions import ConfigurationError, MessageTooLarge, TruncatedMessage

__all__ = [
    "HEADER_SIZE",
    "MAX_FRAME_PAYLOAD",
    "MAX_MESSAGE_SIZE_DEFAULT",
    "FrameDecoder",
    "encode_frame",
]

HEADER_SIZE: Final = 4
"""Size of the length field that precedes every payload."""

MAX_FRAME_PAYLOAD: Final = 0xFFFF_FFFF
"""The largest payload the 4-byte length field can describe."""

MAX_MESSAGE_SIZE_DEFAULT: Final = 1 << 20
"""The default limit on the payload of one received frame: 1 MiB."""

_HEADER: Final = struct.Struct(">I")
_pack = _HEADER.pack
_unpack_from = _HEADER.unpack_from


def encode_frame(payload: bytes | bytearray | memoryview) -> bytes:
    """Frame one payload: its 4-byte big-endian length, then the payload.

    Args:
        payload: The encoded message.

    Returns:
        The frame, ready to write to a stream.

    Raises:
        MessageTooLarge: If the payload is longer than 2**32 - 1 bytes.
    """
    size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    if size > MAX_FRAME_PAYLOAD:
        raise MessageTooLarge(size, MAX_FRAME_PAYLOAD)
    return _pack(size) + payload


class FrameDecoder:
    """Splits the bytes of a framed stream back into payloads.

    Feed it every chunk read from the stream, in order, and call
    [`eof`][wtframe.framing.FrameDecoder.eof] when the stream ends. Chunks may be cut
    anywhere; the payloads come out the same.

    A payload that lies inside one chunk is returned as a single slice of it. A payload
    split across chunks keeps references to its pieces and is joined once, when its last
    byte arrives.

    Once it has raised [`MessageTooLarge`][wtframe.exceptions.MessageTooLarge], the decoder
    is broken: every later call raises the same error again.

    Args:
        max_size: The largest payload accepted, in bytes.

    Raises:
        ConfigurationError: If `max_size` is negative.
    """

    __slots__ = ("_error", "_head", "_held", "_max_size", "_need", "_parts")

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE_DEFAULT) -> None:
        if max_size < 0:
            raise ConfigurationError(f"max_size must be >= 0, not {max_size}")
        self._max_size = max_size
        self._head = b""  # a partial length field
        self._need = -1  # payload bytes still missing, or -1 between payloads
        self._parts: list[bytes | memoryview] = []  # pieces of a split payload
        self._held = 0
        self._error: MessageTooLarge | None = None

    @property
    def max_size(self) -> int:
        """The largest payload accepted, in bytes."""
        return self._max_size

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame currently held (length field and payload)."""
        return self._held

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Take the next chunk of the stream and return the payloads it completes.

        Args:
            data: The next bytes read from the stream; may be empty.

        Returns:
            Every payload completed by this chunk, in order; often empty.

        Raises:
            MessageTooLarge: If a length field announces a payload over `max_size`; raised
                as soon as the length is read, before any of the payload is stored. Payloads
                completed earlier in the same chunk are dropped with the stream.
        """
        if self._error is not None:
            raise self._error.with_traceback(None)
        if type(data) is not bytes:
            data = bytes(data)
        n = len(data)
        out: list[bytes] = []
        pos = 0
        if self._head or self._need >= 0:
            pos = self._resume(data, out)
        limit = self._max_size
        unpack_from = _unpack_from
        append = out.append
        while n - pos >= HEADER_SIZE:
            size = unpack_from(data, pos)[0]
            if size > limit:
                self._fail(size)
            start = pos + HEADER_SIZE
            pos = start + size
            if pos > n:
                self._need = pos - n
                self._held = n - start
                if start < n:
                    self._parts.append(memoryview(data)[start:])
                return out
            append(data[start:pos])
        if pos < n:
            self._head = data[pos:]
            self._held = n - pos
        return out

    def eof(self) -> None:
        """Declare the end of the stream.

        Raises:
            TruncatedMessage: If the stream ended inside a length field or a payload.
            MessageTooLarge: If the decoder already failed with it.
        """
        if self._error is not None:
            raise self._error.with_traceback(None)
        if self._head:
            raise TruncatedMessage(
                f"stream ended inside a frame header ({len(self._head)} of {HEADER_SIZE} bytes)"
            )
        if self._need >= 0:
            got = self._held
            raise TruncatedMessage(
                f"stream ended inside a message ({got} of {got + self._need} bytes)"
            )

    def _resume(self, data: bytes, out: list[bytes]) -> int:
        """Continue the frame left incomplete by earlier chunks.

        Returns:
            The position in `data` just after that frame, or `len(data)` if `data` did
            not complete it.
        """
        n = len(data)
        pos = 0
        if self._need < 0:
            take = HEADER_SIZE - len(self._head)
            head = self._head + data[:take]
            if len(head) < HEADER_SIZE:
                self._head = head
                self._held = len(head)
                return n
            size = _unpack_from(head)[0]
            if size > self._max_size:
                self._fail(size)
            self._head = b""
            self._held = 0
            self._need = size
            pos = take
        need = self._need
        avail = n - pos
        if avail < need:
            if avail:
                self._parts.append(data if pos == 0 else memoryview(data)[pos:])
                self._held += avail
                self._need = need - avail
            return n
        parts = self._parts
        if need:
            parts.append(data if pos == 0 and need == n else memoryview(data)[pos : pos + need])
        out.append(b"".join(parts))
        parts.clear()
        self._need = -1
        self._held = 0
        return pos + need

    def _fail(self, size: int) -> NoReturn:
        """Break the decoder on an oversize length field and raise."""
        self._head = b""
        self._parts.clear()
        self._need = -1
        self._held = 0
        self._error = MessageTooLarge(size, self._max_size)
        raise self._error

    def __repr__(self) -> str:
        return f"FrameDecoder(max_size={self._max_size}, buffered={self._held})"

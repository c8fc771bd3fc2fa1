"""Capsules: the messages WebTransport sessions exchange on their CONNECT stream.

A capsule (RFC 9297) is `varint type, varint length, payload`. Capsules travel inside
HTTP/3 DATA frames on the CONNECT stream, and a capsule may be split across several
frames, so [`CapsuleParser`][wtframe.capsules.CapsuleParser] parses incrementally.

The two capsule types WebTransport defines for session control:

* `CLOSE_WEBTRANSPORT_SESSION` (0x2843): a 32-bit application code, then a UTF-8 reason of
  at most 1024 bytes. The sender then ends the stream (FIN).
* `DRAIN_WEBTRANSPORT_SESSION` (0x78ae): empty; "finish what you are doing, start nothing new".

Capsules of any other type (including the GREASE capsules Chromium sends right after the
CONNECT request) are skipped without being buffered.
"""

from __future__ import annotations

from dataclasses import dataclass

from aioquic._buffer import Buffer, BufferReadError
from aioquic.buffer import encode_uint_var

from .exceptions import CapsuleError

__all__ = [
    "CLOSE_WEBTRANSPORT_SESSION",
    "DRAIN_WEBTRANSPORT_SESSION",
    "MAX_CAPSULE_SIZE_DEFAULT",
    "MAX_CLOSE_REASON_LENGTH",
    "Capsule",
    "CapsuleParser",
    "decode_close",
    "encode_capsule",
    "encode_close",
    "encode_drain",
]

CLOSE_WEBTRANSPORT_SESSION = 0x2843
"""Capsule type that closes a session with a code and a reason."""

DRAIN_WEBTRANSPORT_SESSION = 0x78AE
"""Capsule type that asks the peer to wind the session down."""

MAX_CLOSE_REASON_LENGTH = 1024
"""The longest close reason, in UTF-8 bytes, that the protocol allows."""

MAX_CAPSULE_SIZE_DEFAULT = 4096
"""The largest payload of a known capsule type that the parser buffers by default."""

_KNOWN_TYPES = frozenset({CLOSE_WEBTRANSPORT_SESSION, DRAIN_WEBTRANSPORT_SESSION})


@dataclass(frozen=True, slots=True)
class Capsule:
    """A complete capsule of a type wtframe understands."""

    type: int
    """The capsule type."""

    data: bytes
    """The capsule payload."""


def encode_capsule(capsule_type: int, data: bytes = b"") -> bytes:
    """Encode one capsule.

    Args:
        capsule_type: The capsule type.
        data: The payload.

    Returns:
        The bytes to send inside an HTTP/3 DATA frame on the CONNECT stream.
    """
    return encode_uint_var(capsule_type) + encode_uint_var(len(data)) + data


def encode_close(code: int = 0, reason: str = "") -> bytes:
    """Encode a CLOSE_WEBTRANSPORT_SESSION capsule.

    Args:
        code: The 32-bit application close code.
        reason: The close reason; longer than 1024 UTF-8 bytes is cut at a character boundary.

    Returns:
        The encoded capsule.

    Raises:
        ValueError: If `code` does not fit in 32 bits.
    """
    if not 0 <= code <= 0xFFFFFFFF:
        raise ValueError(f"close codes are 32-bit, not {code}")
    raw = reason.encode("utf-8")
    if len(raw) > MAX_CLOSE_REASON_LENGTH:
        raw = raw[:MAX_CLOSE_REASON_LENGTH].decode("utf-8", "ignore").encode("utf-8")
    return encode_capsule(CLOSE_WEBTRANSPORT_SESSION, code.to_bytes(4, "big") + raw)


def encode_drain() -> bytes:
    """Encode a DRAIN_WEBTRANSPORT_SESSION capsule.

    Returns:
        The encoded capsule.
    """
    return encode_capsule(DRAIN_WEBTRANSPORT_SESSION)


def decode_close(data: bytes) -> tuple[int, str]:
    """Decode the payload of a CLOSE_WEBTRANSPORT_SESSION capsule.

    Args:
        data: The capsule payload.

    Returns:
        The application code and the reason.

    Raises:
        CapsuleError: If the payload is shorter than 4 bytes, the reason is too long or it is
            not valid UTF-8.
    """
    if len(data) < 4:
        raise CapsuleError("CLOSE_WEBTRANSPORT_SESSION capsule shorter than 4 bytes")
    if len(data) - 4 > MAX_CLOSE_REASON_LENGTH:
        raise CapsuleError("CLOSE_WEBTRANSPORT_SESSION reason longer than 1024 bytes")
    try:
        reason = data[4:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CapsuleError("CLOSE_WEBTRANSPORT_SESSION reason is not UTF-8") from exc
    return int.from_bytes(data[:4], "big"), reason


class CapsuleParser:
    """Incremental parser for the capsule stream of one CONNECT stream.

    Feed it the DATA frame payloads as they arrive; it returns every complete capsule of a
    known type. Unknown capsule types are skipped as their bytes arrive, whatever their
    length. Once it has raised, the parser stays failed.

    Args:
        max_size: The largest payload of a known capsule type it accepts.
        types: The capsule types to return; the default is close and drain.
    """

    def __init__(
        self, max_size: int = MAX_CAPSULE_SIZE_DEFAULT, types: frozenset[int] = _KNOWN_TYPES
    ) -> None:
        self.max_size = max_size
        self.types = types
        self._buffer = b""
        self._skip = 0
        self._error: CapsuleError | None = None

    @property
    def buffered(self) -> int:
        """The number of bytes held while waiting for the rest of a capsule."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Capsule]:
        """Parse more bytes of the capsule stream.

        Args:
            data: The next bytes received on the CONNECT stream.

        Returns:
            The complete capsules of known types, in order.

        Raises:
            CapsuleError: If a known capsule is larger than `max_size`, or the parser failed
                before.
        """
        if self._error is not None:
            raise self._error
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        buffer = self._buffer + data if self._buffer else data
        capsules: list[Capsule] = []
        buf = Buffer(data=buffer)
        consumed = 0
        while not buf.eof():
            try:
                capsule_type = buf.pull_uint_var()
                length = buf.pull_uint_var()
            except BufferReadError:
                break
            if capsule_type not in self.types:
                available = len(buffer) - buf.tell()
                if length > available:
                    self._skip = length - available
                    consumed = len(buffer)
                    break
                buf.seek(buf.tell() + length)
                consumed = buf.tell()
                continue
            if length > self.max_size:
                self._error = CapsuleError(
                    f"capsule 0x{capsule_type:x} of {length} bytes exceeds {self.max_size}"
                )
                raise self._error
            if len(buffer) - buf.tell() < length:
                break
            capsules.append(Capsule(type=capsule_type, data=buf.pull_bytes(length)))
            consumed = buf.tell()
        self._buffer = buffer[consumed:]
        return capsules

    def eof(self) -> None:
        """Check that the CONNECT stream did not end in the middle of a capsule.

        Raises:
            CapsuleError: If a capsule is incomplete, or the parser failed before.
        """
        if self._error is not None:
            raise self._error
        if self._buffer or self._skip:
            self._error = CapsuleError("CONNECT stream ended inside a capsule")
            raise self._error

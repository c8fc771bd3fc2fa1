"""Exceptions raised by wtframe.

Every exception wtframe raises derives from [`WTFrameError`][wtframe.WTFrameError]:

    WTFrameError
    ├── Reject                      raised by on_connect to refuse a session
    ├── ConfigurationError          a route, setting or argument that cannot work (ValueError)
    ├── HandshakeError              a client could not open a session (ConnectionError)
    ├── ProtocolError               the peer broke the WebTransport protocol
    │   └── CapsuleError            a malformed capsule on the CONNECT stream
    ├── SessionError                an operation on a session that cannot proceed
    │   ├── SessionClosed           the session has ended
    │   └── DatagramTooLarge        a datagram bigger than the peer can take (ValueError)
    ├── StreamError                 an operation on a stream that cannot proceed
    │   ├── StreamReset             the peer reset the stream while we read it
    │   ├── StreamStopped           the peer asked us to stop sending (STOP_SENDING)
    │   ├── StreamClosed            writing after close() or reset()
    │   └── IncompleteReadError     the stream ended before readexactly() had its bytes (EOFError)
    └── MessageError                a message that cannot be encoded, decoded or framed
        ├── EncodeError             an object the codec cannot encode
        ├── DecodeError             bytes the codec cannot decode or validate
        ├── MessageTooLarge         a message over the configured size limit
        └── TruncatedMessage        a stream ended in the middle of a framed message

Built-in bases (`ValueError`, `EOFError`) are mixed in where a caller would naturally
catch them.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "CapsuleError",
    "ConfigurationError",
    "HandshakeError",
    "DatagramTooLarge",
    "DecodeError",
    "EncodeError",
    "IncompleteReadError",
    "MessageError",
    "MessageTooLarge",
    "ProtocolError",
    "Reject",
    "SessionClosed",
    "SessionError",
    "StreamClosed",
    "StreamError",
    "StreamReset",
    "StreamStopped",
    "TruncatedMessage",
    "WTFrameError",
]


class WTFrameError(Exception):
    """Base class of every exception wtframe raises."""


class Reject(WTFrameError):
    """Raise from `Session.on_connect` to refuse the session with an HTTP status.

    Args:
        status: The HTTP status code of the answer, 400 to 599.
        headers: Extra response headers, as `(name, value)` pairs or a mapping.
        reason: A note for the server log; browsers never see it.

    Raises:
        ConfigurationError: If `status` is not a 4xx or 5xx code.
    """

    def __init__(
        self,
        status: int = 403,
        headers: Iterable[tuple[str, str]] | dict[str, str] | None = None,
        reason: str = "",
    ) -> None:
        if not 400 <= status <= 599:
            raise ConfigurationError(f"Reject needs a 4xx or 5xx status, not {status}")
        items = headers.items() if isinstance(headers, dict) else (headers or ())
        self.status = status
        self.headers: list[tuple[str, str]] = [(k.lower(), v) for k, v in items]
        self.reason = reason
        note = f": {reason}" if reason else ""
        super().__init__(f"session rejected with status {status}{note}")


class ConfigurationError(WTFrameError, ValueError):
    """A route, setting or argument that cannot work."""


class HandshakeError(WTFrameError, ConnectionError):
    """A client could not open a session.

    TLS failed, the certificate hash did not match, the server refused the request, or it
    did not answer in time.

    Attributes:
        status: The HTTP status the server answered with, if it answered.
        headers: The headers of the server's refusal, if it answered.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = list(headers or [])


class ProtocolError(WTFrameError):
    """The peer broke the WebTransport protocol.

    Attributes:
        code: The session close code wtframe uses for this violation.
    """

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class CapsuleError(ProtocolError):
    """A malformed capsule arrived on the CONNECT stream."""


class SessionError(WTFrameError):
    """An operation on a session that cannot proceed."""


class SessionClosed(SessionError):
    """The session has ended; nothing more can be sent or received on it.

    Attributes:
        code: The close code the session ended with.
        reason: The close reason the session ended with.
    """

    def __init__(self, code: int = 0, reason: str = "") -> None:
        note = f": {reason}" if reason else ""
        super().__init__(f"session closed with code {code}{note}")
        self.code = code
        self.reason = reason


class DatagramTooLarge(SessionError, ValueError):
    """A datagram is larger than the peer can take in one QUIC packet.

    Attributes:
        size: The size of the datagram payload that was refused.
        limit: The largest payload the session can send now.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"datagram of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class StreamError(WTFrameError):
    """An operation on a stream that cannot proceed."""


class StreamReset(StreamError):
    """The peer reset the stream (RESET_STREAM), so the rest of its data is lost.

    Attributes:
        code: The peer's WebTransport application error code.
    """

    def __init__(self, code: int) -> None:
        super().__init__(f"stream reset by peer with code {code}")
        self.code = code


class StreamStopped(StreamError):
    """The peer asked us to stop sending on the stream (STOP_SENDING).

    Attributes:
        code: The peer's WebTransport application error code.
    """

    def __init__(self, code: int) -> None:
        super().__init__(f"peer stopped the stream with code {code}")
        self.code = code


class StreamClosed(StreamError):
    """Data was written after the stream was closed or reset on our side."""


class IncompleteReadError(StreamError, EOFError):
    """The stream ended before `readexactly()` received the bytes it asked for.

    Attributes:
        partial: The bytes that did arrive.
        expected: How many bytes were asked for.
    """

    def __init__(self, partial: bytes, expected: int) -> None:
        super().__init__(f"{len(partial)} bytes read of {expected} expected")
        self.partial = partial
        self.expected = expected


class MessageError(WTFrameError, ValueError):
    """A message that cannot be encoded, decoded or framed."""


class EncodeError(MessageError):
    """An object the codec cannot encode."""


class DecodeError(MessageError):
    """Bytes the codec cannot decode or validate."""


class MessageTooLarge(MessageError):
    """A message is over the configured size limit.

    Attributes:
        size: The announced or actual size of the message.
        limit: The configured limit.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class TruncatedMessage(MessageError):
    """A stream ended in the middle of a framed message."""

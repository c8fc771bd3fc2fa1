"""Numbers on the wire: session close codes, stream error codes and their HTTP/3 mapping.

WebTransport applications choose their own 32-bit codes. wtframe uses a few itself, and
picks them from the range WebSocket developers already know (1000-1015), so an application
that uses small codes (0-999) or its own range never collides with them.

Stream error codes travel inside QUIC RESET_STREAM and STOP_SENDING frames, in the HTTP/3
error space. [`to_http3_error`][wtframe.codes.to_http3_error] and
[`from_http3_error`][wtframe.codes.from_http3_error] convert between the two, as the
WebTransport over HTTP/3 draft specifies.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "HTTP3_ERROR_FIRST",
    "HTTP3_ERROR_LAST",
    "CloseCode",
    "StreamErrorCode",
    "WTErrorCode",
    "from_http3_error",
    "to_http3_error",
]

HTTP3_ERROR_FIRST = 0x52E4A40FA8DB
"""The HTTP/3 error code that carries WebTransport application code 0."""

HTTP3_ERROR_LAST = 0x52E5AC983162
"""The HTTP/3 error code that carries WebTransport application code 0xFFFFFFFF."""

_MAX_CODE = 0xFFFFFFFF


class CloseCode(IntEnum):
    """Session close codes that wtframe itself uses.

    They reach `Session.on_close` and the browser's `WebTransport.closed` promise.
    """

    NORMAL = 0
    """The session ended normally, or the peer closed it without a code."""

    GOING_AWAY = 1001
    """The server is shutting down; sessions are closed after the drain grace period."""

    PROTOCOL_ERROR = 1002
    """The peer broke the protocol on the CONNECT stream, e.g. a malformed capsule."""

    ABNORMAL = 1006
    """The QUIC connection died without a close capsule. Never sent on the wire."""

    POLICY_VIOLATION = 1008
    """The peer broke a limit or a policy of the server."""

    MESSAGE_TOO_BIG = 1009
    """A message or capsule over the configured size limit."""

    INTERNAL_ERROR = 1011
    """A session hook raised an exception; the traceback is in the server log."""

    TRY_AGAIN_LATER = 1013
    """The server is overloaded."""


class StreamErrorCode(IntEnum):
    """Stream reset and stop-sending codes that wtframe itself uses."""

    NO_ERROR = 0
    """The stream was abandoned without an error, e.g. a handler returned without reading."""

    SESSION_GONE = 1001
    """The session ended while the stream was still open."""

    INVALID_MESSAGE = 1007
    """A message on the stream could not be decoded or validated."""

    BUFFER_FULL = 1008
    """The peer sent more than the server buffers unread (`Limits.max_stream_buffer` or
    `Limits.max_session_buffer`): the stream was stopped."""

    MESSAGE_TOO_BIG = 1009
    """A message on the stream is over the configured size limit."""

    INTERNAL_ERROR = 1011
    """The stream handler raised an exception."""

    TOO_MANY_STREAMS = 1013
    """The session already had as many peer streams as the server allows
    (`Limits.max_streams`, or `Limits.max_pending_streams` before it was accepted): the new
    stream was refused. Try again once a stream has finished."""


class WTErrorCode(IntEnum):
    """HTTP/3 error codes defined by WebTransport over HTTP/3."""

    SESSION_GONE = 0x170D7B68
    """WT_SESSION_GONE: the stream's session has ended, so the stream is reset too."""

    BUFFERED_STREAM_REJECTED = 0x3994BD84
    """WT_BUFFERED_STREAM_REJECTED: a stream arrived before its session and was not kept."""

    FLOW_CONTROL_ERROR = 0x045D4487
    """WT_FLOW_CONTROL_ERROR: the peer went beyond a WebTransport flow-control limit."""

    REQUIREMENTS_NOT_MET = 0x212C0D48
    """WT_REQUIREMENTS_NOT_MET: the peer lacks a setting or feature WebTransport needs."""


def to_http3_error(code: int) -> int:
    """Map a WebTransport application error code to the HTTP/3 error code that carries it.

    Args:
        code: The application code, 0 to 0xFFFFFFFF.

    Returns:
        The code to put in a QUIC RESET_STREAM or STOP_SENDING frame.

    Raises:
        ValueError: If `code` does not fit in 32 bits.
    """
    if not 0 <= code <= _MAX_CODE:
        raise ValueError(f"WebTransport error codes are 32-bit, not {code}")
    return HTTP3_ERROR_FIRST + code + code // 0x1E


def from_http3_error(error: int) -> int | None:
    """Map an HTTP/3 error code back to the WebTransport application code it carries.

    Args:
        error: The code from a QUIC RESET_STREAM or STOP_SENDING frame.

    Returns:
        The application code, or `None` if `error` carries none (an HTTP/3 code such as
        H3_NO_ERROR, or one of the reserved GREASE values inside the range).
    """
    if not HTTP3_ERROR_FIRST <= error <= HTTP3_ERROR_LAST or (error - 0x21) % 0x1F == 0:
        return None
    shifted = error - HTTP3_ERROR_FIRST
    return shifted - shifted // 0x1F

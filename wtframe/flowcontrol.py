"""WebTransport flow control (draft-15 and later): the accounting, without I/O.

A draft-15 session limits, in each direction, how many streams of each kind the peer may
open over the session's life and how many bytes it may send on all of the session's
streams together (stream headers excluded). Initial limits travel in HTTP/3 SETTINGS;
larger ones in capsules on the CONNECT stream:

* WT_MAX_DATA (0x190b4d3d): the peer may send this many bytes in total;
* WT_MAX_STREAMS (0x190b4d3f bidirectional, 0x190b4d40 unidirectional): the peer may open
  this many streams in total;
* WT_DATA_BLOCKED (0x190b4d41): "I have more to send than your limit allows";
* WT_STREAMS_BLOCKED (0x190b4d43, 0x190b4d44): "I want to open a stream and may not".

[`SendCredit`][wtframe.flowcontrol.SendCredit] tracks what the peer allows us;
[`ReceiveWindow`][wtframe.flowcontrol.ReceiveWindow] what we allow the peer, and when to
allow more: data credit follows what the application has read, stream credit follows the
streams that are finished. A peer that goes beyond what it was allowed raises
[`FlowControlError`][wtframe.flowcontrol.FlowControlError]; the session then ends with the
HTTP/3 error WT_FLOW_CONTROL_ERROR (0x045d4487).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aioquic._buffer import Buffer, BufferReadError

from .capsules import encode_capsule
from .codes import CloseCode
from .exceptions import CapsuleError, ProtocolError, SessionError

__all__ = [
    "FLOW_CONTROL_CAPSULES",
    "MAX_STREAMS_LIMIT",
    "WT_DATA_BLOCKED",
    "WT_MAX_DATA",
    "WT_MAX_STREAMS_BIDI",
    "WT_MAX_STREAMS_UNI",
    "WT_MAX_STREAM_DATA",
    "WT_STREAMS_BLOCKED_BIDI",
    "WT_STREAMS_BLOCKED_UNI",
    "WT_STREAM_DATA_BLOCKED",
    "FlowControlError",
    "FlowLimits",
    "ReceiveWindow",
    "SendCredit",
    "StreamsBlocked",
    "decode_value",
    "encode_value",
]

WT_MAX_DATA = 0x190B4D3D
"""Capsule type: the total bytes the peer may send on the session's streams."""

WT_MAX_STREAM_DATA = 0x190B4D3E
"""Capsule type of WebTransport over HTTP/2; forbidden over HTTP/3 (QUIC limits streams)."""

WT_MAX_STREAMS_BIDI = 0x190B4D3F
"""Capsule type: the total bidirectional streams the peer may open."""

WT_MAX_STREAMS_UNI = 0x190B4D40
"""Capsule type: the total unidirectional streams the peer may open."""

WT_DATA_BLOCKED = 0x190B4D41
"""Capsule type: the sender is held back by WT_MAX_DATA."""

WT_STREAM_DATA_BLOCKED = 0x190B4D42
"""Capsule type of WebTransport over HTTP/2; forbidden over HTTP/3."""

WT_STREAMS_BLOCKED_BIDI = 0x190B4D43
"""Capsule type: the sender may not open another bidirectional stream."""

WT_STREAMS_BLOCKED_UNI = 0x190B4D44
"""Capsule type: the sender may not open another unidirectional stream."""

FLOW_CONTROL_CAPSULES = frozenset(
    {
        WT_MAX_DATA,
        WT_MAX_STREAM_DATA,
        WT_MAX_STREAMS_BIDI,
        WT_MAX_STREAMS_UNI,
        WT_DATA_BLOCKED,
        WT_STREAM_DATA_BLOCKED,
        WT_STREAMS_BLOCKED_BIDI,
        WT_STREAMS_BLOCKED_UNI,
    }
)
"""Every flow-control capsule type, the two forbidden over HTTP/3 included."""

MAX_STREAMS_LIMIT = 1 << 60
"""The largest stream count a WT_MAX_STREAMS capsule may carry."""


class FlowControlError(ProtocolError):
    """The peer broke a WebTransport flow-control rule (WT_FLOW_CONTROL_ERROR)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, CloseCode.PROTOCOL_ERROR)


class StreamsBlocked(SessionError):
    """The peer's stream limit forbids opening another stream now.

    Attributes:
        unidirectional: Which kind of stream was refused.
    """

    def __init__(self, unidirectional: bool) -> None:
        kind = "unidirectional" if unidirectional else "bidirectional"
        super().__init__(f"the peer allows no more {kind} streams for now")
        self.unidirectional = unidirectional


@dataclass(frozen=True, slots=True)
class FlowLimits:
    """How much a peer may have outstanding on one session: the windows wtframe grants.

    They are advertised in SETTINGS as the initial limits, and every later grant keeps the
    peer this far ahead of what the application has consumed.
    """

    max_data: int = 1 << 20
    """Bytes the peer may send beyond what the application has read."""

    max_streams_bidi: int = 100
    """Bidirectional streams the peer may open beyond those that are finished."""

    max_streams_uni: int = 100
    """Unidirectional streams the peer may open beyond those that are finished."""


def encode_value(capsule_type: int, value: int) -> bytes:
    """Encode a flow-control capsule, whose payload is one variable-length integer.

    Args:
        capsule_type: One of the flow-control capsule types.
        value: The limit it carries.

    Returns:
        The encoded capsule.
    """
    buf = Buffer(capacity=8)
    buf.push_uint_var(value)
    return encode_capsule(capsule_type, buf.data)


def decode_value(data: bytes) -> int:
    """Decode the payload of a flow-control capsule: exactly one variable-length integer.

    Args:
        data: The capsule payload.

    Returns:
        The value.

    Raises:
        CapsuleError: If the payload is not exactly one variable-length integer.
    """
    buf = Buffer(data=data)
    try:
        value = buf.pull_uint_var()
    except BufferReadError as exc:
        raise CapsuleError("flow-control capsule without a value") from exc
    if not buf.eof():
        raise CapsuleError("flow-control capsule with trailing bytes")
    return value


@dataclass(slots=True)
class SendCredit:
    """What the peer allows us to send on one session.

    Args:
        max_data: The peer's current data limit.
        max_streams_bidi: The peer's current bidirectional stream limit.
        max_streams_uni: The peer's current unidirectional stream limit.
    """

    max_data: int = 0
    max_streams_bidi: int = 0
    max_streams_uni: int = 0
    sent: int = 0
    """Bytes sent so far on the session's streams, stream headers excluded."""
    opened_bidi: int = 0
    """Bidirectional streams opened so far."""
    opened_uni: int = 0
    """Unidirectional streams opened so far."""
    _data_blocked_at: int = -1
    _streams_blocked_at: dict[bool, int] = field(default_factory=lambda: {False: -1, True: -1})

    @property
    def available(self) -> int:
        """Bytes that may be sent now."""
        return max(0, self.max_data - self.sent)

    def take(self, size: int) -> int:
        """Spend credit for up to `size` bytes.

        Args:
            size: The bytes the caller would like to send.

        Returns:
            How many of them may be sent now (they are counted as sent).
        """
        granted = min(size, self.available)
        self.sent += granted
        return granted

    def can_open(self, unidirectional: bool) -> bool:
        """Return whether the peer's limit allows one more stream of this kind.

        Args:
            unidirectional: The kind of stream.

        Returns:
            Whether a stream may be opened now.
        """
        if unidirectional:
            return self.opened_uni < self.max_streams_uni
        return self.opened_bidi < self.max_streams_bidi

    def open(self, unidirectional: bool) -> None:
        """Count a newly opened stream.

        Args:
            unidirectional: The kind of stream.

        Raises:
            StreamsBlocked: If the peer's limit does not allow it.
        """
        if not self.can_open(unidirectional):
            raise StreamsBlocked(unidirectional)
        if unidirectional:
            self.opened_uni += 1
        else:
            self.opened_bidi += 1

    def update_max_data(self, value: int) -> bool:
        """Apply a WT_MAX_DATA from the peer; a smaller value than before is ignored.

        Args:
            value: The new limit.

        Returns:
            Whether the limit grew.
        """
        if value <= self.max_data:
            return False
        self.max_data = value
        return True

    def update_max_streams(self, unidirectional: bool, value: int) -> bool:
        """Apply a WT_MAX_STREAMS from the peer; a smaller value than before is ignored.

        Args:
            unidirectional: Which limit the capsule carries.
            value: The new limit.

        Returns:
            Whether the limit grew.

        Raises:
            FlowControlError: If the value exceeds 2^60.
        """
        if value > MAX_STREAMS_LIMIT:
            raise FlowControlError(f"WT_MAX_STREAMS of {value} exceeds 2^60")
        current = self.max_streams_uni if unidirectional else self.max_streams_bidi
        if value <= current:
            return False
        if unidirectional:
            self.max_streams_uni = value
        else:
            self.max_streams_bidi = value
        return True

    def data_blocked(self) -> int | None:
        """Return the limit to report in WT_DATA_BLOCKED, once per limit value.

        Returns:
            The current data limit if no credit is left and it was not reported yet.
        """
        if self.available or self._data_blocked_at == self.max_data:
            return None
        self._data_blocked_at = self.max_data
        return self.max_data

    def streams_blocked(self, unidirectional: bool) -> int | None:
        """Return the limit to report in WT_STREAMS_BLOCKED, once per limit value.

        Args:
            unidirectional: The kind of stream that could not be opened.

        Returns:
            The current stream limit if it is reached and was not reported yet.
        """
        if self.can_open(unidirectional):
            return None
        limit = self.max_streams_uni if unidirectional else self.max_streams_bidi
        if self._streams_blocked_at[unidirectional] == limit:
            return None
        self._streams_blocked_at[unidirectional] = limit
        return limit


class ReceiveWindow:
    """What we allow the peer to send on one session, and when to allow more.

    Args:
        limits: The windows: the initial limits, and how far ahead of consumption later
            grants keep the peer.
    """

    def __init__(self, limits: FlowLimits) -> None:
        self.limits = limits
        self.max_data = limits.max_data
        """The data limit the peer knows."""
        self.received = 0
        """Bytes the peer has sent (or, after a reset, is accounted to have sent)."""
        self.consumed = 0
        """Bytes the application has read or that were discarded."""
        self.max_streams = {False: limits.max_streams_bidi, True: limits.max_streams_uni}
        """The stream limits the peer knows, by `unidirectional`."""
        self.opened = {False: 0, True: 0}
        """Streams the peer has opened, by `unidirectional`."""
        self.closed = {False: 0, True: 0}
        """Streams of the peer's that are finished, by `unidirectional`."""

    def on_data(self, size: int) -> None:
        """Count bytes the peer sent.

        Args:
            size: The number of bytes.

        Raises:
            FlowControlError: If the peer went beyond its data limit.
        """
        self.received += size
        if self.received > self.max_data:
            raise FlowControlError(
                f"peer sent {self.received} bytes, beyond its limit of {self.max_data}"
            )

    def on_consumed(self, size: int) -> int | None:
        """Count bytes the application read (or that were dropped) and grant more if due.

        Args:
            size: The number of bytes.

        Returns:
            A new data limit to send in WT_MAX_DATA, or `None` if none is due.
        """
        self.consumed = min(self.received, self.consumed + size)
        return self._grant_data(force=False)

    def on_data_blocked(self) -> int | None:
        """The peer says it is blocked: grant whatever consumption allows.

        Returns:
            A new data limit to send in WT_MAX_DATA, or `None` if there is nothing to grant.
        """
        return self._grant_data(force=True)

    def on_stream_opened(self, unidirectional: bool) -> None:
        """Count a stream the peer opened.

        Args:
            unidirectional: The kind of stream.

        Raises:
            FlowControlError: If the peer went beyond its stream limit.
        """
        self.opened[unidirectional] += 1
        if self.opened[unidirectional] > self.max_streams[unidirectional]:
            kind = "unidirectional" if unidirectional else "bidirectional"
            raise FlowControlError(
                f"peer opened {self.opened[unidirectional]} {kind} streams, beyond its limit"
                f" of {self.max_streams[unidirectional]}"
            )

    def on_stream_closed(self, unidirectional: bool) -> int | None:
        """Count a finished stream of the peer's and grant more streams if due.

        Args:
            unidirectional: The kind of stream.

        Returns:
            A new stream limit to send in WT_MAX_STREAMS, or `None` if none is due.
        """
        self.closed[unidirectional] += 1
        return self._grant_streams(unidirectional, force=False)

    def on_streams_blocked(self, unidirectional: bool) -> int | None:
        """The peer says it may not open a stream: grant whatever finished streams allow.

        Args:
            unidirectional: The kind of stream.

        Returns:
            A new stream limit to send in WT_MAX_STREAMS, or `None` if there is nothing to
            grant.
        """
        return self._grant_streams(unidirectional, force=True)

    def _grant_data(self, force: bool) -> int | None:
        window = self.limits.max_data
        target = self.consumed + window
        step = target - self.max_data
        if step <= 0 or (not force and step < max(1, window // 2)):
            return None
        self.max_data = target
        return target

    def _grant_streams(self, unidirectional: bool, force: bool) -> int | None:
        window = self.limits.max_streams_uni if unidirectional else self.limits.max_streams_bidi
        target = min(MAX_STREAMS_LIMIT, self.closed[unidirectional] + window)
        step = target - self.max_streams[unidirectional]
        if step <= 0 or (not force and step < max(1, window // 2)):
            return None
        self.max_streams[unidirectional] = target
        return target

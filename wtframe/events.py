"""Events that the sans-I/O core emits, one per thing that happened to a session.

[`WebTransportProtocol`][wtframe.protocol.WebTransportProtocol] receives the QUIC and
HTTP/3 events aioquic raises and turns them into these WebTransport events, each tied to
its session. They are plain values, compared by equality (so tests can write the events
they expect), and meant to be read, not changed: they are not frozen only because building
a frozen dataclass costs twice as much, once per packet. Do not subclass them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

__all__ = [
    "DatagramReceived",
    "DrainRequested",
    "Event",
    "SessionEnded",
    "SessionEstablished",
    "SessionRefused",
    "SessionRequested",
    "SettingsReceived",
    "StopSendingReceived",
    "StreamDataReceived",
    "StreamOpened",
    "StreamResetReceived",
]


class Event:
    """Base class of WebTransport events."""

    __slots__ = ()


@final
@dataclass(slots=True, kw_only=True)
class SettingsReceived(Event):
    """The peer's HTTP/3 SETTINGS arrived."""

    settings: dict[int, int]
    """The peer's settings, by identifier."""


@final
@dataclass(slots=True, kw_only=True)
class SessionRequested(Event):
    """A client asked for a WebTransport session (server side). Answer it with accept or reject."""

    session_id: int
    """The session id: the stream id of the CONNECT request."""

    headers: list[tuple[bytes, bytes]]
    """The request headers, pseudo-headers included."""


@final
@dataclass(slots=True, kw_only=True)
class SessionEstablished(Event):
    """The server accepted our session request (client side)."""

    session_id: int
    """The session id."""

    headers: list[tuple[bytes, bytes]]
    """The response headers."""


@final
@dataclass(slots=True, kw_only=True)
class SessionRefused(Event):
    """The server refused our session request (client side)."""

    session_id: int
    """The session id."""

    status: int
    """The HTTP status of the answer."""

    headers: list[tuple[bytes, bytes]]
    """The response headers."""


@final
@dataclass(slots=True, kw_only=True)
class DatagramReceived(Event):
    """A datagram arrived for a session."""

    session_id: int
    """The session id."""

    data: bytes
    """The datagram payload."""


@final
@dataclass(slots=True, kw_only=True)
class StreamOpened(Event):
    """The peer opened a WebTransport stream in a session."""

    session_id: int
    """The session id."""

    stream_id: int
    """The QUIC stream id."""

    is_unidirectional: bool
    """Whether the stream only carries data from the peer to us."""


@final
@dataclass(slots=True, kw_only=True)
class StreamDataReceived(Event):
    """Data (and possibly the end) of a WebTransport stream arrived."""

    session_id: int
    """The session id."""

    stream_id: int
    """The QUIC stream id."""

    data: bytes
    """The bytes that arrived; may be empty when only the end arrived."""

    end_stream: bool
    """Whether the peer ended the stream (FIN) after these bytes."""


@final
@dataclass(slots=True, kw_only=True)
class StreamResetReceived(Event):
    """The peer reset a WebTransport stream: its remaining data will not arrive."""

    session_id: int
    """The session id."""

    stream_id: int
    """The QUIC stream id."""

    code: int | None
    """The peer's WebTransport application code, or `None` if the HTTP/3 code carries none."""


@final
@dataclass(slots=True, kw_only=True)
class StopSendingReceived(Event):
    """The peer asked us to stop sending on a WebTransport stream."""

    session_id: int
    """The session id."""

    stream_id: int
    """The QUIC stream id."""

    code: int | None
    """The peer's WebTransport application code, or `None` if the HTTP/3 code carries none."""


@final
@dataclass(slots=True, kw_only=True)
class DrainRequested(Event):
    """The peer sent DRAIN_WEBTRANSPORT_SESSION: finish up and start no new work."""

    session_id: int
    """The session id."""


@final
@dataclass(slots=True, kw_only=True)
class SessionEnded(Event):
    """A session ended, for whatever reason. Its streams have been reset."""

    session_id: int
    """The session id."""

    code: int
    """The close code: the peer's, ours, or one of [`CloseCode`][wtframe.CloseCode]."""

    reason: str
    """The close reason."""

    by_peer: bool
    """Whether the peer ended the session (capsule, FIN, reset or connection loss)."""

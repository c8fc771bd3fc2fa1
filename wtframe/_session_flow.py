"""The flow control of one session: what it may send, what it allows, and what waits.

[`SessionFlow`][wtframe._session_flow.SessionFlow] joins the two directions of
`wtframe.flowcontrol` for one draft-15 session: the peer's credit (`SendCredit`), our window
(`ReceiveWindow`), the bytes held back for want of credit, and the bytes handed to the
application that it has not consumed yet. It performs no I/O: its methods return the
capsules to queue on the CONNECT stream, the stream bytes that may leave now, or raise
`FlowControlError` when the peer broke a limit.
"""

from __future__ import annotations

from .dialects import Dialect, flow_control_offered, peer_limits
from .exceptions import CapsuleError
from .flowcontrol import (
    WT_DATA_BLOCKED,
    WT_MAX_DATA,
    WT_MAX_STREAMS_BIDI,
    WT_MAX_STREAMS_UNI,
    WT_STREAMS_BLOCKED_BIDI,
    WT_STREAMS_BLOCKED_UNI,
    FlowLimits,
    ReceiveWindow,
    SendCredit,
    decode_value,
    encode_value,
)

__all__ = ["SessionFlow"]

_ALLOWED = frozenset(
    {
        WT_MAX_DATA,
        WT_MAX_STREAMS_BIDI,
        WT_MAX_STREAMS_UNI,
        WT_DATA_BLOCKED,
        WT_STREAMS_BLOCKED_BIDI,
        WT_STREAMS_BLOCKED_UNI,
    }
)
"""The flow-control capsules allowed over HTTP/3."""


class SessionFlow:
    """The flow-control state of a session that negotiated it.

    Args:
        send: What the peer allows us.
        receive: What we allow the peer.
    """

    __slots__ = ("held", "held_fin", "receive", "send", "unread")

    def __init__(self, send: SendCredit, receive: ReceiveWindow) -> None:
        self.send = send
        self.receive = receive
        self.held: dict[int, bytearray] = {}
        """Stream id -> our bytes waiting for the peer's data credit, oldest stream first."""
        self.held_fin: set[int] = set()
        """The streams whose FIN waits behind their held bytes."""
        self.unread: dict[int, int] = {}
        """Stream id -> the peer's bytes handed to the application and not consumed yet."""

    @classmethod
    def negotiate(
        cls, dialect: Dialect, settings: dict[int, int] | None, limits: FlowLimits
    ) -> SessionFlow | None:
        """Return the flow control of a session, if both its dialect and the peer allow it.

        Args:
            dialect: The session's dialect.
            settings: The peer's HTTP/3 SETTINGS, `None` until they arrive.
            limits: The windows granted to the peer.

        Returns:
            The new state, or `None` if the session runs without flow control (for now).
        """
        if not dialect.has_flow_control or settings is None or not flow_control_offered(settings):
            return None
        peer = peer_limits(settings)
        return cls(
            SendCredit(
                max_data=peer.max_data,
                max_streams_bidi=peer.max_streams_bidi,
                max_streams_uni=peer.max_streams_uni,
            ),
            ReceiveWindow(limits),
        )

    # -- what the peer sends -----------------------------------------------------------

    def grants(self) -> list[bytes]:
        """Return the capsules for the limits that grew beyond the initial ones.

        Returns:
            WT_MAX_DATA and WT_MAX_STREAMS capsules, for what was granted before any
            capsule could be sent.
        """
        receive, initial = self.receive, self.receive.limits
        capsules = []
        if receive.max_data != initial.max_data:
            capsules.append(encode_value(WT_MAX_DATA, receive.max_data))
        for unidirectional, kind, limit in (
            (False, WT_MAX_STREAMS_BIDI, initial.max_streams_bidi),
            (True, WT_MAX_STREAMS_UNI, initial.max_streams_uni),
        ):
            if receive.max_streams[unidirectional] != limit:
                capsules.append(encode_value(kind, receive.max_streams[unidirectional]))
        return capsules

    def on_stream_opened(self, unidirectional: bool) -> None:
        """Count a stream the peer opened.

        Args:
            unidirectional: The kind of stream.

        Raises:
            FlowControlError: If the peer went beyond its stream limit.
        """
        self.receive.on_stream_opened(unidirectional)

    def on_stream_closed(self, unidirectional: bool) -> bytes | None:
        """Count a finished stream of the peer's.

        Args:
            unidirectional: The kind of stream.

        Returns:
            A WT_MAX_STREAMS capsule to send, if a grant is due.
        """
        return _max_streams(unidirectional, self.receive.on_stream_closed(unidirectional))

    def on_data(self, stream_id: int, size: int) -> None:
        """Count stream bytes from the peer that the application will be handed.

        Args:
            stream_id: The stream they arrived on.
            size: The number of bytes.

        Raises:
            FlowControlError: If the peer went beyond its data limit.
        """
        self.receive.on_data(size)
        self.unread[stream_id] = self.unread.get(stream_id, 0) + size

    def on_dropped(self, size: int) -> bytes | None:
        """Count stream bytes from the peer that will never be read.

        Args:
            size: The number of bytes.

        Returns:
            A WT_MAX_DATA capsule to send, if a grant is due.

        Raises:
            FlowControlError: If the peer went beyond its data limit.
        """
        self.receive.on_data(size)
        return self._consumed(size)

    def on_read(self, stream_id: int, size: int) -> bytes | None:
        """Count bytes of a stream that the application read (or dropped).

        Args:
            stream_id: The stream.
            size: The number of bytes; no more than are unread count.

        Returns:
            A WT_MAX_DATA capsule to send, if a grant is due.
        """
        outstanding = self.unread.get(stream_id)
        if outstanding is None:
            return None
        size = min(size, outstanding)
        if size == outstanding:
            del self.unread[stream_id]
        else:
            self.unread[stream_id] = outstanding - size
        return self._consumed(size) if size else None

    def _consumed(self, size: int) -> bytes | None:
        grant = self.receive.on_consumed(size)
        return None if grant is None else encode_value(WT_MAX_DATA, grant)

    def on_capsule(self, capsule_type: int, data: bytes) -> bytes | None:
        """Act on a flow-control capsule from the peer.

        After a WT_MAX_DATA, `can_flush` tells whether held bytes may leave.

        Args:
            capsule_type: One of the flow-control capsule types.
            data: The capsule payload.

        Returns:
            A capsule to send in reply, if a grant is due.

        Raises:
            CapsuleError: If the capsule is forbidden over HTTP/3 or malformed.
            FlowControlError: If it carries an impossible stream limit.
        """
        if capsule_type not in _ALLOWED:
            raise CapsuleError(f"capsule 0x{capsule_type:x} is not allowed over HTTP/3")
        value = decode_value(data)
        if capsule_type == WT_MAX_DATA:
            self.send.update_max_data(value)
        elif capsule_type in (WT_MAX_STREAMS_BIDI, WT_MAX_STREAMS_UNI):
            self.send.update_max_streams(capsule_type == WT_MAX_STREAMS_UNI, value)
        elif capsule_type == WT_DATA_BLOCKED:
            grant = self.receive.on_data_blocked()
            if grant is not None:
                return encode_value(WT_MAX_DATA, grant)
        else:
            unidirectional = capsule_type == WT_STREAMS_BLOCKED_UNI
            return _max_streams(unidirectional, self.receive.on_streams_blocked(unidirectional))
        return None

    # -- what we send ------------------------------------------------------------------

    def can_open(self, unidirectional: bool) -> bool:
        """Return whether the peer's limit allows one more stream of this kind.

        Args:
            unidirectional: The kind of stream.

        Returns:
            Whether a stream may be opened now.
        """
        return self.send.can_open(unidirectional)

    def open_stream(self, unidirectional: bool) -> None:
        """Count a stream we open.

        Args:
            unidirectional: The kind of stream.

        Raises:
            StreamsBlocked: If the peer's limit does not allow it.
        """
        self.send.open(unidirectional)

    def streams_blocked(self, unidirectional: bool) -> bytes | None:
        """Return the WT_STREAMS_BLOCKED capsule to send, once per limit value.

        Args:
            unidirectional: The kind of stream that could not be opened.

        Returns:
            The capsule, or `None` if the limit is not reached or was reported already.
        """
        limit = self.send.streams_blocked(unidirectional)
        if limit is None:
            return None
        kind = WT_STREAMS_BLOCKED_UNI if unidirectional else WT_STREAMS_BLOCKED_BIDI
        return encode_value(kind, limit)

    def data_blocked(self) -> bytes | None:
        """Return the WT_DATA_BLOCKED capsule to send, once per limit value.

        Returns:
            The capsule, or `None` if credit is left or the limit was reported already.
        """
        limit = self.send.data_blocked()
        return None if limit is None else encode_value(WT_DATA_BLOCKED, limit)

    def admit(self, stream_id: int, data: bytes, end_stream: bool) -> tuple[bytes, bool]:
        """Spend credit on bytes to send; hold back what it does not cover, in order.

        Args:
            stream_id: The stream.
            data: The bytes.
            end_stream: Whether the stream ends after them.

        Returns:
            The bytes that may leave now, and whether that is all of them (the FIN then
            leaves with them; otherwise it is held too).
        """
        held = self.held.get(stream_id)
        if held is not None:
            held += data
            allowed = 0
        else:
            allowed = self.send.take(len(data))
            if allowed == len(data):
                return data, True
            self.held[stream_id] = bytearray(data[allowed:])
        if end_stream:
            self.held_fin.add(stream_id)
        return data[:allowed], False

    @property
    def can_flush(self) -> bool:
        """Whether held bytes wait and credit is available for them."""
        return bool(self.held) and self.send.available > 0

    def flush(self) -> list[tuple[int, bytes, bool, bool]]:
        """Spend new credit on held bytes, oldest stream first.

        Returns:
            What may leave now, in order: for each stream, its id, the bytes, whether
            its FIN leaves with them, and whether nothing of it is held any more.
        """
        out = []
        for stream_id, held in list(self.held.items()):
            allowed = self.send.take(len(held))
            if not allowed:
                break
            chunk = bytes(held[:allowed])
            del held[:allowed]
            if held:
                out.append((stream_id, chunk, False, False))
                break
            del self.held[stream_id]
            fin = stream_id in self.held_fin
            self.held_fin.discard(stream_id)
            out.append((stream_id, chunk, fin, True))
        return out

    def held_size(self, stream_id: int) -> int:
        """Return how many bytes of a stream wait for credit.

        Args:
            stream_id: The stream.

        Returns:
            The number of bytes held.
        """
        held = self.held.get(stream_id)
        return 0 if held is None else len(held)

    def drop_held(self, stream_id: int) -> None:
        """Forget what a stream held: its sending side is gone.

        Args:
            stream_id: The stream.
        """
        self.held.pop(stream_id, None)
        self.held_fin.discard(stream_id)


def _max_streams(unidirectional: bool, grant: int | None) -> bytes | None:
    """The WT_MAX_STREAMS capsule for a stream grant of one kind, if there is one."""
    if grant is None:
        return None
    return encode_value(WT_MAX_STREAMS_UNI if unidirectional else WT_MAX_STREAMS_BIDI, grant)

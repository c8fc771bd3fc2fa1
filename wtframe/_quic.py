"""QUIC with reliable resets: aioquic's `QuicConnection` plus RESET_STREAM_AT.

WebTransport over HTTP/3 (draft-15 and later) relies on the QUIC extension "reliable stream
reset" (draft-ietf-quic-reliable-stream-reset): a RESET_STREAM_AT frame (type 0x24) resets
a stream but promises that its first *reliable size* bytes are still delivered. A
WebTransport stream starts with a header naming its session, so resetting it with a
reliable size covering that header lets the peer tie the reset to the session.

[`QuicConnection`][wtframe._quic.QuicConnection] adds to aioquic's connection:

* the `reset_stream_at` transport parameter (0x1d, and the older draft value), sent always;
  [`peer_supports_reset_stream_at`][wtframe._quic.QuicConnection.peer_supports_reset_stream_at]
  says whether the peer sent it;
* receipt of RESET_STREAM_AT: the bytes below the reliable size reach the application, then
  a [`ReliableStreamReset`][wtframe._quic.ReliableStreamReset] event (a `StreamReset`);
* [`reset_stream_at()`][wtframe._quic.QuicConnection.reset_stream_at]: reset a stream while
  its first bytes keep being (re)transmitted until acknowledged.

aioquic has no public hook for any of this: the subclass overrides private methods and
entries of the private frame-handler table. `tests/test_reset_stream_at.py` checks that
each of them still exists with the shape relied upon, so an aioquic upgrade that moves
them fails loudly there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aioquic._buffer import Buffer, BufferReadError
from aioquic.buffer import encode_uint_var
from aioquic.quic import events
from aioquic.quic.connection import (
    EPOCHS,
    RESET_STREAM_FRAME_CAPACITY,
    QuicConnectionError,
    QuicReceiveContext,
)
from aioquic.quic.connection import QuicConnection as _AioquicConnection
from aioquic.quic.packet import QuicErrorCode
from aioquic.quic.packet_builder import QuicDeliveryState, QuicPacketBuilder
from aioquic.quic.stream import QuicStream, QuicStreamSender

__all__ = [
    "RESET_STREAM_AT_FRAME",
    "TP_RESET_STREAM_AT",
    "TP_RESET_STREAM_AT_DRAFT",
    "QuicConnection",
    "ReliableStreamReset",
    "upgrade",
]

RESET_STREAM_AT_FRAME = 0x24
"""The RESET_STREAM_AT frame type."""

TP_RESET_STREAM_AT = 0x1D
"""The `reset_stream_at` transport parameter."""

TP_RESET_STREAM_AT_DRAFT = 0x17F7586D2CB571
"""The `reset_stream_at` transport parameter as earlier drafts of the extension number it."""

_TRANSPORT_PARAMETERS = frozenset({TP_RESET_STREAM_AT, TP_RESET_STREAM_AT_DRAFT})
_ADVERTISED = b"".join(
    encode_uint_var(tp) + encode_uint_var(0) for tp in sorted(_TRANSPORT_PARAMETERS)
)
_RESET_STREAM_AT_CAPACITY = RESET_STREAM_FRAME_CAPACITY + 8
_FAR = 1 << 62  # beyond any stream offset


@dataclass
class ReliableStreamReset(events.StreamReset):
    """The peer reset a stream with RESET_STREAM_AT; the reliable bytes were delivered first."""

    reliable_size: int = 0
    "How many bytes from the start of the stream the peer guaranteed to deliver."


class _ReliableResetSender(QuicStreamSender):
    """A stream's sending side after RESET_STREAM_AT: only the reliable prefix is still sent.

    Instances are made by switching the class of aioquic's own sender, so the fields below are
    set by `_make_reliable()` rather than by a constructor.
    """

    reset_at_code: int
    reliable_size: int
    reset_at_acked: bool

    @property
    def reliable_mode(self) -> bool:
        """Whether RESET_STREAM_AT still governs the stream (no plain reset replaced it)."""
        return self._reset_error_code is None

    def get_reset_at_frame(self) -> tuple[int, int, int]:
        """Return the error code, final size and reliable size to send, and clear the flag."""
        self.reset_pending = False
        return self.reset_at_code, max(self.highest_offset, self.reliable_size), self.reliable_size

    def on_data_delivery(
        self, delivery: QuicDeliveryState, start: int, stop: int, fin: bool
    ) -> None:
        super().on_data_delivery(delivery, start, stop, fin)
        if self.reliable_mode:
            # Lost bytes past the reliable size are abandoned, not retransmitted.
            self._pending.subtract(self.reliable_size, _FAR)
            self._check_finished()

    def on_reset_at_delivery(self, delivery: QuicDeliveryState) -> None:
        """Note the fate of a RESET_STREAM_AT frame: acknowledged, or lost and to be resent."""
        if not self.reliable_mode:
            return
        if delivery == QuicDeliveryState.ACKED:
            self.reset_at_acked = True
            self._check_finished()
        else:
            self.reset_pending = True

    def _check_finished(self) -> None:
        if self.reset_at_acked and self._buffer_start >= self.reliable_size:
            self.is_finished = True


def _make_reliable(sender: QuicStreamSender, code: int, reliable_size: int) -> None:
    sender.__class__ = _ReliableResetSender
    assert isinstance(sender, _ReliableResetSender)
    sender.reset_at_code = code
    sender.reliable_size = reliable_size
    sender.reset_at_acked = False
    sender.reset_pending = True
    # Nothing past the reliable size is sent any more, nor kept.
    sender._pending.subtract(reliable_size, _FAR)
    del sender._buffer[max(0, reliable_size - sender._buffer_start) :]
    sender._buffer_stop = max(reliable_size, sender._buffer_start)
    sender._pending_eof = False


class QuicConnection(_AioquicConnection):
    """aioquic's QUIC connection, with the reliable stream reset extension.

    Accepts exactly the arguments of aioquic's `QuicConnection`.
    """

    peer_supports_reset_stream_at: bool = False
    """Whether the peer sent the `reset_stream_at` transport parameter."""

    # stream id -> (error code, final size, reliable size) of a RESET_STREAM_AT whose
    # reliable bytes have not all arrived yet; created on the first one, so connections
    # that never see one carry no extra attribute (aioquic's instance dict is large and
    # one more key doubles it).
    _resets_at: dict[int, tuple[int, int, int]] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._install()

    def _install(self) -> None:
        handlers: dict[int, tuple[Any, Any]] = vars(self)["_QuicConnection__frame_handlers"]
        for frame_type, (handler, epochs) in list(handlers.items()):
            # handlers are bound methods of aioquic's class: rebind the ones overridden here
            name = handler.__func__.__name__
            if name in QuicConnection.__dict__:
                handlers[frame_type] = (getattr(self, name), epochs)
        handlers[RESET_STREAM_AT_FRAME] = (self._handle_reset_stream_at_frame, EPOCHS("01"))

    # -- sending -----------------------------------------------------------------------

    def reset_stream_at(self, stream_id: int, error_code: int, reliable_size: int) -> None:
        """Reset the sending side of a stream, still delivering its first `reliable_size` bytes.

        Falls back to a plain RESET_STREAM when the peer does not support the extension,
        when `reliable_size` is 0, or when the stream already ended (FIN queued) or was reset.
        Bytes beyond what was written are never promised: the reliable size is capped there.

        Args:
            stream_id: The stream id.
            error_code: The application error code.
            reliable_size: How many bytes from the start of the stream must still arrive.
        """
        if self._stream_can_send(stream_id) and self._stream_is_discarded(stream_id):
            return
        stream = self._get_or_create_stream_for_send(stream_id)
        sender = stream.sender
        reliable_size = min(reliable_size, sender._buffer_stop)
        if (
            not self.peer_supports_reset_stream_at
            or reliable_size <= 0
            or isinstance(sender, _ReliableResetSender)
            or sender._reset_error_code is not None
            or sender._buffer_fin is not None
            or sender.is_finished
        ):
            sender.reset(error_code)
            return
        _make_reliable(sender, error_code, reliable_size)

    def _write_reset_stream_frame(self, builder: QuicPacketBuilder, stream: QuicStream) -> None:
        sender = stream.sender
        if not (isinstance(sender, _ReliableResetSender) and sender.reliable_mode):
            super()._write_reset_stream_frame(builder=builder, stream=stream)
            return
        buf = builder.start_frame(
            frame_type=RESET_STREAM_AT_FRAME,
            capacity=_RESET_STREAM_AT_CAPACITY,
            handler=sender.on_reset_at_delivery,
        )
        code, final_size, reliable_size = sender.get_reset_at_frame()
        assert stream.stream_id is not None  # only the crypto streams have none
        buf.push_uint_var(stream.stream_id)
        buf.push_uint_var(code)
        buf.push_uint_var(final_size)
        buf.push_uint_var(reliable_size)

    # -- receiving ---------------------------------------------------------------------

    def _handle_reset_stream_at_frame(
        self, context: QuicReceiveContext, frame_type: int, buf: Buffer
    ) -> None:
        stream_id = buf.pull_uint_var()
        error_code = buf.pull_uint_var()
        final_size = buf.pull_uint_var()
        reliable_size = buf.pull_uint_var()
        if reliable_size > final_size:
            raise QuicConnectionError(
                error_code=QuicErrorCode.FRAME_ENCODING_ERROR,
                frame_type=frame_type,
                reason_phrase="Reliable size exceeds final size",
            )
        self._assert_stream_can_receive(frame_type, stream_id)
        stream = self._get_or_create_stream(frame_type, stream_id)
        receiver = stream.receiver
        if final_size > stream.max_stream_data_local:
            raise QuicConnectionError(
                error_code=QuicErrorCode.FLOW_CONTROL_ERROR,
                frame_type=frame_type,
                reason_phrase="Over stream data limit",
            )
        newly_received = max(0, final_size - receiver.highest_offset)
        if self._local_max_data.used + newly_received > self._local_max_data.value:
            raise QuicConnectionError(
                error_code=QuicErrorCode.FLOW_CONTROL_ERROR,
                frame_type=frame_type,
                reason_phrase="Over connection data limit",
            )
        known = receiver._final_size
        if self._resets_at is None:
            self._resets_at = {}
            self._check_stream_frames()
        earlier = self._resets_at.get(stream_id)
        if (known is not None and known != final_size) or (
            earlier is not None and earlier[1] != final_size
        ):
            raise QuicConnectionError(
                error_code=QuicErrorCode.FINAL_SIZE_ERROR,
                frame_type=frame_type,
                reason_phrase="Cannot change final size",
            )
        if final_size < receiver.highest_offset:
            raise QuicConnectionError(
                error_code=QuicErrorCode.FINAL_SIZE_ERROR,
                frame_type=frame_type,
                reason_phrase="Data received beyond final size",
            )
        receiver.highest_offset = final_size
        self._local_max_data.used += newly_received
        if earlier is not None:
            reliable_size = min(reliable_size, earlier[2])  # it can only shrink
        self._resets_at[stream_id] = (error_code, final_size, reliable_size)
        self._deliver_reset_at(stream_id, stream)

    def _check_stream_frames(self) -> None:
        """From the first RESET_STREAM_AT on, check every STREAM frame against the resets.

        Until then STREAM frames go straight to aioquic's handler, without an extra call.
        """
        handlers: dict[int, tuple[Any, Any]] = vars(self)["_QuicConnection__frame_handlers"]
        for frame_type, (handler, epochs) in list(handlers.items()):
            if handler.__func__ is _AioquicConnection._handle_stream_frame:
                handlers[frame_type] = (self._handle_stream_frame_checked, epochs)

    def _handle_stream_frame_checked(
        self, context: QuicReceiveContext, frame_type: int, buf: Buffer
    ) -> None:
        self._handle_stream_frame(context, frame_type, buf)
        if self._resets_at:
            for stream_id in list(self._resets_at):
                stream = self._streams.get(stream_id)
                if stream is None:
                    del self._resets_at[stream_id]
                    continue
                if stream.receiver.highest_offset > self._resets_at[stream_id][1]:
                    raise QuicConnectionError(
                        error_code=QuicErrorCode.FINAL_SIZE_ERROR,
                        frame_type=frame_type,
                        reason_phrase="Data received beyond final size",
                    )
                self._deliver_reset_at(stream_id, stream)

    def _deliver_reset_at(self, stream_id: int, stream: QuicStream) -> None:
        """Report the reset once every reliable byte has been delivered."""
        assert self._resets_at is not None
        code, final_size, reliable_size = self._resets_at[stream_id]
        receiver = stream.receiver
        if receiver.is_finished:  # every byte and the FIN arrived: nothing left to reset
            del self._resets_at[stream_id]
            return
        if receiver.starting_offset() < reliable_size:
            return
        del self._resets_at[stream_id]
        receiver._final_size = final_size
        receiver.is_finished = True
        self._events.append(
            ReliableStreamReset(error_code=code, stream_id=stream_id, reliable_size=reliable_size)
        )

    # -- transport parameters ----------------------------------------------------------

    def _serialize_transport_parameters(self) -> bytes:
        return super()._serialize_transport_parameters() + _ADVERTISED

    def _parse_transport_parameters(self, data: bytes, from_session_ticket: bool = False) -> None:
        super()._parse_transport_parameters(data, from_session_ticket)
        buf = Buffer(data=data)
        try:
            while not buf.eof():
                param_id = buf.pull_uint_var()
                length = buf.pull_uint_var()
                buf.seek(buf.tell() + length)
                if param_id in _TRANSPORT_PARAMETERS:
                    self.peer_supports_reset_stream_at = True
        except (BufferReadError, ValueError):  # aioquic has already validated the layout
            return


def upgrade(quic: _AioquicConnection) -> QuicConnection:
    """Give an aioquic connection the reliable stream reset extension, in place.

    aioquic's asyncio helpers (`connect()`, `QuicServer`) build their `QuicConnection`
    themselves; this turns such an object into a [`QuicConnection`][wtframe._quic.QuicConnection]
    of this module. Call it before the handshake starts, or the transport parameter is not
    exchanged (resets then stay plain RESET_STREAM frames).

    Args:
        quic: The connection; one that is already upgraded is returned as it is.

    Returns:
        The same object, now an instance of this module's `QuicConnection`.
    """
    if isinstance(quic, QuicConnection):
        return quic
    quic.__class__ = QuicConnection
    assert isinstance(quic, QuicConnection)
    quic._install()
    return quic

"""The asyncio pump: one QUIC connection, its WebTransportProtocol, and its sessions' streams.

This is the only place where wtframe events meet asyncio. It feeds every QUIC event to
the sans-I/O protocol, hands the resulting events to the session they belong to, and
sends what the protocol queued. Sending is batched: after a received datagram or a
command, one transmission is scheduled with `call_soon`, so that replies written by
handlers that run in the same loop iteration leave in the same packet as the ACK.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sized
from typing import Any, Protocol

from aioquic import tls
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.connection import NetworkAddress, QuicConnection
from aioquic.quic.events import QuicEvent

from . import events
from .codes import CloseCode
from .exceptions import SessionClosed
from .flowcontrol import FlowLimits
from .protocol import WebTransportProtocol
from .streams import ReceiveStream, SendStream, Stream, _StreamBase

__all__ = ["SessionLink", "WebTransportConnection"]


ACK_HOLD = 0.02
"""How long, in seconds, the ACK of a lone packet may wait for the answer of the
handlers it started. aioquic tells the peer that ACKs may come 25 ms late
(`max_ack_delay`), though it sends them after 1 ms; the hold stays within what the peer
was told."""

# States of the ACK hold, from a packet's arrival to its acknowledgement.
_NO_HOLD = 0
_WAITING = 1  # a handler the packet started is waiting
_MAY_HOLD = 2  # the next transmission holds the ACK unless it carries an answer
_HELD = 3  # the ACK waits for an answer, or for ACK_HOLD to pass


class SessionLink(Protocol):
    """What the connection needs from the object that runs one session."""

    session: Any
    """The object handed to streams as their `session`."""

    def datagram_received(self, data: bytes) -> None: ...

    def stream_opened(self, stream: ReceiveStream) -> None: ...

    def request_received(self, stream_id: int, data: bytes, unidirectional: bool) -> bool: ...

    def stream_fed(self, stream: ReceiveStream) -> None: ...

    def drain_requested(self) -> None: ...

    def session_ended(self, code: int, reason: str, by_peer: bool) -> None: ...


class WebTransportConnection(QuicConnectionProtocol):
    """An aioquic connection protocol that runs WebTransport sessions.

    Subclasses decide what happens to session requests (server) and answers (client).
    """

    def __init__(
        self,
        quic: QuicConnection,
        *,
        max_sessions: int = 16,
        flow_limits: FlowLimits | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(quic, **kwargs)
        self.wt = WebTransportProtocol(quic, max_sessions=max_sessions, flow_limits=flow_limits)
        self._credit_waiters: list[asyncio.Future[None]] = []
        self.links: dict[int, SessionLink] = {}
        self._streams: dict[int, _StreamBase] = {}
        self._session_streams: dict[int, set[_StreamBase]] = {}
        # Writers waiting for acknowledgements (created on the first: an empty set is 216 B).
        self._blocked_writers: set[SendStream] | None = None
        # Streams with data to hand to QUIC (an empty tuple, not a list, while idle).
        self._outbox: list[SendStream] | tuple[()] = ()
        self._ack_with_reply = False
        self._ack_hold = _NO_HOLD  # or _WAITING, _MAY_HOLD, _HELD: see _hold_ack
        self._receiving = _IDLE  # or _SPARSE or _DENSE while a datagram is processed
        # Whether the transmission scheduled after a dense packet is pending (_reply_soon).
        self._dense_woken = False
        # asyncio's queue of ready callbacks, to tell whether a datagram woke anything (an
        # event loop without one, such as uvloop, always transmits in a later callback).
        self._ready: Sized | None = getattr(self._loop, "_ready", None)
        self._opened: list[tuple[int, SessionLink, ReceiveStream]] = []
        self.background_tasks: set[asyncio.Task[None]] = set()
        """Tasks that outlive their session (`on_close`), kept here so they are not lost."""

    # -- incoming --------------------------------------------------------------------------

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        """Process a UDP datagram, then send what it caused, with the ACK.

        Handlers usually reply while the events are processed. If processing woke nothing
        (no task started, no reader or writer woken), nothing else can answer this
        datagram, and the transmission runs at once, as aioquic's own would. Otherwise it
        runs later in this loop iteration, after the woken code, so that their replies
        leave together in the same packet as the ACK. If handlers this datagram started or
        woke have not answered by then, the ACK of a lone packet waits for their answer
        (`_hold_ack`).
        """
        ready = self._ready
        before = -1 if ready is None else len(ready)
        if self._outbox:
            self._flush()  # written before this datagram arrived: sent before its effects
        now = self._loop.time()
        space = self._quic._spaces.get(tls.Epoch.ONE_RTT)
        held_until = None
        if space is None:
            previous = None
            lone = False
        else:
            previous = space.largest_received_time
            lone = space.ack_at is None  # no earlier packet waits for its ACK
            if self._ack_hold == _HELD:
                # Whether this packet needs an ACK too shows in ack_at once it is processed.
                held_until, space.ack_at = space.ack_at, None
        self._ack_hold = _NO_HOLD
        # Packets that come closer together than aioquic's ACK delay take their ACKs
        # along on their own (see _reply_soon).
        self._receiving = density = (
            _DENSE if previous is not None and now - previous < self._quic._ack_delay else _SPARSE
        )
        try:
            self._quic.receive_datagram(data, addr, now=now)  # type: ignore[arg-type]
            self._process_events()
            if self._blocked_writers:
                self._wake_writers()
            if self._credit_waiters:
                self._wake_credit_waiters()
        finally:
            self._receiving = _IDLE
            if held_until is not None:
                self._resume_hold(held_until)
        if self._transmit_task is not None:
            return  # already scheduled
        if ready is not None and len(ready) == before:
            # Nothing woken; a handler that started may be waiting for something else.
            if self._ack_hold == _WAITING:
                self._ack_hold = _MAY_HOLD if lone else _NO_HOLD
            self.transmit()
        else:
            # Woken code runs first; if it has not answered by then, it is waiting.
            if self._ack_hold != _HELD:
                self._ack_hold = _MAY_HOLD if lone else _NO_HOLD
            self._dense_woken = density == _DENSE  # its replies follow the dense rule
            self._transmit_task = self._loop.call_soon(self.transmit)

    def _resume_hold(self, held_until: float) -> None:
        """After a packet that came while an ACK was held: hold on, or acknowledge both."""
        space = self._quic._spaces[tls.Epoch.ONE_RTT]
        if space.ack_at is None:  # it needs no ACK (an ACK itself): the hold goes on
            space.ack_at = held_until
            self._ack_hold = _HELD
        else:  # a second packet to acknowledge: aioquic's usual delay for both
            space.ack_at = min(space.ack_at, held_until)
            self._ack_hold = _NO_HOLD

    def quic_event_received(self, event: QuicEvent) -> None:
        """Feed a QUIC event to the protocol and dispatch what it reports."""
        wt_events = self.wt.handle_event(event)
        if (
            len(wt_events) == 2
            and type(wt_events[0]) is events.StreamOpened
            and self._request_received(wt_events[0], wt_events[1])
        ):
            return
        dispatch = _DISPATCH
        for wt_event in wt_events:
            dispatch[type(wt_event)](self, wt_event)
        if self._opened:
            # New streams reach their handlers once the data that came with them is
            # buffered, so a handler usually finds its input ready and never waits.
            opened, self._opened = self._opened, []
            for session_id, link, stream in opened:
                if self.links.get(session_id) is link:  # unless the session ended meanwhile
                    link.stream_opened(stream)

    def _request_received(self, opened: events.StreamOpened, data: events.Event) -> bool:
        """Offer a stream that came whole, FIN included, with its opening to its session.

        The session may answer it at once, without a `Stream` object
        (`SessionLink.request_received`).
        """
        if type(data) is not events.StreamDataReceived or not data.end_stream:
            return False
        link = self.links.get(opened.session_id)
        return link is not None and link.request_received(
            opened.stream_id,
            data.data,
            opened.is_unidirectional,
        )

    def _on_stream_data(self, event: events.StreamDataReceived) -> None:
        stream = self._streams.get(event.stream_id)
        if isinstance(stream, ReceiveStream):
            stream._feed(event.data, event.end_stream)
            if event.data:
                link = self.links.get(event.session_id)
                if link is not None:
                    link.stream_fed(stream)

    def _on_datagram(self, event: events.DatagramReceived) -> None:
        link = self.links.get(event.session_id)
        if link is not None:
            link.datagram_received(event.data)

    def _on_stream_opened(self, event: events.StreamOpened) -> None:
        link = self.links.get(event.session_id)
        if link is None:  # the session was requested but has no runner: refuse the stream
            self.wt.stop_stream(event.stream_id)
            self.wt.reset_stream(event.stream_id)
            return
        session = link.session
        stream = (ReceiveStream if event.is_unidirectional else Stream)(
            self, event.stream_id, session
        )
        stream.max_message_size = session.max_message_size
        self._add_stream(event.session_id, stream)
        self._opened.append((event.session_id, link, stream))

    def _on_stream_reset(self, event: events.StreamResetReceived) -> None:
        stream = self._streams.get(event.stream_id)
        if isinstance(stream, ReceiveStream):
            reliable = self.wt.reset_was_reliable(event.stream_id)
            stream._reset_by_peer(event.code or 0, keep_data=reliable)

    def _on_stop_sending(self, event: events.StopSendingReceived) -> None:
        stream = self._streams.get(event.stream_id)
        if isinstance(stream, SendStream):
            stream._stopped_by_peer(event.code or 0)

    def _on_session_ended(self, event: events.SessionEnded) -> None:
        self._session_ended(event.session_id, event.code, event.reason, event.by_peer)

    def _on_drain(self, event: events.DrainRequested) -> None:
        link = self.links.get(event.session_id)
        if link is not None:
            link.drain_requested()

    def _on_settings(self, event: events.SettingsReceived) -> None:
        # Flow control may have started for sessions whose streams already exist.
        for session_id, streams in self._session_streams.items():
            if self.wt.flow_controlled(session_id):
                for stream in streams:
                    if isinstance(stream, ReceiveStream):
                        stream._flow_controlled = True
        self.settings_received(event)

    def _add_stream(self, session_id: int, stream: _StreamBase) -> None:
        stream._session_id = session_id
        if isinstance(stream, ReceiveStream):
            stream._flow_controlled = self.wt.flow_controlled(session_id)
        self._streams[stream.stream_id] = stream
        streams = self._session_streams.get(session_id)
        if streams is None:
            self._session_streams[session_id] = {stream}
        else:
            streams.add(stream)

    # -- hooks for subclasses ----------------------------------------------------------

    def session_requested(self, event: events.SessionRequested) -> None:
        """A peer asked for a session. Servers override this; clients refuse."""
        self.wt.reject(event.session_id, 404)

    def session_answered(self, event: events.SessionEstablished | events.SessionRefused) -> None:
        """The peer answered our session request. Clients override this."""

    def settings_received(self, event: events.SettingsReceived) -> None:
        """The peer's HTTP/3 SETTINGS arrived."""

    def connection_terminated(self) -> None:
        """The QUIC connection ended; its sessions hear of it right after."""

    # aioquic calls `_connection_terminated_handler()` when the connection ends, before it
    # hands the event to `quic_event_received`, and its server sets that attribute to its
    # own handler. This property runs both, so that no class has to inspect every event.
    @property
    def _connection_terminated_handler(self) -> Callable[[], None]:
        return self._terminated

    @_connection_terminated_handler.setter
    def _connection_terminated_handler(self, handler: Callable[[], None]) -> None:
        self._aioquic_terminated = handler

    def _terminated(self) -> None:
        self._aioquic_terminated()
        self.connection_terminated()

    # -- session commands ----------------------------------------------------------------

    def accept_session(
        self, session_id: int, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        """Accept a requested session; the answer leaves at once.

        Anything the session sends must not reach the peer before the answer: aioquic puts
        DATAGRAM frames ahead of stream frames in a packet, and a peer drops datagrams for
        a session it does not know to be open yet.
        """
        self.wt.accept(session_id, headers)
        if self._outbox:
            self._flush()
        self._ack_with_reply = True
        self.transmit()

    def reject_session(
        self, session_id: int, status: int, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        """Refuse a requested session; its link hears `session_ended` at once."""
        self.wt.reject(session_id, status, headers)
        self._reply_soon()
        self._session_ended(session_id, 0, f"rejected with status {status}", False)

    def send_datagram(self, session_id: int, data: bytes) -> None:
        """Queue a datagram for a session and schedule transmission (see `_reply_soon`)."""
        self.wt.send_datagram(session_id, data)
        self._reply_soon()

    def open_stream(self, session_id: int, link: SessionLink, unidirectional: bool) -> SendStream:
        """Open a stream in a session."""
        stream_id = self.wt.open_stream(session_id, unidirectional)
        stream: SendStream = (SendStream if unidirectional else Stream)(
            self, stream_id, link.session
        )
        self._add_stream(session_id, stream)
        return stream

    def drain_session(self, session_id: int) -> None:
        """Send DRAIN_WEBTRANSPORT_SESSION."""
        self.wt.drain_session(session_id)
        self._reply_soon()

    def close_session(self, session_id: int, code: int, reason: str) -> None:
        """Close a session from our side; its link hears `session_ended` at once."""
        if self._outbox:
            self._flush()  # what was written (and ended) before the close still leaves
        self.wt.close_session(session_id, code, reason)
        self._reply_soon()
        self._session_ended(session_id, code, reason, False)

    def _session_ended(self, session_id: int, code: int, reason: str, by_peer: bool) -> None:
        link = self.links.pop(session_id, None)
        exc = SessionClosed(code, reason)
        for stream in self._session_streams.pop(session_id, ()):
            self._streams.pop(stream.stream_id, None)
            if isinstance(stream, SendStream) and self._blocked_writers:
                self._blocked_writers.discard(stream)
            stream._abort(exc)
        if self._credit_waiters:
            self._wake_credit_waiters()
        if link is not None:
            link.session_ended(code, reason, by_peer)

    # -- stream I/O (wtframe.streams._StreamIO) ------------------------------------------

    def stream_send(self, stream: SendStream, data: bytes, end_stream: bool) -> None:
        """Queue stream data; it reaches QUIC with the next transmission (see `_flush`)."""
        outbox = stream._outbox
        if outbox is None:
            stream._outbox = [data] if data else []
            if self._outbox:
                self._outbox.append(stream)
            else:
                self._outbox = [stream]
            self._reply_soon()
        elif data:
            outbox.append(data)
        stream._outbox_size += len(data)
        if end_stream:
            stream._outbox_fin = True
            if self._dense_woken:
                # The peer forgets its finished stream only once we acknowledge its FIN.
                self._ack_with_reply = True

    def answer_stream(self, stream_id: int, data: bytes) -> None:
        """End a stream that has no `Stream` object with `data` and FIN (an answered request).

        Raises:
            SessionClosed: If the stream can no longer send (its session ended).
        """
        self.wt.send_stream_data(stream_id, data, True)
        self._reply_soon()

    def refuse_stream(self, stream_id: int, code: int) -> None:
        """Refuse a stream that has no `Stream` object (STOP_SENDING and RESET_STREAM)."""
        self.wt.stop_stream(stream_id, code)
        self.wt.reset_stream(stream_id, code)
        self._reply_soon()

    def stream_reset(self, stream: SendStream, code: int) -> None:
        """Reset the sending side of a stream; what it had not sent yet is dropped."""
        _take_outbox(stream)
        self.wt.reset_stream(stream.stream_id, code)
        self._reply_soon()

    def stream_stop(self, stream_id: int, code: int) -> None:
        """Stop the receiving side of a stream."""
        self.wt.stop_stream(stream_id, code)
        self._reply_soon()

    def stream_buffered(self, stream_id: int) -> int:
        """Unacknowledged bytes of a stream."""
        return self.wt.stream_buffered(stream_id)

    def stream_consumed(self, stream_id: int, size: int) -> None:
        """The application read (or dropped) bytes: flow control may grant the peer more."""
        if self.wt.stream_consumed(stream_id, size):
            self._transmit_soon()

    async def wait_stream_credit(self, session_id: int, unidirectional: bool) -> None:
        """Wait until the peer's stream limit lets the session open a stream of this kind.

        Returns at once for sessions without flow control, and when the session ends (the
        open then fails with `SessionClosed`).
        """
        while not self.wt.stream_credit(session_id, unidirectional):
            self._transmit_soon()  # the WT_STREAMS_BLOCKED capsule
            waiter = self._loop.create_future()
            self._credit_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._credit_waiters:
                    self._credit_waiters.remove(waiter)

    def _wake_credit_waiters(self) -> None:
        waiters, self._credit_waiters = self._credit_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def stream_wait_writable(self, stream: SendStream) -> None:
        """Wake `stream`'s writer once acknowledgements bring it under its high-water mark."""
        if self._blocked_writers is None:
            self._blocked_writers = set()
        self._blocked_writers.add(stream)

    def stream_done(self, stream: _StreamBase) -> None:
        """Forget a stream that is finished both ways."""
        if self._streams.pop(stream.stream_id, None) is None:
            return
        self._session_streams[stream._session_id].discard(stream)

    def _wake_writers(self) -> None:
        assert self._blocked_writers is not None
        for stream in list(self._blocked_writers):
            buffered = self.wt.stream_buffered(stream.stream_id) + stream._outbox_size
            if buffered <= stream.high_water:
                self._blocked_writers.discard(stream)
                stream._wake_writer()

    # -- transmission ----------------------------------------------------------------------

    def _transmit_soon(self) -> None:
        # While a datagram is processed, datagram_received() transmits when it is done.
        if self._transmit_task is None and not self._receiving:
            self._transmit_task = self._loop.call_soon(self.transmit)

    def _reply_soon(self) -> None:
        """Schedule a transmission that carries what was just queued, and the pending ACK.

        The ACK is left to aioquic when the packet being processed, or the one whose
        transmission the woken code runs before, came closer to the previous one than
        aioquic's ACK delay: a reply a moment later carries it once it is due, and
        acknowledging every packet of dense traffic only gives the peer more ACKs to
        process before it sees the replies (a sequential request/response client was 6 %
        slower for it, pipelined framed messages a fifth). A reply that ends its stream
        still takes the ACK (`stream_send`).
        """
        if self._receiving != _DENSE and not self._dense_woken:
            self._ack_with_reply = True
        self._transmit_soon()

    def transmit(self) -> None:
        """Send what is queued; an ACK that is due soon rides along with queued data.

        aioquic delays ACKs by a millisecond, so a reply written right after a request
        would leave alone and the ACK a moment later in a packet of its own. Sending the
        ACK with the reply halves the packets of request/response traffic.
        """
        self._dense_woken = False
        if self._outbox:
            self._flush()
        if self._ack_with_reply:
            self._ack_with_reply = False
            self._ack_hold = _NO_HOLD
            space = self._quic._spaces.get(tls.Epoch.ONE_RTT)
            if space is not None and space.ack_at is not None:
                space.ack_at = min(space.ack_at, self._loop.time())
        elif self._ack_hold == _MAY_HOLD:
            self._hold_ack()
        super().transmit()

    def handler_waits(self) -> None:
        """Note that a handler started by the packet being processed is waiting."""
        if self._receiving:
            self._ack_hold = _WAITING

    def _hold_ack(self) -> None:
        """Let the ACK of a lone packet wait for the answer of the handlers it started.

        The handlers have not answered yet (they wait for a store, a query, a timer):
        aioquic would acknowledge the packet after a millisecond, in a packet of its own,
        and the answer would follow in another. The ACK waits up to `ACK_HOLD` instead,
        and the answer takes it along. The next packet that needs an ACK too ends the hold
        (`_resume_hold`).
        """
        self._ack_hold = _NO_HOLD
        space = self._quic._spaces.get(tls.Epoch.ONE_RTT)
        if space is None or space.ack_at is None or space.largest_received_time is None:
            return  # nothing to acknowledge
        space.ack_at = max(space.ack_at, space.largest_received_time + ACK_HOLD)
        self._ack_hold = _HELD

    def _flush(self) -> None:
        """Hand the data written since the last transmission to QUIC, one call per stream."""
        streams, self._outbox = self._outbox, ()
        for stream in streams:
            data, end_stream = _take_outbox(stream)
            if data is None:
                continue  # reset meanwhile
            try:
                self.wt.send_stream_data(stream.stream_id, data, end_stream)
            except SessionClosed:
                pass  # the peer stopped the stream, or the session ended, meanwhile

    # -- connection end --------------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        """The UDP transport closed (client side): end every session."""
        super().connection_lost(exc)
        for session_id in list(self.links):
            self._session_ended(session_id, CloseCode.ABNORMAL, "connection lost", True)


# What the connection is doing (`_receiving`): no datagram is being processed, or one that
# came long after the previous one, or soon after it.
_IDLE, _SPARSE, _DENSE = 0, 1, 2

_DISPATCH: dict[type[events.Event], Callable[[Any, Any], None]] = {
    events.StreamDataReceived: WebTransportConnection._on_stream_data,
    events.DatagramReceived: WebTransportConnection._on_datagram,
    events.StreamOpened: WebTransportConnection._on_stream_opened,
    events.StreamResetReceived: WebTransportConnection._on_stream_reset,
    events.StopSendingReceived: WebTransportConnection._on_stop_sending,
    events.SessionEnded: WebTransportConnection._on_session_ended,
    events.DrainRequested: WebTransportConnection._on_drain,
    # Subclasses override these hooks: look them up on the instance.
    events.SessionRequested: lambda self, event: self.session_requested(event),
    events.SessionEstablished: lambda self, event: self.session_answered(event),
    events.SessionRefused: lambda self, event: self.session_answered(event),
    events.SettingsReceived: WebTransportConnection._on_settings,
}
"""What the connection does with each wtframe event (looked up by exact type)."""


def _take_outbox(stream: SendStream) -> tuple[bytes | None, bool]:
    """Empty a stream's outbox; return its bytes (`None` if it held nothing) and FIN."""
    outbox, end_stream = stream._outbox, stream._outbox_fin
    if outbox is None:
        return None, False
    stream._outbox = None
    stream._outbox_size = 0
    stream._outbox_fin = False
    return (outbox[0] if len(outbox) == 1 else b"".join(outbox)), end_stream

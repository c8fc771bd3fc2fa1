"""The sans-I/O core: WebTransport sessions on top of aioquic's QUIC and HTTP/3 objects.

[`WebTransportProtocol`][wtframe.protocol.WebTransportProtocol] owns an aioquic
`H3Connection` over a `QuicConnection`. Feed it every QUIC event with `handle_event()`;
it returns [wtframe events][wtframe.events]. Commands (`accept`, `send_datagram`,
`open_stream`, `close_session`...) only queue bytes in the `QuicConnection`: the caller
must then send `quic.datagrams_to_send()` to the network, as with any aioquic object.
This module never imports asyncio and never touches a socket.

What it adds to aioquic:

* validation of the extended CONNECT and an answer to anything that is not one;
* capsules on the CONNECT stream (close and drain, both ways), parsed incrementally;
* stream and session bookkeeping, so that resets and stop-sendings reach their session, and
  a session's streams are reset with SESSION_GONE when it ends;
* WebTransport application error codes mapped to and from HTTP/3 codes;
* a datagram size check before queueing (aioquic would block every later datagram behind
  one that does not fit in a packet);
* WebTransport streams kept out of aioquic's HTTP/3 layer once their header is read (it
  would parse the replies on streams we open as HTTP/3 frames, and keep per-stream state);
* the max-sessions settings Safari looks for;
* a dialect per session (draft-02 browsers, draft-15 clients; `wtframe.dialects`), with
  the settings of every dialect advertised at once;
* WebTransport flow control for the sessions that negotiate it (`wtframe.flowcontrol`);
* reliable resets (RESET_STREAM_AT) of the streams it opens, so that their header still
  reaches the peer (`wtframe._quic`).

The session lifecycle is the table `TRANSITIONS`: every state change goes through it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aioquic.buffer import size_uint_var
from aioquic.h3.events import DatagramReceived as H3DatagramReceived
from aioquic.h3.events import (
    DataReceived,
    H3Event,
    HeadersReceived,
    WebTransportStreamDataReceived,
)
from aioquic.quic import events as quic_events
from aioquic.quic.connection import QuicConnection, stream_is_unidirectional

from . import events
from ._h3 import WebTransportH3, header_value
from ._lifecycle import TRANSITIONS, SessionState, Trigger, _Session
from ._quic import ReliableStreamReset, upgrade
from ._session_flow import SessionFlow
from .capsules import (
    CLOSE_WEBTRANSPORT_SESSION,
    DRAIN_WEBTRANSPORT_SESSION,
    MAX_CAPSULE_SIZE_DEFAULT,
    CapsuleParser,
    decode_close,
    encode_drain,
)
from .codes import CloseCode, WTErrorCode, from_http3_error, to_http3_error
from .dialects import Dialect, dialect_of_request, local_settings
from .exceptions import CapsuleError, DatagramTooLarge, SessionClosed
from .flowcontrol import FLOW_CONTROL_CAPSULES, FlowControlError, FlowLimits

__all__ = [
    "SETTING_MAX_SESSIONS",
    "SETTING_MAX_SESSIONS_DRAFT",
    "TRANSITIONS",
    "SessionState",
    "Trigger",
    "WebTransportProtocol",
]

SETTING_MAX_SESSIONS = 0xC671706A
"""SETTINGS_WEBTRANSPORT_MAX_SESSIONS as some drafts (and Safari) number it."""

SETTING_MAX_SESSIONS_DRAFT = 0x14E9CD29
"""SETTINGS_WEBTRANSPORT_MAX_SESSIONS as other drafts number it."""

_CAPSULE_TYPES = frozenset({CLOSE_WEBTRANSPORT_SESSION, DRAIN_WEBTRANSPORT_SESSION}) | (
    FLOW_CONTROL_CAPSULES
)
# WebTransport streams start with 0x41 (bidirectional) or 0x54 (unidirectional), then the
# session id. As varints both signals take two bytes.
_HEADER_SIGNAL_SIZE = 2
_H3_MESSAGE_ERROR = 0x10E
_BIDI_SIGNAL = 0x41  # the low byte of the two-byte varints above
_UNI_SIGNAL = 0x54
_VARINT_MASKS = {1: 0x3F, 2: 0x3FFF, 4: 0x3FFFFFFF, 8: 0x3FFFFFFFFFFFFFFF}


@dataclass(slots=True)
class _Stream:
    session_id: int
    can_send: bool
    can_receive: bool
    orphan: bool = False  # its session is gone: nothing is reported any more
    stopped: bool = False  # we sent STOP_SENDING: received data is dropped
    local: bool = False  # we opened it
    header: int = 0  # size of the WebTransport header that starts the opener's direction
    # (set for streams we open, and for the peer's in flow-controlled sessions)
    received: int = 0  # bytes of the peer's that arrived, header excluded
    held: bool = False  # bytes (and maybe the FIN) wait for the peer's data credit


class WebTransportProtocol:
    """WebTransport over HTTP/3 on one QUIC connection, without I/O.

    Args:
        quic: The aioquic connection (client or server side) to drive.
        max_sessions: How many sessions the peer may hold at once on this connection; a
            server answers 429 beyond it. Also advertised in SETTINGS.
        max_capsule_size: The largest close or drain capsule payload accepted.
        flow_limits: The flow-control windows granted to each draft-15 session's peer.

    The QUIC connection is given the reliable stream reset extension in place
    (`wtframe._quic.upgrade`): create the protocol before the
    handshake starts.
    """

    # Streams reset with RESET_STREAM_AT by the last handle_event() call (created on the first).
    _reliable_resets: set[int] | None = None

    def __init__(
        self,
        quic: QuicConnection,
        *,
        max_sessions: int = 16,
        max_capsule_size: int = MAX_CAPSULE_SIZE_DEFAULT,
        flow_limits: FlowLimits | None = None,
    ) -> None:
        self.quic = upgrade(quic)
        self.flow_limits = flow_limits or FlowLimits()
        self.h3 = WebTransportH3(
            quic,
            {
                SETTING_MAX_SESSIONS: max_sessions,
                SETTING_MAX_SESSIONS_DRAFT: max_sessions,
                **local_settings(self.flow_limits),
            },
        )
        self.is_client = quic.configuration.is_client
        self.max_sessions = max_sessions
        self.max_capsule_size = max_capsule_size
        self._sessions: dict[int, _Session] = {}
        self._streams: dict[int, _Stream] = {}
        self._settings_reported = False
        # stream id -> the session whose flow control counts its unread bytes (SessionFlow.unread)
        self._unread: dict[int, _Session] = {}

    # -- queries -----------------------------------------------------------------------

    def session_state(self, session_id: int) -> SessionState:
        """Return the state of a session; unknown and released sessions are CLOSED.

        Args:
            session_id: The session id.

        Returns:
            The session's state.
        """
        session = self._sessions.get(session_id)
        return session.state if session is not None else SessionState.CLOSED

    def dialect(self, session_id: int) -> Dialect | None:
        """Return the dialect a session speaks.

        Args:
            session_id: The session id.

        Returns:
            The dialect, or `None` for an unknown or released session.
        """
        session = self._sessions.get(session_id)
        return session.dialect if session is not None else None

    def flow_controlled(self, session_id: int) -> bool:
        """Return whether a session runs WebTransport flow control.

        Args:
            session_id: The session id.

        Returns:
            Whether the session negotiated flow control.
        """
        session = self._sessions.get(session_id)
        return session is not None and session.flow is not None

    def stream_credit(self, session_id: int, unidirectional: bool) -> bool:
        """Return whether the peer's stream limit lets `open_stream()` succeed now.

        When it does not, a WT_STREAMS_BLOCKED capsule is queued (once per limit value).

        Args:
            session_id: The session id.
            unidirectional: The kind of stream to open.

        Returns:
            `True` unless the session is flow controlled and its stream limit is reached;
            also `True` for a session that is gone (`open_stream()` then raises).
        """
        session = self._sessions.get(session_id)
        if session is None or session.flow is None:
            return True
        if session.flow.can_open(unidirectional):
            return True
        capsule = session.flow.streams_blocked(unidirectional)
        if capsule is not None:
            self._send_capsule(session, capsule)
        return False

    def reset_was_reliable(self, stream_id: int) -> bool:
        """Return whether a reset reported by the last `handle_event()` came as RESET_STREAM_AT.

        After such a reset every byte the peer sent before it was delivered: the application
        can read them, then sees the reset.

        Args:
            stream_id: The stream id of a `StreamResetReceived` event.

        Returns:
            Whether the peer reset the stream reliably.
        """
        return self._reliable_resets is not None and stream_id in self._reliable_resets

    @property
    def session_count(self) -> int:
        """The number of sessions requested or open on this connection."""
        return len(self._sessions)

    @property
    def stream_count(self) -> int:
        """The number of WebTransport streams whose state is still held."""
        return len(self._streams)

    def max_datagram_size(self, session_id: int | None = None) -> int:
        """Return the largest datagram payload that fits in one QUIC packet now.

        The limit is exact: one byte more would not fit. It depends on the session, whose
        id precedes every datagram payload (one byte for the first 64 sessions of a
        connection, then two).

        Args:
            session_id: The session the datagram is for. Without it, the limit that holds
                for every session held on the connection now.

        Returns:
            The size in bytes; 0 if the peer accepts no datagrams.
        """
        if session_id is None:
            session_id = max(self._sessions, default=0)
        return self.h3.max_datagram_payload(session_id)

    def stream_buffered(self, stream_id: int) -> int:
        """Return the bytes of a stream that are queued or sent but not yet acknowledged.

        Args:
            stream_id: The stream id.

        Returns:
            The number of bytes aioquic still holds for the stream; 0 once it is released.
        """
        held = self._streams.get(stream_id)
        waiting = 0
        if held is not None and held.held:
            flow = self._sessions[held.session_id].flow  # a held stream's session is held
            assert flow is not None
            waiting = flow.held_size(stream_id)
        stream = self.quic._streams.get(stream_id)
        if stream is None:
            return waiting
        return len(stream.sender._buffer) + waiting

    # -- events ------------------------------------------------------------------------

    def handle_event(self, event: quic_events.QuicEvent) -> list[events.Event]:
        """Process one QUIC event and return the WebTransport events it causes.

        Args:
            event: An event from `QuicConnection.next_event()`.

        Returns:
            The resulting events, in order.
        """
        if self._reliable_resets:
            self._reliable_resets.clear()
        kind = type(event)
        if kind is quic_events.DatagramFrameReceived and not self.h3._is_done:
            data = event.data  # type: ignore[attr-defined]
            if data and data[0] < 0x40:  # a one-byte quarter stream id: sessions 0 to 252
                return self._datagram(data[0] * 4, data[1:])
        out: list[events.Event] = []
        if kind is quic_events.StreamDataReceived:
            stream_id = event.stream_id  # type: ignore[attr-defined]
            stream = self._streams.get(stream_id)
            if stream is not None:
                # A WebTransport stream: HTTP/3 has nothing to do with its data.
                self._stream_data(
                    stream_id,
                    stream,
                    event.data,  # type: ignore[attr-defined]
                    event.end_stream,  # type: ignore[attr-defined]
                    out,
                )
            elif not self._new_stream_data(event, out):  # type: ignore[arg-type]
                for h3_event in self.h3.handle_event(event):
                    self._h3_event(h3_event, out)
                h3_stream = self.h3._stream.get(stream_id)
                if h3_stream is not None and h3_stream.session_id is not None:
                    # HTTP/3 completed a WebTransport header and had no byte to report yet:
                    # the stream is open all the same (its opener may wait for us to speak).
                    self._adopt(stream_id, h3_stream.session_id, False, out)
            if not self._settings_reported:
                self._check_settings(out)
            return out
        if isinstance(event, quic_events.ConnectionTerminated):
            for session_id in list(self._sessions):
                self._end(
                    session_id,
                    Trigger.CONNECTION_LOST,
                    CloseCode.ABNORMAL,
                    event.reason_phrase,
                    True,
                    out,
                )
            self._streams.clear()
            self._unread.clear()
            return out
        # A reset or stop-sending of a WebTransport stream skips HTTP/3: it does not know the
        # stream, would take a reset of it for an aborted request, and reset our side too.
        if (
            kind is quic_events.StreamReset
            or kind is ReliableStreamReset
            or kind is quic_events.StopSendingReceived
        ) and event.stream_id in self._streams:  # type: ignore[attr-defined]
            h3_events = []
        else:
            h3_events = self.h3.handle_event(event)
        if isinstance(event, quic_events.StreamReset):
            reliable = isinstance(event, ReliableStreamReset)
            self._stream_reset(event.stream_id, event.error_code, out, reliable)
        elif isinstance(event, quic_events.StopSendingReceived):
            self._stop_sending(event.stream_id, event.error_code, out)
        for h3_event in h3_events:
            self._h3_event(h3_event, out)
        if not self._settings_reported:
            self._check_settings(out)
        return out

    def _h3_event(self, h3_event: H3Event, out: list[events.Event]) -> None:
        if isinstance(h3_event, WebTransportStreamDataReceived):
            self._h3_stream_data(h3_event, out)
        elif isinstance(h3_event, H3DatagramReceived):
            out += self._datagram(h3_event.stream_id, h3_event.data)
        elif isinstance(h3_event, DataReceived):
            self._connect_data(h3_event, out)
        elif isinstance(h3_event, HeadersReceived):
            self._headers(h3_event, out)

    def _datagram(self, session_id: int, data: bytes) -> list[events.Event]:
        session = self._sessions.get(session_id)
        if session is None or (
            # A client keeps what a server sent right after its answer but that arrived
            # first; a server drops datagrams of a session it has not accepted.
            session.state is not SessionState.OPEN
            and not (self.is_client and session.state is SessionState.REQUESTED)
        ):
            return []
        return [events.DatagramReceived(session_id=session_id, data=data)]

    def _check_settings(self, out: list[events.Event]) -> None:
        """Report the peer's SETTINGS once they have arrived, before anything else."""
        if self.h3.received_settings is None:
            return
        self._settings_reported = True
        out.insert(0, events.SettingsReceived(settings=dict(self.h3.received_settings)))
        for session in self._sessions.values():
            self._start_flow(session)

    def _headers(self, event: HeadersReceived, out: list[events.Event]) -> None:
        stream_id, headers = event.stream_id, event.headers
        if self.is_client:
            session = self._sessions.get(stream_id)
            if session is None or session.state is not SessionState.REQUESTED:
                return
            status = int(header_value(headers, b":status") or b"0")
            if 100 <= status < 200:
                return  # an interim response: the final one follows
            if 200 <= status < 300 and not event.stream_ended:
                self._move(session, Trigger.PEER_ACCEPTED)
                out.append(events.SessionEstablished(session_id=stream_id, headers=headers))
            else:
                self._move(session, Trigger.PEER_REFUSED)
                self._release(session)
                out.append(
                    events.SessionRefused(session_id=stream_id, status=status, headers=headers)
                )
            return
        if stream_id in self._sessions:
            return  # trailers on a CONNECT stream mean nothing to WebTransport
        status = self._check_request(headers, event.stream_ended)
        if status:
            self.h3.respond(stream_id, status, end_stream=True)
            return
        session = _Session(
            session_id=stream_id,
            state=SessionState.REQUESTED,
            parser=CapsuleParser(self.max_capsule_size, _CAPSULE_TYPES),
            dialect=dialect_of_request(headers) or Dialect.DRAFT02,
        )
        self._sessions[stream_id] = session
        self._start_flow(session)
        out.append(events.SessionRequested(session_id=stream_id, headers=headers))

    def _check_request(self, headers: list[tuple[bytes, bytes]], ended: bool) -> int:
        method = header_value(headers, b":method")
        if method != b"CONNECT":
            return 405
        if dialect_of_request(headers) is None or ended:
            return 400
        if len(self._sessions) >= self.max_sessions:
            return 429
        return 0

    def _connect_data(self, event: DataReceived, out: list[events.Event]) -> None:
        session = self._sessions.get(event.stream_id)
        if session is None:
            return
        try:
            capsules = session.parser.feed(event.data) if event.data else []
            for capsule in capsules:
                if capsule.type == DRAIN_WEBTRANSPORT_SESSION:
                    out.append(events.DrainRequested(session_id=session.session_id))
                    continue
                if capsule.type in FLOW_CONTROL_CAPSULES:
                    self._flow_capsule(session, capsule.type, capsule.data)
                    continue
                # The parser returns known types only: this is CLOSE_WEBTRANSPORT_SESSION.
                code, reason = decode_close(capsule.data)
                self._end(session.session_id, Trigger.CLOSE_CAPSULE, code, reason, True, out)
                return
            if event.stream_ended:
                session.parser.eof()
        except FlowControlError as exc:
            self._flow_failed(session, exc, out)
            return
        except CapsuleError as exc:
            if session.state is SessionState.OPEN:
                self.h3.send_close(session.session_id, CloseCode.PROTOCOL_ERROR, str(exc))
            else:
                # Only a server sees data on a requested session: answer the request.
                self.h3.respond(session.session_id, 400, end_stream=True)
            self.quic.stop_stream(session.session_id, _H3_MESSAGE_ERROR)
            self._end(
                session.session_id,
                Trigger.PROTOCOL_ERROR,
                CloseCode.PROTOCOL_ERROR,
                str(exc),
                False,
                out,
            )
            return
        if event.stream_ended:
            self._end(session.session_id, Trigger.FIN, CloseCode.NORMAL, "", True, out)

    def _new_stream_data(
        self, event: quic_events.StreamDataReceived, out: list[events.Event]
    ) -> bool:
        """Take the first bytes of a peer's WebTransport stream without HTTP/3.

        aioquic reports a stream's bytes in order, so the first event of a stream unknown
        here starts at its beginning: the stream type, then the session id. When both are
        complete the stream is open and known from then on, and HTTP/3 never sees it.
        Anything else (a request, a control stream, a header cut short) is left to HTTP/3.

        Returns:
            Whether the event was handled.
        """
        data = event.data
        stream_id = event.stream_id
        if (
            len(data) < 3
            or data[0] != 0x40  # a two-byte varint: 0x41 (bidirectional) or 0x54
            or data[1] != (_UNI_SIGNAL if stream_id & 2 else _BIDI_SIGNAL)
            or stream_id & 1 != self.is_client  # the peer's streams: odd ids are a server's
            or stream_id in self.h3._stream
            or self.h3._is_done
            or self.h3._quic_logger is not None  # HTTP/3 logs the stream's type
        ):
            return False
        session_id = data[2]
        if session_id < 0x40:  # a one-byte varint: sessions 0 to 60
            payload = data[3:]
        else:
            length = 1 << (session_id >> 6)
            if len(data) < 2 + length:
                return False
            session_id = int.from_bytes(data[2 : 2 + length], "big") & _VARINT_MASKS[length]
            payload = data[2 + length :]
        # A header without data opens the stream too: its opener may wait for us to speak.
        stream = self._new_stream(stream_id, session_id, event.end_stream, out)
        if stream is not None:
            self._stream_data(stream_id, stream, payload, event.end_stream, out)
        return True

    def _h3_stream_data(
        self, event: WebTransportStreamDataReceived, out: list[events.Event]
    ) -> None:
        """The first bytes after a WebTransport header that HTTP/3 parsed (it came in pieces)."""
        stream_id = event.stream_id
        stream = self._adopt(stream_id, event.session_id, event.stream_ended, out)
        if stream is not None:
            self._stream_data(stream_id, stream, event.data, event.stream_ended, out)

    def _adopt(
        self, stream_id: int, session_id: int, ended: bool, out: list[events.Event]
    ) -> _Stream | None:
        """Open a stream whose header HTTP/3 parsed; HTTP/3 never sees it again.

        Its later bytes, resets and stop-sendings bypass HTTP/3 (see `handle_event()`).
        """
        self.h3._stream.pop(stream_id, None)  # HTTP/3 may have dropped it (a finished stream)
        return self._new_stream(stream_id, session_id, ended, out)

    def _new_stream(
        self, stream_id: int, session_id: int, ended: bool, out: list[events.Event]
    ) -> _Stream | None:
        """Record a stream the peer opened in a session, or refuse it (`None`)."""
        session = self._sessions.get(session_id)
        unidirectional = bool(stream_id & 2)
        if session is None:
            # A stream for a session that does not exist (any more).
            self._refuse_stream(stream_id, unidirectional, ended)
            return None
        stream = _Stream(session_id, not unidirectional, True)  # can send, can receive
        if session.flow is not None:
            try:
                session.flow.on_stream_opened(unidirectional)
            except FlowControlError as exc:
                self._flow_failed(session, exc, out)
                self._refuse_stream(stream_id, unidirectional, ended)
                return None
            # flow control counts the bytes after the header (_flow_final_size)
            stream.header = _HEADER_SIGNAL_SIZE + size_uint_var(session_id)
        self._streams[stream_id] = stream
        session.streams.add(stream_id)
        out.append(
            events.StreamOpened(
                session_id=session_id, stream_id=stream_id, is_unidirectional=unidirectional
            )
        )
        if not unidirectional:
            quic_stream = self.quic._streams.get(stream_id)
            if quic_stream is None or quic_stream.sender._reset_error_code is not None:
                self._stopped_before_known(stream_id, stream, out)
        return stream

    def _stream_data(
        self, stream_id: int, stream: _Stream, data: bytes, ended: bool, out: list[events.Event]
    ) -> None:
        if ended:
            stream.can_receive = False
        if stream.orphan:
            pass  # its session is gone: nothing is reported
        else:
            if data:
                stream.received += len(data)
                session = self._sessions[stream.session_id]  # a stream's session is held
                if session.flow is not None and not self._flow_data(
                    session, stream_id, stream, len(data), out
                ):
                    return
            if not stream.stopped and (data or ended):
                out.append(
                    events.StreamDataReceived(
                        session_id=stream.session_id,
                        stream_id=stream_id,
                        data=data,
                        end_stream=ended,
                    )
                )
        if ended:
            self._maybe_release_stream(stream_id, stream)

    def _stopped_before_known(
        self, stream_id: int, stream: _Stream, out: list[events.Event]
    ) -> None:
        """Report a STOP_SENDING that arrived before the stream's first bytes.

        aioquic reset our sending side when the STOP_SENDING came, but the stream was not
        known as a WebTransport stream yet, so no event could name its session then.
        """
        quic_stream = self.quic._streams.get(stream_id)
        code = None if quic_stream is None else quic_stream.sender._reset_error_code
        if quic_stream is not None and code is None:
            return
        stream.can_send = False
        out.append(
            events.StopSendingReceived(
                session_id=stream.session_id,
                stream_id=stream_id,
                code=from_http3_error(code) if code is not None else None,
            )
        )

    def _refuse_stream(self, stream_id: int, unidirectional: bool, ended: bool) -> None:
        code = WTErrorCode.SESSION_GONE
        if not unidirectional:
            self.quic.reset_stream(stream_id, code)
        if ended:
            self.h3._stream.pop(stream_id, None)
            return
        self.quic.stop_stream(stream_id, code)
        self._streams[stream_id] = _Stream(
            session_id=-1, can_send=False, can_receive=True, orphan=True
        )

    def _stream_reset(
        self,
        stream_id: int,
        error_code: int,
        out: list[events.Event],
        reliable: bool = False,
    ) -> None:
        session = self._sessions.get(stream_id)
        if session is not None:
            self._end(stream_id, Trigger.RESET, CloseCode.ABNORMAL, "", True, out)
            return
        stream = self._streams.get(stream_id)
        if stream is None or not stream.can_receive:
            return
        stream.can_receive = False
        if not stream.orphan:
            session = self._sessions[stream.session_id]
            if session.flow is not None and not self._flow_final_size(
                session, stream_id, stream, out
            ):
                return
            if reliable:
                if self._reliable_resets is None:
                    self._reliable_resets = set()
                self._reliable_resets.add(stream_id)
            out.append(
                events.StreamResetReceived(
                    session_id=stream.session_id,
                    stream_id=stream_id,
                    code=from_http3_error(error_code),
                )
            )
        self._maybe_release_stream(stream_id, stream)

    def _stop_sending(self, stream_id: int, error_code: int, out: list[events.Event]) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or not (stream.can_send or stream.held):
            return
        # aioquic has already reset the sending side. An orphan cannot get here: its
        # sending side was reset when its session went.
        stream.can_send = False
        self._drop_held(stream_id, stream)
        out.append(
            events.StopSendingReceived(
                session_id=stream.session_id,
                stream_id=stream_id,
                code=from_http3_error(error_code),
            )
        )
        self._maybe_release_stream(stream_id, stream)

    # -- commands: sessions --------------------------------------------------------------

    def request_session(
        self,
        authority: str,
        path: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        dialect: Dialect = Dialect.DRAFT02,
    ) -> int:
        """Send a WebTransport CONNECT request (client side).

        Args:
            authority: The `:authority` pseudo-header, e.g. `localhost:4433`.
            path: The `:path` pseudo-header, query string included.
            headers: Extra request headers (lowercase names).
            dialect: The dialect to speak. Draft-15 needs the server's SETTINGS first, to
                know its flow-control limits.

        Returns:
            The new session id. A `SessionEstablished` or `SessionRefused` event follows.
        """
        session_id = self.quic.get_next_available_stream_id()
        request = [
            (b":method", b"CONNECT"),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            *dialect.request_headers(),
            *(headers or []),
        ]
        self.h3.send_headers(session_id, request)
        session = _Session(
            session_id=session_id,
            state=SessionState.REQUESTED,
            parser=CapsuleParser(self.max_capsule_size, _CAPSULE_TYPES),
            dialect=dialect,
        )
        self._sessions[session_id] = session
        self._start_flow(session)
        return session_id

    def accept(self, session_id: int, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        """Accept a requested session with `:status 200` (server side).

        Args:
            session_id: The session id from `SessionRequested`.
            headers: Extra response headers.
        """
        session = self._require(session_id, SessionState.REQUESTED)
        response = [(b":status", b"200"), *session.dialect.response_headers()]
        self.h3.send_headers(session_id, response + list(headers or []))
        self._move(session, Trigger.ACCEPT)
        if session.flow is not None:
            for capsule in session.flow.grants():  # credit granted while the request waited
                self._send_capsule(session, capsule)

    def reject(
        self,
        session_id: int,
        status: int,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Refuse a requested session with an HTTP status and end its stream (server side).

        Args:
            session_id: The session id from `SessionRequested`.
            status: A 4xx or 5xx status.
            headers: Extra response headers.
        """
        session = self._require(session_id, SessionState.REQUESTED)
        self.h3.respond(session_id, status, end_stream=True, headers=headers)
        self._move(session, Trigger.REJECT)
        self._release(session)

    def close_session(self, session_id: int, code: int = 0, reason: str = "") -> None:
        """Close a session: send the close capsule and FIN, and reset its streams.

        No event follows: the caller knows. Closing a closed session does nothing.

        Args:
            session_id: The session id.
            code: The 32-bit application close code.
            reason: The close reason (at most 1024 UTF-8 bytes are sent).
        """
        session = self._sessions.get(session_id)
        if session is None:
            return
        if session.state is SessionState.OPEN:
            self.h3.send_close(session_id, code, reason)
        elif not self.is_client:
            self.h3.respond(session_id, 503, end_stream=True)
        else:
            self.h3.reset_request(session_id)
        self._move(session, Trigger.LOCAL_CLOSE)
        self._release(session)

    def drain_session(self, session_id: int) -> None:
        """Send DRAIN_WEBTRANSPORT_SESSION: ask the peer to finish up.

        Args:
            session_id: The session id.

        Raises:
            SessionClosed: If the session is not open.
        """
        self._require(session_id, SessionState.OPEN)
        self.h3.send_data(session_id, encode_drain(), end_stream=False)

    def send_datagram(self, session_id: int, data: bytes) -> None:
        """Queue a datagram for a session.

        Args:
            session_id: The session id.
            data: The payload.

        Raises:
            SessionClosed: If the session is not open.
            DatagramTooLarge: If the payload cannot fit in one QUIC packet.
        """
        self._require(session_id, SessionState.OPEN)
        limit = self.max_datagram_size()
        if len(data) > limit:
            raise DatagramTooLarge(len(data), limit)
        self.h3.send_datagram(session_id, data)

    # -- commands: streams ---------------------------------------------------------------

    def open_stream(self, session_id: int, unidirectional: bool = False) -> int:
        """Open a WebTransport stream in a session.

        Args:
            session_id: The session id.
            unidirectional: Open a send-only stream instead of a bidirectional one.

        Returns:
            The new stream id.

        Raises:
            SessionClosed: If the session is not open.
            StreamsBlocked: If the session is flow controlled and the peer's stream limit is
                reached (see `stream_credit()`).
        """
        session = self._require(session_id, SessionState.OPEN)
        if session.flow is not None:
            session.flow.open_stream(unidirectional)
        stream_id = self.h3.create_webtransport_stream(session_id, unidirectional)
        self._streams[stream_id] = _Stream(
            session_id=session_id,
            can_send=True,
            can_receive=not unidirectional,
            local=True,
            header=_HEADER_SIGNAL_SIZE + size_uint_var(session_id),
        )
        session.streams.add(stream_id)
        return stream_id

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue data on a stream, and optionally end it (FIN).

        In a flow-controlled session, bytes beyond the peer's data limit wait here (they
        count in `stream_buffered()`) and leave as the peer grants more.

        Args:
            stream_id: The stream id.
            data: The bytes to send.
            end_stream: Whether to end the stream after them.

        Raises:
            SessionClosed: If the stream's sending side is no longer open.
        """
        stream = self._streams.get(stream_id)
        if stream is None or not stream.can_send or stream.orphan:
            raise SessionClosed()
        flow = self._sessions[stream.session_id].flow  # a stream's session is held
        if flow is None:
            self.quic.send_stream_data(stream_id, data, end_stream)
        else:
            self._send_limited(stream_id, stream, flow, data, end_stream)
        if end_stream:
            stream.can_send = False
            self._maybe_release_stream(stream_id, stream)

    def reset_stream(self, stream_id: int, code: int = 0) -> None:
        """Abandon the sending side of a stream (RESET_STREAM) with an application code.

        Args:
            stream_id: The stream id.
            code: The 32-bit WebTransport application error code.
        """
        stream = self._streams.get(stream_id)
        if stream is None or not (stream.can_send or stream.held):
            return
        self._reset_sending(stream_id, stream, to_http3_error(code))
        stream.can_send = False
        self._maybe_release_stream(stream_id, stream)

    def stop_stream(self, stream_id: int, code: int = 0) -> None:
        """Ask the peer to stop sending on a stream (STOP_SENDING) with an application code.

        The stream's receiving side stays known until the peer's reset or FIN arrives;
        data arriving meanwhile is dropped.

        Args:
            stream_id: The stream id.
            code: The 32-bit WebTransport application error code.
        """
        stream = self._streams.get(stream_id)
        if stream is None or not stream.can_receive or stream.orphan or stream.stopped:
            return
        self.quic.stop_stream(stream_id, to_http3_error(code))
        stream.stopped = True

    # -- internals -----------------------------------------------------------------------

    def _require(self, session_id: int, state: SessionState) -> _Session:
        session = self._sessions.get(session_id)
        if session is None or session.state is not state:
            raise SessionClosed()
        return session

    _move = staticmethod(_Session.move)

    def _end(
        self,
        session_id: int,
        trigger: Trigger,
        code: int,
        reason: str,
        by_peer: bool,
        out: list[events.Event],
    ) -> None:
        session = self._sessions[session_id]
        was_open = session.state is SessionState.OPEN
        if trigger is Trigger.RESET:
            self.h3.reset_request(session_id)  # the peer abandoned the stream: so do we
        if trigger in (Trigger.CLOSE_CAPSULE, Trigger.FIN) and was_open:
            self.h3.send_close(session_id, code, "")  # answer with FIN (and echo the code)
            if trigger is Trigger.CLOSE_CAPSULE and not self.is_client:
                self.h3.stop_request(session_id)  # data after the close capsule means nothing
        if trigger in (Trigger.CLOSE_CAPSULE, Trigger.FIN) and not was_open and not self.is_client:
            self.h3.respond(session_id, 400, end_stream=True)  # the request was withdrawn
        self._move(session, trigger)
        self._release(session)
        out.append(
            events.SessionEnded(session_id=session_id, code=code, reason=reason, by_peer=by_peer)
        )

    def _release(self, session: _Session) -> None:
        """Forget a closed session and abandon its streams."""
        del self._sessions[session.session_id]
        if session.flow is not None and session.flow.unread:
            for stream_id in session.flow.unread:
                del self._unread[stream_id]
        gone = WTErrorCode.SESSION_GONE
        for stream_id in session.streams:
            stream = self._streams[stream_id]  # a session's streams are all held
            if stream.can_send or stream.held:
                self._reset_sending(stream_id, stream, gone)
                stream.can_send = False
            if stream.can_receive and not (stream.orphan or stream.stopped):
                self.quic.stop_stream(stream_id, gone)
            stream.orphan = True
            self._maybe_release_stream(stream_id, stream)

    def _maybe_release_stream(self, stream_id: int, stream: _Stream) -> None:
        if stream.can_send or stream.can_receive or stream.held:
            return
        del self._streams[stream_id]
        session = self._sessions.get(stream.session_id)
        if session is not None:
            session.streams.discard(stream_id)
            if session.flow is not None and not stream.local:
                # a stream of the peer's is finished: it may open another
                capsule = session.flow.on_stream_closed(stream_is_unidirectional(stream_id))
                if capsule is not None:
                    self._send_capsule(session, capsule)
        # aioquic keeps HTTP/3 state for WebTransport streams forever: drop it.
        self.h3._stream.pop(stream_id, None)

    def _reset_sending(self, stream_id: int, stream: _Stream, error_code: int) -> None:
        """Reset our sending side; a stream we opened keeps its header reliable."""
        self._drop_held(stream_id, stream)
        if stream.local:
            # The header names the session: RESET_STREAM_AT keeps it deliverable, so the
            # peer can tie the reset to its session (plain RESET_STREAM if unsupported).
            self.quic.reset_stream_at(stream_id, error_code, stream.header)
        else:
            self.quic.reset_stream(stream_id, error_code)

    # -- flow control ----------------------------------------------------------------------

    def stream_consumed(self, stream_id: int, size: int) -> bool:
        """Note that the application read (or dropped) `size` bytes of a stream.

        In a flow-controlled session this is what lets the peer send more: a WT_MAX_DATA
        capsule is queued once enough was consumed.

        Args:
            stream_id: The stream id.
            size: The number of bytes.

        Returns:
            Whether a capsule was queued (the caller should transmit).
        """
        session = self._unread.get(stream_id)
        if session is None:
            return False
        flow = session.flow
        assert flow is not None
        capsule = flow.on_read(stream_id, size)
        if stream_id not in flow.unread:
            del self._unread[stream_id]
        return capsule is not None and self._send_capsule(session, capsule)

    def _start_flow(self, session: _Session) -> None:
        """Turn flow control on for a session, once both the dialect and the peer allow it."""
        if session.flow is None:
            session.flow = SessionFlow.negotiate(
                session.dialect, self.h3.received_settings, self.flow_limits
            )

    def _send_capsule(self, session: _Session, capsule: bytes) -> bool:
        """Queue a capsule on a session's CONNECT stream, if it can carry one now."""
        if session.state is SessionState.REQUESTED and not self.is_client:
            return False  # the answer's HEADERS must come first; accept() catches up
        return self.h3.send_capsule(session.session_id, capsule)

    def _flow_capsule(self, session: _Session, capsule_type: int, data: bytes) -> None:
        """Act on a flow-control capsule from the peer."""
        flow = session.flow
        if flow is None:
            return  # flow control is off for this session: the capsule means nothing
        reply = flow.on_capsule(capsule_type, data)
        if reply is not None:
            self._send_capsule(session, reply)
        if flow.can_flush:
            self._flush_held(session, flow)

    def _flow_failed(
        self, session: _Session, exc: FlowControlError, out: list[events.Event]
    ) -> None:
        """End a session whose peer broke flow control: reset its CONNECT stream."""
        session_id = session.session_id
        self.quic.reset_stream(session_id, WTErrorCode.FLOW_CONTROL_ERROR)
        self.quic.stop_stream(session_id, WTErrorCode.FLOW_CONTROL_ERROR)
        self._end(session_id, Trigger.PROTOCOL_ERROR, exc.code, str(exc), False, out)

    def _flow_data(
        self,
        session: _Session,
        stream_id: int,
        stream: _Stream,
        size: int,
        out: list[events.Event],
    ) -> bool:
        """Account for stream data from the peer; `False` if it broke the session's limit."""
        if stream.stopped:
            return self._flow_dropped(session, size, out)  # dropped unread
        assert session.flow is not None
        try:
            session.flow.on_data(stream_id, size)
        except FlowControlError as exc:
            self._flow_failed(session, exc, out)
            return False
        self._unread[stream_id] = session
        return True

    def _flow_final_size(
        self, session: _Session, stream_id: int, stream: _Stream, out: list[events.Event]
    ) -> bool:
        """Count the bytes a reset stream never delivered; `False` if that broke the limit."""
        quic_stream = self.quic._streams.get(stream_id)
        if quic_stream is None:
            return True
        header = 0 if stream.local else stream.header
        unseen = quic_stream.receiver.highest_offset - header - stream.received
        if unseen <= 0:
            return True
        stream.received += unseen
        return self._flow_dropped(session, unseen, out)  # never to be read

    def _flow_dropped(self, session: _Session, size: int, out: list[events.Event]) -> bool:
        """Count peer bytes that will never be read; `False` if they broke the limit."""
        assert session.flow is not None
        try:
            capsule = session.flow.on_dropped(size)
        except FlowControlError as exc:
            self._flow_failed(session, exc, out)
            return False
        if capsule is not None:
            self._send_capsule(session, capsule)
        return True

    def _send_limited(
        self, stream_id: int, stream: _Stream, flow: SessionFlow, data: bytes, end_stream: bool
    ) -> None:
        """Send what the peer's data limit allows; the session's flow control holds the rest."""
        chunk, complete = flow.admit(stream_id, data, end_stream)
        if complete:
            self.quic.send_stream_data(stream_id, chunk, end_stream)
            return
        if chunk:
            self.quic.send_stream_data(stream_id, chunk)
        stream.held = True
        self._report_data_blocked(self._sessions[stream.session_id], flow)

    def _flush_held(self, session: _Session, flow: SessionFlow) -> None:
        """Send held bytes, oldest stream first, as far as the new credit goes."""
        for stream_id, chunk, end_stream, done in flow.flush():
            self.quic.send_stream_data(stream_id, chunk, end_stream)
            if done:
                stream = self._streams[stream_id]  # a held stream is never released
                stream.held = False
                self._maybe_release_stream(stream_id, stream)
        if flow.held:
            self._report_data_blocked(session, flow)

    def _report_data_blocked(self, session: _Session, flow: SessionFlow) -> None:
        capsule = flow.data_blocked()
        if capsule is not None:
            self._send_capsule(session, capsule)

    def _drop_held(self, stream_id: int, stream: _Stream) -> None:
        if not stream.held:
            return
        stream.held = False
        session = self._sessions.get(stream.session_id)
        if session is not None and session.flow is not None:
            session.flow.drop_held(stream_id)

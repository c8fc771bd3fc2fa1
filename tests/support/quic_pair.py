"""A QUIC client and server wired together in memory, each driven by wtframe's core.

No socket and no event loop: datagrams move between the two `QuicConnection`s by hand
and a fake clock advances a few milliseconds per round, so every run is deterministic.
The server is always a `WebTransportProtocol`; the client is one too
([`QuicPair`][tests.support.quic_pair.QuicPair]) or a bare aioquic `H3Connection`
([`RawClientPair`][tests.support.quic_pair.RawClientPair]) that can send what wtframe's
client never would.
"""

from __future__ import annotations

import ssl
from typing import Any, Generic, TypeVar

from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import H3Event
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from wtframe import events
from wtframe.certs import Certificate, generate_certificate
from wtframe.protocol import WebTransportProtocol
from wtframe.server import quic_configuration

__all__ = [
    "CLIENT_ADDR",
    "SERVER_ADDR",
    "Endpoint",
    "QuicPair",
    "RawClientPair",
    "RawSide",
    "Side",
    "certificate",
]

CLIENT_ADDR = ("127.0.0.1", 50001)
SERVER_ADDR = ("127.0.0.1", 4433)
_STEP = 0.005  # seconds per round: longer than aioquic's ACK delay, far below any PTO
_MAX_ROUNDS = 10_000

_certificate: Certificate | None = None
_E = TypeVar("_E", bound=quic_events.QuicEvent)


def certificate() -> Certificate:
    """Return a development certificate, generated once per test run."""
    global _certificate
    if _certificate is None:
        _certificate = generate_certificate()
    return _certificate


class Endpoint:
    """One end of the pair: a QUIC connection and every QUIC event it produced."""

    def __init__(self, quic: QuicConnection, addr: tuple[str, int]) -> None:
        self.quic = quic
        self.addr = addr
        self.raw: list[quic_events.QuicEvent] = []

    def drain(self) -> list[events.Event]:
        """Handle every pending QUIC event and return the wtframe events they caused."""
        out: list[events.Event] = []
        while (event := self.quic.next_event()) is not None:
            self.raw.append(event)
            out.extend(self.handle(event))
        return out

    def handle(self, event: quic_events.QuicEvent) -> list[events.Event]:
        """Handle one QUIC event."""
        raise NotImplementedError

    def raw_of(self, kind: type[_E]) -> list[_E]:
        """Return the QUIC events of one type this end produced, in order."""
        return [event for event in self.raw if isinstance(event, kind)]


class Side(Endpoint):
    """An end driven by a `WebTransportProtocol`."""

    def __init__(
        self, quic: QuicConnection, addr: tuple[str, int], **protocol_options: Any
    ) -> None:
        super().__init__(quic, addr)
        self.protocol = WebTransportProtocol(quic, **protocol_options)

    def handle(self, event: quic_events.QuicEvent) -> list[events.Event]:
        return self.protocol.handle_event(event)


class RawSide(Endpoint):
    """An end driven by a bare aioquic `H3Connection`; its HTTP/3 events are kept."""

    def __init__(self, quic: QuicConnection, addr: tuple[str, int], webtransport: bool) -> None:
        super().__init__(quic, addr)
        self.h3 = H3Connection(quic, enable_webtransport=webtransport)
        self.h3_events: list[H3Event] = []

    def handle(self, event: quic_events.QuicEvent) -> list[events.Event]:
        self.h3_events.extend(self.h3.handle_event(event))
        return []


_C = TypeVar("_C", bound=Endpoint)


class _Pair(Generic[_C]):
    client: _C
    server: Side
    handshake_events: tuple[list[events.Event], list[events.Event]]

    def __init__(self, *, client_datagrams: bool, max_sessions: int, **options: Any) -> None:
        self.now = 1000.0
        client_config = QuicConfiguration(
            is_client=True,
            alpn_protocols=H3_ALPN,
            max_datagram_frame_size=65536 if client_datagrams else None,
            verify_mode=ssl.CERT_NONE,
            server_name="localhost",
        )
        self.client_quic = QuicConnection(configuration=client_config)
        server_quic = QuicConnection(
            configuration=quic_configuration(certificate()),
            original_destination_connection_id=self.client_quic.original_destination_connection_id,
        )
        self.server = Side(server_quic, SERVER_ADDR, max_sessions=max_sessions, **options)

    def _handshake(self) -> None:
        self.client.quic.connect(SERVER_ADDR, now=self.now)
        self.handshake_events = self.transfer()

    def _send(self, source: Endpoint, target: Endpoint) -> int:
        moved = 0
        for data, _addr in source.quic.datagrams_to_send(now=self.now):
            target.quic.receive_datagram(data, source.addr, now=self.now)
            moved += 1
        return moved

    def _fire_timers(self) -> None:
        for end in (self.client, self.server):
            timer = end.quic.get_timer()
            if timer is not None and timer <= self.now:
                end.quic.handle_timer(now=self.now)

    def transfer(self) -> tuple[list[events.Event], list[events.Event]]:
        """Move datagrams both ways until neither side has anything left to send.

        Returns:
            The wtframe events the client and the server produced, in order.
        """
        client_out: list[events.Event] = []
        server_out: list[events.Event] = []
        for _ in range(_MAX_ROUNDS):
            self.now += _STEP
            self._fire_timers()
            moved = self._send(self.client, self.server)
            server_out.extend(self.server.drain())
            moved += self._send(self.server, self.client)
            client_out.extend(self.client.drain())
            if not moved:
                return client_out, server_out
        raise AssertionError("the connections never went quiet")  # pragma: no cover

    def advance(self, seconds: float) -> tuple[list[events.Event], list[events.Event]]:
        """Transfer until quiet, let `seconds` pass (timers fire), and transfer again.

        Returns:
            The wtframe events the client and the server produced, in order.
        """
        client_out, server_out = self.transfer()
        self.now += seconds
        client_more, server_more = self.transfer()
        return client_out + client_more, server_out + server_more


class QuicPair(_Pair[Side]):
    """A client and a server `WebTransportProtocol` joined by an in-memory network.

    Args:
        max_sessions: The max-sessions setting of both sides.
        **protocol_options: Other `WebTransportProtocol` options for both sides.

    Attributes:
        handshake_events: What each side produced during the handshake.
    """

    def __init__(self, *, max_sessions: int = 16, **protocol_options: Any) -> None:
        super().__init__(client_datagrams=True, max_sessions=max_sessions, **protocol_options)
        self.client = Side(
            self.client_quic, CLIENT_ADDR, max_sessions=max_sessions, **protocol_options
        )
        self._handshake()

    def open_session(self, path: str = "/") -> int:
        """Request a session from the client, accept it on the server, and return its id."""
        session_id = self.client.protocol.request_session("localhost", path)
        _, requested = self.transfer()
        assert [type(event) for event in requested] == [events.SessionRequested]
        self.server.protocol.accept(session_id)
        established, _ = self.transfer()
        assert [type(event) for event in established] == [events.SessionEstablished]
        return session_id


class RawClientPair(_Pair[RawSide]):
    """A bare aioquic HTTP/3 client and a server `WebTransportProtocol`.

    Args:
        max_sessions: The server's max-sessions setting.
        webtransport: Whether the client enables WebTransport (and so datagrams) at all.
        **protocol_options: Other `WebTransportProtocol` options for the server.
    """

    def __init__(
        self, *, max_sessions: int = 16, webtransport: bool = True, **protocol_options: Any
    ) -> None:
        super().__init__(
            client_datagrams=webtransport, max_sessions=max_sessions, **protocol_options
        )
        self.client = RawSide(self.client_quic, CLIENT_ADDR, webtransport)
        self._handshake()

    def request(self, headers: list[tuple[bytes, bytes]], end_stream: bool = False) -> int:
        """Send a request from the client and return its stream id."""
        stream_id = self.client.quic.get_next_available_stream_id()
        self.client.h3.send_headers(stream_id, headers, end_stream=end_stream)
        return stream_id

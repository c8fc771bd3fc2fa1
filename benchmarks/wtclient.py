"""A lean WebTransport (draft-02) client on aioquic, shared by every implementation."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DatagramReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamDataReceived

__all__ = ["StreamHandler", "WtClient", "open_connection"]

StreamHandler = Callable[[bytes, bool], None]
"""Called with each chunk of a stream's incoming data and whether it ends the stream."""


class WtClient(QuicConnectionProtocol):
    """A client QUIC connection that opens WebTransport sessions and streams.

    Streams opened by [`open_stream`][benchmarks.wtclient.WtClient.open_stream] are
    served straight from QUIC events: HTTP/3 never sees them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic, enable_webtransport=True)
        self.activity = asyncio.Event()
        self._connects: dict[int, asyncio.Future[int]] = {}
        self._streams: dict[int, StreamHandler] = {}
        self._datagram_handlers: dict[int, Callable[[bytes], None]] = {}

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        """Process a UDP datagram and signal that the peer made progress.

        Args:
            data: The datagram.
            addr: The sender's address.
        """
        super().datagram_received(data, addr)
        self.activity.set()

    def quic_event_received(self, event: QuicEvent) -> None:
        """Route a QUIC event to its stream handler, or through HTTP/3.

        Args:
            event: The QUIC event.
        """
        if isinstance(event, StreamDataReceived):
            handler = self._streams.get(event.stream_id)
            if handler is not None:
                if event.end_stream:
                    del self._streams[event.stream_id]
                handler(event.data, event.end_stream)
                return
        elif isinstance(event, ConnectionTerminated):
            for waiter in self._connects.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError(event.reason_phrase))
            self._connects.clear()
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, DatagramReceived):
                on_datagram = self._datagram_handlers.get(h3_event.stream_id)
                if on_datagram is not None:
                    on_datagram(h3_event.data)
            elif isinstance(h3_event, HeadersReceived):
                connect = self._connects.pop(h3_event.stream_id, None)
                if connect is not None and not connect.done():
                    status = dict(h3_event.headers).get(b":status", b"0")
                    connect.set_result(int(status))

    async def open_session(self, path: str) -> int:
        """Open a WebTransport session with an extended CONNECT.

        Args:
            path: The request path, such as ``/echo``.

        Returns:
            The session id.

        Raises:
            ConnectionError: If the server refuses the session or the connection ends.
        """
        session_id = self._quic.get_next_available_stream_id()
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._connects[session_id] = waiter
        self.h3.send_headers(
            session_id,
            [
                (b":method", b"CONNECT"),
                (b":scheme", b"https"),
                (b":authority", b"localhost"),
                (b":path", path.encode()),
                (b":protocol", b"webtransport"),
                (b"origin", b"https://localhost"),
            ],
        )
        self.transmit()
        status = await waiter
        if status != 200:
            raise ConnectionError(f"CONNECT {path} answered {status}")
        return session_id

    def on_datagram(self, session_id: int, handler: Callable[[bytes], None]) -> None:
        """Call `handler` with each datagram the session receives.

        Args:
            session_id: The session.
            handler: Receives each datagram's payload.
        """
        self._datagram_handlers[session_id] = handler

    def send_datagram(self, session_id: int, data: bytes) -> None:
        """Queue a datagram on a session; call `transmit` to send it.

        Args:
            session_id: The session.
            data: The payload.
        """
        self.h3.send_datagram(session_id, data)

    @property
    def pending_datagrams(self) -> int:
        """Datagrams queued but not yet put on the wire."""
        return len(self._quic._datagrams_pending)

    def unacked_bytes(self, stream_id: int) -> int:
        """Return how many bytes written to a stream the peer has not acknowledged.

        Args:
            stream_id: The stream.

        Returns:
            The byte count, 0 once the stream is gone.
        """
        stream = self._quic._streams.get(stream_id)
        return 0 if stream is None else len(stream.sender._buffer)

    def open_stream(self, session_id: int, handler: StreamHandler) -> int:
        """Open a bidirectional WebTransport stream whose replies go to `handler`.

        Args:
            session_id: The session.
            handler: Receives the stream's incoming data.

        Returns:
            The stream id.
        """
        stream_id = self.h3.create_webtransport_stream(session_id)
        self._streams[stream_id] = handler
        return stream_id

    def send(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue stream data; call `transmit` or `transmit_soon` to send it.

        Args:
            stream_id: The stream.
            data: The bytes.
            end_stream: Whether to finish the stream.
        """
        self._quic.send_stream_data(stream_id, data, end_stream)

    def transmit_soon(self) -> None:
        """Send what is queued once the event loop is next idle, batching writes."""
        self._transmit_soon()

    def hang_up(self) -> None:
        """Close the connection and its UDP socket without waiting for the peer."""
        self.close()
        if self._transport is not None:
            self._transport.close()

    async def request(self, session_id: int, payload: bytes, *, batch: bool = False) -> bytes:
        """Send `payload` on a new stream, finish it and return the whole reply.

        Args:
            session_id: The session.
            payload: The request body.
            batch: Send with `transmit_soon` instead of at once.

        Returns:
            Everything the server sent on the stream before finishing it.
        """
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        chunks: list[bytes] = []

        def on_data(data: bytes, end: bool) -> None:
            chunks.append(data)
            if end and not waiter.done():
                waiter.set_result(b"".join(chunks))

        stream_id = self.open_stream(session_id, on_data)
        self._quic.send_stream_data(stream_id, payload, end_stream=True)
        if batch:
            self._transmit_soon()
        else:
            self.transmit()
        return await waiter


async def open_connection(port: int, host: str = "127.0.0.1") -> WtClient:
    """Connect to a local HTTP/3 server without verifying its certificate.

    Args:
        port: The server's UDP port.
        host: The server's address.

    Returns:
        The connected client; `close()` it when done.
    """
    configuration = QuicConfiguration(
        is_client=True,
        alpn_protocols=H3_ALPN,
        max_datagram_frame_size=65536,
        verify_mode=ssl.CERT_NONE,
        server_name="localhost",
    )
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: WtClient(QuicConnection(configuration=configuration)),
        local_addr=(host, 0),
    )
    protocol.connect((host, port))
    await protocol.wait_connected()
    return protocol

"""The client keeps what a server sends for a session before its answer arrives.

A server may open streams and send datagrams right after its 200; if the packet with the
200 is lost or late, they reach the client first. This server does it on purpose: for
every CONNECT it sends a datagram and a unidirectional stream, transmits, and only then
answers (or refuses, for `/refuse`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve as quic_serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent

from wtframe import HandshakeError, connect
from wtframe.certs import generate_certificate


class _EarlyServer(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._h3 = H3Connection(self._quic, enable_webtransport=True)

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self._h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived) and h3_event.stream_id % 4 == 0:
                self._loop.create_task(self._answer_late(h3_event))

    async def _answer_late(self, event: HeadersReceived) -> None:
        session_id = event.stream_id
        self._h3.send_datagram(session_id, b"early datagram")
        stream_id = self._h3.create_webtransport_stream(session_id, is_unidirectional=True)
        self._quic.send_stream_data(stream_id, b"early stream", end_stream=True)
        self.transmit()
        await asyncio.sleep(0.05)  # the answer comes in a later packet
        path = dict(event.headers).get(b":path")
        status = b"404" if path == b"/refuse" else b"200"
        self._h3.send_headers(session_id, [(b":status", status)], end_stream=status != b"200")
        self.transmit()


@pytest.fixture
async def early_server(tmp_path: Path) -> Any:
    certificate = generate_certificate()
    cert_file, key_file = certificate.write(tmp_path)
    configuration = QuicConfiguration(
        is_client=False, alpn_protocols=H3_ALPN, max_datagram_frame_size=65536
    )
    configuration.load_cert_chain(cert_file, key_file)
    server = await quic_serve(
        "127.0.0.1", 0, configuration=configuration, create_protocol=_EarlyServer
    )
    assert server._transport is not None
    port = server._transport.get_extra_info("sockname")[1]
    try:
        yield f"https://127.0.0.1:{port}", certificate.fingerprint
    finally:
        server.close()


async def test_streams_and_datagrams_sent_before_the_answer_are_kept(
    early_server: tuple[str, str],
) -> None:
    base, fingerprint = early_server
    async with connect(f"{base}/early", cert_hash=fingerprint) as session:
        assert await asyncio.wait_for(session.receive_datagram(), 5) == b"early datagram"
        stream = await asyncio.wait_for(session.accept_stream(), 5)
        assert await asyncio.wait_for(stream.read(), 5) == b"early stream"
        assert dict(session.response_headers)[b":status"] == b"200"


async def test_a_refused_session_drops_what_came_before_its_answer(
    early_server: tuple[str, str],
) -> None:
    base, fingerprint = early_server
    with pytest.raises(HandshakeError) as caught:
        await asyncio.wait_for(connect(f"{base}/refuse", cert_hash=fingerprint), 5)
    assert caught.value.status == 404

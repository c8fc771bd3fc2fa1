"""Print, in order, every event a plain aioquic WebTransport server sees.

A server and a client run on loopback in one asyncio loop. The client opens a WebTransport
session, then sends one datagram, one unidirectional stream and one bidirectional stream,
waiting for each echo before the next step, and finally closes the session with a
CLOSE_WEBTRANSPORT_SESSION capsule. The server prints each QUIC event it receives and the
HTTP/3 events aioquic's `H3Connection` turns it into.

Run it from the repository root:

    python docs/snippets/aioquic_event_trace.py

Only aioquic and cryptography are needed; wtframe is not used.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import struct
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import (
    DatagramReceived,
    DataReceived,
    H3Event,
    HeadersReceived,
    WebTransportStreamDataReceived,
)
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import (
    ConnectionTerminated,
    DatagramFrameReceived,
    ProtocolNegotiated,
    QuicEvent,
    StreamDataReceived,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

__all__ = ["main"]

SETTING_NAMES = {
    0x01: "QPACK_MAX_TABLE_CAPACITY",
    0x07: "QPACK_BLOCKED_STREAMS",
    0x08: "ENABLE_CONNECT_PROTOCOL",
    0x21: "reserved (GREASE)",
    0x33: "H3_DATAGRAM",
    0x2B603742: "ENABLE_WEBTRANSPORT",
}
CLOSE_WEBTRANSPORT_SESSION = 0x2843
TIMEOUT = 5.0


def make_certificate() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Create a self-signed ECDSA P-256 certificate for localhost, valid for 10 days.

    Returns:
        The certificate and its private key.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=10))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return certificate, key


class Log:
    """Print lines, folding a run of identical lines into one with a count."""

    def __init__(self) -> None:
        self.last = ""
        self.repeats = 0

    def __call__(self, line: str) -> None:
        """Print a line, or count it if it repeats the previous one.

        Args:
            line: The text to print.
        """
        if line == self.last:
            self.repeats += 1
            return
        self.flush()
        self.last = line
        print(line)

    def flush(self) -> None:
        """Print how often the last line repeated, if it did."""
        if self.repeats:
            print(f"        (the same event {self.repeats} more times)")
        self.repeats = 0
        self.last = ""


log = Log()


def print_settings(direction: str, settings: dict[int, int]) -> None:
    """Print HTTP/3 SETTINGS, one per line, with their names.

    Args:
        direction: Which way the settings went, for the heading.
        settings: The settings, by identifier.
    """
    log(f"    h3  (SETTINGS {direction})")
    for key, value in settings.items():
        log(f"          {SETTING_NAMES.get(key, hex(key))} (0x{key:x}) = {value}")


def describe_quic(event: QuicEvent) -> str:
    """Describe a QUIC event in one line.

    Args:
        event: The event aioquic's `QuicConnection` produced.

    Returns:
        The event's class name and its interesting fields.
    """
    name = type(event).__name__
    if isinstance(event, StreamDataReceived):
        kind = "uni" if event.stream_id & 2 else "bidi"
        fin = " FIN" if event.end_stream else ""
        more = ".." if len(event.data) > 8 else ""
        return f"{name}(stream {event.stream_id} {kind}, {event.data[:8].hex(' ')}{more}{fin})"
    if isinstance(event, DatagramFrameReceived):
        return f"{name}({event.data.hex(' ')})"
    if isinstance(event, ProtocolNegotiated):
        return f"{name}(alpn={event.alpn_protocol})"
    if isinstance(event, ConnectionTerminated):
        return f"{name}(error_code={event.error_code})"
    return name


def describe_h3(event: H3Event) -> str:
    """Describe an HTTP/3 event in one line.

    Args:
        event: The event aioquic's `H3Connection` produced.

    Returns:
        The event's class name and its interesting fields.
    """
    name = type(event).__name__
    if isinstance(event, HeadersReceived):
        fields = "\n".join(f"          {k.decode()}: {v.decode()}" for k, v in event.headers)
        return f"{name}(stream {event.stream_id})\n{fields}"
    if isinstance(event, DatagramReceived):
        return f"{name}(stream_id={event.stream_id}, data={event.data!r})"
    if isinstance(event, WebTransportStreamDataReceived):
        return (
            f"{name}(stream {event.stream_id}, session_id={event.session_id}, "
            f"data={event.data!r}, stream_ended={event.stream_ended})"
        )
    if isinstance(event, DataReceived):
        return (
            f"{name}(stream {event.stream_id}, data={event.data.hex(' ')}, "
            f"stream_ended={event.stream_ended})"
        )
    return name


class TraceServer(QuicConnectionProtocol):
    """A WebTransport echo server that prints every event it sees."""

    finished: asyncio.Event
    """Set when the QUIC connection has ended."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3: H3Connection | None = None
        self.settings_seen = False

    def quic_event_received(self, event: QuicEvent) -> None:
        """Print a QUIC event, hand it to HTTP/3 and answer what needs answering.

        Args:
            event: The event aioquic's `QuicConnection` produced.
        """
        log(f"  quic  {describe_quic(event)}")
        if isinstance(event, ConnectionTerminated):
            self.finished.set()
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.h3 = H3Connection(self._quic, enable_webtransport=True)
            print_settings("sent to client", self.h3.sent_settings or {})
        if self.h3 is None:
            return
        for h3_event in self.h3.handle_event(event):
            log(f"    h3  {describe_h3(h3_event)}")
            self.answer(h3_event)
        if not self.settings_seen and self.h3.received_settings is not None:
            self.settings_seen = True
            print_settings("received from client", self.h3.received_settings)
        self.transmit()

    def answer(self, event: H3Event) -> None:
        """Accept the CONNECT request and echo datagrams and streams.

        Args:
            event: An HTTP/3 event from the client.
        """
        assert self.h3 is not None
        if isinstance(event, HeadersReceived):
            headers = dict(event.headers)
            if headers.get(b":protocol") == b"webtransport":
                self.h3.send_headers(event.stream_id, [(b":status", b"200")])
        elif isinstance(event, DatagramReceived):
            self.h3.send_datagram(event.stream_id, event.data)
        elif isinstance(event, WebTransportStreamDataReceived) and event.stream_ended:
            if event.stream_id & 2:
                reply = self.h3.create_webtransport_stream(event.session_id, True)
                self._quic.send_stream_data(reply, event.data, end_stream=True)
            else:
                self._quic.send_stream_data(event.stream_id, event.data, end_stream=True)
        elif isinstance(event, DataReceived) and event.stream_ended:
            self.h3.send_data(event.stream_id, b"", end_stream=True)
            # H3Connection's private per-stream table, shown to expose what it keeps.
            log(f"  (H3Connection still holds state for streams {sorted(self.h3._stream)})")


class TraceClient(QuicConnectionProtocol):
    """A minimal WebTransport client that waits for each echo."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic, enable_webtransport=True)
        self.session_id = -1
        self.own_bidi: set[int] = set()
        self.received: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    def quic_event_received(self, event: QuicEvent) -> None:
        """Hand a QUIC event to HTTP/3 and queue what the server sent back.

        Args:
            event: The event aioquic's `QuicConnection` produced.
        """
        # aioquic does not mark a bidirectional stream opened with
        # create_webtransport_stream() as a WebTransport stream on the client, so the
        # server's reply would be parsed as HTTP/3 frames. Read it from QUIC directly.
        if isinstance(event, StreamDataReceived) and event.stream_id in self.own_bidi:
            if event.end_stream:
                self.received.put_nowait(("bidi", event.data))
            return
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                self.received.put_nowait(("headers", dict(h3_event.headers)[b":status"]))
            elif isinstance(h3_event, DatagramReceived):
                self.received.put_nowait(("datagram", h3_event.data))
            elif isinstance(h3_event, WebTransportStreamDataReceived) and h3_event.stream_ended:
                self.received.put_nowait(("uni", h3_event.data))
            elif isinstance(h3_event, DataReceived) and h3_event.stream_ended:
                self.received.put_nowait(("fin", h3_event.data))

    async def expect(self, kind: str) -> bytes:
        """Wait for the next thing the server sent back.

        Args:
            kind: What is expected: headers, datagram, uni, bidi or fin.

        Returns:
            The status or payload that arrived.
        """
        got_kind, data = await asyncio.wait_for(self.received.get(), TIMEOUT)
        assert got_kind == kind, (got_kind, kind)
        return data

    async def run(self) -> None:
        """Open a session, use each transport once, then close the session."""
        log("client: CONNECT :protocol webtransport")
        self.session_id = self._quic.get_next_available_stream_id()
        self.h3.send_headers(
            self.session_id,
            [
                (b":method", b"CONNECT"),
                (b":protocol", b"webtransport"),
                (b":scheme", b"https"),
                (b":authority", b"localhost"),
                (b":path", b"/trace"),
                (b"sec-webtransport-http3-draft02", b"1"),
            ],
        )
        self.transmit()
        log(f"client: answer :status {(await self.expect('headers')).decode()}")

        log("client: datagram b'ping'")
        self.h3.send_datagram(self.session_id, b"ping")
        self.transmit()
        log(f"client: datagram echo {await self.expect('datagram')!r}")

        log("client: unidirectional stream b'uni' + FIN")
        uni = self.h3.create_webtransport_stream(self.session_id, is_unidirectional=True)
        self._quic.send_stream_data(uni, b"uni", end_stream=True)
        self.transmit()
        log(f"client: unidirectional echo {await self.expect('uni')!r}")

        log("client: bidirectional stream b'bidi' + FIN")
        bidi = self.h3.create_webtransport_stream(self.session_id)
        self.own_bidi.add(bidi)
        self._quic.send_stream_data(bidi, b"bidi", end_stream=True)
        self.transmit()
        log(f"client: bidirectional echo {await self.expect('bidi')!r}")

        log("client: CLOSE_WEBTRANSPORT_SESSION code 7 'bye' + FIN")
        payload = struct.pack("!I", 7) + b"bye"
        capsule = (
            encode_uint_var(CLOSE_WEBTRANSPORT_SESSION) + encode_uint_var(len(payload)) + payload
        )
        self.h3.send_data(self.session_id, capsule, end_stream=True)
        self.transmit()
        await self.expect("fin")

        log("client: closes the QUIC connection")
        self.close()
        await self.wait_closed()


async def main() -> None:
    """Run the server and the client on loopback and print the server's events."""
    TraceServer.finished = asyncio.Event()
    certificate, key = make_certificate()
    server_config = QuicConfiguration(
        is_client=False, alpn_protocols=H3_ALPN, max_datagram_frame_size=65536
    )
    server_config.certificate = certificate
    server_config.private_key = key
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: QuicServer(configuration=server_config, create_protocol=TraceServer),
        local_addr=("127.0.0.1", 0),
    )
    port = transport.get_extra_info("sockname")[1]

    client_config = QuicConfiguration(
        is_client=True,
        alpn_protocols=H3_ALPN,
        max_datagram_frame_size=65536,
        server_name="localhost",
    )
    client_config.load_verify_locations(cadata=certificate.public_bytes(Encoding.PEM))
    try:
        log("client: QUIC handshake")
        async with connect(
            "127.0.0.1", port, configuration=client_config, create_protocol=TraceClient
        ) as client:
            assert isinstance(client, TraceClient)
            await client.run()
        await asyncio.wait_for(TraceServer.finished.wait(), TIMEOUT)
        log.flush()
    finally:
        transport.close()


if __name__ == "__main__":
    asyncio.run(main())

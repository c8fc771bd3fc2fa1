"""A minimal WebTransport server written directly on aioquic: the baseline.

Endpoints (WebTransport draft-02 over HTTP/3):

* ``/echo``: every bidirectional stream is echoed back byte for byte, ending when the
  request ends; every datagram is echoed back.
* ``/sink``: bidirectional streams are read to their end, then answered with the ASCII
  line ``"<bytes on this stream> <datagrams received by this session>"`` and closed;
  datagrams are counted.

Usage: ``python -m benchmarks.raw_server --certificate CERT --private-key KEY``. The
server listens on 127.0.0.1 on a free port and prints ``READY <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import (
    DatagramReceived,
    H3Event,
    HeadersReceived,
    WebTransportStreamDataReceived,
)
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent

__all__ = ["RawProtocol", "main", "run"]

ECHO = b"/echo"
SINK = b"/sink"


class RawProtocol(QuicConnectionProtocol):
    """One QUIC connection carrying HTTP/3 and WebTransport sessions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._h3 = H3Connection(self._quic, enable_webtransport=True)
        self._paths: dict[int, bytes] = {}
        self._sink_bytes: dict[int, int] = {}
        self._datagrams: dict[int, int] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        """Feed a QUIC event to HTTP/3 and handle what comes out.

        Args:
            event: The QUIC event.
        """
        for h3_event in self._h3.handle_event(event):
            self._handle(h3_event)

    def _handle(self, event: H3Event) -> None:
        if isinstance(event, WebTransportStreamDataReceived):
            stream_id = event.stream_id
            if self._paths.get(event.session_id) == SINK:
                total = self._sink_bytes.get(stream_id, 0) + len(event.data)
                if event.stream_ended:
                    self._sink_bytes.pop(stream_id, None)
                    count = self._datagrams.get(event.session_id, 0)
                    reply = f"{total} {count}".encode()
                    self._quic.send_stream_data(stream_id, reply, end_stream=True)
                else:
                    self._sink_bytes[stream_id] = total
            else:
                self._quic.send_stream_data(stream_id, event.data, event.stream_ended)
            if event.stream_ended:
                # Both halves are finished; HTTP/3 would otherwise keep its record.
                self._h3._stream.pop(stream_id, None)
        elif isinstance(event, DatagramReceived):
            session_id = event.stream_id
            path = self._paths.get(session_id)
            if path == ECHO:
                self._h3.send_datagram(session_id, event.data)
            elif path == SINK:
                self._datagrams[session_id] = self._datagrams.get(session_id, 0) + 1
        elif isinstance(event, HeadersReceived):
            self._on_headers(event)

    def _on_headers(self, event: HeadersReceived) -> None:
        headers = dict(event.headers)
        path = headers.get(b":path", b"")
        if (
            headers.get(b":method") == b"CONNECT"
            and headers.get(b":protocol") == b"webtransport"
            and path in (ECHO, SINK)
        ):
            self._paths[event.stream_id] = path
            self._h3.send_headers(event.stream_id, [(b":status", b"200")])
        else:
            self._h3.send_headers(event.stream_id, [(b":status", b"404")], end_stream=True)


async def run(certificate: str, private_key: str, host: str = "127.0.0.1") -> None:
    """Serve until cancelled, after printing ``READY <port>``.

    Args:
        certificate: Path of the PEM certificate.
        private_key: Path of the PEM private key.
        host: The address to bind.
    """
    configuration = QuicConfiguration(
        is_client=False, alpn_protocols=H3_ALPN, max_datagram_frame_size=65536
    )
    configuration.load_cert_chain(certificate, private_key)
    server = await serve(host, 0, configuration=configuration, create_protocol=RawProtocol)
    assert server._transport is not None
    port = server._transport.get_extra_info("sockname")[1]
    print(f"READY {port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        server.close()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve.

    Args:
        argv: The arguments, without the program name; `sys.argv` by default.
    """
    parser = argparse.ArgumentParser(description="Minimal aioquic WebTransport server.")
    parser.add_argument("--certificate", required=True)
    parser.add_argument("--private-key", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    asyncio.run(run(args.certificate, args.private_key, args.host))


if __name__ == "__main__":
    main()

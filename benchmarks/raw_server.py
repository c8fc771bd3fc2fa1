"""A minimal WebTransport server written directly on aioquic: the baseline.

Endpoints (WebTransport draft-02 over HTTP/3):

* ``/echo``: every bidirectional stream is echoed back byte for byte, ending when the
  request ends; every datagram is echoed back.
* ``/request``: the same as ``/echo``; the request/response workloads use it (wtframe serves
  it with ``on_request``).
* ``/sink``: bidirectional streams are read to their end, then answered with the ASCII
  line ``"<bytes on this stream> <datagrams received by this session>"`` and closed;
  datagrams are counted.
* ``/clicker``: each bidirectional stream carries one JSON request,
  ``{"type": "click", "username": NAME}``; the server adds one to the player's score in
  the clicker example's `SQLiteStore` and, once that is committed, answers
  ``{"type": "score", "username": NAME, "score": N}`` and finishes the stream. No rate
  limit, no leaderboard, and only the validation needed not to crash.

Usage: ``python -m benchmarks.raw_server --certificate CERT --private-key KEY``. The
server listens on 127.0.0.1 on a free port and prints ``READY <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
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

from examples.clicker.store import SQLiteStore

__all__ = ["RawProtocol", "main", "run"]

ECHO = b"/echo"
REQUEST = b"/request"
SINK = b"/sink"
CLICKER = b"/clicker"
PATHS = (ECHO, REQUEST, SINK, CLICKER)


class RawProtocol(QuicConnectionProtocol):
    """One QUIC connection carrying HTTP/3 and WebTransport sessions.

    Args:
        *args: For `QuicConnectionProtocol`.
        store: The clicker's score store.
        **kwargs: For `QuicConnectionProtocol`.
    """

    def __init__(self, *args: Any, store: SQLiteStore, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._h3 = H3Connection(self._quic, enable_webtransport=True)
        self._store = store
        self._paths: dict[int, bytes] = {}
        self._sink_bytes: dict[int, int] = {}
        self._requests: dict[int, bytes] = {}
        self._datagrams: dict[int, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

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
            path = self._paths.get(event.session_id)
            if path == SINK:
                total = self._sink_bytes.get(stream_id, 0) + len(event.data)
                if event.stream_ended:
                    self._sink_bytes.pop(stream_id, None)
                    count = self._datagrams.get(event.session_id, 0)
                    reply = f"{total} {count}".encode()
                    self._quic.send_stream_data(stream_id, reply, end_stream=True)
                else:
                    self._sink_bytes[stream_id] = total
            elif path == CLICKER:
                body = self._requests.pop(stream_id, b"") + event.data
                if event.stream_ended:
                    task = self._loop.create_task(self._click(stream_id, body))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                else:
                    self._requests[stream_id] = body
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

    async def _click(self, stream_id: int, body: bytes) -> None:
        reply: dict[str, Any]
        try:
            request = json.loads(body)
            username = request["username"]
            if request["type"] != "click" or not isinstance(username, str):
                raise ValueError(body)
        except (ValueError, KeyError, TypeError):
            reply = {"type": "error", "code": "invalid_json", "message": "not a click"}
        else:
            score = await self._store.increment(username)
            reply = {"type": "score", "username": username, "score": score}
        if self._quic._close_event is not None:
            return  # the connection ended while the store was committing
        payload = json.dumps(reply, separators=(",", ":")).encode()
        self._quic.send_stream_data(stream_id, payload, end_stream=True)
        self.transmit()

    def _on_headers(self, event: HeadersReceived) -> None:
        headers = dict(event.headers)
        path = headers.get(b":path", b"")
        if (
            headers.get(b":method") == b"CONNECT"
            and headers.get(b":protocol") == b"webtransport"
            and path in PATHS
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
    with tempfile.TemporaryDirectory(prefix="wtbench-raw-") as tmp:
        async with SQLiteStore(Path(tmp) / "clicker.db") as store:

            def create_protocol(*args: Any, **kwargs: Any) -> RawProtocol:
                return RawProtocol(*args, store=store, **kwargs)

            server = await serve(
                host, 0, configuration=configuration, create_protocol=create_protocol
            )
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

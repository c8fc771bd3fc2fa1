"""A catalogue of hostile peers, each against a real server on loopback.

Every case talks to `serve(..., port=0)` through a bare aioquic HTTP/3 client that can send
anything, while a well-behaved session on another connection (the bystander) keeps running.
Each case checks that the server survives, that only the offending session or stream ends
(with the expected code), that the bystander still gets its datagrams echoed, and that the
server holds no state for the offender afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from aioquic.asyncio.client import connect as quic_connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection, encode_frame
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import (
    ConnectionTerminated,
    QuicEvent,
    StopSendingReceived,
    StreamReset,
)

from tests.support.waiting import wait_for
from wtframe import App, ClientSession, ReceiveStream, SendStream, Session, connect, serve
from wtframe._runner import SessionRunner
from wtframe.capsules import (
    CLOSE_WEBTRANSPORT_SESSION,
    CapsuleParser,
    encode_capsule,
    encode_close,
    encode_drain,
)
from wtframe.certs import Certificate, generate_certificate
from wtframe.codes import CloseCode, StreamErrorCode, WTErrorCode, to_http3_error
from wtframe.limits import Limits
from wtframe.server import Server

WAIT = 5.0
LIMITS = Limits(
    max_streams=8,
    max_pending_streams=4,
    max_message_size=16 * 1024,
    max_stream_buffer=32 * 1024,
    max_session_buffer=64 * 1024,
    max_datagram_tasks=8,
    handshake_timeout=2.0,
)
_CERTIFICATE: Certificate | None = None


def certificate() -> Certificate:
    global _CERTIFICATE
    if _CERTIFICATE is None:
        _CERTIFICATE = generate_certificate()
    return _CERTIFICATE


# -- the server ------------------------------------------------------------------------------


@dataclass
class Record:
    """What the server's sessions saw."""

    closes: list[tuple[str, int, str]] = field(default_factory=list)
    drains: int = 0
    messages: list[bytes] = field(default_factory=list)
    stream_errors: list[str] = field(default_factory=list)
    inflight: int = 0
    max_inflight: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    runners: list[SessionRunner] = field(default_factory=list)


class Hostile(Session):
    """Echoes; the path picks a behaviour. Records everything in `record`."""

    record: ClassVar[Record]

    async def on_connect(self) -> None:
        if self.request.path == "/gate":
            await self.record.gate.wait()
        elif self.request.path == "/hang":
            await asyncio.sleep(3600)
        self.record.runners.append(self._runner)

    async def on_datagram(self, data: bytes) -> None:
        if self.request.path == "/slow":
            record = self.record
            record.inflight += 1
            record.max_inflight = max(record.max_inflight, record.inflight)
            try:
                await asyncio.sleep(0.3)
            finally:
                record.inflight -= 1
            return
        if data == b"close":
            await self.close(4000, "asked to")
        elif data == b"write":
            self.create_task(self._flood())
        else:
            self.send_datagram(data)

    async def _flood(self) -> None:
        stream = await self.open_uni_stream()
        chunk = b"w" * 65536
        while True:
            await stream.write(chunk)

    async def on_stream(self, stream: ReceiveStream) -> None:
        path = self.request.path
        try:
            if path == "/noread":
                await asyncio.sleep(3600)
            elif path == "/framed":
                async for message in stream.messages(bytes):
                    self.record.messages.append(message)
            else:
                data = await stream.read()
                if isinstance(stream, SendStream):
                    await stream.write(data)
        except Exception as exc:
            self.record.stream_errors.append(type(exc).__name__)
            raise

    async def on_drain(self) -> None:
        self.record.drains += 1

    async def on_close(self, code: int, reason: str) -> None:
        if self.request.query_params.get("bystander") is None:
            self.record.closes.append((self.request.path, code, reason))


def hostile_app(limits: Limits = LIMITS, **options: Any) -> tuple[App, Record]:
    record = Record()
    cls = type("H", (Hostile,), {"record": record})
    app = App(limits=limits, **options)
    for path in ("/echo", "/slow", "/noread", "/framed", "/gate", "/hang"):
        app.add_session(path, cls)
    return app, record


# -- the raw client -----------------------------------------------------------------------------


class RawClient(QuicConnectionProtocol):
    """A bare aioquic HTTP/3 client: it sends whatever it is told to."""

    def __init__(self, quic: QuicConnection, **kwargs: Any) -> None:
        super().__init__(quic, **kwargs)
        self.h3 = H3Connection(quic, enable_webtransport=True)
        self.h3_events: list[H3Event] = []
        self.quic_events: list[QuicEvent] = []

    def quic_event_received(self, event: QuicEvent) -> None:
        self.quic_events.append(event)
        self.h3_events.extend(self.h3.handle_event(event))

    # -- sending --

    def request(
        self,
        path: str = "/echo",
        *,
        method: bytes = b"CONNECT",
        protocol: bytes | None = b"webtransport",
        extra: list[tuple[bytes, bytes]] | None = None,
        end_stream: bool = False,
    ) -> int:
        stream_id = self._quic.get_next_available_stream_id()
        headers = [
            (b":method", method),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
        ]
        if protocol is not None:
            headers.append((b":protocol", protocol))
        headers += extra or []
        self.h3.send_headers(stream_id, headers, end_stream=end_stream)
        self.transmit()
        return stream_id

    async def session(self, path: str = "/echo") -> int:
        session_id = self.request(path)
        await wait_for(lambda: self.status(session_id) is not None)
        assert self.status(session_id) == 200
        return session_id

    def send_connect_data(self, session_id: int, data: bytes, end_stream: bool = False) -> None:
        self.h3.send_data(session_id, data, end_stream)
        self.transmit()

    def open_stream(self, session_id: int, unidirectional: bool = False) -> int:
        stream_id = self.h3.create_webtransport_stream(session_id, unidirectional)
        if not unidirectional:
            with self.h3._get_or_create_stream(stream_id) as h3_stream:
                h3_stream.frame_type = FrameType.WEBTRANSPORT_STREAM
                h3_stream.session_id = session_id
        return stream_id

    def send(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self._quic.send_stream_data(stream_id, data, end_stream)
        self.transmit()

    def datagram(self, session_id: int, data: bytes) -> None:
        self.h3.send_datagram(session_id, data)
        self.transmit()

    # -- what came back --

    def status(self, stream_id: int) -> int | None:
        for event in self.h3_events:
            if isinstance(event, HeadersReceived) and event.stream_id == stream_id:
                return int(dict(event.headers)[b":status"])
        return None

    def close_capsule(self, session_id: int) -> tuple[int, str] | None:
        parser = CapsuleParser()
        for event in self.h3_events:
            if isinstance(event, DataReceived) and event.stream_id == session_id:
                for capsule in parser.feed(event.data):
                    if capsule.type == CLOSE_WEBTRANSPORT_SESSION:
                        return (
                            int.from_bytes(capsule.data[:4], "big"),
                            capsule.data[4:].decode(),
                        )
        return None

    def resets(self) -> dict[int, int]:
        return {e.stream_id: e.error_code for e in self.quic_events if isinstance(e, StreamReset)}

    def stops(self) -> dict[int, int]:
        return {
            e.stream_id: e.error_code
            for e in self.quic_events
            if isinstance(e, StopSendingReceived)
        }

    @property
    def terminated(self) -> bool:
        return any(isinstance(e, ConnectionTerminated) for e in self.quic_events)


@contextlib.asynccontextmanager
async def raw_client(port: int) -> AsyncIterator[RawClient]:
    """Connect a raw client to a server on loopback, and wait for its SETTINGS."""
    configuration = QuicConfiguration(
        is_client=True,
        alpn_protocols=H3_ALPN,
        max_datagram_frame_size=65536,
        verify_mode=ssl.CERT_NONE,
        server_name="localhost",
    )
    async with quic_connect(
        "127.0.0.1", port, configuration=configuration, create_protocol=RawClient
    ) as client:
        assert isinstance(client, RawClient)
        await wait_for(lambda: client.h3.received_settings is not None)
        yield client


# -- the environment of each case -------------------------------------------------------------


class Env:
    """A server, a bystander session on its own connection, and raw clients."""

    def __init__(self, server: Server, record: Record, bystander: ClientSession) -> None:
        self.server = server
        self.record = record
        self.bystander = bystander
        (self.bystander_connection,) = server.connections
        self.stack = contextlib.AsyncExitStack()
        self.baseline_h3 = 0

    async def raw(self) -> tuple[RawClient, Any]:
        """Connect a raw client; return it and the server's side of its connection."""
        known = set(self.server.connections)
        client = await self.stack.enter_async_context(raw_client(self.server.port))
        await wait_for(lambda: len(self.server.connections) == len(known) + 1)
        (connection,) = set(self.server.connections) - known
        await wait_for(lambda: connection.wt.h3.received_settings is not None)
        await asyncio.sleep(0.02)  # the QPACK streams follow the control stream
        self.baseline_h3 = len(connection.wt.h3._stream)
        return client, connection

    async def bystander_ok(self) -> None:
        """The bystander's datagram echo still works and its state is untouched."""
        payload = b"still here %d" % len(self.record.closes)
        self.bystander.send_datagram(payload)
        assert await asyncio.wait_for(self.bystander.receive_datagram(), WAIT) == payload
        assert not self.bystander.is_closed
        connection = self.bystander_connection
        assert connection in self.server.connections
        assert connection.wt.session_count == 1
        assert connection.wt.stream_count == 0

    async def assert_clean(self, connection: Any) -> None:
        """The server holds nothing for the offender's connection any more."""

        def clean() -> bool:
            if connection not in self.server.connections:
                return True  # the whole connection went
            return (
                not connection.links
                and connection.wt.session_count == 0
                and connection.wt.stream_count == 0
                and not connection._streams
                and not connection._session_streams
                and len(connection.wt.h3._stream) <= self.baseline_h3
            )

        try:
            await wait_for(clean)
        except TimeoutError:
            state = {
                "links": connection.links,
                "sessions": connection.wt.session_count,
                "streams": connection.wt.stream_count,
                "stream objects": connection._streams,
                "session streams": connection._session_streams,
                "h3 streams": sorted(connection.wt.h3._stream),
                "baseline": self.baseline_h3,
            }
            raise AssertionError(f"state left behind: {state}") from None
        await wait_for(lambda: len(self.server.runners) == 1)
        await self.bystander_ok()


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    app, record = hostile_app()
    server = await serve(app, "127.0.0.1", 0, certificate=certificate())
    try:
        url = server.url("/echo?bystander=1", host="127.0.0.1")
        async with connect(url, cert_hash=certificate().fingerprint) as bystander:
            environment = Env(server, record, bystander)
            async with environment.stack:
                yield environment
    finally:
        await server.shutdown(0)


def app_code(code: int) -> int:
    return to_http3_error(code)


# -- capsules ----------------------------------------------------------------------------------


async def test_close_capsule_shorter_than_four_bytes(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session()
    raw.send_connect_data(session_id, encode_capsule(CLOSE_WEBTRANSPORT_SESSION, b"\x00\x01"))
    await wait_for(lambda: env.record.closes)
    assert env.record.closes[0][1] == CloseCode.PROTOCOL_ERROR
    await wait_for(lambda: raw.close_capsule(session_id) is not None)
    assert raw.close_capsule(session_id) == (CloseCode.PROTOCOL_ERROR, env.record.closes[0][2])
    assert "shorter than 4 bytes" in env.record.closes[0][2]
    await env.assert_clean(connection)


async def test_capsule_truncated_by_fin(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session()
    whole = encode_close(7, "bye")
    raw.send_connect_data(session_id, whole[:-2], end_stream=True)
    await wait_for(lambda: env.record.closes)
    assert env.record.closes == [("/echo", CloseCode.PROTOCOL_ERROR, env.record.closes[0][2])]
    assert "inside a capsule" in env.record.closes[0][2]
    await env.assert_clean(connection)


async def test_capsule_over_the_size_limit(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session()
    # Announce 5,000 bytes of close capsule (limit 4,096): refused before it is buffered.
    raw.send_connect_data(
        session_id, encode_uint_var(CLOSE_WEBTRANSPORT_SESSION) + encode_uint_var(5000) + b"x"
    )
    await wait_for(lambda: env.record.closes)
    assert env.record.closes[0][1] == CloseCode.PROTOCOL_ERROR
    assert "exceeds" in env.record.closes[0][2]
    await env.assert_clean(connection)


async def test_capsule_length_varint_at_its_maximum(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session()
    huge = encode_uint_var(CLOSE_WEBTRANSPORT_SESSION) + encode_uint_var(2**62 - 1)
    raw.send_connect_data(session_id, huge)
    await wait_for(lambda: env.record.closes)
    assert env.record.closes[0][1] == CloseCode.PROTOCOL_ERROR
    await env.assert_clean(connection)


async def test_huge_unknown_capsule_is_skipped_unbuffered(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session()
    grease = 0x29 * 11 + 0x17
    raw.send_connect_data(session_id, encode_uint_var(grease) + encode_uint_var(2**40))
    for _ in range(20):
        raw.send_connect_data(session_id, b"g" * 16384)
    await asyncio.sleep(0.1)
    parser = connection.wt._sessions[session_id].parser
    assert parser.buffered == 0  # skipped as it arrives
    raw.datagram(session_id, b"alive")
    await wait_for(lambda: raw.quic_events and _datagram_echoed(raw, b"alive"))
    assert env.record.closes == []
    raw.send_connect_data(session_id, b"", end_stream=True)  # FIN inside the capsule
    await wait_for(lambda: env.record.closes)
    assert env.record.closes[0][1] == CloseCode.PROTOCOL_ERROR
    await env.assert_clean(connection)


def _datagram_echoed(raw: RawClient, payload: bytes) -> bool:
    from aioquic.h3.events import DatagramReceived

    return any(isinstance(e, DatagramReceived) and e.data == payload for e in raw.h3_events)


async def test_close_reason_over_1024_bytes(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session()
    payload = (9).to_bytes(4, "big") + b"r" * 1025
    raw.send_connect_data(session_id, encode_capsule(CLOSE_WEBTRANSPORT_SESSION, payload))
    await wait_for(lambda: env.record.closes)
    assert env.record.closes[0][1] == CloseCode.PROTOCOL_ERROR
    assert "1024" in env.record.closes[0][2]
    await env.assert_clean(connection)


async def test_close_reason_not_utf8(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session()
    payload = (9).to_bytes(4, "big") + b"\xff\xfe"
    raw.send_connect_data(session_id, encode_capsule(CLOSE_WEBTRANSPORT_SESSION, payload))
    await wait_for(lambda: env.record.closes)
    assert env.record.closes[0][1] == CloseCode.PROTOCOL_ERROR
    await env.assert_clean(connection)


async def test_drain_twice_runs_on_drain_once(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session()
    for _ in range(50):
        raw.send_connect_data(session_id, encode_drain())
    raw.datagram(session_id, b"after drains")
    await wait_for(lambda: _datagram_echoed(raw, b"after drains"))
    assert env.record.drains == 1
    assert env.record.closes == []
    raw.send_connect_data(session_id, encode_close(3, "done"), end_stream=True)
    await wait_for(lambda: env.record.closes)
    assert env.record.closes == [("/echo", 3, "done")]
    await env.assert_clean(connection)


async def test_data_after_the_close_capsule(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session()
    raw.send_connect_data(session_id, encode_close(5, "bye") + encode_drain() + b"\x00junk")
    raw.send_connect_data(session_id, encode_close(6, "again"))
    await wait_for(lambda: env.record.closes)
    await asyncio.sleep(0.05)
    assert env.record.closes == [("/echo", 5, "bye")]
    assert env.record.drains == 0
    await env.assert_clean(connection)


async def test_unknown_frames_on_the_connect_stream_are_ignored(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session()
    grease_frame = 0x21 + 0x1F * 3
    raw.send(session_id, encode_frame(grease_frame, b"z" * 3000))
    raw.datagram(session_id, b"after grease")
    await wait_for(lambda: _datagram_echoed(raw, b"after grease"))
    assert env.record.closes == []
    raw.send_connect_data(session_id, encode_close(), end_stream=True)
    await env.assert_clean(connection)


async def test_settings_frame_on_the_connect_stream_ends_only_that_connection(env: Env) -> None:
    raw, connection = await env.raw()
    await raw.session()
    raw.send(0, encode_frame(FrameType.SETTINGS, b""))
    await wait_for(lambda: connection not in env.server.connections)
    await wait_for(lambda: env.record.closes)
    assert env.record.closes[0][1] == CloseCode.ABNORMAL
    await env.assert_clean(connection)


# -- requests ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "protocol", "status"),
    [
        (b"CONNECT", None, 400),  # no :protocol: a plain CONNECT tunnel
        (b"CONNECT", b"websocket", 400),
        (b"GET", None, 405),
        (b"POST", None, 405),
    ],
)
async def test_requests_that_are_not_webtransport(
    env: Env, method: bytes, protocol: bytes | None, status: int
) -> None:
    raw, connection = await env.raw()
    stream_id = raw.request(
        "/echo", method=method, protocol=protocol, end_stream=method != b"CONNECT"
    )
    await wait_for(lambda: raw.status(stream_id) is not None)
    assert raw.status(stream_id) == status
    assert env.record.runners == [env.record.runners[0]]  # only the bystander's session ran
    await env.assert_clean(connection)


async def test_huge_headers(env: Env) -> None:
    raw, connection = await env.raw()
    extra = [(b"x-big-%d" % i, b"h" * 1000) for i in range(200)]
    stream_id = raw.request("/echo", extra=extra)
    await wait_for(lambda: raw.status(stream_id) is not None or raw.terminated)
    if not raw.terminated:  # accepted: the session is ordinary
        assert raw.status(stream_id) == 200
        raw.send_connect_data(stream_id, b"", end_stream=True)
    await env.assert_clean(connection)


async def test_connect_withdrawn_before_the_answer(env: Env) -> None:
    raw, connection = await env.raw()
    stream_id = raw.request("/gate")
    await wait_for(lambda: connection.links)
    raw.send_connect_data(stream_id, b"", end_stream=True)
    await wait_for(lambda: raw.status(stream_id) is not None)
    assert raw.status(stream_id) == 400
    assert env.record.closes == []  # never accepted: no on_close
    await env.assert_clean(connection)


async def test_on_connect_that_never_finishes_gets_503(env: Env) -> None:
    raw, connection = await env.raw()
    stream_id = raw.request("/hang")
    timeout = (LIMITS.handshake_timeout or 0) + WAIT
    await wait_for(lambda: raw.status(stream_id) is not None, timeout=timeout)
    assert raw.status(stream_id) == 503
    await env.assert_clean(connection)


async def test_too_many_sessions_get_429(env: Env) -> None:
    raw, connection = await env.raw()
    sessions = [raw.request("/gate") for _ in range(LIMITS.max_sessions + 3)]
    await wait_for(lambda: all(raw.status(s) is not None for s in sessions[-3:]))
    assert [raw.status(s) for s in sessions[-3:]] == [429] * 3
    env.record.gate.set()
    await wait_for(lambda: all(raw.status(s) == 200 for s in sessions[:-3]))
    for session_id in sessions[:-3]:
        raw.send_connect_data(session_id, encode_close(), end_stream=True)
    await env.assert_clean(connection)


# -- streams -----------------------------------------------------------------------------------


async def test_unknown_unidirectional_stream_type(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session()
    stream_id = raw._quic.get_next_available_stream_id(is_unidirectional=True)
    raw.send(stream_id, encode_uint_var(0x21 + 0x1F * 5) + b"whatever" * 100, end_stream=True)
    raw.datagram(session_id, b"ping")
    await wait_for(lambda: _datagram_echoed(raw, b"ping"))
    raw.send_connect_data(session_id, encode_close(), end_stream=True)
    await env.assert_clean(connection)


async def test_streams_for_a_session_that_never_existed(env: Env) -> None:
    raw, connection = await env.raw()
    bogus = 400  # a client bidirectional stream id never used
    uni = raw.h3.create_webtransport_stream(bogus, is_unidirectional=True)
    bidi = raw.open_stream(bogus)
    raw.send(uni, b"u" * 1000)
    raw.send(bidi, b"b" * 1000)
    gone = WTErrorCode.SESSION_GONE
    await wait_for(lambda: uni in raw.stops() and bidi in raw.stops())
    assert raw.stops() == {uni: gone, bidi: gone}
    await wait_for(lambda: bidi in raw.resets())
    assert raw.resets()[bidi] == gone
    raw.datagram(bogus, b"to nobody")
    await env.assert_clean(connection)


async def test_streams_and_datagrams_for_a_closed_session(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session()
    raw.send_connect_data(session_id, encode_close(1, "gone"), end_stream=True)
    await wait_for(lambda: env.record.closes)
    uni = raw.h3.create_webtransport_stream(session_id, is_unidirectional=True)
    raw.send(uni, b"late", end_stream=True)
    bidi = raw.open_stream(session_id)
    raw.send(bidi, b"late")
    raw.datagram(session_id, b"late")
    await wait_for(lambda: bidi in raw.resets())
    assert raw.resets()[bidi] == WTErrorCode.SESSION_GONE
    await env.assert_clean(connection)


async def test_streams_before_the_connect_is_answered(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = raw.request("/gate")
    await wait_for(lambda: connection.links)
    streams = [raw.open_stream(session_id) for _ in range(LIMITS.max_pending_streams + 2)]
    for stream_id in streams:
        raw.send(stream_id, b"early %d" % stream_id, end_stream=True)
    refused = app_code(StreamErrorCode.TOO_MANY_STREAMS)
    # They came with FIN, so there is nothing to stop: their sending side is reset.
    await wait_for(lambda: len(raw.resets()) == 2)
    assert set(raw.resets().values()) == {refused}
    env.record.gate.set()
    held = [s for s in streams if s not in raw.resets()]
    assert len(held) == LIMITS.max_pending_streams
    await wait_for(lambda: all(_stream_echo(raw, s) is not None for s in held))
    assert [_stream_echo(raw, s) for s in held] == [b"early %d" % s for s in held]
    raw.send_connect_data(session_id, encode_close(), end_stream=True)
    await env.assert_clean(connection)


def _stream_echo(raw: RawClient, stream_id: int) -> bytes | None:
    from aioquic.h3.events import WebTransportStreamDataReceived

    data = b""
    for event in raw.h3_events:
        if isinstance(event, WebTransportStreamDataReceived) and event.stream_id == stream_id:
            data += event.data
            if event.stream_ended:
                return data
    return None


async def test_too_many_concurrent_streams(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session("/noread")
    streams = [raw.open_stream(session_id) for _ in range(LIMITS.max_streams + 3)]
    for stream_id in streams:
        raw.send(stream_id, b"hi")
    refused = app_code(StreamErrorCode.TOO_MANY_STREAMS)
    await wait_for(lambda: len(raw.resets()) == 3)
    assert set(raw.resets()) == set(streams[-3:])
    assert set(raw.resets().values()) == {refused}
    (runner,) = [r for r in env.server.runners if r.connection is connection]
    assert len(runner.tasks) <= LIMITS.max_streams + 1
    raw.send_connect_data(session_id, encode_close(), end_stream=True)
    await env.assert_clean(connection)


async def test_thousands_of_tiny_streams(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session()
    sent = 0
    for batch in range(20):
        ids = [raw.h3.create_webtransport_stream(session_id, True) for _ in range(100)]
        for stream_id in ids:
            raw._quic.send_stream_data(stream_id, b"t", end_stream=True)
        raw.transmit()
        sent += len(ids)
        await asyncio.sleep(0.02 if batch % 4 else 0.1)
    assert sent == 2000
    await wait_for(lambda: connection.wt.stream_count == 0 and not connection._streams)
    raw.datagram(session_id, b"after 2000")
    await wait_for(lambda: _datagram_echoed(raw, b"after 2000"))
    raw.send_connect_data(session_id, encode_close(), end_stream=True)
    await env.assert_clean(connection)


async def test_fin_without_data(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session()
    stream_id = raw.open_stream(session_id)
    raw.send(stream_id, b"", end_stream=True)
    await wait_for(lambda: _stream_echo(raw, stream_id) is not None)
    assert _stream_echo(raw, stream_id) == b""
    raw.send_connect_data(session_id, encode_close(), end_stream=True)
    await env.assert_clean(connection)


async def test_reset_in_the_middle_of_a_framed_message(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session("/framed")
    stream_id = raw.open_stream(session_id, unidirectional=True)
    raw.send(stream_id, (5).to_bytes(4, "big") + b"whole" + (100).to_bytes(4, "big") + b"half")
    await wait_for(lambda: env.record.messages)
    raw._quic.reset_stream(stream_id, app_code(77))
    raw.transmit()
    await wait_for(lambda: env.record.stream_errors)
    assert env.record.messages == [b"whole"]
    assert env.record.stream_errors == ["StreamReset"]
    raw.datagram(session_id, b"still open")
    await wait_for(lambda: _datagram_echoed(raw, b"still open"))
    assert env.record.closes == []
    raw.send_connect_data(session_id, encode_close(), end_stream=True)
    await env.assert_clean(connection)


async def test_slow_reader_is_stopped_at_the_buffer_limit(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session("/noread")
    stream_id = raw.open_stream(session_id, unidirectional=True)
    for _ in range(20):
        raw.send(stream_id, b"x" * 8192)
    await wait_for(lambda: stream_id in raw.stops())
    assert raw.stops()[stream_id] == app_code(StreamErrorCode.BUFFER_FULL)
    raw.datagram(session_id, b"session lives")
    await wait_for(lambda: _datagram_echoed(raw, b"session lives"))
    raw.send_connect_data(session_id, encode_close(), end_stream=True)
    await env.assert_clean(connection)


async def test_session_buffer_limit_across_streams(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session("/noread")
    streams = [raw.open_stream(session_id, unidirectional=True) for _ in range(4)]
    for stream_id in streams:  # 4 x 24 KiB: each under 32 KiB, together over 64 KiB
        for _ in range(3):
            raw.send(stream_id, b"y" * 8192)
    await wait_for(lambda: raw.stops())
    assert set(raw.stops().values()) == {app_code(StreamErrorCode.BUFFER_FULL)}
    assert len(raw.stops()) < 4
    raw.send_connect_data(session_id, encode_close(), end_stream=True)
    await env.assert_clean(connection)


# -- datagrams ---------------------------------------------------------------------------------


async def test_datagram_flood_to_a_slow_handler(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session("/slow")
    for i in range(400):
        raw.h3.send_datagram(session_id, b"%d" % i)
        if i % 20 == 0:
            raw.transmit()
            await asyncio.sleep(0)
    raw.transmit()
    (runner,) = [r for r in env.server.runners if r.connection is connection]
    await wait_for(lambda: runner.dropped_datagrams > 0)
    assert env.record.max_inflight <= LIMITS.max_datagram_tasks
    assert len(runner.tasks) <= LIMITS.max_datagram_tasks + 1
    await env.bystander_ok()
    await wait_for(lambda: env.record.inflight == 0)
    assert runner.session.dropped_datagrams == runner.dropped_datagrams
    raw.send_connect_data(session_id, encode_close(), end_stream=True)
    await env.assert_clean(connection)


async def test_malformed_datagram_ends_only_that_connection(env: Env) -> None:
    raw, connection = await env.raw()
    session_id = await raw.session()
    raw._quic.send_datagram_frame(b"")  # not even a quarter stream id
    raw.transmit()
    await wait_for(lambda: connection not in env.server.connections)
    await wait_for(lambda: env.record.closes)
    assert env.record.closes[0][1] == CloseCode.ABNORMAL
    del session_id
    await env.assert_clean(connection)


# -- a peer that never reads ---------------------------------------------------------------------


def _stop_granting_credit(raw: RawClient) -> None:
    """Make the raw client's QUIC stack stop raising its stream receive windows."""
    raw._quic._write_stream_limits = lambda *args, **kwargs: None  # type: ignore[method-assign]


@pytest.mark.parametrize("closer", ["server", "peer"])
async def test_peer_that_never_reads(env: Env, closer: str) -> None:
    raw, connection = await env.raw()
    _stop_granting_credit(raw)
    session_id = await raw.session()
    raw.datagram(session_id, b"write")
    (runner,) = [r for r in env.server.runners if r.connection is connection]
    await wait_for(lambda: connection._blocked_writers)  # the writer waits for the peer
    assert len(runner.tasks) == 1
    await env.bystander_ok()
    if closer == "server":
        raw.datagram(session_id, b"close")
        await wait_for(lambda: raw.close_capsule(session_id) is not None)
        assert raw.close_capsule(session_id) == (4000, "asked to")
        expected = (4000, "asked to")
    else:
        raw.send_connect_data(session_id, encode_close(8, "enough"), end_stream=True)
        expected = (8, "enough")
    await wait_for(lambda: env.record.closes)
    assert env.record.closes == [("/echo", *expected)]
    assert not connection._blocked_writers
    assert runner.tasks == set()
    await env.assert_clean(connection)


# -- misbehaving application code ----------------------------------------------------------------


class Faulty(Session):
    """Hooks that fail in the ways application code does; the path picks one."""

    started: ClassVar[list[asyncio.Task[Any]]]
    closes: ClassVar[list[tuple[str, int]]]

    async def on_connect(self) -> None:
        if self.request.path == "/slow-connect":
            await asyncio.sleep(0.5)

    async def on_datagram(self, data: bytes) -> None:
        path = self.request.path
        if path == "/raises":
            raise RuntimeError("hook exploded")
        if path == "/blocks":
            await asyncio.sleep(0.5)  # a slow await: only this session waits
        if path == "/leaks":
            for _ in range(10):
                self.started.append(self.create_task(asyncio.sleep(3600)))
        self.send_datagram(data)

    async def on_close(self, code: int, reason: str) -> None:
        self.closes.append((self.request.path, code))


@pytest.fixture
async def faulty() -> AsyncIterator[tuple[Server, type[Faulty], ClientSession]]:
    cls = type("F", (Faulty,), {"started": [], "closes": []})
    app = App()
    for path in ("/raises", "/blocks", "/leaks", "/slow-connect", "/fine"):
        app.add_session(path, cls)
    server = await serve(app, "127.0.0.1", 0, certificate=certificate())
    try:
        url = server.url("/fine", host="127.0.0.1")
        async with connect(url, cert_hash=certificate().fingerprint) as bystander:
            yield server, cls, bystander
    finally:
        await server.shutdown(0)


async def _echo(session: ClientSession, payload: bytes, timeout: float = WAIT) -> None:
    session.send_datagram(payload)
    assert await asyncio.wait_for(session.receive_datagram(), timeout) == payload


async def test_hook_that_raises_closes_only_its_session(
    faulty: tuple[Server, type[Faulty], ClientSession],
) -> None:
    server, cls, bystander = faulty
    url = server.url("/raises", host="127.0.0.1")
    async with connect(url, cert_hash=certificate().fingerprint) as victim:
        victim.send_datagram(b"boom")
        code, _ = await asyncio.wait_for(victim.wait_closed(), WAIT)
        assert code == CloseCode.INTERNAL_ERROR
        await _echo(bystander, b"unaffected")
    assert cls.closes == [("/raises", CloseCode.INTERNAL_ERROR)]


async def test_hook_that_awaits_slowly_holds_up_only_its_session(
    faulty: tuple[Server, type[Faulty], ClientSession],
) -> None:
    server, _, bystander = faulty
    url = server.url("/blocks", host="127.0.0.1")
    async with connect(url, cert_hash=certificate().fingerprint) as slow:
        slow.send_datagram(b"slow")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await _echo(bystander, b"fast")
        assert loop.time() - started < 0.4
        assert await asyncio.wait_for(slow.receive_datagram(), WAIT) == b"slow"
    # A slow on_connect holds up only its own session too.
    pending = asyncio.ensure_future(
        connect(server.url("/slow-connect", host="127.0.0.1"), cert_hash=certificate().fingerprint)
    )
    started = loop.time()
    await _echo(bystander, b"while connecting")
    assert loop.time() - started < 0.4
    session = await asyncio.wait_for(pending, WAIT)
    await session.close()


async def test_tasks_of_a_session_end_with_it(
    faulty: tuple[Server, type[Faulty], ClientSession],
) -> None:
    server, cls, bystander = faulty
    url = server.url("/leaks", host="127.0.0.1")
    async with connect(url, cert_hash=certificate().fingerprint) as leaky:
        await _echo(leaky, b"spawn")
        await _echo(leaky, b"spawn more")
        assert len(cls.started) == 20
        assert not any(task.done() for task in cls.started)
    await wait_for(lambda: all(task.done() for task in cls.started))  # they slept for 1 h
    await wait_for(lambda: len(server.runners) == 1)
    await _echo(bystander, b"unaffected")

"""Dialects: how each session's draft is told, what each side sends, and both over the network."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from tests.support.quic_pair import QuicPair, RawClientPair
from wtframe import App, ReceiveStream, Session, Stream, connect
from wtframe.dialects import (
    SETTING_ENABLE_WEBTRANSPORT_DRAFT02,
    SETTING_WT_ENABLED,
    SETTING_WT_INITIAL_MAX_DATA,
    SETTING_WT_INITIAL_MAX_STREAMS_BIDI,
    SETTING_WT_INITIAL_MAX_STREAMS_UNI,
    Dialect,
    dialect_of_request,
    flow_control_offered,
    format_protocol,
    local_settings,
    parse_available_protocols,
    peer_limits,
)
from wtframe.events import SessionEstablished, SessionRequested, SettingsReceived
from wtframe.flowcontrol import FlowLimits
from wtframe.limits import Limits
from wtframe.protocol import SETTING_MAX_SESSIONS, SETTING_MAX_SESSIONS_DRAFT
from wtframe.testing import TestClient

WAIT = 10
H3_DATAGRAM = 0x33
BASE = [
    (b":method", b"CONNECT"),
    (b":scheme", b"https"),
    (b":authority", b"localhost"),
    (b":path", b"/wt"),
]
DRAFT02_REQUEST = [
    *BASE,
    (b":protocol", b"webtransport"),
    (b"sec-webtransport-http3-draft02", b"1"),
]
DRAFT07_REQUEST = [*BASE, (b":protocol", b"webtransport")]
DRAFT15_REQUEST = [*BASE, (b":protocol", b"webtransport-h3")]

# -- telling dialects apart -------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "dialect"),
    [
        (DRAFT02_REQUEST, Dialect.DRAFT02),
        (DRAFT07_REQUEST, Dialect.DRAFT07),
        (DRAFT15_REQUEST, Dialect.DRAFT15),
        ([*BASE, (b":protocol", b"websocket")], None),
        (BASE, None),
    ],
)
def test_dialect_of_request(headers: list[tuple[bytes, bytes]], dialect: Dialect | None) -> None:
    assert dialect_of_request(headers) is dialect


def test_each_dialect_requests_as_it_reads() -> None:
    for dialect in Dialect:
        assert dialect_of_request([*BASE, *dialect.request_headers()]) is dialect
    assert Dialect.DRAFT02.response_headers() == [(b"sec-webtransport-http3-draft", b"draft02")]
    assert Dialect.DRAFT15.response_headers() == []
    assert not Dialect.DRAFT02.has_flow_control
    assert Dialect.DRAFT07.has_flow_control and Dialect.DRAFT15.has_flow_control


def test_settings_and_limits() -> None:
    limits = FlowLimits(max_data=5, max_streams_bidi=6, max_streams_uni=7)
    settings = local_settings(limits)
    assert settings == {
        SETTING_WT_ENABLED: 1,
        SETTING_WT_INITIAL_MAX_DATA: 5,
        SETTING_WT_INITIAL_MAX_STREAMS_BIDI: 6,
        SETTING_WT_INITIAL_MAX_STREAMS_UNI: 7,
    }
    assert peer_limits(settings) == limits
    assert peer_limits({}) == FlowLimits(0, 0, 0)
    assert flow_control_offered(settings)
    assert not flow_control_offered(None)
    assert not flow_control_offered({SETTING_WT_ENABLED: 1, SETTING_WT_INITIAL_MAX_DATA: 0})
    assert flow_control_offered({SETTING_WT_INITIAL_MAX_STREAMS_UNI: 1})


@pytest.mark.parametrize(
    ("value", "protocols"),
    [
        (b'"chat-v2", "chat-v1"', ["chat-v2", "chat-v1"]),
        (b'"a";q=1, x, "b"', ["a", "b"]),  # parameters ignored, non-strings skipped
        (b'"with \\"quote\\" and \\\\"', ['with "quote" and \\']),
        (b"", []),
        (b'"unterminated', []),
        (b'"bad \\escape"', []),
        (b"\xff", []),
    ],
)
def test_parse_available_protocols(value: bytes, protocols: list[str]) -> None:
    assert parse_available_protocols(value) == protocols


def test_format_protocol_round_trips() -> None:
    for name in ("chat", 'q"uote', "back\\slash"):
        assert parse_available_protocols(format_protocol(name)) == [name]
    with pytest.raises(ValueError):
        format_protocol("caf\u00e9")


# -- the protocol, in memory -----------------------------------------------------------------


def test_server_advertises_every_dialect_at_once() -> None:
    pair = RawClientPair()
    settings = pair.client.h3.received_settings
    assert settings is not None
    for setting in (
        SETTING_ENABLE_WEBTRANSPORT_DRAFT02,
        H3_DATAGRAM,
        SETTING_MAX_SESSIONS,
        SETTING_MAX_SESSIONS_DRAFT,
        SETTING_WT_ENABLED,
    ):
        assert settings[setting] >= 1, hex(setting)
    assert settings[SETTING_WT_INITIAL_MAX_DATA] == FlowLimits().max_data
    assert pair.server.quic.peer_supports_reset_stream_at is False  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("request_headers", "dialect", "answer"),
    [
        (DRAFT02_REQUEST, Dialect.DRAFT02, [(b"sec-webtransport-http3-draft", b"draft02")]),
        (DRAFT07_REQUEST, Dialect.DRAFT07, []),
        (DRAFT15_REQUEST, Dialect.DRAFT15, []),
    ],
)
def test_each_session_gets_its_dialect(
    request_headers: list[tuple[bytes, bytes]],
    dialect: Dialect,
    answer: list[tuple[bytes, bytes]],
) -> None:
    pair = RawClientPair()
    session_id = pair.request(request_headers)
    _, out = pair.transfer()
    assert out == [SessionRequested(session_id=session_id, headers=request_headers)]
    server = pair.server.protocol
    assert server.dialect(session_id) is dialect
    # a bare aioquic client offers no WebTransport flow control: none is run
    assert not server.flow_controlled(session_id)
    server.accept(session_id)
    pair.transfer()
    (headers,) = [e.headers for e in pair.client.h3_events if hasattr(e, "headers")]
    assert headers == [(b":status", b"200"), *answer]


def test_wtframe_client_speaks_draft15_on_request() -> None:
    pair = QuicPair()
    settings = [e for e in pair.handshake_events[0] if isinstance(e, SettingsReceived)]
    assert settings and settings[0].settings[SETTING_WT_ENABLED] == 1
    session_id = pair.client.protocol.request_session("localhost", "/", dialect=Dialect.DRAFT15)
    _, out = pair.transfer()
    (requested,) = out
    assert isinstance(requested, SessionRequested)
    assert (b":protocol", b"webtransport-h3") in requested.headers
    assert not any(name == b"sec-webtransport-http3-draft02" for name, _ in requested.headers)
    pair.server.protocol.accept(session_id)
    out, _ = pair.transfer()
    assert out == [SessionEstablished(session_id=session_id, headers=[(b":status", b"200")])]
    assert pair.client.protocol.dialect(session_id) is Dialect.DRAFT15
    assert pair.client.protocol.dialect(999) is None


# -- over the network --------------------------------------------------------------------


class Recorder(Session):
    """Echoes bidirectional streams; counts what arrives on unidirectional ones."""

    seen: ClassVar[list[tuple[Dialect, bool]]] = []
    uni_bytes: ClassVar[list[int]] = []

    async def on_connect(self) -> None:
        flow = self._runner.connection.wt.flow_controlled(self.session_id)
        type(self).seen.append((self.dialect, flow))

    async def on_stream(self, stream: ReceiveStream) -> None:
        if isinstance(stream, Stream):
            async for chunk in stream:
                await stream.write(chunk)
            await stream.close()
        else:
            total = 0
            async for chunk in stream:  # little at a time: the stream outgrows the window
                total += len(chunk)
            type(self).uni_bytes.append(total)


def small_app() -> App:
    Recorder.seen, Recorder.uni_bytes = [], []
    app = App(
        limits=Limits(
            max_streams=2,
            max_message_size=1024,
            max_stream_buffer=8192,
            max_session_buffer=8192,
        )
    )
    app.add_session("/r", Recorder)
    return app


@pytest.mark.parametrize("dialect", [Dialect.DRAFT02, Dialect.DRAFT15])
async def test_client_session_reports_its_dialect(dialect: Dialect) -> None:
    async with TestClient(small_app()) as client:
        async with connect(client.url("/r"), verify=False, dialect=dialect) as session:
            assert session.dialect is dialect
        await asyncio.sleep(0.05)
    assert Recorder.seen == [(dialect, dialect is Dialect.DRAFT15)]


class Holder(Session):
    """Keeps every stream open until told; records the kinds it was handed."""

    kinds: ClassVar[list[bool]] = []
    release: ClassVar[asyncio.Event]

    async def on_stream(self, stream: ReceiveStream) -> None:
        type(self).kinds.append(isinstance(stream, Stream))
        await type(self).release.wait()


async def test_draft15_client_within_its_stream_limits_is_never_refused() -> None:
    """The peer is told max_streams for each kind: both kinds at their limit at once."""
    Holder.kinds, Holder.release = [], asyncio.Event()
    app = App(limits=Limits(max_streams=2))
    app.add_session("/hold", Holder)
    async with TestClient(app) as client:
        async with connect(client.url("/hold"), verify=False, dialect=Dialect.DRAFT15) as session:
            streams = []
            for opener in (session.open_uni_stream, session.open_stream) * 2:
                stream = await asyncio.wait_for(opener(), WAIT)
                await stream.write(b"x")
                streams.append(stream)
            for _ in range(100):
                if len(Holder.kinds) == 4:
                    break
                await asyncio.sleep(0.02)
            assert sorted(Holder.kinds) == [False, False, True, True]
            # A third of a kind waits for credit instead of being refused.
            third = asyncio.create_task(session.open_uni_stream())
            await asyncio.sleep(0.2)
            assert not third.done()
            Holder.release.set()
            for stream in streams:
                await stream.close()
            # Its header alone reaches on_stream, which (released) returns and stops it
            # at once: writing to it here could race with that STOP_SENDING.
            await asyncio.wait_for(third, WAIT)
            for _ in range(100):
                if len(Holder.kinds) == 5:
                    break
                await asyncio.sleep(0.02)
            assert sorted(Holder.kinds) == [False, False, False, True, True]


async def test_draft15_client_waits_for_credit_and_gets_there() -> None:
    async with TestClient(small_app()) as client:
        async with connect(client.url("/r"), verify=False, dialect=Dialect.DRAFT15) as session:
            # 6 streams where 2 at a time are allowed; 6 * 20 kB where 8 kB are
            for i in range(6):
                stream = await asyncio.wait_for(session.open_uni_stream(), WAIT)
                await asyncio.wait_for(stream.write(bytes([i]) * 20_000), WAIT)
                await stream.close()
            echo = await session.open_stream()
            payload = bytes(range(256)) * 200
            writer = asyncio.create_task(echo.write(payload))
            assert await asyncio.wait_for(echo.readexactly(len(payload)), WAIT) == payload
            await writer
            await echo.close()
            for _ in range(100):
                if len(Recorder.uni_bytes) == 6:
                    break
                await asyncio.sleep(0.02)
    assert Recorder.uni_bytes == [20_000] * 6

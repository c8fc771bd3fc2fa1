"""Limits: their validation, and each one enforced on a real server with the outcome documented."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, ClassVar

import pytest

from tests.support.quic_pair import QuicPair
from tests.support.waiting import wait_for
from tests.test_hostile import certificate, raw_client
from wtframe import (
    App,
    CloseCode,
    HandshakeError,
    ReceiveStream,
    Session,
    StreamReset,
    StreamStopped,
    serve,
)
from wtframe.capsules import CLOSE_WEBTRANSPORT_SESSION, encode_capsule
from wtframe.codes import StreamErrorCode, to_http3_error
from wtframe.exceptions import ConfigurationError, MessageTooLarge
from wtframe.limits import HANDSHAKE_TIMEOUT_STATUS, Limits
from wtframe.testing import TestClient

WAIT = 5.0


class Probe(Session):
    """Echoes datagrams; the path picks how streams and on_connect behave."""

    seen: ClassVar[list[Any]]

    async def on_connect(self) -> None:
        if self.request.path == "/hang":
            await asyncio.sleep(3600)
        type(self).seen.append(self)

    async def on_datagram(self, data: bytes) -> None:
        if data == b"tick":
            stream = await self.open_uni_stream()
            await stream.write(b"tick")
            await stream.close()
            return
        self.send_datagram(data)

    async def on_stream(self, stream: ReceiveStream) -> None:
        if self.request.path == "/noread":
            await asyncio.sleep(3600)
        try:
            await stream.read_message(bytes)
        except MessageTooLarge as exc:
            type(self).seen.append(exc)
            raise


class Small(Probe):
    max_message_size = 10


def app_with(limits: Limits, **options: Any) -> tuple[App, type[Probe]]:
    probe: type[Probe] = type("P", (Probe,), {"seen": []})
    small = type("S", (Small,), {"seen": probe.seen})
    app = App(limits=limits, **options)
    for path in ("/echo", "/hang", "/noread"):
        app.add_session(path, probe)
    app.add_session("/small", small)
    return app, probe


# -- the settings ------------------------------------------------------------------------------


def test_defaults_are_finite_where_it_matters() -> None:
    limits = Limits()
    assert limits.max_sessions == 16
    assert limits.max_pending_streams == 16
    assert limits.max_streams == 100
    assert limits.max_message_size == 1 << 20
    assert limits.max_capsule_size == 4096
    assert limits.max_stream_buffer == 2 << 20
    assert limits.max_session_buffer == 8 << 20
    assert limits.max_datagram_tasks == 64
    assert limits.handshake_timeout == 10.0
    assert limits.idle_timeout is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_streams = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "options",
    [
        {"max_sessions": 0},
        {"max_streams": -1},
        {"max_pending_streams": 1.5},
        {"max_datagram_tasks": True},
        {"handshake_timeout": 0},
        {"idle_timeout": -3},
        {"idle_timeout": float("inf")},
        {"max_stream_buffer": 100},  # cannot hold one message of the default size
        {"max_session_buffer": 1 << 20},  # smaller than one stream's buffer
    ],
)
def test_invalid_limits_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Limits(**options)


def test_app_max_sessions_is_a_shortcut() -> None:
    assert App().max_sessions == 16
    assert App(max_sessions=3).limits == Limits(max_sessions=3)
    app = App(max_sessions=2, limits=Limits(max_streams=5))
    assert (app.max_sessions, app.limits.max_streams) == (2, 5)
    assert App(limits=Limits(max_sessions=7)).max_sessions == 7
    with pytest.raises(ConfigurationError):
        App(max_sessions=0)


# -- enforcement -------------------------------------------------------------------------------


async def test_max_sessions_answers_429() -> None:
    app, _ = app_with(Limits(max_sessions=1))
    async with TestClient(app) as client, client.connect("/echo") as first:
        with pytest.raises(HandshakeError) as info:
            await first.open_session("/echo")
        assert info.value.status == 429


async def test_handshake_timeout_answers_503() -> None:
    app, _ = app_with(Limits(handshake_timeout=0.2))
    async with TestClient(app) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(HandshakeError) as info:
            await client.connect("/hang")
        assert info.value.status == HANDSHAKE_TIMEOUT_STATUS == 503
        assert 0.2 <= loop.time() - started < 2
        assert client.server.runners == []
        async with client.connect("/echo") as session:  # others are unaffected
            session.send_datagram(b"ok")
            assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"ok"


async def test_idle_session_is_closed_with_policy_violation() -> None:
    app, _ = app_with(Limits(idle_timeout=0.4))
    async with TestClient(app) as client:
        async with client.connect("/echo") as idle, client.connect("/echo") as busy:
            loop = asyncio.get_running_loop()
            started = loop.time()
            while not idle.is_closed and loop.time() - started < WAIT:
                busy.send_datagram(b"keepalive")
                assert await asyncio.wait_for(busy.receive_datagram(), WAIT) == b"keepalive"
                await asyncio.sleep(0.05)
            code, reason = await asyncio.wait_for(idle.wait_closed(), WAIT)
            assert (code, reason) == (CloseCode.POLICY_VIOLATION, "idle timeout")
            assert 0.4 <= loop.time() - started < 0.4 * 1.25 + 0.3
            assert not busy.is_closed


async def test_server_sending_counts_as_activity() -> None:
    app, _ = app_with(Limits(idle_timeout=0.4))
    async with TestClient(app) as client, client.connect("/echo") as session:
        # The client sends only "tick"s, each answered by the server on a new stream;
        # the client never reads them: the server's writes alone keep the session alive.
        for _ in range(12):
            session.send_datagram(b"tick")
            await asyncio.sleep(0.08)
        assert not session.is_closed


async def test_too_many_streams_are_reset_with_too_many_streams() -> None:
    app, _ = app_with(Limits(max_streams=3))
    async with TestClient(app) as client, client.connect("/echo") as session:
        streams = [await session.open_stream() for _ in range(5)]
        for stream in streams:
            await stream.write(b"x")  # no FIN: their handlers wait for more
        codes = []
        for stream in streams[3:]:
            with pytest.raises(StreamReset) as info:
                await asyncio.wait_for(stream.read(), WAIT)
            codes.append(info.value.code)
        assert codes == [StreamErrorCode.TOO_MANY_STREAMS] * 2
        session.send_datagram(b"session lives")
        assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"session lives"
        # Streams that finish make room again.
        for stream in streams[:3]:
            await stream.close()
            assert await asyncio.wait_for(stream.read(), WAIT) == b""
        again = await session.open_stream()
        await again.write(b"y")
        await again.close()
        assert await asyncio.wait_for(again.read(), WAIT) == b""  # a FIN, not a reset


async def test_message_size_from_limits_and_from_the_class() -> None:
    app, probe = app_with(Limits(max_message_size=100, max_stream_buffer=1000))
    async with TestClient(app) as client:
        for path, size, limit in (("/echo", 101, 100), ("/small", 11, 10)):
            async with client.connect(path) as session:
                stream = await session.open_stream()
                await stream.write(b"m" * size)
                await stream.close()
                with pytest.raises(StreamReset) as info:
                    await asyncio.wait_for(stream.read(), WAIT)
                assert info.value.code == StreamErrorCode.MESSAGE_TOO_BIG
                assert [e.limit for e in probe.seen if isinstance(e, MessageTooLarge)][-1] == limit


async def test_unread_stream_data_is_stopped_with_buffer_full() -> None:
    limits = Limits(max_message_size=1000, max_stream_buffer=4096, max_session_buffer=8192)
    app, _ = app_with(limits)
    async with TestClient(app) as client, client.connect("/noread") as session:
        stream = await session.open_uni_stream()
        with pytest.raises(StreamStopped) as info:
            for _ in range(100):
                await stream.write(b"b" * 1000)
                await asyncio.sleep(0.005)
        assert info.value.code == StreamErrorCode.BUFFER_FULL
        session.send_datagram(b"session lives")
        assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"session lives"


async def test_pending_streams_limit_is_configurable() -> None:
    gate = asyncio.Event()

    class Gated(Session):
        async def on_connect(self) -> None:
            await gate.wait()

    app = App(limits=Limits(max_pending_streams=1))
    app.add_session("/gated", Gated)
    server = await serve(app, "127.0.0.1", 0, certificate=certificate())
    try:
        async with raw_client(server.port) as raw:
            session_id = raw.request("/gated")
            await wait_for(lambda: server.runners)
            streams = [raw.open_stream(session_id) for _ in range(3)]
            for stream_id in streams:
                raw.send(stream_id, b"early")
            await wait_for(lambda: len(raw.resets()) == 2)
            assert set(raw.resets()) == set(streams[1:])
            refused = to_http3_error(StreamErrorCode.TOO_MANY_STREAMS)
            assert set(raw.resets().values()) == {refused}
            assert set(raw.stops().values()) == {refused}
            gate.set()
    finally:
        await server.shutdown(0)


async def test_capsule_size_from_limits() -> None:
    app, _ = app_with(Limits(max_capsule_size=64))
    server = await serve(app, "127.0.0.1", 0, certificate=certificate())
    try:
        async with raw_client(server.port) as raw:
            session_id = await raw.session("/echo")
            (runner,) = server.runners
            payload = (1).to_bytes(4, "big") + b"r" * 100  # a valid close, over 64 bytes
            raw.send_connect_data(session_id, encode_capsule(CLOSE_WEBTRANSPORT_SESSION, payload))
            await wait_for(lambda: runner.closed)
            assert runner.close_code == CloseCode.PROTOCOL_ERROR
    finally:
        await server.shutdown(0)


async def test_datagram_tasks_are_bounded() -> None:
    running: list[int] = []

    class Slow(Session):
        async def on_datagram(self, data: bytes) -> None:
            running.append(1)
            await asyncio.sleep(0.3)

    app = App(limits=Limits(max_datagram_tasks=5))
    app.add_session("/slow", Slow)
    async with TestClient(app) as client, client.connect("/slow") as session:
        for i in range(50):
            session.send_datagram(b"%d" % i)
        await wait_for(lambda: client.server.runners[0].session.dropped_datagrams > 0)
        await asyncio.sleep(0.1)
        assert len(running) == 5
        await asyncio.sleep(0.4)
        session.send_datagram(b"later")  # room again once the handlers finished
        await wait_for(lambda: len(running) == 6)


# -- why the buffer limit stops streams instead of withholding credit --------------------------


def test_aioquic_grants_credit_whether_or_not_data_is_read() -> None:
    """aioquic doubles a stream's receive window as data arrives, read or not.

    If this fails, aioquic has changed how it grants flow-control credit, and
    `Limits.max_stream_buffer` could be enforced by withholding credit instead of STOP_SENDING.
    """
    pair = QuicPair()
    session_id = pair.open_session()
    stream_id = pair.client.protocol.open_stream(session_id, unidirectional=True)
    initial = pair.server.quic._local_max_stream_data_uni
    for _ in range(64):
        pair.client.protocol.send_stream_data(stream_id, b"d" * 65536)
        pair.transfer()
    quic_stream = pair.server.quic._streams[stream_id]
    assert quic_stream.receiver.highest_offset > 64 * 65536  # and the stream header
    assert quic_stream.max_stream_data_local >= 2 * initial  # nobody read a byte

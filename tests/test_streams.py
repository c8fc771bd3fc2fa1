"""WebTransport streams end to end: echo, reading, backpressure, resets and bookkeeping."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from aioquic.quic.events import StreamDataReceived as QuicStreamDataReceived

from examples.echo import app as echo_app
from wtframe import (
    App,
    IncompleteReadError,
    ReceiveStream,
    SendStream,
    Session,
    SessionClosed,
    Stream,
    StreamClosed,
    StreamReset,
    StreamStopped,
    events,
)
from wtframe.streams import WRITE_HIGH_WATER_DEFAULT
from wtframe.testing import TestClient

WAIT = 5
CHUNK = 64 * 1024


def payload(size: int) -> bytes:
    block = hashlib.sha256(b"wtframe").digest() * 2048  # 64 KiB, not all zeros
    return (block * (size // len(block) + 1))[:size]


class Results:
    """A per-test place where server-side handlers leave what they observed."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.changed = asyncio.Event()
        self.release = asyncio.Event()

    def put(self, key: str, value: Any) -> None:
        self.values[key] = value
        self.changed.set()

    async def get(self, key: str) -> Any:
        async def poll() -> Any:
            while key not in self.values:
                self.changed.clear()
                await self.changed.wait()
            return self.values[key]

        return await asyncio.wait_for(poll(), WAIT)


def app_with(handler: Callable[[Session, ReceiveStream], Any], **hooks: Any) -> App:
    app = App()
    namespace: dict[str, Any] = {"on_stream": handler, **hooks}
    app.add_session("/t", type("Handler", (Session,), namespace))
    return app


# -- echo ---------------------------------------------------------------------------------


async def test_bidirectional_echo() -> None:
    async with TestClient(echo_app) as client, client.connect("/echo") as session:
        stream = await session.open_stream()
        assert stream.is_bidirectional and not stream.is_unidirectional
        await stream.write(b"hello ")
        await stream.write(b"world")
        await stream.close()
        assert stream.is_closing
        assert await asyncio.wait_for(stream.read(), WAIT) == b"hello world"
        assert stream.at_eof


async def test_unidirectional_stream_answered_on_a_server_uni_stream() -> None:
    async with TestClient(echo_app) as client, client.connect("/echo") as session:
        out = await session.open_uni_stream()
        assert out.is_unidirectional
        assert not isinstance(out, ReceiveStream)
        await out.write(b"one way")
        await out.close()
        back = await asyncio.wait_for(session.accept_stream(), WAIT)
        assert back.is_unidirectional
        assert not isinstance(back, SendStream)
        assert back.stream_id != out.stream_id
        assert await asyncio.wait_for(back.read(), WAIT) == b"one way"


async def test_server_opened_streams() -> None:
    results = Results()

    async def on_datagram(self: Session, data: bytes) -> None:
        if data == b"bidi":
            stream = await self.open_stream()
            await stream.write(b"question")
            await stream.close()
            results.put("reply", await stream.read())
        else:
            uni = await self.open_uni_stream()
            assert not isinstance(uni, ReceiveStream)
            await uni.write(b"news")
            await uni.close()

    app = app_with(Session.on_stream, on_datagram=on_datagram)
    async with TestClient(app) as client, client.connect("/t") as session:
        session.send_datagram(b"bidi")
        stream = await asyncio.wait_for(session.accept_stream(), WAIT)
        assert isinstance(stream, Stream)
        assert await asyncio.wait_for(stream.read(), WAIT) == b"question"
        await stream.write(b"answer")
        await stream.close()
        assert await results.get("reply") == b"answer"

        session.send_datagram(b"uni")
        uni = await asyncio.wait_for(session.accept_stream(), WAIT)
        assert not isinstance(uni, SendStream)
        assert await asyncio.wait_for(uni.read(), WAIT) == b"news"


async def test_handler_return_finishes_the_stream() -> None:
    async def on_stream(self: Session, stream: ReceiveStream) -> None:
        await stream.read(1)
        assert isinstance(stream, Stream)
        await stream.write(b"bye")  # neither closed nor read to the end

    async with TestClient(app_with(on_stream)) as client, client.connect("/t") as session:
        stream = await session.open_stream()
        await stream.write(b"x")
        assert await asyncio.wait_for(stream.read(), WAIT) == b"bye"  # FIN came

        async def write_until_stopped() -> int:
            while True:
                try:
                    await stream.write(b"more")
                except StreamStopped as exc:
                    return exc.code
                await asyncio.sleep(0.01)

        assert await asyncio.wait_for(write_until_stopped(), WAIT) == 0


async def test_default_on_stream_refuses() -> None:
    app = App()
    app.add_session("/t", type("Plain", (Session,), {}))
    async with TestClient(app) as client, client.connect("/t") as session:
        stream = await session.open_stream()
        await stream.write(b"anyone?")
        with pytest.raises(StreamReset):
            await asyncio.wait_for(stream.read(), WAIT)


# -- writing ------------------------------------------------------------------------------


async def test_write_after_close_or_reset_raises() -> None:
    async with TestClient(echo_app) as client, client.connect("/echo") as session:
        stream = await session.open_stream()
        async with stream:
            await stream.write(b"a")
        with pytest.raises(StreamClosed):
            await stream.write(b"b")
        assert await asyncio.wait_for(stream.read(), WAIT) == b"a"
        other = await session.open_uni_stream()
        other.reset(1)
        other.reset(2)
        with pytest.raises(StreamClosed):
            await other.write(b"c")
        await other.close()  # nothing to do after a reset


async def test_large_upload_with_backpressure_and_integrity() -> None:
    async def on_stream(self: Session, stream: ReceiveStream) -> None:
        digest = hashlib.sha256()
        size = 0
        async for chunk in stream:
            digest.update(chunk)
            size += len(chunk)
        assert isinstance(stream, Stream)
        await stream.write(size.to_bytes(8, "big") + digest.digest())

    data = payload(8 * 1024 * 1024)
    async with TestClient(app_with(on_stream)) as client, client.connect("/t") as session:
        stream = await session.open_stream()
        assert stream.high_water == WRITE_HIGH_WATER_DEFAULT
        wt = session._connection.wt
        peak = 0
        for start in range(0, len(data), CHUNK):
            await asyncio.wait_for(stream.write(data[start : start + CHUNK]), WAIT)
            peak = max(peak, wt.stream_buffered(stream.stream_id))
        await stream.close()
        answer = await asyncio.wait_for(stream.read(), WAIT)
    assert peak <= stream.high_water + CHUNK
    assert peak > stream.high_water // 2  # the writer did run ahead of the peer
    assert answer == len(data).to_bytes(8, "big") + hashlib.sha256(data).digest()


async def test_large_download_respects_a_custom_high_water() -> None:
    results = Results()
    data = payload(4 * 1024 * 1024 + 123)

    async def on_stream(self: Session, stream: ReceiveStream) -> None:
        assert isinstance(stream, Stream)
        await stream.read()
        stream.high_water = 32 * 1024
        wt = self._runner.connection.wt
        peak = 0
        for start in range(0, len(data), 16 * 1024):
            await stream.write(data[start : start + 16 * 1024])
            peak = max(peak, wt.stream_buffered(stream.stream_id))
        results.put("peak", peak)

    async with TestClient(app_with(on_stream)) as client, client.connect("/t") as session:
        stream = await session.open_stream()
        await stream.close()
        digest = hashlib.sha256()
        size = 0

        async def download() -> None:
            nonlocal size
            async for chunk in stream:
                digest.update(chunk)
                size += len(chunk)

        await asyncio.wait_for(download(), WAIT)
        assert stream.at_eof
        peak = await results.get("peak")
    assert size == len(data)
    assert digest.digest() == hashlib.sha256(data).digest()
    assert 0 < peak <= 32 * 1024 + 16 * 1024


# -- reading ------------------------------------------------------------------------------


async def test_server_side_read_semantics() -> None:
    results = Results()

    async def on_stream(self: Session, stream: ReceiveStream) -> None:
        results.put("first", await stream.read(100))  # must not wait for FIN
        results.put("two", await stream.readexactly(2))
        results.put("upto3", await stream.read(3))
        results.put("zero", await stream.readexactly(0))
        try:
            await stream.readexactly(5)
        except IncompleteReadError as exc:
            results.put("incomplete", (exc.partial, exc.expected, isinstance(exc, EOFError)))
        results.put("eof", (stream.at_eof, await stream.read(), await stream.read(4)))

    async with TestClient(app_with(on_stream)) as client, client.connect("/t") as session:
        stream = await session.open_uni_stream()
        await stream.write(b"hello")
        assert await results.get("first") == b"hello"
        await stream.write(b"abcdef")
        await stream.close()
        assert await results.get("two") == b"ab"
        assert await results.get("upto3") == b"cde"
        assert await results.get("zero") == b""
        assert await results.get("incomplete") == (b"f", 5, True)
        assert await results.get("eof") == (True, b"", b"")


async def test_client_side_iteration_and_eof() -> None:
    async def on_stream(self: Session, stream: ReceiveStream) -> None:
        assert isinstance(stream, Stream)
        await stream.read()
        for part in (b"abc", b"def", b"ghi"):
            await stream.write(part)
            await asyncio.sleep(0.02)

    async with TestClient(app_with(on_stream)) as client, client.connect("/t") as session:
        stream = await session.open_stream()
        await stream.close()
        assert not stream.at_eof

        async def collect() -> list[bytes]:
            return [chunk async for chunk in stream]

        chunks = await asyncio.wait_for(collect(), WAIT)
        assert b"".join(chunks) == b"abcdefghi"
        assert len(chunks) >= 2  # chunks are yielded as they arrive, not at FIN
        assert stream.at_eof
        assert stream.buffered_bytes == 0
        assert await stream.read() == b""
        with pytest.raises(IncompleteReadError) as info:
            await stream.readexactly(1)
        assert info.value.partial == b""


# -- resets and stops ---------------------------------------------------------------------


async def test_client_reset_reaches_server_reader() -> None:
    results = Results()

    async def on_stream(self: Session, stream: ReceiveStream) -> None:
        results.put("start", await stream.readexactly(7))
        try:
            await stream.read()
        except StreamReset as exc:
            results.put("code", exc.code)

    async with TestClient(app_with(on_stream)) as client, client.connect("/t") as session:
        stream = await session.open_stream()
        await stream.write(b"partial")
        assert await results.get("start") == b"partial"
        stream.reset(42)
        assert await results.get("code") == 42


async def test_server_reset_reaches_client_reader() -> None:
    async def on_stream(self: Session, stream: ReceiveStream) -> None:
        await stream.readexactly(1)
        assert isinstance(stream, Stream)
        await stream.write(b"partial")
        await asyncio.sleep(0.05)
        stream.reset(43)
        await stream.read()

    async with TestClient(app_with(on_stream)) as client, client.connect("/t") as session:
        stream = await session.open_stream()
        await stream.write(b"x")
        with pytest.raises(StreamReset) as info:
            await asyncio.wait_for(stream.read(), WAIT)
        assert info.value.code == 43
        with pytest.raises(StreamReset):
            await stream.read()


async def reset_early(self: Session, stream: ReceiveStream) -> None:
    await stream.readexactly(1)
    assert isinstance(stream, Stream)
    await stream.write(b"partial")
    stream.reset(44)
    await stream.read()


async def test_reset_while_reading_chunks_raises() -> None:
    async with TestClient(app_with(reset_early)) as client, client.connect("/t") as session:
        stream = await session.open_stream()
        await stream.write(b"x")
        with pytest.raises(StreamReset) as info:

            async def drain() -> None:
                async for _ in stream:
                    pass

            await asyncio.wait_for(drain(), WAIT)
        assert info.value.code == 44


@pytest.mark.parametrize("how", ["read_n", "async_for"])
async def test_reset_received_before_reading_is_not_an_end(how: str) -> None:
    async with TestClient(app_with(reset_early)) as client, client.connect("/t") as session:
        stream = await session.open_stream()
        await stream.write(b"x")
        await asyncio.sleep(0.2)  # the data and the reset arrive before we read
        with pytest.raises(StreamReset) as info:
            if how == "read_n":
                await asyncio.wait_for(stream.read(100), WAIT)
            else:
                async for _ in stream:
                    pass
        assert info.value.code == 44


async def test_server_stop_reaches_client_writer() -> None:
    async def on_stream(self: Session, stream: ReceiveStream) -> None:
        await stream.readexactly(1)
        stream.stop(5)
        await asyncio.sleep(WAIT)

    async with TestClient(app_with(on_stream)) as client, client.connect("/t") as session:
        stream = await session.open_uni_stream()

        async def write_until_stopped() -> int:
            while True:
                try:
                    await stream.write(b"x")
                except StreamStopped as exc:
                    return exc.code
                await asyncio.sleep(0.01)

        assert await asyncio.wait_for(write_until_stopped(), WAIT) == 5
        assert stream.is_closing


async def test_client_stop_reaches_server_writer() -> None:
    results = Results()

    async def on_stream(self: Session, stream: ReceiveStream) -> None:
        assert isinstance(stream, Stream)
        await stream.readexactly(2)
        while True:
            try:
                await stream.write(b"y" * 100)
            except StreamStopped as exc:
                results.put("code", exc.code)
                return
            await asyncio.sleep(0.01)

    async with TestClient(app_with(on_stream)) as client, client.connect("/t") as session:
        stream = await session.open_stream()
        await stream.write(b"go")
        assert len(await asyncio.wait_for(stream.read(100), WAIT)) > 0
        stream.stop(6)
        assert await results.get("code") == 6
        with pytest.raises(StreamClosed):
            await stream.read()


# -- bookkeeping --------------------------------------------------------------------------


def bookkeeping(connection: Any, session_id: int) -> tuple[int, int, int, int]:
    return (
        len(connection._streams),
        len(connection._session_streams.get(session_id, ())),
        connection.wt.stream_count,
        len(connection.wt.h3._stream),
    )


async def test_many_sequential_streams_leave_bounded_state() -> None:
    app = App()

    @app.session("/t")
    class Echo(Session):
        async def on_stream(self, stream: ReceiveStream) -> None:
            data = await stream.read()
            if data == b"refuse":
                await super().on_stream(stream)
            elif isinstance(stream, Stream):
                await stream.write(data)
            else:
                reply = await self.open_uni_stream()
                await reply.write(data)
                await reply.close()

    async with TestClient(app) as client, client.connect("/t") as session:
        (server,) = client.server.connections
        sid = session.session_id
        samples = []
        for i in range(2000):
            stream = await session.open_stream()
            await stream.write(b"%d" % i)
            await stream.close()
            assert await asyncio.wait_for(stream.read(), WAIT) == b"%d" % i
            if i in (99, 1999):
                await asyncio.sleep(0.01)
                samples.append((bookkeeping(server, sid), bookkeeping(session._connection, sid)))
        for i in range(300):  # unidirectional, answered on a server stream
            out = await session.open_uni_stream()
            await out.write(b"u%d" % i)
            await out.close()
            back = await asyncio.wait_for(session.accept_stream(), WAIT)
            assert await asyncio.wait_for(back.read(), WAIT) == b"u%d" % i
        for _ in range(200):  # streams refused by the default handler
            stream = await session.open_stream()
            await stream.write(b"refuse")
            await stream.close()
            with pytest.raises(StreamReset):
                await asyncio.wait_for(stream.read(), WAIT)
        await asyncio.sleep(0.05)
        samples.append((bookkeeping(server, sid), bookkeeping(session._connection, sid)))
    for server_state, client_state in samples:
        assert max(server_state) <= 8, samples
        assert max(client_state) <= 8, samples


async def test_data_ended_before_a_close_still_leaves() -> None:
    """What a handler wrote and ended before closing its session is sent to the peer.

    The client drops unread stream data once the session ends (as browsers do), so the
    bytes are checked as QUIC delivers them to the client.
    """

    async def on_stream(self: Session, stream: ReceiveStream) -> None:
        assert isinstance(stream, Stream)
        request = await stream.read()
        await stream.write(b"last ")
        await stream.write(request)
        await stream.close()
        await self.close(4000, "done")

    async with TestClient(app_with(on_stream)) as client, client.connect("/t") as session:
        wt = session._connection.wt
        seen: list[QuicStreamDataReceived] = []
        handle_event = wt.handle_event

        def recording(event: Any) -> list[events.Event]:
            if isinstance(event, QuicStreamDataReceived):
                seen.append(event)
            return handle_event(event)

        wt.handle_event = recording  # type: ignore[method-assign]
        stream = await session.open_stream()
        await stream.write(b"words")
        await stream.close()
        assert await asyncio.wait_for(session.wait_closed(), WAIT) == (4000, "done")
    data = [e for e in seen if e.stream_id == stream.stream_id]
    assert b"".join(e.data for e in data) == b"last words"
    assert data[-1].end_stream


async def test_data_not_ended_before_a_close_is_reset() -> None:
    async def on_stream(self: Session, stream: ReceiveStream) -> None:
        assert isinstance(stream, Stream)
        await stream.read()
        await stream.write(b"never ended")
        await self.close(4000, "done")

    async with TestClient(app_with(on_stream)) as client, client.connect("/t") as session:
        stream = await session.open_stream()
        await stream.close()
        with pytest.raises((StreamReset, SessionClosed)):
            await asyncio.wait_for(stream.read(), WAIT)

"""Session hooks and commands, driven by the Python client over real QUIC on loopback."""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

import pytest

from tests.support.waiting import wait_for
from wtframe import (
    App,
    ClientSession,
    CloseCode,
    DatagramTooLarge,
    ReceiveStream,
    Session,
    SessionClosed,
    Stream,
    StreamReset,
)
from wtframe.testing import TestClient

WAIT = 5


class Probe(Session):
    """Echoes datagrams and records its lifecycle; datagram commands steer it."""

    closes: ClassVar[list[tuple[int, str]]]
    drains: ClassVar[list[bool]]
    instances: ClassVar[list[Probe]]
    closed: ClassVar[asyncio.Event]

    async def on_connect(self) -> None:
        type(self).instances.append(self)

    async def on_datagram(self, data: bytes) -> None:
        if data == b"big":
            size = self.max_datagram_size
            self.send_datagram(b"x" * size)
            try:
                self.send_datagram(b"x" * (size + 1))
            except DatagramTooLarge as exc:
                self.send_datagram(f"too large {exc.size} {exc.limit}".encode())
        elif data == b"close twice":
            await self.close(3, "first")
            await self.close(4, "second")
        elif data == b"raise":
            raise RuntimeError("datagram handler exploded")
        else:
            self.send_datagram(data)

    async def on_stream(self, stream: ReceiveStream) -> None:
        data = await stream.read()
        if data == b"raise":
            raise ValueError("stream handler exploded")
        if isinstance(stream, Stream):
            await stream.write(data)

    async def on_drain(self) -> None:
        type(self).drains.append(self.is_draining)

    async def on_close(self, code: int, reason: str) -> None:
        type(self).closes.append((code, reason))
        await self.close(5, "from on_close")  # must not run on_close again
        type(self).closed.set()


def probe_app() -> tuple[App, type[Probe]]:
    cls = type(
        "P",
        (Probe,),
        {"closes": [], "drains": [], "instances": [], "closed": asyncio.Event()},
    )
    app = App()
    app.add_session("/p", cls)
    return app, cls


async def closed_once(cls: type[Probe]) -> tuple[int, str]:
    """Wait for on_close, give it a chance to run again, and return its one call."""
    await asyncio.wait_for(cls.closed.wait(), WAIT)
    await asyncio.sleep(0.1)
    assert len(cls.closes) == 1, cls.closes
    return cls.closes[0]


async def echo(session: ClientSession, data: bytes) -> bytes:
    session.send_datagram(data)
    return await asyncio.wait_for(session.receive_datagram(), WAIT)


# -- datagrams ----------------------------------------------------------------------------


async def test_datagram_echo_both_ways() -> None:
    app, _ = probe_app()
    async with TestClient(app) as client, client.connect("/p") as session:
        for payload in (b"", b"ping", bytes(range(256)) * 4):
            assert await echo(session, payload) == payload


async def test_server_datagram_limit() -> None:
    app, cls = probe_app()
    async with TestClient(app) as client, client.connect("/p") as session:
        session.send_datagram(b"big")
        full = await asyncio.wait_for(session.receive_datagram(), WAIT)
        refused = await asyncio.wait_for(session.receive_datagram(), WAIT)
        size = cls.instances[0].max_datagram_size
        assert size > 1000
        assert full == b"x" * size
        assert refused == f"too large {size + 1} {size}".encode()


async def test_client_datagram_limit() -> None:
    app, _ = probe_app()
    async with TestClient(app) as client, client.connect("/p") as session:
        size = session.max_datagram_size
        assert size > 1000
        payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
        assert await echo(session, payload) == payload
        with pytest.raises(DatagramTooLarge) as info:
            session.send_datagram(payload + b"!")
        assert (info.value.size, info.value.limit) == (size + 1, size)
        assert await echo(session, b"after") == b"after"


async def test_send_datagram_after_close_raises() -> None:
    app, cls = probe_app()
    async with TestClient(app) as client:
        session = await client.connect("/p")
        await session.close(0)
        with pytest.raises(SessionClosed):
            session.send_datagram(b"late")
        await closed_once(cls)
        server_session = cls.instances[0]
        with pytest.raises(SessionClosed):
            server_session.send_datagram(b"late")
        with pytest.raises(SessionClosed):
            await server_session.open_stream()


# -- closing ------------------------------------------------------------------------------


async def test_client_close_reaches_on_close() -> None:
    app, cls = probe_app()
    async with TestClient(app) as client:
        session = await client.connect("/p")
        await session.close(7, "bye")
        await session.close(8, "again")
        assert await closed_once(cls) == (7, "bye")
        assert session.close_code == 7


async def test_client_close_capsule_reaches_on_close_when_connection_stays() -> None:
    app, cls = probe_app()
    async with TestClient(app) as client, client.connect("/p") as carrier:
        session = await carrier.open_session("/p", timeout=WAIT)
        await session.close(7, "bye")
        await session.close(8, "again")
        assert await closed_once(cls) == (7, "bye")
        assert session.close_code == 7
        assert await echo(carrier, b"alive") == b"alive"


async def test_server_close_reaches_client() -> None:
    app, cls = probe_app()
    async with TestClient(app) as client, client.connect("/p") as session:
        server_session = cls.instances[0]
        await server_session.close(9, "done")
        assert server_session.is_closed
        assert (server_session.close_code, server_session.close_reason) == (9, "done")
        assert await asyncio.wait_for(session.wait_closed(), WAIT) == (9, "done")
        assert session.is_closed
        assert await closed_once(cls) == (9, "done")


async def test_close_twice_from_inside_a_hook_runs_on_close_once() -> None:
    app, cls = probe_app()
    async with TestClient(app) as client, client.connect("/p") as session:
        session.send_datagram(b"close twice")
        assert await asyncio.wait_for(session.wait_closed(), WAIT) == (3, "first")
        assert await closed_once(cls) == (3, "first")


async def test_connection_loss_gives_1006_once() -> None:
    app, cls = probe_app()
    async with TestClient(app) as client:
        session = await client.connect("/p")
        session._connection.close()  # QUIC CONNECTION_CLOSE, no session close capsule
        code, _ = await closed_once(cls)
        assert code == CloseCode.ABNORMAL
        assert session.close_code == CloseCode.ABNORMAL
        await session.close()
        assert len(cls.closes) == 1


async def test_open_streams_are_reset_when_the_session_ends() -> None:
    app = App()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @app.session("/hold")
    class Hold(Session):
        async def on_stream(self, stream: ReceiveStream) -> None:
            await stream.read(1)
            started.set()
            try:
                await stream.read()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async def on_datagram(self, data: bytes) -> None:
            await self.close(1, "bye")

    async with TestClient(app) as client, client.connect("/hold") as session:
        stream = await session.open_stream()
        await stream.write(b"x")
        await asyncio.wait_for(started.wait(), WAIT)
        pending = asyncio.ensure_future(stream.read())
        await asyncio.sleep(0.01)
        session.send_datagram(b"close")
        with pytest.raises((SessionClosed, StreamReset)):
            await asyncio.wait_for(pending, WAIT)
        await asyncio.wait_for(cancelled.wait(), WAIT)
        with pytest.raises(SessionClosed):
            await session.open_stream()


# -- hook failures ------------------------------------------------------------------------


@pytest.mark.parametrize("trigger", ["datagram", "stream"])
async def test_hook_exception_is_logged_and_closes_only_that_session(
    trigger: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, cls = probe_app()
    async with TestClient(app) as client:
        async with client.connect("/p") as bystander, client.connect("/p") as victim:
            with caplog.at_level(logging.ERROR, logger="wtframe"):
                if trigger == "datagram":
                    victim.send_datagram(b"raise")
                else:
                    stream = await victim.open_stream()
                    await stream.write(b"raise")
                    await stream.close()
                code, _ = await asyncio.wait_for(victim.wait_closed(), WAIT)
            assert code == CloseCode.INTERNAL_ERROR
            assert await closed_once(cls) == (CloseCode.INTERNAL_ERROR, "internal server error")
            assert await echo(bystander, b"fine") == b"fine"
            stream = await bystander.open_stream()
            await stream.write(b"fine too")
            await stream.close()
            assert await asyncio.wait_for(stream.read(), WAIT) == b"fine too"
    failures = [r for r in caplog.records if r.name == "wtframe" and r.exc_info]
    assert len(failures) == 1
    assert "exploded" in caplog.text
    assert "Traceback" in caplog.text


# -- drain --------------------------------------------------------------------------------


async def test_client_drain_runs_on_drain() -> None:
    app, cls = probe_app()
    async with TestClient(app) as client, client.connect("/p") as session:
        server_session = cls.instances[0]
        assert not server_session.is_draining
        await session.drain()
        await wait_for(lambda: cls.drains)
        assert cls.drains == [True]
        assert server_session.is_draining
        assert await echo(session, b"still open") == b"still open"


async def test_server_drain_reaches_client() -> None:
    app, cls = probe_app()
    async with TestClient(app) as client, client.connect("/p") as session:
        assert not session.is_draining
        await cls.instances[0].drain()
        await wait_for(lambda: session.is_draining)
        assert await echo(session, b"still open") == b"still open"


# -- several sessions on one connection ---------------------------------------------------


async def test_sessions_on_one_connection_are_isolated() -> None:
    app, cls = probe_app()
    async with TestClient(app) as client, client.connect("/p") as first:
        second = await first.open_session("/p", timeout=WAIT)
        assert second._connection is first._connection
        assert second.session_id != first.session_id
        assert len(client.server.connections) == 1
        assert len(client.server.runners) == 2
        assert await echo(first, b"one") == b"one"
        assert await echo(second, b"two") == b"two"
        await asyncio.sleep(0.05)
        assert first._datagrams == second._datagrams == type(first._datagrams)()

        s1, s2 = await first.open_stream(), await second.open_stream()
        await s2.write(b"second")
        await s1.write(b"first")
        await s1.close()
        await s2.close()
        assert await asyncio.wait_for(s1.read(), WAIT) == b"first"
        assert await asyncio.wait_for(s2.read(), WAIT) == b"second"

        server_first, server_second = cls.instances
        assert server_first.session_id == first.session_id
        await server_second.close(2, "only you")
        assert await asyncio.wait_for(second.wait_closed(), WAIT) == (2, "only you")
        assert await closed_once(cls) == (2, "only you")
        assert not first.is_closed and not server_first.is_closed
        assert await echo(first, b"still") == b"still"
        assert [r.session for r in client.server.runners] == [server_first]


# -- accept() and create_task() ---------------------------------------------------------------


class Greeter(Session):
    """Accepts early, greets on a server stream, then keeps a ticker task going."""

    ticks: ClassVar[list[int]] = []

    async def on_connect(self) -> None:
        await self.accept()
        await self.accept()  # twice does nothing
        stream = await self.open_uni_stream()
        await stream.write_message(b"hello from on_connect")
        self.create_task(self._tick())

    async def _tick(self) -> None:
        n = 0
        while True:
            n += 1
            type(self).ticks.append(n)
            await asyncio.sleep(0.01)


async def test_accept_inside_on_connect_lets_it_talk_first() -> None:
    app = App()
    app.add_session("/g", Greeter)
    async with TestClient(app) as client:
        async with client.connect("/g") as session:
            stream = await asyncio.wait_for(session.accept_stream(), WAIT)
            assert await asyncio.wait_for(stream.read(), WAIT) == b"hello from on_connect"
            await asyncio.sleep(0.05)
        runner_tasks = [t for r in client.server.runners for t in r.tasks]
        await asyncio.sleep(0.05)
        count = len(Greeter.ticks)
        await asyncio.sleep(0.05)
        assert count > 0
        assert len(Greeter.ticks) == count  # the ticker stopped with the session
        assert all(t.done() for t in runner_tasks)


class Crashy(Session):
    async def on_connect(self) -> None:
        await self.accept()
        self.create_task(self._boom())

    async def _boom(self) -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("task exploded")


async def test_a_failing_session_task_closes_the_session_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()
    app.add_session("/c", Crashy)
    async with TestClient(app) as client, client.connect("/c") as session:
        with caplog.at_level(logging.ERROR, logger="wtframe"):
            code, _ = await asyncio.wait_for(session.wait_closed(), WAIT)
        assert code == CloseCode.INTERNAL_ERROR
    assert "task exploded" in caplog.text

"""Packets the server sends: a reply carries the ACK of its request, one packet per exchange.

aioquic delays ACKs; a server that sent each reply at once and the ACK later would send two
packets per request. These tests count the UDP datagrams the real server's socket sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aioquic import tls

from wtframe import App, ReceiveStream, SendStream, Session
from wtframe._connection import _HELD, ACK_HOLD
from wtframe.server import Server
from wtframe.testing import TestClient

ROUNDS = 30


def _app() -> App:
    app = App()

    @app.session("/echo")
    class Echo(Session):
        async def on_datagram(self, data: bytes) -> None:  # never waits: no task
            self.send_datagram(data)

        async def on_stream(self, stream: ReceiveStream) -> None:  # a task
            assert isinstance(stream, SendStream)
            await stream.write(await stream.read())

    @app.session("/slow")
    class Slow(Session):
        async def on_datagram(self, data: bytes) -> None:  # answers in a later iteration
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            self.send_datagram(data)

    return app


@contextmanager
def _count_sent(server: Server) -> Iterator[list[int]]:
    """Count the datagrams the server's UDP socket sends meanwhile."""
    transport: Any = server._transport
    sent = [0]
    original = transport.sendto

    def sendto(data: bytes, addr: Any = None) -> None:
        sent[0] += 1
        original(data, addr)

    transport.sendto = sendto
    try:
        yield sent
    finally:
        transport.sendto = original


async def _settle() -> None:
    await asyncio.sleep(0.1)  # handshake leftovers (HANDSHAKE_DONE, tickets) go first


async def test_a_datagram_reply_carries_the_ack() -> None:
    """Datagrams further apart than aioquic's ACK delay: the ACK would go alone."""
    async with TestClient(_app()) as client, client.connect("/echo") as session:
        await _settle()
        with _count_sent(client.server) as sent:
            for i in range(ROUNDS):
                await asyncio.sleep(0.003)  # the ACK delay is 1 ms
                session.send_datagram(b"%d" % i)
                assert await asyncio.wait_for(session.receive_datagram(), 5) == b"%d" % i
        assert sent[0] <= ROUNDS + 1, sent  # not 2 per round trip


async def _rounds_with_pauses() -> AsyncIterator[int]:
    """Count ROUNDS rounds; every other one starts after a pause longer than the ACK delay."""
    for i in range(ROUNDS):
        if i % 2:
            await asyncio.sleep(0.003)
        yield i


def _check_dense_rule(seen: list[tuple[bool, bool]]) -> None:
    """Each reply, as (came after a dense packet, forced the ACK): forced only if sparse.

    Every other request came after a pause (`_rounds_with_pauses`), so at least half are
    sparse; the timing of the others is the machine's, but on loopback some come within
    the 1 ms ACK delay.
    """
    assert len(seen) == ROUNDS
    assert all(forced == (not dense) for dense, forced in seen), seen
    assert sum(not dense for dense, _ in seen) >= ROUNDS // 2
    assert any(dense for dense, _ in seen)


async def test_datagrams_close_together_leave_the_ack_to_aioquic() -> None:
    """A datagram reply takes the ACK along only if the request came after a pause."""
    from wtframe._connection import _DENSE, _SPARSE

    seen: list[tuple[int, bool]] = []
    app = App()

    @app.session("/echo")
    class Echo(Session):
        async def on_datagram(self, data: bytes) -> None:
            connection = self._runner.connection
            self.send_datagram(data)
            seen.append((connection._receiving, connection._ack_with_reply))

    async with TestClient(app) as client, client.connect("/echo") as session:
        await _settle()
        async for i in _rounds_with_pauses():
            session.send_datagram(b"%d" % i)
            assert await asyncio.wait_for(session.receive_datagram(), 5) == b"%d" % i
    assert {receiving for receiving, _ in seen} <= {_DENSE, _SPARSE}
    _check_dense_rule([(receiving == _DENSE, forced) for receiving, forced in seen])


async def test_a_stream_reply_carries_the_ack() -> None:
    """Requests further apart than aioquic's ACK delay: the ACK would go alone."""
    async with TestClient(_app()) as client, client.connect("/echo") as session:
        await _settle()
        with _count_sent(client.server) as sent:
            for i in range(ROUNDS):
                await asyncio.sleep(0.003)
                stream = await session.open_stream()
                await stream.write(b"%d" % i)
                await stream.close()
                assert await asyncio.wait_for(stream.read(), 5) == b"%d" % i
        assert sent[0] <= ROUNDS + 1, sent


async def test_requests_close_together_leave_the_ack_to_aioquic() -> None:
    """As with datagrams, an answer takes the ACK along only if the request came after a
    pause: back to back, acknowledging every request slows a sequential client down."""
    from wtframe._connection import _DENSE, _SPARSE

    seen: list[tuple[int, bool]] = []
    app = App()

    @app.session("/echo")
    class Echo(Session):
        async def on_request(self, data: bytes) -> bytes:  # answered in the packet callback
            return data

    async with TestClient(app) as client, client.connect("/echo") as session:
        await _settle()
        (connection,) = client.server.connections
        answer = connection.answer_stream

        def answer_stream(stream_id: int, data: bytes) -> None:
            answer(stream_id, data)
            seen.append((connection._receiving, connection._ack_with_reply))

        connection.answer_stream = answer_stream  # type: ignore[method-assign]
        async for i in _rounds_with_pauses():
            assert await asyncio.wait_for(session.send_request(b"%d" % i), 5) == b"%d" % i
    assert {receiving for receiving, _ in seen} <= {_DENSE, _SPARSE}
    _check_dense_rule([(receiving == _DENSE, forced) for receiving, forced in seen])


async def test_messages_close_together_leave_the_ack_to_aioquic() -> None:
    """The same rule for a reply from a task that the message woke (a framed stream)."""
    seen: list[tuple[bool, bool]] = []
    app = App()

    @app.session("/echo")
    class Echo(Session):
        async def on_stream(self, stream: ReceiveStream) -> None:
            assert isinstance(stream, SendStream)
            connection = self._runner.connection
            async for chunk in stream:  # each message wakes this task
                dense = connection._dense_woken
                await stream.write(chunk)
                seen.append((dense, connection._ack_with_reply))

    async with TestClient(app) as client, client.connect("/echo") as session:
        await _settle()
        stream = await session.open_stream()
        async for i in _rounds_with_pauses():
            message = b"%02d" % i
            await stream.write(message)
            assert await asyncio.wait_for(stream.readexactly(2), 5) == message
        await stream.close()
    _check_dense_rule(seen)


async def test_a_reply_that_ends_a_stream_takes_the_ack_even_in_dense_traffic() -> None:
    """The peer forgets its finished stream only once its FIN is acknowledged."""
    seen: list[tuple[bool, bool]] = []
    app = App()

    @app.session("/echo")
    class Echo(Session):
        async def on_stream(self, stream: ReceiveStream) -> None:
            assert isinstance(stream, SendStream)
            connection = self._runner.connection
            data = await stream.read()  # woken by the packet with the FIN
            dense = connection._dense_woken
            await stream.write(data)
            await stream.close()
            seen.append((dense, connection._ack_with_reply))

    async with TestClient(app) as client, client.connect("/echo") as session:
        await _settle()
        for i in range(ROUNDS):
            stream = await session.open_stream()
            await stream.write(b"%d" % i)
            await asyncio.sleep(0)  # the first part leaves in a packet of its own
            await stream.write(b"!")
            await stream.close()  # the FIN follows right after: dense
            assert await asyncio.wait_for(stream.read(), 5) == b"%d!" % i
    assert len(seen) == ROUNDS
    assert any(dense for dense, _ in seen), seen
    assert all(forced for _, forced in seen), seen


async def test_a_reply_from_a_later_loop_iteration_still_leaves() -> None:
    async with TestClient(_app()) as client, client.connect("/slow") as session:
        for i in range(5):
            session.send_datagram(b"%d" % i)
            assert await asyncio.wait_for(session.receive_datagram(), 5) == b"%d" % i


def _waiting_app(delay: float) -> App:
    """A request/response session whose handler waits `delay` before answering."""
    app = App()

    @app.session("/wait")
    class Waiter(Session):
        async def on_stream(self, stream: ReceiveStream) -> None:
            assert isinstance(stream, SendStream)
            data = await stream.read()
            await asyncio.sleep(delay)  # a store, a query
            await stream.write(data)

        async def on_datagram(self, data: bytes) -> None:
            pass  # needs an ACK, answers nothing

    return app


async def _exchanges(session: Any, rounds: int, pause: float) -> None:
    for i in range(rounds):
        stream = await session.open_stream()
        await stream.write(b"%d" % i)
        await stream.close()
        assert await asyncio.wait_for(stream.read(), 5) == b"%d" % i
        if pause:
            await asyncio.sleep(pause)


@pytest.mark.parametrize("pause", [0.003, 0], ids=["apart", "back-to-back"])
async def test_the_ack_waits_for_a_handler_that_answers_later(pause: float) -> None:
    """A handler waiting 5 ms: its answer carries the ACK, one packet per exchange.

    Back to back, the client's ACK of the previous answer arrives while the next ACK is
    held: a packet that needs no ACK itself does not end the hold.
    """
    assert 0.005 < ACK_HOLD <= 0.025  # within the max_ack_delay aioquic announces
    async with TestClient(_waiting_app(0.005)) as client, client.connect("/wait") as session:
        await _settle()
        with _count_sent(client.server) as sent:
            await _exchanges(session, ROUNDS, pause)
        assert sent[0] <= ROUNDS + 1, sent  # not 2 per exchange


async def test_a_handler_slower_than_the_hold_gets_the_ack_first() -> None:
    async with (
        TestClient(_waiting_app(2 * ACK_HOLD)) as client,
        client.connect("/wait") as session,
    ):
        await _settle()
        with _count_sent(client.server) as sent:
            await _exchanges(session, 5, 0.003)
        assert sent[0] >= 10, sent  # the ACK after ACK_HOLD, then the answer


async def test_a_packet_that_needs_no_ack_leaves_the_hold_alone() -> None:
    """The peer's own ACK arrives while ours is held (it acknowledges an earlier answer)."""
    app = _waiting_app(0.01)
    async with TestClient(app) as client, client.connect("/wait") as session:
        await _settle()
        (connection,) = client.server.connections
        peer = session._connection
        with _count_sent(client.server) as sent:
            stream = await session.open_stream()
            await stream.write(b"x")
            await stream.close()
            await asyncio.sleep(0.003)
            assert connection._ack_hold == _HELD
            received = connection._quic._spaces[tls.Epoch.ONE_RTT].largest_received_packet
            # The peer sends a packet with nothing but an ACK frame.
            peer._quic._spaces[tls.Epoch.ONE_RTT].ack_at = 0
            peer.transmit()
            await asyncio.sleep(0.002)
            space = connection._quic._spaces[tls.Epoch.ONE_RTT]
            assert space.largest_received_packet == received + 1  # it arrived
            assert connection._ack_hold == _HELD
            assert await asyncio.wait_for(stream.read(), 5) == b"x"
        assert sent[0] == 1  # the answer, with the ACK


async def test_a_second_packet_ends_the_hold() -> None:
    """A packet that needs an ACK, arriving during a hold, is acknowledged as usual."""
    async with TestClient(_waiting_app(0.2)) as client, client.connect("/wait") as session:
        await _settle()
        (connection,) = client.server.connections
        loop = asyncio.get_running_loop()
        with _count_sent(client.server) as sent:
            stream = await session.open_stream()
            await stream.write(b"slow")
            await stream.close()
            start = loop.time()
            await asyncio.sleep(0.003)
            assert sent[0] == 0
            assert connection._ack_hold == _HELD
            session.send_datagram(b"needs an ACK")
            while not sent[0] and loop.time() < start + 1:
                await asyncio.sleep(0.001)
            # Without the datagram the ACK would have left ACK_HOLD after the request.
            assert sent[0] == 1 and loop.time() < start + ACK_HOLD, loop.time() - start
            assert await asyncio.wait_for(stream.read(), 5) == b"slow"


async def test_what_a_session_sends_on_accept_follows_the_answer() -> None:
    """A datagram sent right after accept() must not overtake the 200 (it would be dropped)."""
    app = App()

    @app.session("/greet")
    class Greeter(Session):
        async def on_connect(self) -> None:
            await self.accept()
            self.send_datagram(b"hello")
            stream = await self.open_uni_stream()
            await stream.write(b"welcome")
            await stream.close()

    async with TestClient(app) as client:
        for _ in range(5):
            async with client.connect("/greet") as session:
                assert await asyncio.wait_for(session.receive_datagram(), 5) == b"hello"
                stream = await asyncio.wait_for(session.accept_stream(), 5)
                assert await asyncio.wait_for(stream.read(), 5) == b"welcome"


def test_an_event_loop_without_a_ready_queue_works_too() -> None:
    """uvloop has no `_ready` queue: hooks start as plain tasks, sending is deferred."""
    uvloop = pytest.importorskip("uvloop")
    seen: list[object] = []

    async def scenario() -> None:
        app = _app()

        @app.session("/greet")
        class Greeter(Session):
            async def on_connect(self) -> None:
                await self.accept()
                self.send_datagram(b"hello")

            async def on_stream(self, stream: ReceiveStream) -> None:
                seen.append(asyncio.current_task())
                assert isinstance(stream, SendStream)
                await stream.write(await stream.read())

        async with TestClient(app) as client:
            async with client.connect("/greet") as session:
                assert await asyncio.wait_for(session.receive_datagram(), 5) == b"hello"
                stream = await session.open_stream()
                await stream.write(b"ping")
                await stream.close()
                assert await asyncio.wait_for(stream.read(), 5) == b"ping"
            async with client.connect("/echo") as session:
                for i in range(3):
                    session.send_datagram(b"%d" % i)
                    assert await asyncio.wait_for(session.receive_datagram(), 5) == b"%d" % i

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
    assert seen and seen[0] is not None

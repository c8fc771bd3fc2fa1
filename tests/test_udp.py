"""The server's UDP transport: batched reads, ordered sends, closing, and the fallback."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from wtframe import _udp
from wtframe._udp import DatagramEndpoint, open_endpoint


class Recorder(asyncio.DatagramProtocol):
    """Records what the transport reports, and which loop callback each datagram came in."""

    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self.datagrams: list[tuple[bytes, int]] = []
        self.errors: list[Exception] = []
        self.lost = asyncio.get_running_loop().create_future()
        self.callback = 0  # bumped by a callback scheduled from each datagram

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams.append((data, self.callback))
        asyncio.get_running_loop().call_soon(self._bump)

    def _bump(self) -> None:
        self.callback += 1

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


def bound() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


async def endpoint(sock: socket.socket, protocol: Recorder) -> DatagramEndpoint:
    transport = await open_endpoint(sock, protocol)
    assert isinstance(transport, DatagramEndpoint)
    return transport


async def received(protocol: Recorder, count: int) -> None:
    for _ in range(200):
        if len(protocol.datagrams) >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{len(protocol.datagrams)} datagrams of {count}")


async def test_datagrams_waiting_are_read_in_batches_of_batch() -> None:
    protocol = Recorder()
    sock = bound()
    transport = await endpoint(sock, protocol)
    sender = bound()
    count = 2 * _udp.BATCH + 1
    try:
        for i in range(count):  # all waiting before the loop polls the socket
            sender.sendto(bytes([i]), sock.getsockname())
        await received(protocol, count)
        assert [data for data, _ in protocol.datagrams] == [bytes([i]) for i in range(count)]
        callbacks = [callback for _, callback in protocol.datagrams]
        # BATCH datagrams per reader callback: the callback scheduled by the first of a
        # batch runs only after the batch.
        assert callbacks.count(callbacks[0]) == _udp.BATCH
        assert len(set(callbacks)) == 3
    finally:
        transport.close()
        sender.close()
    assert await asyncio.wait_for(protocol.lost, 1) is None
    assert sock.fileno() == -1


async def test_a_single_datagram_is_read_at_once() -> None:
    protocol = Recorder()
    sock = bound()
    transport = await open_endpoint(sock, protocol)
    sender = bound()
    try:
        sender.sendto(b"one", sock.getsockname())
        await received(protocol, 1)
        # Replies go to the sender's address.
        transport.sendto(b"back", sender.getsockname())
        sender.settimeout(1)
        assert sender.recvfrom(100) == (b"back", sock.getsockname())
        assert transport.get_extra_info("sockname") == sock.getsockname()
        assert transport.get_extra_info("socket") is sock
    finally:
        transport.close()
        sender.close()


class FullSocket(socket.socket):
    """A real socket whose first `full` sends find the kernel's buffer full."""

    full = 0

    def sendto(self, data: Any, *args: Any) -> int:
        if self.full:
            self.full -= 1
            raise BlockingIOError
        return super().sendto(data, *args)


async def test_a_datagram_the_kernel_cannot_take_waits_in_order() -> None:
    protocol = Recorder()
    sock = FullSocket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    transport = await endpoint(sock, protocol)
    receiver = bound()
    receiver.settimeout(1)
    try:
        sock.full = 2  # the first send, and the first retry when writable
        to = receiver.getsockname()
        transport.sendto(b"first", to)
        transport.sendto(bytearray(b"second"), to)  # queued behind, copied
        assert transport.get_write_buffer_size() == len(b"firstsecond")
        await asyncio.sleep(0.05)
        assert [receiver.recvfrom(100)[0] for _ in range(2)] == [b"first", b"second"]
        assert transport.get_write_buffer_size() == 0
        transport.sendto(b"third", to)  # sent at once again
        assert receiver.recvfrom(100)[0] == b"third"
    finally:
        transport.close()
        receiver.close()


async def test_close_drops_the_backlog_and_stops_reading_and_sending() -> None:
    protocol = Recorder()
    sock = FullSocket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    transport = await endpoint(sock, protocol)
    sock.full = 1
    transport.sendto(b"kept", ("127.0.0.1", 9))
    assert transport.get_write_buffer_size() == 4
    transport.close()
    transport.close()  # a second close does nothing
    assert transport.is_closing()
    assert transport.get_write_buffer_size() == 0
    transport.sendto(b"dropped", ("127.0.0.1", 9))
    assert await asyncio.wait_for(protocol.lost, 1) is None
    assert protocol.datagrams == []


async def test_a_read_error_goes_to_error_received() -> None:
    class Refused(socket.socket):
        def recvfrom_into(self, *args: Any) -> Any:
            raise ConnectionRefusedError

    protocol = Recorder()
    sock = Refused(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    transport = await open_endpoint(sock, protocol)
    sender = bound()
    try:
        sender.sendto(b"x", sock.getsockname())  # makes the socket readable
        for _ in range(100):
            if protocol.errors:
                break
            await asyncio.sleep(0.005)
        assert isinstance(protocol.errors[0], ConnectionRefusedError)
        assert not transport.is_closing()
    finally:
        transport.abort()
        sender.close()


async def test_a_loop_without_add_reader_gets_asyncios_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()

    def unsupported(*args: Any) -> None:
        raise NotImplementedError

    monkeypatch.setattr(loop, "add_reader", unsupported)
    protocol = Recorder()
    sock = bound()
    transport = await open_endpoint(sock, protocol)
    monkeypatch.undo()
    sender = bound()
    try:
        assert not isinstance(transport, DatagramEndpoint)
        assert protocol.transport is transport  # told once, by asyncio's transport
        sender.sendto(b"still served", sock.getsockname())
        await received(protocol, 1)
        assert protocol.datagrams[0][0] == b"still served"
    finally:
        transport.close()
        sender.close()

"""The server's UDP socket as an asyncio datagram transport that reads in batches.

asyncio's own datagram transport reads one datagram per event loop iteration, so each
datagram costs a pass through the loop (a poll of the selector, the ready queue). Under
load several datagrams are waiting by the time the loop polls: this transport reads up
to `BATCH` of them in one callback. A datagram whose effects are all known once it is
processed is answered before the next is read (see
`WebTransportConnection.datagram_received`); one that woke a task is answered after the
batch, when the task has run.

Sending is asyncio's: a datagram goes out at once, and one the kernel cannot take yet is
kept, in order, until the socket is writable.

The transport needs `loop.add_reader()`, which selector event loops and uvloop have and
Windows' proactor loop lacks; `open_endpoint()` falls back to asyncio's transport there.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from typing import Any

__all__ = ["BATCH", "DatagramEndpoint", "open_endpoint"]

BATCH = 4
"""Datagrams read at most per event loop callback.

Replies that wait for woken code (a hook's task) leave after the batch, so a larger
batch delays them: 16 cut pipelined requests by a tenth in the benchmarks, 4 did not.
"""

_MAX_SIZE = 65536  # a UDP payload is never larger


class DatagramEndpoint(asyncio.DatagramTransport):
    """A datagram transport over a bound, non-blocking UDP socket.

    Args:
        loop: The running event loop.
        sock: The bound socket; the transport owns it from now on.
        protocol: Receives `connection_made`, `datagram_received`, `error_received`
            and `connection_lost`, as from asyncio's transport.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: asyncio.DatagramProtocol,
    ) -> None:
        super().__init__(extra={"socket": sock, "sockname": sock.getsockname()})
        sock.setblocking(False)
        self._loop = loop
        self._sock = sock
        self._protocol = protocol
        self._closing = False
        self._fd = sock.fileno()
        # Datagrams are read into one buffer and copied out at their size: reading each
        # into a fresh 64 KiB object and shrinking it scattered the heap (2 KiB more
        # resident memory per idle session in the benchmarks).
        self._view = memoryview(bytearray(_MAX_SIZE))
        self._backlog: collections.deque[tuple[bytes, Any]] = collections.deque()
        loop.add_reader(self._fd, self._read_ready)  # first: it may be unsupported
        protocol.connection_made(self)

    def _read_ready(self) -> None:
        receive = self._sock.recvfrom_into
        view = self._view
        deliver = self._protocol.datagram_received
        for _ in range(BATCH):
            try:
                size, addr = receive(view)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. an ICMP error reported on the socket
                self._protocol.error_received(exc)
                return
            deliver(view[:size].tobytes(), addr)
            if self._closing:
                return

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        """Send one datagram to `addr`, or keep it until the socket is writable."""
        if self._closing:
            return
        if not self._backlog:
            try:
                self._sock.sendto(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self._loop.add_writer(self._fd, self._write_ready)
            except OSError as exc:
                self._protocol.error_received(exc)
                return
        self._backlog.append((bytes(data), addr))

    def _write_ready(self) -> None:
        backlog = self._backlog
        while backlog:
            data, addr = backlog[0]
            try:
                self._sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
            backlog.popleft()
        self._loop.remove_writer(self._fd)

    def get_write_buffer_size(self) -> int:
        """Return the bytes waiting for the socket to become writable."""
        return sum(len(data) for data, _ in self._backlog)

    def is_closing(self) -> bool:
        """Return whether `close()` or `abort()` was called."""
        return self._closing

    def close(self) -> None:
        """Stop reading, drop unsent datagrams and close the socket."""
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if self._backlog:
            self._backlog.clear()
            self._loop.remove_writer(self._fd)
        self._loop.call_soon(self._connection_lost)

    def abort(self) -> None:
        """Close at once; the same as `close()` for datagrams."""
        self.close()

    def _connection_lost(self) -> None:
        try:
            self._protocol.connection_lost(None)
        finally:
            self._sock.close()


async def open_endpoint(
    sock: socket.socket, protocol: asyncio.DatagramProtocol
) -> asyncio.DatagramTransport:
    """Serve `protocol` on `sock`, with the batching transport where the loop allows.

    Args:
        sock: A bound UDP socket.
        protocol: The datagram protocol.

    Returns:
        The transport.
    """
    loop = asyncio.get_running_loop()
    try:
        return DatagramEndpoint(loop, sock, protocol)
    except NotImplementedError:  # no add_reader(): use asyncio's transport
        transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        return transport

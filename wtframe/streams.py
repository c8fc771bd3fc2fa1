"""WebTransport streams: receiving, sending, and both.

A bidirectional stream is a [`Stream`][wtframe.Stream], which is both. A unidirectional
stream the peer opened is a `ReceiveStream`; one we opened is a `SendStream`.

Reading: `read()` returns everything up to the peer's FIN, `read(n)` up to `n` bytes as soon
as some are there, `readexactly(n)` exactly `n` bytes, and `async for chunk in stream`
yields chunks as they arrive. A reset by the peer raises
[`StreamReset`][wtframe.exceptions.StreamReset] carrying the peer's code.

Writing: `write()` queues bytes and returns once the stream's unacknowledged bytes are below
its high-water mark, so a fast writer cannot make the process buffer without bound.
`close()` sends FIN; `reset(code)` abandons the stream; `stop(code)` asks the peer to stop
sending.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from .exceptions import (
    IncompleteReadError,
    StreamClosed,
    StreamReset,
    StreamStopped,
)
from .messages import MessageReader, MessageWriter

if TYPE_CHECKING:
    from typing import Self

__all__ = ["WRITE_HIGH_WATER_DEFAULT", "ReceiveStream", "SendStream", "Stream"]

WRITE_HIGH_WATER_DEFAULT = 256 * 1024
"""Unacknowledged bytes per stream above which `write()` waits."""


class _StreamIO(Protocol):
    """What a stream needs from the connection that carries it."""

    def stream_send(self, stream: SendStream, data: bytes, end_stream: bool) -> None: ...

    def stream_reset(self, stream: SendStream, code: int) -> None: ...

    def stream_stop(self, stream_id: int, code: int) -> None: ...

    def stream_buffered(self, stream_id: int) -> int: ...

    def stream_consumed(self, stream_id: int, size: int) -> None: ...

    def stream_wait_writable(self, stream: SendStream) -> None: ...

    def stream_done(self, stream: _StreamBase) -> None: ...


class _StreamBase:
    """State shared by both directions of a stream."""

    def __init__(self, io: _StreamIO, stream_id: int, session: Any) -> None:
        self._io = io
        self.stream_id = stream_id
        """The QUIC stream id."""
        self.session = session
        """The session the stream belongs to."""

    # Class defaults stand in for state that most streams never change: a stream is
    # created per request, so its constructor sets only what differs.
    _session_id = -1  # the protocol's session id, set by the connection

    @property
    def is_bidirectional(self) -> bool:
        """Whether data flows both ways on this stream."""
        return isinstance(self, ReceiveStream) and isinstance(self, SendStream)

    @property
    def is_unidirectional(self) -> bool:
        """Whether data flows one way only on this stream."""
        return not self.is_bidirectional

    def __repr__(self) -> str:
        kind = "bidirectional" if self.is_bidirectional else "unidirectional"
        return f"<{type(self).__name__} {self.stream_id} {kind}>"

    # A direction the stream does not have counts as finished; ReceiveStream and
    # SendStream set their own to False while it is open.
    _eof = True  # the receiving side ended
    _send_closed = True  # the sending side ended

    def _check_done(self) -> None:
        if self._eof and self._send_closed:
            self._io.stream_done(self)

    def _abort(self, exc: BaseException) -> None:
        """The session ended: fail every waiter with `exc`."""


class ReceiveStream(_StreamBase, MessageReader):
    """The receiving side of a WebTransport stream."""

    _size = 0  # bytes buffered
    _eof = False
    _recv_error: BaseException | None = None
    _read_waiter: asyncio.Future[None] | None = None
    _stopped = False
    _credited = 0  # buffered bytes already reported consumed (flow control)
    _flow_controlled = True  # whether reads must be reported (the connection knows)

    def __init__(self, io: _StreamIO, stream_id: int, session: Any) -> None:
        super().__init__(io, stream_id, session)
        self._chunks: deque[bytes] = deque()

    @property
    def at_eof(self) -> bool:
        """Whether the peer ended the stream and every byte has been read."""
        return self._eof and not self._size

    @property
    def buffered_bytes(self) -> int:
        """Bytes received and not read yet."""
        return self._size

    # -- reading -----------------------------------------------------------------------

    async def read(self, n: int = -1) -> bytes:
        """Read from the stream.

        Args:
            n: With `-1` (the default), read until the peer's FIN and return everything.
                Otherwise return up to `n` bytes as soon as at least one is available.

        Returns:
            The bytes read; `b""` once the stream has ended.

        Raises:
            StreamReset: If the peer reset the stream.
            SessionClosed: If the session ended first.
        """
        if n < 0:
            while not self._eof:
                await self._wait_data()
            if self._recv_error is not None and self._size == 0:
                raise self._recv_error
            return self._take(self._size)
        if n == 0:
            return b""
        while not self._size and not self._eof:
            await self._wait_data()
        if not self._size and self._recv_error is not None:
            raise self._recv_error
        return self._take(min(n, self._size))

    async def readexactly(self, n: int) -> bytes:
        """Read exactly `n` bytes.

        Args:
            n: The number of bytes.

        Returns:
            The bytes.

        Raises:
            IncompleteReadError: If the stream ended first (`partial` holds what arrived).
            StreamReset: If the peer reset the stream.
            SessionClosed: If the session ended first.
        """
        while self._size < n and not self._eof:
            await self._wait_data()
        if self._size < n:
            if self._recv_error is not None:
                raise self._recv_error
            raise IncompleteReadError(self._take(self._size), n)
        return self._take(n)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        """Return the next chunk as it arrives (`async for chunk in stream`).

        Raises:
            StopAsyncIteration: Once the stream has ended.
        """
        chunks = self._chunks
        if chunks and not self._flow_controlled:  # the common case, without the bookkeeping
            chunk = chunks.popleft()
            self._size -= len(chunk)
            return chunk
        chunk = await self.read(1 << 62)
        if not chunk:
            raise StopAsyncIteration
        return chunk

    def stop(self, code: int = 0) -> None:
        """Ask the peer to stop sending (STOP_SENDING) and discard what is buffered.

        Args:
            code: The 32-bit application error code the peer receives.
        """
        if self._eof:
            return
        self._stopped = True
        if self._flow_controlled and self._size > self._credited:
            self._io.stream_consumed(self.stream_id, self._size - self._credited)  # dropped
        self._credited = 0
        self._chunks.clear()
        self._size = 0
        self._io.stream_stop(self.stream_id, code)
        self._finish_receiving(StreamClosed("stream was stopped for reading"))

    # -- called by the connection ----------------------------------------------------------

    def _feed(self, data: bytes, end_stream: bool) -> None:
        if self._eof:
            return
        if data:
            self._chunks.append(data)
            self._size += len(data)
        if end_stream:
            self._eof = True
        waiter = self._read_waiter
        if waiter is not None:
            self._read_waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if end_stream:
            self._check_done()

    def _reset_by_peer(self, code: int, keep_data: bool = False) -> None:
        # After a reliable reset (RESET_STREAM_AT) the bytes received stay readable.
        self._finish_receiving(StreamReset(code), keep_data)

    def _finish_receiving(self, exc: BaseException, keep_data: bool = False) -> None:
        if self._eof:
            return
        if not keep_data:
            if self._flow_controlled and self._size > self._credited:
                self._io.stream_consumed(self.stream_id, self._size - self._credited)  # dropped
            self._credited = 0
            self._chunks.clear()
            self._size = 0
        self._recv_error = exc
        self._feed(b"", True)

    def _abort(self, exc: BaseException) -> None:
        self._finish_receiving(exc)
        super()._abort(exc)

    # -- internals -----------------------------------------------------------------------

    async def _wait_data(self) -> None:
        if self._recv_error is not None:
            raise self._recv_error
        if self._flow_controlled and self._size > self._credited:
            # The reader waits for more than is here: what is here is as good as consumed,
            # or a flow-controlled peer could never send the rest.
            self._io.stream_consumed(self.stream_id, self._size - self._credited)
            self._credited = self._size
        waiter = asyncio.get_running_loop().create_future()
        self._read_waiter = waiter
        try:
            await waiter
        finally:
            if self._read_waiter is waiter:
                self._read_waiter = None
        if self._recv_error is not None and not self._size:
            raise self._recv_error

    def _take(self, n: int) -> bytes:
        if n == 0:
            return b""
        if self._flow_controlled:
            if n > self._credited:
                self._io.stream_consumed(self.stream_id, n - self._credited)
                self._credited = 0
            else:
                self._credited -= n
        chunks = self._chunks
        first = chunks[0]
        if len(first) == n:
            chunks.popleft()
            self._size -= n
            return first
        if len(first) > n:
            chunks[0] = first[n:]
            self._size -= n
            return first[:n]
        parts = []
        remaining = n
        while remaining:
            chunk = chunks.popleft()
            if len(chunk) > remaining:
                chunks.appendleft(chunk[remaining:])
                chunk = chunk[:remaining]
            parts.append(chunk)
            remaining -= len(chunk)
        self._size -= n
        return b"".join(parts)


class SendStream(_StreamBase, MessageWriter):
    """The sending side of a WebTransport stream."""

    high_water = WRITE_HIGH_WATER_DEFAULT
    """Unacknowledged bytes above which `write()` waits for the peer (set it per stream)."""

    _send_closed = False
    _written = 0  # bytes written so far
    _send_error: BaseException | None = None
    _write_waiter: asyncio.Future[None] | None = None
    # Written bytes the connection has not handed to QUIC yet: it does so once per
    # transmission, so that a write and the FIN after it (or many small writes) become one
    # call. Only the connection changes these.
    _outbox: list[bytes] | None = None
    _outbox_size = 0
    _outbox_fin = False

    @property
    def is_closing(self) -> bool:
        """Whether FIN was sent, or the sending side was reset or stopped."""
        return self._send_closed

    async def write(self, data: bytes) -> None:
        """Send bytes, waiting while too many are unacknowledged.

        Args:
            data: The bytes to send.

        Raises:
            StreamClosed: If `close()` or `reset()` was called.
            StreamStopped: If the peer asked us to stop sending.
            SessionClosed: If the session ended.
        """
        self._check_writable()
        if data:
            self._io.stream_send(self, bytes(data), False)
            self._written += len(data)
        if self._written > self.high_water:  # else not even all of it could be unacknowledged
            await self.drain()

    async def drain(self) -> None:
        """Wait until the stream's unacknowledged bytes are below `high_water`.

        Raises:
            StreamStopped: If the peer asked us to stop sending meanwhile.
            SessionClosed: If the session ended meanwhile.
        """
        while self._io.stream_buffered(self.stream_id) + self._outbox_size > self.high_water:
            if self._send_error is not None:
                raise self._send_error
            waiter = asyncio.get_running_loop().create_future()
            self._write_waiter = waiter
            self._io.stream_wait_writable(self)
            try:
                await waiter
            finally:
                if self._write_waiter is waiter:
                    self._write_waiter = None
        if self._send_error is not None:
            raise self._send_error

    async def close(self) -> None:
        """End the stream (FIN) after the bytes already written. Closing twice does nothing."""
        if self._send_closed:
            return
        self._send_closed = True
        self._io.stream_send(self, b"", True)
        self._check_done()

    def reset(self, code: int = 0) -> None:
        """Abandon the stream (RESET_STREAM): unsent data is dropped.

        Args:
            code: The 32-bit application error code the peer receives.
        """
        if self._send_closed:
            return
        self._send_closed = True
        self._io.stream_reset(self, code)
        self._fail_writer(StreamClosed("stream was reset"))
        self._check_done()

    # -- called by the connection ----------------------------------------------------------

    def _wake_writer(self) -> None:
        waiter = self._write_waiter
        if waiter is not None:
            self._write_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _stopped_by_peer(self, code: int) -> None:
        self._send_closed = True
        self._fail_writer(StreamStopped(code))
        self._check_done()

    def _fail_writer(self, exc: BaseException) -> None:
        if self._send_error is None:
            self._send_error = exc
        self._wake_writer()

    def _abort(self, exc: BaseException) -> None:
        self._send_closed = True
        self._fail_writer(exc)
        super()._abort(exc)

    def _check_writable(self) -> None:
        if self._send_error is not None:
            raise self._send_error
        if self._send_closed:
            raise StreamClosed("stream was closed for sending")


class Stream(ReceiveStream, SendStream):
    """A bidirectional WebTransport stream: both a `ReceiveStream` and a `SendStream`."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

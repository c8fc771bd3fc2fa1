"""The Python WebTransport client: `connect()` and `ClientSession`.

```python
async with wtframe.connect("https://localhost:4433/echo", cert_hash=FINGERPRINT) as session:
    session.send_datagram(b"ping")
    print(await session.receive_datagram())
    stream = await session.open_stream()
    await stream.write(b"hello")
    await stream.close()
    print(await stream.read())
```

A client session has the same stream and datagram commands as a server-side
[`Session`][wtframe.Session]; what the server sends is pulled with `receive_datagram()` /
`datagrams()` and `accept_stream()` / `incoming_streams()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections import deque
from collections.abc import AsyncIterator, Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aioquic.asyncio.client import connect as quic_connect
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from cryptography.hazmat.primitives.serialization import Encoding

from . import events
from ._connection import WebTransportConnection
from .codecs import codec_for
from .codes import CloseCode
from .dialects import SETTING_WT_ENABLED, Dialect
from .exceptions import ConfigurationError, HandshakeError, SessionClosed
from .framing import MAX_MESSAGE_SIZE_DEFAULT
from .messages import encode_message, request_on_stream
from .streams import ReceiveStream, SendStream, Stream

if TYPE_CHECKING:
    from typing import Self

__all__ = ["DATAGRAM_QUEUE_DEFAULT", "ClientSession", "connect"]

DATAGRAM_QUEUE_DEFAULT = 1024
"""Datagrams a client session holds before dropping the oldest unread one."""


class _ClientConnection(WebTransportConnection):
    def __init__(self, quic: QuicConnection, **kwargs: Any) -> None:
        super().__init__(quic, **kwargs)
        self.answers: dict[int, tuple[asyncio.Future[ClientSession], ClientSession]] = {}
        self.authority = ""
        self.dialect = Dialect.DRAFT02
        self.settings = asyncio.Event()

    def settings_received(self, event: events.SettingsReceived) -> None:
        self.settings.set()

    def expect_answer(
        self, session_id: int, max_queued_datagrams: int
    ) -> asyncio.Future[ClientSession]:
        """Register a session request just sent; return the future of its answer.

        The session object exists from now on, so that streams and datagrams the server
        sends right after its answer are kept even if they arrive before it (a lost or
        late packet): the session hands them over once it is established.
        """
        waiter: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
        session = ClientSession(self, session_id, [], max_queued_datagrams)
        self.links[session_id] = session
        self.answers[session_id] = (waiter, session)
        return waiter

    def session_answered(self, event: events.SessionEstablished | events.SessionRefused) -> None:
        waiting = self.answers.pop(event.session_id, None)
        if waiting is None:
            return
        waiter, session = waiting
        if isinstance(event, events.SessionRefused):
            self._session_ended(event.session_id, 0, f"refused with {event.status}", True)
            if not waiter.done():
                message = f"server refused the session with status {event.status}"
                waiter.set_exception(HandshakeError(message, event.status, event.headers))
            return
        session.response_headers = event.headers
        if waiter.done():  # nobody waits for it any more (a timeout): end it
            self.close_session(event.session_id, CloseCode.NORMAL, "")
            return
        waiter.set_result(session)

    def transmit(self) -> None:
        """Send what is queued, unless the UDP transport is gone."""
        if self._transport is None or self._transport.is_closing():
            return
        super().transmit()

    def connection_lost(self, exc: Exception | None) -> None:
        """The UDP transport closed: stop the timers and end every session."""
        super().connection_lost(exc)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._closed.set()

    def connection_terminated(self) -> None:
        """Fail the session requests still waiting for an answer."""
        for waiter, _ in self.answers.values():
            if not waiter.done():
                waiter.set_exception(HandshakeError("connection closed during the handshake"))


class ClientSession:
    """A WebTransport session opened by [`connect()`][wtframe.connect].

    Args:
        connection: The QUIC connection carrying the session.
        session_id: The session id.
        headers: The server's response headers.
        max_queued_datagrams: How many unread datagrams to keep (the oldest are dropped).
    """

    def __init__(
        self,
        connection: _ClientConnection,
        session_id: int,
        headers: list[tuple[bytes, bytes]],
        max_queued_datagrams: int = DATAGRAM_QUEUE_DEFAULT,
        max_message_size: int = MAX_MESSAGE_SIZE_DEFAULT,
    ) -> None:
        self._connection = connection
        self.max_message_size = max_message_size
        """The largest message accepted on this session's streams, in bytes."""
        self.session_id = session_id
        """The session id."""
        self.response_headers = headers
        """The headers of the server's answer."""
        self.session = self
        self.close_code: int | None = None
        """The code the session ended with, or `None` while it is open."""
        self.close_reason: str | None = None
        """The reason the session ended with, or `None` while it is open."""
        self.is_draining = False
        """Whether the server asked to wind the session down."""
        self.dropped_datagrams = 0
        """Datagrams dropped because the queue was full."""
        self._datagrams: deque[bytes] = deque(maxlen=max_queued_datagrams)
        self._streams: deque[ReceiveStream] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = asyncio.Event()
        self._exit: contextlib.AsyncExitStack | None = None

    @property
    def is_closed(self) -> bool:
        """Whether the session has ended."""
        return self.close_code is not None

    @property
    def max_datagram_size(self) -> int:
        """The largest datagram payload `send_datagram` can send now, in bytes."""
        return self._connection.wt.max_datagram_size()

    @property
    def dialect(self) -> Dialect:
        """The WebTransport draft this session speaks (a `wtframe.dialects.Dialect`)."""
        return self._connection.wt.dialect(self.session_id) or self._connection.dialect

    # -- sending -----------------------------------------------------------------------

    def send_datagram(self, data: Any) -> None:
        """Send a datagram.

        Args:
            data: The message: bytes as they are, `str` as UTF-8, anything else as JSON.

        Raises:
            DatagramTooLarge: If it does not fit in one QUIC packet.
            SessionClosed: If the session has ended.
        """
        self._check_open()
        self._connection.send_datagram(self.session_id, encode_message(data))

    async def send_request(self, message: Any, response_type: Any = bytes) -> Any:
        """Send one message on a new bidirectional stream and read the server's one answer.

        The server side of this is a `Session.on_request` hook (or any `on_stream` that
        reads the stream to its end and writes one answer).

        Args:
            message: The request message.
            response_type: The answer's type (or a codec).

        Returns:
            The decoded answer.
        """
        return await request_on_stream(self.open_stream, message, response_type)

    async def open_stream(self) -> Stream:
        """Open a bidirectional stream.

        Returns:
            The stream.

        Raises:
            SessionClosed: If the session has ended.
        """
        self._check_open()
        await self._connection.wait_stream_credit(self.session_id, False)
        self._check_open()
        stream = self._connection.open_stream(self.session_id, self, unidirectional=False)
        assert isinstance(stream, Stream)
        return stream

    async def open_uni_stream(self) -> SendStream:
        """Open a unidirectional (send-only) stream.

        Returns:
            The stream.

        Raises:
            SessionClosed: If the session has ended.
        """
        self._check_open()
        await self._connection.wait_stream_credit(self.session_id, True)
        self._check_open()
        return self._connection.open_stream(self.session_id, self, unidirectional=True)

    async def open_session(
        self,
        path: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        timeout: float = 10.0,
    ) -> ClientSession:
        """Open another session to the same server on this session's QUIC connection.

        Browsers pool sessions this way. Closing the new session leaves the connection
        open; closing the session that opened the connection closes it, and every session
        on it ends with `CloseCode.ABNORMAL`.

        Args:
            path: The path, query string allowed.
            headers: Extra request headers.
            timeout: Seconds to wait for the server's answer.

        Returns:
            The new session.

        Raises:
            HandshakeError: If the server refuses (its `status` and `headers` are kept).
        """
        self._check_open()
        connection = self._connection
        authority = connection.authority
        items = headers.items() if isinstance(headers, Mapping) else (headers or [])
        extra = [(k.lower().encode(), v.encode()) for k, v in items]
        session_id = connection.wt.request_session(authority, path, extra, connection.dialect)
        waiter = connection.expect_answer(session_id, self._datagrams.maxlen or 0)
        connection.transmit()
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise HandshakeError(f"no answer for {path} after {timeout} s") from None

    async def drain(self) -> None:
        """Ask the server to wind the session down (DRAIN capsule)."""
        self._check_open()
        self._connection.drain_session(self.session_id)

    async def close(self, code: int = 0, reason: str = "") -> None:
        """Close the session and its QUIC connection.

        Args:
            code: A 32-bit application close code.
            reason: A close reason.
        """
        if not self.is_closed:
            self._connection.close_session(self.session_id, code, reason)
            self._connection.transmit()  # the capsule must leave before CONNECTION_CLOSE
        await self._shutdown()

    # -- receiving ---------------------------------------------------------------------

    async def receive_datagram(self, tp: Any = bytes) -> Any:
        """Wait for the next datagram from the server.

        Args:
            tp: The message type (or a codec); `bytes` gives the raw payload.

        Returns:
            The decoded datagram.

        Raises:
            SessionClosed: If the session ended and no datagram is left.
            DecodeError: If the payload does not decode as `tp` (it is consumed).
        """
        while not self._datagrams:
            await self._wait()
        data = self._datagrams.popleft()
        return data if tp is bytes else codec_for(tp).decode(data)

    async def datagrams(self, tp: Any = bytes) -> AsyncIterator[Any]:
        """Yield datagrams from the server until the session ends.

        Args:
            tp: The message type (or a codec); `bytes` gives raw payloads.

        Yields:
            Each decoded datagram.
        """
        while True:
            try:
                yield await self.receive_datagram(tp)
            except SessionClosed:
                return

    async def accept_stream(self) -> ReceiveStream:
        """Wait for the next stream the server opens.

        Returns:
            A [`Stream`][wtframe.Stream] or a [`ReceiveStream`][wtframe.ReceiveStream].

        Raises:
            SessionClosed: If the session ended and no stream is left.
        """
        while not self._streams:
            await self._wait()
        return self._streams.popleft()

    async def incoming_streams(self) -> AsyncIterator[ReceiveStream]:
        """Yield the streams the server opens until the session ends."""
        while True:
            try:
                yield await self.accept_stream()
            except SessionClosed:
                return

    async def wait_closed(self) -> tuple[int, str]:
        """Wait until the session ends.

        Returns:
            The close code and reason.
        """
        await self._closed.wait()
        return self.close_code or 0, self.close_reason or ""

    # -- SessionLink -------------------------------------------------------------------------

    def datagram_received(self, data: bytes) -> None:
        """Queue a datagram (internal)."""
        if len(self._datagrams) == self._datagrams.maxlen:
            self.dropped_datagrams += 1
        self._datagrams.append(data)
        self._wake()

    def request_received(self, stream_id: int, data: bytes, unidirectional: bool) -> bool:
        """Decline to answer a whole stream at once: it is queued as any other (internal)."""
        return False

    def stream_opened(self, stream: ReceiveStream) -> None:
        """Queue a stream (internal)."""
        self._streams.append(stream)
        self._wake()

    def stream_fed(self, stream: ReceiveStream) -> None:
        """Data arrived on a stream (internal): the client sets no buffer limits."""

    def drain_requested(self) -> None:
        """Note the server's DRAIN (internal)."""
        self.is_draining = True

    def session_ended(self, code: int, reason: str, by_peer: bool) -> None:
        """Record the end of the session (internal)."""
        self.close_code, self.close_reason = code, reason
        self._closed.set()
        self._wake()

    # -- internals -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.is_closed:
            raise SessionClosed(self.close_code or 0, self.close_reason or "")

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._check_open()
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._waiter)

    async def _shutdown(self) -> None:
        exit_stack, self._exit = self._exit, None
        if exit_stack is not None:
            await exit_stack.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else "open"
        return f"<ClientSession {self.session_id} {state}>"


class connect:  # noqa: N801 - used like a function, as websockets.connect is
    """Open a WebTransport session: `session = await connect(url)` or `async with connect(url)`.

    Args:
        url: An `https://host:port/path?query` URL.
        cert_hash: Trust the server's certificate by the SHA-256 of its DER (64 hex digits,
            colons allowed), as browsers' `serverCertificateHashes` does; several may be given
            as a list. TLS chain checks are then skipped.
        cafile: A PEM file of CA certificates to verify the server against.
        verify: `False` skips certificate checks entirely (for tests only).
        headers: Extra request headers, e.g. `{"x-token": "secret"}`.
        origin: An `origin` header, as browsers send.
        timeout: Seconds to wait for the QUIC handshake and the server's answer.
        max_queued_datagrams: Unread datagrams kept before the oldest are dropped.
        dialect: The WebTransport draft to speak. `Dialect.DRAFT02` (the default) is what
            browsers speak; `Dialect.DRAFT15` waits for the server's SETTINGS, requires
            `SETTINGS_WT_ENABLED` there, and runs WebTransport flow control.

    Raises:
        HandshakeError: If the connection or the session cannot be established.
    """

    def __init__(
        self,
        url: str,
        *,
        cert_hash: str | Iterable[str] | None = None,
        cafile: str | None = None,
        verify: bool = True,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        origin: str | None = None,
        timeout: float = 10.0,
        max_queued_datagrams: int = DATAGRAM_QUEUE_DEFAULT,
        dialect: Dialect = Dialect.DRAFT02,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ConfigurationError(f"WebTransport URLs look like https://host:port/path: {url}")
        self.host = parts.hostname
        self.port = parts.port or 443
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc_host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = f"{netloc_host}:{self.port}"
        hashes = [cert_hash] if isinstance(cert_hash, str) else list(cert_hash or [])
        self.cert_hashes = {h.replace(":", "").lower() for h in hashes}
        self.cafile = cafile
        self.verify = verify
        items = headers.items() if isinstance(headers, Mapping) else (headers or [])
        self.headers = [(k.lower().encode(), v.encode()) for k, v in items]
        if origin is not None:
            self.headers.append((b"origin", origin.encode()))
        self.timeout = timeout
        self.max_queued_datagrams = max_queued_datagrams
        self.dialect = dialect
        self._session: ClientSession | None = None

    def _configuration(self) -> QuicConfiguration:
        configuration = QuicConfiguration(
            is_client=True,
            alpn_protocols=H3_ALPN,
            max_datagram_frame_size=65536,
            server_name=self.host,
        )
        if self.cert_hashes or not self.verify:
            configuration.verify_mode = ssl.CERT_NONE
        elif self.cafile is not None:
            configuration.load_verify_locations(self.cafile)
        return configuration

    async def _open(self) -> ClientSession:
        stack = contextlib.AsyncExitStack()
        try:
            session = await asyncio.wait_for(self._establish(stack), self.timeout)
        except TimeoutError:
            await stack.aclose()
            raise HandshakeError(
                f"no session with {self.authority} after {self.timeout} s"
            ) from None
        except BaseException:
            await stack.aclose()
            raise
        session._exit = stack
        return session

    async def _establish(self, stack: contextlib.AsyncExitStack) -> ClientSession:
        return await self._request(await self._handshake(stack))

    async def _handshake(self, stack: contextlib.AsyncExitStack) -> _ClientConnection:
        try:
            connection = await stack.enter_async_context(
                quic_connect(
                    self.host,
                    self.port,
                    configuration=self._configuration(),
                    create_protocol=_ClientConnection,
                )
            )
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            raise HandshakeError(f"QUIC handshake with {self.authority} failed: {exc}") from exc
        assert isinstance(connection, _ClientConnection)
        if self.cert_hashes:
            peer = connection._quic.tls._peer_certificate
            digest = hashlib.sha256(peer.public_bytes(Encoding.DER)).hexdigest() if peer else ""
            if digest not in self.cert_hashes:
                raise HandshakeError(f"server certificate sha-256 {digest} is not trusted")
        return connection

    async def _request(self, connection: _ClientConnection) -> ClientSession:
        connection.authority = self.authority
        connection.dialect = self.dialect
        if self.dialect is not Dialect.DRAFT02:
            await connection.settings.wait()  # the server's limits come with them
            settings = connection.wt.h3.received_settings or {}
            if self.dialect is Dialect.DRAFT15 and not settings.get(SETTING_WT_ENABLED):
                raise HandshakeError(f"{self.authority} does not offer draft-15 WebTransport")
        session_id = connection.wt.request_session(
            self.authority, self.path, self.headers, self.dialect
        )
        waiter = connection.expect_answer(session_id, self.max_queued_datagrams)
        connection.transmit()
        return await waiter

    def __await__(self) -> Generator[Any, None, ClientSession]:
        return self._open().__await__()

    async def __aenter__(self) -> ClientSession:
        self._session = await self._open()
        return self._session

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close(CloseCode.NORMAL)

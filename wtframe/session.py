"""[`Session`][wtframe.Session]: subclass it to handle the WebTransport sessions of a route.

One `Session` object exists per WebTransport session. Override the hooks you need:

| hook | called |
|---|---|
| `on_connect()` | before the session is accepted; raise [`Reject`][wtframe.Reject] to refuse it |
| `on_datagram(msg)` | for every datagram the peer sends, decoded by the annotation of `msg` |
| `on_stream(stream)` | for every stream the peer opens, bidirectional or unidirectional |
| `on_request(msg)` | if defined: for every stream the default `on_stream` reads as one message |
| `on_drain()` | when the peer asks to wind the session down (DRAIN capsule) |
| `on_close(code, reason)` | exactly once when an accepted session ends, whatever ended it |

Hooks run as asyncio tasks, so one slow handler never holds up another. An
`on_datagram` whose body never awaits cannot hold anything up, so it runs at once,
without a task (in a context of its own); so does such an `on_request` for a request
that arrived whole. When an
`on_stream` handler returns, its stream is finished for it: FIN is sent if the handler
did not close the sending side, and unread input is refused with STOP_SENDING.

An exception escaping a hook is logged with its traceback (logger `wtframe`) and closes the
session with [`CloseCode.INTERNAL_ERROR`][wtframe.CloseCode] (1011); other sessions carry
on. Exceptions that only concern one stream end just that stream:
[`MessageError`][wtframe.exceptions.MessageError] resets it with
[`StreamErrorCode.INVALID_MESSAGE`][wtframe.StreamErrorCode] (or `MESSAGE_TOO_BIG`), and a
peer's reset or stop is the peer's business and ends the stream quietly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, ClassVar

from .codecs import Codec
from .dialects import Dialect
from .exceptions import DecodeError
from .framing import MAX_MESSAGE_SIZE_DEFAULT
from .messages import encode_message, request_on_stream
from .streams import SendStream, Stream

logger = logging.getLogger("wtframe")

if TYPE_CHECKING:
    from ._runner import SessionRunner
    from .app import App
    from .requests import Request
    from .streams import ReceiveStream

__all__ = ["Session"]


class Session:
    """Base class of WebTransport session handlers.

    wtframe creates the object when a client asks for the session; do not create it
    yourself. If you override `__init__`, accept and pass on its arguments.

    Args:
        request: The CONNECT request.
        runner: wtframe's link to the connection that carries the session.
    """

    codec: ClassVar[Codec[Any] | None] = None
    """The codec for messages that are neither bytes nor text; `None` means the app's (JSON)."""

    max_message_size: ClassVar[int] = MAX_MESSAGE_SIZE_DEFAULT
    """The largest message accepted on this session's streams, in bytes."""

    def __init__(self, request: Request, runner: SessionRunner) -> None:
        self.request = request
        """The CONNECT request that opened the session."""
        self.invalid_datagrams = 0
        """Datagrams dropped because they did not decode as `on_datagram` expects."""
        self._runner = runner

    # -- hooks -----------------------------------------------------------------------------

    async def on_connect(self) -> None:
        """Decide whether to accept the session; returning accepts it.

        To start talking before `on_connect` returns (open a stream, send a datagram),
        call `await self.accept()` first.

        Raises:
            Reject: To refuse the session with an HTTP status (the page's `ready` fails).
        """

    async def on_datagram(self, data: Any) -> None:
        """Handle a datagram from the peer. The default drops it.

        The annotation of the parameter decides how the payload is decoded: `bytes` (or
        none) gives the raw payload, `str` UTF-8 text, a pydantic model (or any type a
        `TypeAdapter` accepts) is parsed from JSON and validated. A payload that fails goes
        to `on_invalid_datagram` instead.

        A hook whose body has no `await` (nor `async for`, `async with`) cannot wait: it
        runs at once, like a plain `def on_datagram`, and costs no task. One that awaits
        runs as a task of the session; while `Limits.max_datagram_tasks` of them wait,
        further datagrams are dropped (and counted in `dropped_datagrams`).

        Args:
            data: The datagram payload, decoded.
        """

    def on_invalid_datagram(self, data: bytes, error: DecodeError) -> None:
        """Handle a datagram that did not decode. The default counts and logs it.

        Args:
            data: The raw payload.
            error: Why it did not decode.
        """
        self.invalid_datagrams += 1
        logger.warning("%r dropped an invalid datagram: %s", self, error)

    async def on_stream(self, stream: ReceiveStream) -> None:
        """Handle a stream the peer opened.

        It is called as soon as the stream's header arrives, with whatever data came with
        it, so a peer may open a stream and wait for the server to write first.

        The default serves `on_request` if the class defines it, and refuses the stream
        (STOP_SENDING and RESET_STREAM with code 0) otherwise.

        Args:
            stream: A [`Stream`][wtframe.Stream] if bidirectional, otherwise a
                [`ReceiveStream`][wtframe.ReceiveStream].
        """
        request_type = self._runner.request_type
        if request_type is None:
            stream.stop()
            if isinstance(stream, SendStream):
                stream.reset()
            return
        try:
            message = await stream.read_message(request_type)
        except DecodeError as exc:
            await self.on_invalid_request(stream, exc)
            return
        answer = await self.on_request(message)  # type: ignore[attr-defined]
        if isinstance(stream, SendStream):
            if answer is None:
                await stream.close()
            else:
                await stream.write_message(answer, default=self._runner.codec)

    async def on_invalid_request(self, stream: ReceiveStream, error: DecodeError) -> None:
        """Handle a request stream whose message did not decode as `on_request` expects.

        The default re-raises `error`, so the stream is reset with
        [`StreamErrorCode.INVALID_MESSAGE`][wtframe.StreamErrorCode] (1007) and the session
        carries on. Override it to answer with an error message instead, e.g.
        `await stream.write_message({"error": str(error)})`.

        Args:
            stream: The request's stream (a [`Stream`][wtframe.Stream] for requests).
            error: Why the message did not decode.

        Raises:
            DecodeError: `error`, by default.
        """
        raise error

    async def on_drain(self) -> None:
        """Handle the peer's request to wind the session down. The default does nothing."""

    async def on_close(self, code: int, reason: str) -> None:
        """Clean up after the session ended. Called exactly once per accepted session.

        Args:
            code: The close code: the peer's, yours, or a [`CloseCode`][wtframe.CloseCode].
            reason: The close reason.
        """

    # -- commands ----------------------------------------------------------------------

    @property
    def app(self) -> App:
        """The [`App`][wtframe.App] serving this session: shared state is `self.app.state`."""
        app = self.request.app
        if app is None:  # pragma: no cover - only for a Request built by hand
            raise RuntimeError("this session's request was built without an app")
        return app

    @property
    def session_id(self) -> int:
        """The session id (the stream id of the CONNECT request)."""
        return self._runner.session_id

    @property
    def is_closed(self) -> bool:
        """Whether the session has ended."""
        return self._runner.closed

    @property
    def close_code(self) -> int | None:
        """The code the session ended with, or `None` while it is open."""
        return self._runner.close_code

    @property
    def close_reason(self) -> str | None:
        """The reason the session ended with, or `None` while it is open."""
        return self._runner.close_reason

    @property
    def is_draining(self) -> bool:
        """Whether the peer asked to wind the session down."""
        return self._runner.draining

    @property
    def server_draining(self) -> bool:
        """Whether the server is shutting down: finish what is in flight, start nothing long.

        It turns true when `Server.shutdown()` starts (on SIGTERM under `App.run`), as the
        peer is sent DRAIN; the session is closed with `CloseCode.GOING_AWAY` once the
        grace period is over.
        """
        return self._runner.server_draining

    @property
    def dropped_datagrams(self) -> int:
        """Datagrams dropped because `Limits.max_datagram_tasks` handlers were waiting."""
        return self._runner.dropped_datagrams

    @property
    def dialect(self) -> Dialect:
        """The WebTransport draft the peer speaks (a `wtframe.dialects.Dialect`)."""
        return self._runner.connection.wt.dialect(self.session_id) or Dialect.DRAFT02

    @property
    def max_datagram_size(self) -> int:
        """The largest datagram payload `send_datagram` can send now, in bytes."""
        return self._runner.connection.wt.max_datagram_size()

    def send_datagram(self, data: Any) -> None:
        """Send a datagram (unreliable, unordered).

        Args:
            data: The message: bytes as they are, `str` as UTF-8, anything else as JSON
                (pydantic models included). At most `max_datagram_size` bytes encoded.

        Raises:
            DatagramTooLarge: If the payload does not fit in one QUIC packet.
            SessionClosed: If the session has ended.
        """
        self._runner.send_datagram(encode_message(data, default=self._runner.codec))

    async def send_request(self, message: Any, response_type: Any = bytes) -> Any:
        """Send one message on a new bidirectional stream and read the peer's one answer.

        Args:
            message: The request message.
            response_type: The answer's type (or a codec).

        Returns:
            The decoded answer.
        """
        return await request_on_stream(self.open_stream, message, response_type)

    async def accept(self) -> None:
        """Accept the session now, from inside `on_connect`.

        Returning from `on_connect` accepts the session anyway; call this when
        `on_connect` has more to do once the session is open. Accepting twice does nothing.
        """
        self._runner.accept()

    def create_task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a coroutine alongside the session's hooks, for as long as the session lives.

        The task is cancelled when the session ends, and an exception escaping it closes
        the session like one escaping a hook. Use it instead of `asyncio.create_task`, so
        no task outlives its session.

        Args:
            coro: The coroutine.

        Returns:
            The task.

        Raises:
            SessionClosed: If the session has ended (the coroutine is closed unstarted).
        """
        return self._runner.create_task(coro)

    async def open_stream(self) -> Stream:
        """Open a bidirectional stream to the peer.

        With a draft-15 peer, waits while the peer's stream limit allows no more.

        Returns:
            The new stream.

        Raises:
            SessionClosed: If the session has ended.
        """
        await self._runner.connection.wait_stream_credit(self.session_id, False)
        stream = self._runner.open_stream(unidirectional=False)
        assert isinstance(stream, Stream)
        return stream

    async def open_uni_stream(self) -> SendStream:
        """Open a unidirectional (send-only) stream to the peer.

        With a draft-15 peer, waits while the peer's stream limit allows no more.

        Returns:
            The new stream.

        Raises:
            SessionClosed: If the session has ended.
        """
        await self._runner.connection.wait_stream_credit(self.session_id, True)
        return self._runner.open_stream(unidirectional=True)

    async def drain(self) -> None:
        """Ask the peer to wind the session down (DRAIN capsule).

        Raises:
            SessionClosed: If the session has ended.
        """
        self._runner.drain()

    async def close(self, code: int = 0, reason: str = "") -> None:
        """Close the session: the peer's `closed` promise resolves with `code` and `reason`.

        Open streams are reset, `on_close(code, reason)` runs, and closing twice does
        nothing.

        Args:
            code: A 32-bit application close code.
            reason: A reason; at most 1024 UTF-8 bytes are sent.
        """
        self._runner.close(code, reason)

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else "open"
        return f"<{type(self).__name__} {self.session_id} {self.request.path!r} {state}>"

"""Runs one server-side session: its hooks, their tasks, and the rules for their failures."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from . import _eager
from .codecs import JSON, Codec
from .codes import CloseCode, StreamErrorCode
from .exceptions import (
    DecodeError,
    MessageError,
    MessageTooLarge,
    Reject,
    SessionClosed,
    StreamError,
)
from .hooks import hook_types
from .streams import ReceiveStream, SendStream

if TYPE_CHECKING:
    from ._connection import WebTransportConnection
    from .requests import Request
    from .session import Session

__all__ = ["MAX_PENDING_STREAMS", "SessionRunner", "logger"]

logger = logging.getLogger("wtframe")

MAX_PENDING_STREAMS = 16
"""Streams a peer may open before its session is accepted; later ones are refused."""

_CONNECTING, _OPEN, _CLOSED = "connecting", "open", "closed"


class SessionRunner:
    """Links one `Session` object to the connection that carries it.

    Args:
        connection: The connection.
        session_id: The session id.
        session_cls: The route's `Session` subclass.
        request: The CONNECT request.
    """

    def __init__(
        self,
        connection: WebTransportConnection,
        session_id: int,
        session_cls: type[Session],
        request: Request,
        codec: Codec[Any] | None = None,
    ) -> None:
        self.connection = connection
        self.session_id = session_id
        self.state = _CONNECTING
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.draining = False
        self.tasks: set[asyncio.Task[None]] = set()
        self._pending: list[ReceiveStream] = []
        self.codec: Codec[Any] | None = session_cls.codec or codec
        """The codec for messages that are neither bytes nor text (`None`: JSON)."""
        hooks = hook_types(session_cls)
        self.request_type = hooks.request
        self._datagram_codec = hooks.datagram
        if self._datagram_codec is JSON and self.codec is not None:
            self._datagram_codec = self.codec
        self.session: Session = session_cls(request, self)
        self._datagram_hook: Callable[[Any], Any] = self.session.on_datagram
        self._datagram_is_async = inspect.iscoroutinefunction(self._datagram_hook)
        self.closed_event = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    @property
    def closed(self) -> bool:
        """Whether the session has ended."""
        return self.state == _CLOSED

    def start(self) -> None:
        """Run `on_connect`, then accept or reject the session."""
        self.spawn(self._connect(), track=True)

    # -- events from the connection ----------------------------------------------------------

    def datagram_received(self, data: bytes) -> None:
        """Hand a datagram to `on_datagram` (dropped until the session is accepted)."""
        if self.state != _OPEN:
            return
        message: Any = data
        if self._datagram_codec is not None:
            try:
                message = self._datagram_codec.decode(data)
            except DecodeError as exc:
                try:
                    self.session.on_invalid_datagram(data, exc)
                except Exception:
                    self._hook_failed("on_invalid_datagram")
                return
        if self._datagram_is_async:
            self.spawn(self._guard(self._datagram_hook(message)))
        else:
            try:
                self._datagram_hook(message)
            except Exception:
                self._hook_failed("on_datagram")

    def stream_opened(self, stream: ReceiveStream) -> None:
        """Hand a new stream to `on_stream` (held back until the session is accepted)."""
        if self.state == _OPEN:
            self.spawn(self._run_stream(stream))
        elif len(self._pending) < MAX_PENDING_STREAMS:
            self._pending.append(stream)
        else:
            _refuse(stream)

    def drain_requested(self) -> None:
        """The peer sent DRAIN."""
        self.draining = True
        if self.state == _OPEN:
            self.spawn(self._guard(self.session.on_drain()))

    def session_ended(self, code: int, reason: str, by_peer: bool) -> None:
        """The session ended: cancel its tasks and run `on_close` once if it was accepted."""
        if self.state == _CLOSED:
            return
        was_open = self.state == _OPEN
        self.state = _CLOSED
        self.close_code, self.close_reason = code, reason
        current = asyncio.current_task()
        for task in list(self.tasks):
            if task is not current:
                task.cancel()
        self._pending.clear()
        if was_open:
            self.spawn(self._close_hook(code, reason), track=False)
        else:
            self.closed_event.set()

    # -- commands from the session ----------------------------------------------------------

    def send_datagram(self, data: bytes) -> None:
        """Send a datagram."""
        self._check_open()
        self.connection.send_datagram(self.session_id, data)

    def open_stream(self, unidirectional: bool) -> SendStream:
        """Open a stream."""
        self._check_open()
        return self.connection.open_stream(self.session_id, self, unidirectional)

    def drain(self) -> None:
        """Send DRAIN."""
        self._check_open()
        self.connection.drain_session(self.session_id)

    def close(self, code: int, reason: str) -> None:
        """Close the session from our side."""
        if self.state == _CLOSED:
            return
        if self.state == _CONNECTING:
            raise SessionClosed(code, "close() before the session was accepted: raise Reject")
        self.connection.close_session(self.session_id, code, reason)

    def _check_open(self) -> None:
        if self.state == _CLOSED:
            raise SessionClosed(self.close_code or 0, self.close_reason or "")
        if self.state == _CONNECTING:
            raise SessionClosed(0, "the session is not accepted yet")

    # -- tasks -------------------------------------------------------------------------------

    def create_task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coro` as a task of the session: cancelled when it ends, failures close it."""
        if self.state == _CLOSED:
            coro.close()
            raise SessionClosed(self.close_code or 0, self.close_reason or "")
        task = self._loop.create_task(self._guard(coro))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def spawn(self, coro: Coroutine[Any, Any, None], *, track: bool = True) -> None:
        """Run `coro` now, as a task if it suspends; tracked tasks end with the session."""
        task = _eager.start(self._loop, coro)
        if task is not None:
            tasks = self.tasks if track else self.connection.background_tasks
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _guard(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except (SessionClosed, asyncio.CancelledError):
            pass
        except Exception:
            self._hook_failed(getattr(coro, "__qualname__", "hook"))

    def _hook_failed(self, hook: str) -> None:
        logger.exception("%s of %r raised; closing the session", hook, self.session)
        self._close_failed()

    def _close_failed(self) -> None:
        if self.state == _OPEN:
            self.connection.close_session(
                self.session_id, CloseCode.INTERNAL_ERROR, "internal server error"
            )

    async def _connect(self) -> None:
        try:
            await self.session.on_connect()
        except asyncio.CancelledError:
            return
        except Reject as exc:
            if self.state == _CONNECTING:
                logger.info("session %r rejected: %s", self.session.request, exc)
                self._reject(exc.status, [(k.encode(), v.encode()) for k, v in exc.headers])
            else:
                logger.error("%r raised Reject after accept(); closing it", self.session)
                self._close_failed()
            return
        except Exception:
            if self.state == _CONNECTING:
                logger.exception("on_connect of %r raised; answering 500", self.session)
                self._reject(500, [])
            else:
                self._hook_failed("on_connect")
            return
        self.accept()

    def accept(self) -> None:
        """Accept the session now (once), and hand it the streams that were waiting."""
        if self.state != _CONNECTING:
            return
        self.connection.accept_session(self.session_id)
        self.state = _OPEN
        pending, self._pending = self._pending, []
        for stream in pending:
            self.spawn(self._run_stream(stream))
        if self.draining:
            self.spawn(self._guard(self.session.on_drain()))

    def _reject(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self.state == _CONNECTING:
            self.connection.reject_session(self.session_id, status, headers)

    async def _run_stream(self, stream: ReceiveStream) -> None:
        try:
            await self.session.on_stream(stream)
        except asyncio.CancelledError:
            raise
        except MessageError as exc:
            code = (
                StreamErrorCode.MESSAGE_TOO_BIG
                if isinstance(exc, MessageTooLarge)
                else StreamErrorCode.INVALID_MESSAGE
            )
            logger.info("stream %d of %r: %s", stream.stream_id, self.session, exc)
            _refuse(stream, code)
            return
        except (StreamError, SessionClosed):
            pass
        except Exception:
            _refuse(stream, StreamErrorCode.INTERNAL_ERROR)
            self._hook_failed("on_stream")
            return
        if self.state != _OPEN:
            return
        if isinstance(stream, SendStream) and not stream.is_closing:
            await stream.close()
        if not stream.at_eof:
            stream.stop(StreamErrorCode.NO_ERROR)

    async def _close_hook(self, code: int, reason: str) -> None:
        try:
            await self.session.on_close(code, reason)
        except Exception:
            logger.exception("on_close of %r raised", self.session)
        finally:
            self.closed_event.set()


def _refuse(stream: ReceiveStream, code: int = StreamErrorCode.NO_ERROR) -> None:
    stream.stop(code)
    if isinstance(stream, SendStream):
        stream.reset(code)

"""Runs one server-side session: its hooks, their tasks, and the rules for their failures."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

from . import _eager
from .codecs import JSON, Codec, codec_for
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
from .limits import HANDSHAKE_TIMEOUT_STATUS, Limits
from .messages import encode_message
from .streams import ReceiveStream, SendStream

if TYPE_CHECKING:
    from ._connection import WebTransportConnection
    from .requests import Request
    from .session import Session

__all__ = ["SessionRunner", "logger"]

logger = logging.getLogger("wtframe")

_DEFAULT_LIMITS = Limits()

_CONNECTING, _OPEN, _CLOSED = "connecting", "open", "closed"


class SessionRunner:
    """Links one `Session` object to the connection that carries it.

    Args:
        connection: The connection.
        session_id: The session id.
        session_cls: The route's `Session` subclass.
        request: The CONNECT request.
        codec: The app's codec for sessions that set none.
        limits: The limits the session is held to.
    """

    # One runner per session: slots keep its memory small (there is no instance dict).
    __slots__ = (
        "_accounted",
        "_activity",
        "_buffered",
        "_datagram_codec",
        "_datagram_hook",
        "_datagram_mode",
        "_datagram_tasks",
        "_idle_mark",
        "_idle_periods",
        "_loop",
        "_peer_streams",
        "_peer_uni_streams",
        "_pending",
        "_recount_at",
        "_request_codec",
        "_request_hook",
        "_timer",
        "close_code",
        "close_reason",
        "codec",
        "connection",
        "draining",
        "dropped_datagrams",
        "limits",
        "request_type",
        "server_draining",
        "session",
        "session_id",
        "state",
        "tasks",
    )

    def __init__(
        self,
        connection: WebTransportConnection,
        session_id: int,
        session_cls: type[Session],
        request: Request,
        codec: Codec[Any] | None = None,
        limits: Limits = _DEFAULT_LIMITS,
    ) -> None:
        self.connection = connection
        self.session_id = session_id
        self.limits = limits
        self.state = _CONNECTING
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.draining = False
        self.server_draining = False
        """Whether the server started shutting down while the session was held."""
        self.dropped_datagrams = 0
        """Datagrams dropped because `max_datagram_tasks` handlers were waiting."""
        self.tasks: set[asyncio.Task[None]] = set()
        self._pending: list[ReceiveStream] = []
        # The peer's streams (created on the first: an empty set is 216 B per session).
        self._peer_streams: set[ReceiveStream] | None = None
        # The peer's unidirectional streams, where WebTransport flow control counts them
        # apart (created on the first one).
        self._peer_uni_streams: set[ReceiveStream] | None = None
        self._datagram_tasks = 0
        self._activity = 0
        self._idle_mark: tuple[int, int] | None = None
        self._idle_periods = 0
        self._timer: asyncio.TimerHandle | None = None
        self._buffered = 0
        self._accounted: dict[int, int] = {}
        self._recount_at = _RECOUNT_MIN
        self.codec: Codec[Any] | None = session_cls.codec or codec
        """The codec for messages that are neither bytes nor text (`None`: JSON)."""
        hooks = hook_types(session_cls)
        self.request_type = hooks.request
        self._request_codec = codec_for(hooks.request) if hooks.request_now else None
        self._datagram_codec = hooks.datagram
        if self._datagram_codec is JSON and self.codec is not None:
            self._datagram_codec = self.codec
        self.session: Session = session_cls(request, self)
        if not _sets_max_message_size(session_cls):
            self.session.max_message_size = limits.max_message_size  # type: ignore[misc]
        self._request_hook: Callable[[Any], Any] | None = (
            self.session.on_request  # type: ignore[attr-defined]
            if hooks.request_now
            else None
        )
        self._datagram_hook: Callable[[Any], Any] = self.session.on_datagram
        hook = self._datagram_hook
        self._datagram_mode = (
            _RUN_NOW
            if _eager.never_suspends(hook)
            else _TASK
            if inspect.iscoroutinefunction(hook)
            else _CALL
        )
        self._loop = asyncio.get_running_loop()

    @property
    def closed(self) -> bool:
        """Whether the session has ended."""
        return self.state == _CLOSED

    def start(self) -> None:
        """Run `on_connect`, then accept or reject the session."""
        timeout = self.limits.handshake_timeout
        if timeout is not None:
            self._timer = self._loop.call_later(timeout, self._handshake_expired)
        self.spawn(self._connect(), track=True)

    # -- events from the connection ----------------------------------------------------------

    def datagram_received(self, data: bytes) -> None:
        """Hand a datagram to `on_datagram` (dropped until the session is accepted)."""
        if self.state != _OPEN:
            return
        self._activity += 1
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
        mode = self._datagram_mode
        if mode is _TASK:
            if self._datagram_tasks >= self.limits.max_datagram_tasks:
                self.dropped_datagrams += 1
                return
            task = _eager.start(self._loop, self._guard(self._datagram_hook(message)))
            if task is not None:
                self.connection.handler_waits()
                self._datagram_tasks += 1
                self.tasks.add(task)
                task.add_done_callback(self._datagram_done)
            return
        try:
            result = self._datagram_hook(message)
            if mode is _RUN_NOW:
                _eager.run_now(result)
        except Exception as exc:
            self._hook_raised("on_datagram", exc)

    def _datagram_done(self, task: asyncio.Task[None]) -> None:
        self._datagram_tasks -= 1
        self.tasks.discard(task)

    def stream_opened(self, stream: ReceiveStream) -> None:
        """Hand a new stream to `on_stream` (held back until the session is accepted)."""
        if self.state == _OPEN:
            if not self._admit(stream):
                return
            self._activity += 1
            self._start_stream(stream)
        elif self.state == _CLOSED:
            _refuse(stream)
        elif len(self._pending) < self.limits.max_pending_streams:
            self._pending.append(stream)
        else:
            logger.info("%r: stream %d refused, too many pending", self.session, stream.stream_id)
            self._forget(stream)
            _refuse(stream, StreamErrorCode.TOO_MANY_STREAMS)

    def request_received(self, stream_id: int, data: bytes, unidirectional: bool) -> bool:
        """Answer at once a request that came whole, FIN included, with its stream's opening.

        For a session class whose `on_request` never waits, this is what the default
        `on_stream` would do, without its task and without a `Stream` object: decode the
        request, run `on_request`, send the answer and FIN. Anything else (another class,
        a session not accepted yet, a request too large or that does not decode) is left
        to `on_stream` as usual.

        Returns:
            Whether the request was handled; if not, the stream is opened as usual.
        """
        hook = self._request_hook
        if hook is None or self.state != _OPEN or len(data) > self.session.max_message_size:
            return False
        assert self._request_codec is not None
        try:
            message = self._request_codec.decode(data)
        except DecodeError:
            return False  # on_stream reads it again, and on_invalid_request is called
        self._activity += 1
        connection = self.connection
        if data and connection.wt.flow_controlled(self.session_id):
            connection.stream_consumed(stream_id, len(data))  # read, as far as credit goes
        try:
            answer = _eager.run_now(hook(message))
            if not unidirectional:
                payload = b"" if answer is None else encode_message(answer, default=self.codec)
                connection.answer_stream(stream_id, payload)
        except Exception as exc:
            refuse = _ignore if unidirectional else partial(connection.refuse_stream, stream_id)
            self._stream_raised(stream_id, exc, refuse)
        return True

    def _admit(self, stream: ReceiveStream) -> bool:
        """Count a peer stream of the open session, or refuse it over `max_streams`.

        With WebTransport flow control the peer was given `max_streams` of each kind, so
        each kind is counted apart: a peer that keeps to its limits is never refused.
        """
        if stream._flow_controlled and not isinstance(stream, SendStream):
            peers = self._peer_uni_streams
            if peers is None:
                peers = self._peer_uni_streams = set()
        else:
            peers = self._peer_streams
            if peers is None:
                peers = self._peer_streams = set()
        limit = self.limits.max_streams
        if len(peers) >= limit:
            live = self.connection._streams
            for done in [s for s in peers if live.get(s.stream_id) is not s]:
                peers.discard(done)
            if len(peers) >= limit:
                logger.info(
                    "%r: stream %d refused, %d open", self.session, stream.stream_id, limit
                )
                self._forget(stream)
                _refuse(stream, StreamErrorCode.TOO_MANY_STREAMS)
                return False
        peers.add(stream)
        return True

    def stream_fed(self, stream: ReceiveStream) -> None:
        """Data arrived on one of the session's streams: enforce the receive buffer limits."""
        self._activity += 1
        size = stream._size
        limits = self.limits
        if size > limits.max_stream_buffer:
            self._buffer_full(stream, f"{size} bytes unread on the stream")
            return
        accounted = self._accounted
        stream_id = stream.stream_id
        self._buffered += size - accounted.get(stream_id, 0)
        if size:
            accounted[stream_id] = size
        else:
            accounted.pop(stream_id, None)
        if self._buffered > limits.max_session_buffer or len(accounted) > self._recount_at:
            # The running total is stale for streams read since they were last fed: recount.
            self._recount()
            if self._buffered > limits.max_session_buffer:
                self._buffer_full(stream, f"{self._buffered} bytes unread in the session")

    def _recount(self) -> None:
        live = self.connection._streams
        accounted = self._accounted
        for stream_id in list(accounted):
            stream = live.get(stream_id)
            size = stream.buffered_bytes if isinstance(stream, ReceiveStream) else 0
            if size:
                accounted[stream_id] = size
            else:
                del accounted[stream_id]
        self._buffered = sum(accounted.values())
        self._recount_at = 2 * len(accounted) + _RECOUNT_MIN

    def _buffer_full(self, stream: ReceiveStream, what: str) -> None:
        logger.warning("%r: stream %d stopped, %s", self.session, stream.stream_id, what)
        self._forget(stream)
        stream.stop(StreamErrorCode.BUFFER_FULL)

    def _forget(self, stream: ReceiveStream) -> None:
        """Drop a stream that is being refused or stopped from the buffer accounting."""
        self._buffered -= self._accounted.pop(stream.stream_id, 0)

    def drain_requested(self) -> None:
        """The peer sent DRAIN (`on_drain` runs for the first one only)."""
        if self.draining:
            return
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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._peer_streams = None
        self._peer_uni_streams = None
        self._accounted.clear()
        current = asyncio.current_task()
        for task in list(self.tasks):
            if task is not current:
                task.cancel()
        self._pending.clear()
        if was_open:
            self.spawn(self._close_hook(code, reason), track=False)

    # -- commands from the session ----------------------------------------------------------

    def send_datagram(self, data: bytes) -> None:
        """Send a datagram."""
        self._check_open()
        self._activity += 1
        self.connection.send_datagram(self.session_id, data)

    def open_stream(self, unidirectional: bool) -> SendStream:
        """Open a stream."""
        self._check_open()
        self._activity += 1
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
        """Run `coro` as a task of the session: cancelled when it ends, failures close it.

        A `StreamError` escaping the task ends only the task, as it would end an
        `on_stream` handler.
        """
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
            self.connection.handler_waits()
            tasks = self.tasks if track else self.connection.background_tasks
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _guard(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            self._hook_raised(getattr(coro, "__qualname__", "hook"), exc)

    def _hook_raised(self, hook: str, exc: Exception) -> None:
        """Apply the error policy to an exception that escaped a hook or a session task."""
        if isinstance(exc, SessionClosed):
            return  # the session ended under the hook: nothing more to do
        if isinstance(exc, StreamError):  # a stream's failure (e.g. the peer stopped it)
            logger.info("%s of %r: %r", hook, self.session, exc)
            return
        self._hook_failed(hook)

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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        idle = self.limits.idle_timeout
        if idle is not None:
            self._timer = self._loop.call_later(idle / _IDLE_CHECKS, self._idle_check)
        if self.server_draining:
            self.connection.drain_session(self.session_id)
        pending, self._pending = self._pending, []
        for stream in pending:
            if self._admit(stream):
                self._start_stream(stream)
        if self.draining:
            self.spawn(self._guard(self.session.on_drain()))

    def _handshake_expired(self) -> None:
        self._timer = None
        if self.state != _CONNECTING:
            return
        logger.warning(
            "on_connect of %r did not finish within %s s; answering %d",
            self.session,
            self.limits.handshake_timeout,
            HANDSHAKE_TIMEOUT_STATUS,
        )
        self._reject(HANDSHAKE_TIMEOUT_STATUS, [])

    def _idle_check(self) -> None:
        self._timer = None
        if self.state != _OPEN:
            return
        mark = (self._activity, self._bytes_sent())
        if mark != self._idle_mark:
            self._idle_mark = mark
            self._idle_periods = 0
        else:
            self._idle_periods += 1
            if self._idle_periods >= _IDLE_CHECKS:
                logger.info("%r: idle for %s s, closing", self.session, self.limits.idle_timeout)
                self.connection.close_session(
                    self.session_id, CloseCode.POLICY_VIOLATION, "idle timeout"
                )
                return
        assert self.limits.idle_timeout is not None
        self._timer = self._loop.call_later(
            self.limits.idle_timeout / _IDLE_CHECKS, self._idle_check
        )

    def _bytes_sent(self) -> int:
        """Stream bytes the session has sent so far, on the streams that are still open."""
        quic_streams = self.connection._quic._streams
        total = 0
        for stream in self.connection._session_streams.get(self.session_id, ()):
            quic_stream = quic_streams.get(stream.stream_id)
            if quic_stream is not None:
                total += quic_stream.sender.highest_offset
        return total

    def _reject(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self.state == _CONNECTING:
            self.connection.reject_session(self.session_id, status, headers)

    def _start_stream(self, stream: ReceiveStream) -> None:
        # The task leaves `tasks` by itself: a done callback would cost a loop iteration.
        task = _eager.start(self._loop, self._run_stream(stream))
        if task is not None:
            self.connection.handler_waits()
            self.tasks.add(task)

    async def _run_stream(self, stream: ReceiveStream) -> None:
        try:
            await self.session.on_stream(stream)
            if self.state == _OPEN:
                if isinstance(stream, SendStream) and not stream.is_closing:
                    await stream.close()
                if not stream.at_eof:
                    stream.stop(StreamErrorCode.NO_ERROR)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._stream_raised(stream.stream_id, exc, partial(_refuse, stream))
        finally:
            self.tasks.discard(asyncio.current_task())

    def _stream_raised(
        self, stream_id: int, exc: Exception, refuse: Callable[[int], None]
    ) -> None:
        """Apply the error policy to an exception that escaped `on_stream` (or `on_request`).

        Called from the `except` block, so that a logged traceback is this exception's.

        Args:
            stream_id: The stream the handler served.
            exc: The exception.
            refuse: Refuses the stream with a code (STOP_SENDING and RESET_STREAM).
        """
        if isinstance(exc, MessageError):
            code = (
                StreamErrorCode.MESSAGE_TOO_BIG
                if isinstance(exc, MessageTooLarge)
                else StreamErrorCode.INVALID_MESSAGE
            )
            logger.info("stream %d of %r: %s", stream_id, self.session, exc)
            refuse(code)
        elif not isinstance(exc, StreamError | SessionClosed):
            refuse(StreamErrorCode.INTERNAL_ERROR)
            self._hook_failed("on_stream")

    async def _close_hook(self, code: int, reason: str) -> None:
        try:
            await self.session.on_close(code, reason)
        except Exception:
            logger.exception("on_close of %r raised", self.session)


_RECOUNT_MIN = 16
_IDLE_CHECKS = 4
# How `on_datagram` runs: called as a plain function, run to its end at once (an async
# hook that never waits), or started as a task.
_CALL, _RUN_NOW, _TASK = "call", "run now", "task"


def _sets_max_message_size(cls: type[Session]) -> bool:
    """Whether a `Session` subclass sets `max_message_size` itself."""
    for klass in cls.__mro__:
        if "max_message_size" in vars(klass):
            return klass.__module__ != "wtframe.session"
    return False


def _ignore(code: int) -> None:
    """Refuse nothing: a unidirectional request's stream has ended and has no sending side."""


def _refuse(stream: ReceiveStream, code: int = StreamErrorCode.NO_ERROR) -> None:
    stream.stop(code)
    if isinstance(stream, SendStream):
        stream.reset(code)

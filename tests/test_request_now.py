"""`on_request` answered at once: a request that arrived whole, a hook that never waits.

The answer must be the same as through the default `on_stream` task, with the same error
policy; only the task is saved. Each test checks which way the request went, so that a
change that silently loses the fast path (or takes it where it must not) fails here.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from tests.support.waiting import wait_for
from wtframe import (
    App,
    ClientSession,
    CloseCode,
    Limits,
    ReceiveStream,
    Session,
    SessionClosed,
    Stream,
    StreamErrorCode,
    StreamReset,
    connect,
)
from wtframe.dialects import Dialect
from wtframe.exceptions import MessageError
from wtframe.hooks import hook_types
from wtframe.testing import TestClient

WAIT = 5
LEAK: contextvars.ContextVar[str] = contextvars.ContextVar("leak", default="unset")


class Query(BaseModel):
    word: str


class Echo(Session):
    """Answers at once (no `await` in `on_request`); records how each request ran."""

    in_task: ClassVar[list[bool]] = []
    seen_leak: ClassVar[list[str]] = []

    async def on_request(self, msg: bytes) -> bytes | None:
        type(self).in_task.append(asyncio.current_task() is not None)
        type(self).seen_leak.append(LEAK.get())
        LEAK.set("set by a previous request")
        if msg == b"raise":
            raise ValueError("request handler exploded")
        if msg == b"invalid":
            raise MessageError("not a good request")
        if msg == b"none":
            return None
        return msg[::-1]


class Typed(Session):
    async def on_request(self, msg: Query) -> dict[str, Any]:
        return {"upper": msg.word.upper()}

    async def on_invalid_request(self, stream: ReceiveStream, error: Exception) -> None:
        assert isinstance(stream, Stream)
        await stream.write_message({"error": "bad query"})


class Waits(Session):
    """Awaits in `on_request`: always served by a task."""

    async def on_request(self, msg: bytes) -> bytes:
        await asyncio.sleep(0)
        return msg


class OwnStream(Session):
    """Overrides `on_stream`: `on_request` is not its business."""

    async def on_stream(self, stream: ReceiveStream) -> None:
        if isinstance(stream, Stream):
            await stream.write_message(b"own " + await stream.read())

    async def on_request(self, msg: bytes) -> bytes:
        return msg


def make_app() -> App:
    Echo.in_task, Echo.seen_leak = [], []
    app = App(limits=Limits(max_message_size=64, max_stream_buffer=1024))
    app.add_session("/echo", Echo)
    app.add_session("/typed", Typed)
    app.add_session("/waits", Waits)
    app.add_session("/own", OwnStream)
    return app


async def request(session: ClientSession, data: bytes) -> bytes:
    return await asyncio.wait_for(session.send_request(data), WAIT)


def test_which_classes_answer_at_once() -> None:
    assert hook_types(Echo).request_now
    assert hook_types(Typed).request_now
    assert not hook_types(Waits).request_now
    assert not hook_types(OwnStream).request_now
    assert not hook_types(Session).request_now


async def test_whole_requests_are_answered_without_a_task() -> None:
    async with TestClient(make_app()) as client, client.connect("/echo") as session:
        answers = await asyncio.gather(*(request(session, b"abc%d" % i) for i in range(50)))
        assert answers == [(b"abc%d" % i)[::-1] for i in range(50)]
        assert await request(session, b"none") == b""
    assert Echo.in_task == [False] * 51


async def test_a_request_in_pieces_is_served_by_a_task() -> None:
    async with TestClient(make_app()) as client, client.connect("/echo") as session:
        stream = await session.open_stream()
        await stream.write(b"sl")
        await asyncio.sleep(0.05)  # the first piece reaches the server alone
        await stream.write(b"ow")
        await stream.close()
        assert await asyncio.wait_for(stream.read(), WAIT) == b"wols"
    assert Echo.in_task == [True]


async def test_context_variables_do_not_leak_between_requests() -> None:
    async with TestClient(make_app()) as client, client.connect("/echo") as session:
        for _ in range(3):
            await request(session, b"x")
    assert Echo.seen_leak == ["unset"] * 3
    assert LEAK.get() == "unset"


async def test_a_request_over_max_message_size_is_refused_as_before() -> None:
    async with TestClient(make_app()) as client, client.connect("/echo") as session:
        with pytest.raises(StreamReset) as info:
            await request(session, b"x" * 65)
        assert info.value.code == StreamErrorCode.MESSAGE_TOO_BIG
        assert await request(session, b"ok") == b"ko"


async def test_message_errors_reset_the_stream_and_the_session_goes_on() -> None:
    async with TestClient(make_app()) as client, client.connect("/echo") as session:
        with pytest.raises(StreamReset) as info:
            await request(session, b"invalid")
        assert info.value.code == StreamErrorCode.INVALID_MESSAGE
        assert await request(session, b"still") == b"llits"
    assert Echo.in_task == [False, False]


async def test_a_failing_request_handler_closes_the_session_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with TestClient(make_app()) as client, client.connect("/echo") as session:
        with caplog.at_level(logging.ERROR, logger="wtframe"):
            # The stream is reset and the session closed at once: either may arrive first.
            with pytest.raises((StreamReset, SessionClosed)) as info:
                await request(session, b"raise")
            if isinstance(info.value, StreamReset):
                assert info.value.code == StreamErrorCode.INTERNAL_ERROR
            await wait_for(lambda: session.close_code is not None)
        assert session.close_code == CloseCode.INTERNAL_ERROR
    assert "request handler exploded" in caplog.text
    assert Echo.in_task == [False]


async def test_typed_requests_and_invalid_ones() -> None:
    async with TestClient(make_app()) as client, client.connect("/typed") as session:
        answer = await asyncio.wait_for(session.send_request({"word": "hi"}, Any), WAIT)
        assert answer == {"upper": "HI"}
        # Not a Query: the default on_stream runs, and on_invalid_request answers.
        answer = await asyncio.wait_for(session.send_request({"nope": 1}, Any), WAIT)
        assert answer == {"error": "bad query"}


async def test_unidirectional_requests_are_served_without_an_answer() -> None:
    async with TestClient(make_app()) as client, client.connect("/echo") as session:
        stream = await session.open_uni_stream()
        await stream.write(b"one way")
        await stream.close()
        await wait_for(lambda: len(Echo.in_task) == 1)
        assert await request(session, b"after") == b"retfa"
    assert Echo.in_task == [False, False]


@pytest.mark.parametrize("path", ["/waits", "/own"])
async def test_other_classes_keep_their_tasks(path: str) -> None:
    async with TestClient(make_app()) as client, client.connect(path) as session:
        expected = b"own abc" if path == "/own" else b"abc"
        assert await request(session, b"abc") == expected


async def test_flow_controlled_requests_return_their_credit() -> None:
    """Draft-15: the bytes of requests answered at once count as read, or credit runs out."""
    app = App(limits=Limits(max_message_size=64, max_stream_buffer=1024, max_session_buffer=1024))
    app.add_session("/echo", Echo)
    Echo.in_task = []
    async with TestClient(app) as client:
        async with connect(client.url("/echo"), verify=False, dialect=Dialect.DRAFT15) as session:
            for i in range(100):  # 100 x 50 bytes through a 1024-byte window
                assert await request(session, b"%050d" % i) == (b"%050d" % i)[::-1]
    assert Echo.in_task == [False] * 100

"""How hooks start: tasks with full task semantics, no task for hooks that cannot wait."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from wtframe import App, ReceiveStream, SendStream, Session, _eager
from wtframe.testing import TestClient


async def test_a_hook_runs_inside_a_task() -> None:
    seen: list[object] = []

    async def hook() -> None:
        seen.append(asyncio.current_task())

    task = _eager.start(asyncio.get_running_loop(), hook())
    if task is not None:
        await task
    assert seen and seen[0] is not None


async def test_a_hook_that_finishes_at_once_leaves_no_task() -> None:
    ran: list[str] = []

    async def hook() -> None:
        ran.append("done")

    loop = asyncio.get_running_loop()
    results: list[object] = []
    loop.call_soon(lambda: results.append(_eager.start(loop, hook())))  # as a packet arrives
    await asyncio.sleep(0)
    assert results == [None]
    assert ran == ["done"]


async def test_a_hook_that_waits_runs_its_first_step_at_once_in_its_task() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    seen: list[object] = []

    async def hook() -> None:
        seen.append(asyncio.current_task())
        seen.append(await fut)

    def from_a_callback() -> None:  # as a packet arrives: no task is running
        seen.append(_eager.start(loop, hook()))

    loop.call_soon(from_a_callback)
    await asyncio.sleep(0)
    task = seen[1]
    assert isinstance(task, asyncio.Task) and seen[0] is task  # the first step ran in it
    fut.set_result(42)
    await task
    assert seen[2] == 42


async def test_a_hook_started_inside_a_task_still_runs() -> None:
    seen: list[object] = []

    async def hook() -> None:
        seen.append(asyncio.current_task())

    task = _eager.start(asyncio.get_running_loop(), hook())  # from this test's task
    if task is not None:
        await task
    assert seen and seen[0] is not None and seen[0] is not asyncio.current_task()


async def test_cancelling_the_task_cancels_the_coroutine() -> None:
    cleaned: list[str] = []

    async def hook() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("finally")

    task = _eager.start(asyncio.get_running_loop(), hook())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]


async def _plain(x: Any) -> Any:
    return x


async def _awaits(x: Awaitable[Any]) -> Any:
    return await x


async def _async_for(x: Any) -> None:
    async for _ in x:
        pass


async def _async_with(x: Any) -> None:
    async with x:
        pass


async def _nested_await(x: Any) -> Callable[[], Any]:
    async def inner() -> Any:
        return await x  # suspends inner, which this coroutine never awaits

    return inner


def _sync(x: Any) -> Any:
    return x


class _Owner:
    async def method(self, x: Any) -> Any:
        return x

    async def waits(self, x: Any) -> None:
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (_plain, True),
        (_nested_await, True),
        (_Owner().method, True),
        (_awaits, False),
        (_async_for, False),
        (_async_with, False),
        (_Owner().waits, False),
        (_sync, False),
        (print, False),
    ],
)
def test_never_suspends(func: Callable[..., Any], expected: bool) -> None:
    assert _eager.never_suspends(func) is expected


def test_run_now_returns_the_result_and_propagates_errors() -> None:
    assert _eager.run_now(_plain(7)) == 7

    async def fails() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        _eager.run_now(fails())


# -- through a real server -----------------------------------------------------------------

_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")


def _app(seen: list[object]) -> App:
    app = App()

    @app.session("/t")
    class Timed(Session):
        async def on_stream(self, stream: ReceiveStream) -> None:
            seen.append(_var.get())
            _var.set("stream")
            async with asyncio.timeout(5):  # needs the current task
                data = await stream.read()
            assert isinstance(stream, SendStream)
            await stream.write(data)

        async def on_datagram(self, data: bytes) -> None:
            seen.append(_var.get())
            _var.set("datagram")
            async with asyncio.timeout(5):
                await asyncio.sleep(0)
            self.send_datagram(data)

    return app


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is new in 3.11")
async def test_hooks_run_in_their_own_task_and_context() -> None:
    seen: list[object] = []
    async with TestClient(_app(seen)) as client, client.connect("/t") as session:
        for _ in range(3):
            stream = await session.open_stream()
            await stream.write(b"hi")
            await stream.close()
            assert await asyncio.wait_for(stream.read(), 5) == b"hi"
            session.send_datagram(b"d")
            assert await asyncio.wait_for(session.receive_datagram(), 5) == b"d"
    # Every hook saw the default: no hook's context variable leaked into another's.
    assert seen == ["unset"] * 6


async def test_an_async_hook_without_await_runs_without_a_task() -> None:
    seen: list[object] = []
    app = App()

    @app.session("/n")
    class NoWait(Session):
        async def on_datagram(self, data: bytes) -> None:
            seen.append(asyncio.current_task())
            if data == b"boom":
                raise ValueError("bad datagram")
            self.send_datagram(data)

    async with TestClient(app) as client, client.connect("/n") as session:
        session.send_datagram(b"x")
        assert await asyncio.wait_for(session.receive_datagram(), 5) == b"x"
        runner = client.server.runners[0]
        assert not runner.tasks
        session.send_datagram(b"boom")  # the error policy applies as for any hook
        code, _ = await asyncio.wait_for(session.wait_closed(), 5)
    assert seen[0] is None
    assert code == 1011

"""Eager start of hooks: no task when a coroutine finishes at once, task semantics otherwise."""

from __future__ import annotations

import asyncio

import pytest

from wtframe import _eager


async def test_coroutine_that_never_waits_needs_no_task() -> None:
    ran: list[str] = []

    async def hook() -> None:
        ran.append("done")

    assert _eager.start(asyncio.get_running_loop(), hook()) is None
    assert ran == ["done"]


async def test_coroutine_that_waits_continues_in_a_task_with_results() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    seen: list[object] = []

    async def hook() -> None:
        seen.append("first step")
        seen.append(await fut)
        await asyncio.sleep(0)
        seen.append("after sleep")

    task = _eager.start(loop, hook())
    assert seen == ["first step"]
    assert task is not None and not task.done()
    fut.set_result(42)
    await asyncio.wait_for(task, 5)
    assert seen == ["first step", 42, "after sleep"]


async def test_exception_from_a_future_reaches_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    caught: list[BaseException] = []

    async def hook() -> None:
        try:
            await fut
        except KeyError as exc:
            caught.append(exc)

    task = _eager.start(loop, hook())
    assert task is not None
    fut.set_exception(KeyError("x"))
    await asyncio.wait_for(task, 5)
    assert isinstance(caught[0], KeyError)


async def test_cancelling_the_task_cancels_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    cleaned: list[str] = []

    async def hook() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("finally")

    task = _eager.start(loop, hook())
    assert task is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]


async def test_return_after_suspension_ends_the_task_cleanly() -> None:
    async def hook() -> None:
        await asyncio.sleep(0)

    task = _eager.start(asyncio.get_running_loop(), hook())
    assert task is not None
    await asyncio.wait_for(task, 5)
    assert task.done() and task.exception() is None

"""Start a coroutine at once, and make it a task only if it has to wait.

Most hooks finish without waiting (an echo, a counter, a reply that fits the send buffer).
Running their first step synchronously, inside the packet callback, saves creating a task
for them, and lets their replies leave in the same packet as the ACK. A coroutine that
does suspend continues in an ordinary asyncio task, which sees the exact future the
coroutine waits for, so cancellation and exceptions behave as usual.

Python 3.12 has this built in (`eager_start`); this module gives 3.10 and 3.11 the same.
One difference remains there: until its first suspension the coroutine runs outside any
task, so `asyncio.current_task()` is `None` during that first step.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["start"]


def start(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
) -> asyncio.Task[None] | None:
    """Run `coro` until it first suspends; return the task that continues it, if any.

    Args:
        loop: The running event loop.
        coro: A coroutine that handles its own exceptions.

    Returns:
        The task running the rest of `coro`, or `None` if it already finished.
    """
    if _EAGER_TASKS:
        task = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
        return None if task.done() else task
    try:
        first = coro.send(None)
    except StopIteration:
        return None
    return loop.create_task(_Continuation(coro, first))


_EAGER_TASKS = sys.version_info >= (3, 12)


class _Continuation(Coroutine[Any, Any, None]):
    """A suspended coroutine, presented to a task as if it had not started.

    Its first `send` gives the task the future the coroutine is waiting on; everything
    else (values, exceptions, cancellation, even before the first step) goes straight to
    the coroutine.
    """

    __slots__ = ("_coro", "_first", "_started")

    def __init__(self, coro: Coroutine[Any, Any, None], first: Any) -> None:
        self._coro = coro
        self._first = first
        self._started = False

    def send(self, value: Any) -> Any:
        if not self._started:
            self._started = True
            first, self._first = self._first, None
            return first
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._started = True
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # pragma: no cover - old-style call

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:  # pragma: no cover - tasks use send
        raise TypeError("a continuation is driven by its task, not awaited")

"""Starting hook coroutines: as (eager) tasks, or without a task if they can never wait.

Most hooks finish without waiting (an echo, a counter, a reply that fits the send buffer).

* On Python 3.12 and later a hook starts as an eager task (`eager_start`): its first step
  runs at once, inside the packet callback, and the task object is dropped if it finished
  there. Its replies leave in the same packet as the ACK.
* On 3.11 a hook starts as an ordinary task, whose first step asyncio queued;
  with asyncio's own event loop that step is taken off the queue and run at once (the
  task runs it, as the current task, in its own context), which is what 3.12 does. A
  hook started from inside another task, or on another event loop, takes its first step
  in the same loop iteration instead, still before the transmission that follows the
  packet. A hook is never run outside a task: code such as `asyncio.timeout()` needs
  `asyncio.current_task()`, and a context variable set by one hook must not leak into
  the next.
* An `async def` hook whose body contains no `await`, `async for` or `async with`
  ([`never_suspends`][wtframe._eager.never_suspends]) cannot wait at all: it is run to its
  end at once, like a plain function, on every version, and no task is created.
"""

from __future__ import annotations

import asyncio
import contextvars
import dis
import inspect
import sys
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["never_suspends", "run_now", "start"]

_EAGER_TASKS = sys.version_info >= (3, 12)
# loop -> its running task: what asyncio.current_task() reads, without its Python frame
# (3.11 only; later versions start tasks eagerly).
_current_tasks: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] = getattr(
    asyncio.tasks, "_current_tasks", {}
)

# Every suspension point of a coroutine compiles to one of these (3.11 to 3.13).
_SUSPENDING = frozenset(
    {"YIELD_VALUE", "YIELD_FROM", "GET_AWAITABLE", "GET_ANEXT", "BEFORE_ASYNC_WITH"}
)


def start(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
) -> asyncio.Task[None] | None:
    """Start `coro` as a task (eagerly where Python supports it).

    Args:
        loop: The running event loop.
        coro: A coroutine that handles its own exceptions.

    Returns:
        The task running `coro`, or `None` if it already finished.
    """
    if _EAGER_TASKS:
        task = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
        return None if task.done() else task
    if getattr(loop, "_task_factory", True) is None:  # asyncio's own loop, no task factory
        task = asyncio.Task(coro, loop=loop)  # what create_task() does, one call shorter
    else:
        task = loop.create_task(coro)
    # Creating the task queued its first step as the last ready callback: run that step
    # now instead, unless another task is running (a task cannot start inside another).
    ready: deque[asyncio.Handle] | None = getattr(loop, "_ready", None)
    if ready and _current_tasks.get(loop) is None:
        handle = ready[-1]
        if getattr(handle._callback, "__self__", None) is task:  # type: ignore[attr-defined]
            ready.pop()
            handle._context.run(handle._callback)  # type: ignore[attr-defined]
            if task.done():
                return None
    return task


def never_suspends(func: Callable[..., Any]) -> bool:
    """Return whether `func` is a coroutine function that can never wait.

    Args:
        func: A function or bound method.

    Returns:
        `True` if `func` is an `async def` whose own body has no suspension point (no
        `await`, `async for` or `async with`); `False` otherwise, and for anything that
        is not plainly an `async def` (a wrapper may wait).
    """
    function = getattr(func, "__func__", func)
    if not inspect.iscoroutinefunction(function) or not hasattr(function, "__code__"):
        return False
    return not any(ins.opname in _SUSPENDING for ins in dis.get_instructions(function))


def run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine of a `never_suspends` function to its end; return its result.

    Args:
        coro: The coroutine.

    Returns:
        What the coroutine returned. Its exceptions propagate.
    """
    try:
        # In a context of its own, as a task would: what the hook sets does not leak.
        contextvars.copy_context().run(coro.send, None)
    except StopIteration as stop:
        return stop.value
    coro.close()  # unreachable for a function that never suspends
    raise RuntimeError(f"{coro!r} suspended")

"""Waiting in tests for something that happens on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["WAIT", "wait_for"]

WAIT = 5.0
"""Seconds a test waits for something before it fails."""


async def wait_for(condition: Callable[[], object], timeout: float = WAIT) -> None:
    """Poll `condition()` until it is true.

    Args:
        condition: What to check, every 5 ms.
        timeout: Seconds before `TimeoutError`.
    """

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)

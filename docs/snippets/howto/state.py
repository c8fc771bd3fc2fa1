"""Shared state and startup/shutdown hooks, checked against a real client when run.

Run it from the repository root:

    python docs/snippets/howto/state.py
"""

from __future__ import annotations

import asyncio

from wtframe import App, Session
from wtframe.testing import TestClient

# --8<-- [start:app]
app = App()


class Counter:
    """Stands in for a database pool or a client of another service."""

    def __init__(self) -> None:
        self.total = 0
        self.closed = False

    async def close(self) -> None:
        """Release what the counter holds."""
        self.closed = True


@app.on_startup
async def open_resources() -> None:
    """Runs once, before the server takes its first session."""
    app.state.counter = Counter()


@app.on_shutdown
async def close_resources() -> None:
    """Runs once, after every session has ended during shutdown."""
    await app.state.counter.close()


@app.session("/count")
class Count(Session):
    """Every session shares the app's counter."""

    async def on_datagram(self, data: bytes) -> None:
        """Count the datagram and answer with the total."""
        counter: Counter = self.app.state.counter
        counter.total += 1
        self.send_datagram(str(counter.total).encode())


# --8<-- [end:app]


async def main() -> None:
    """Two sessions share one counter; shutdown closes it."""
    async with TestClient(app) as client:
        async with client.connect("/count") as one, client.connect("/count") as two:
            one.send_datagram(b"+")
            assert await asyncio.wait_for(one.receive_datagram(), 5) == b"1"
            two.send_datagram(b"+")
            assert await asyncio.wait_for(two.receive_datagram(), 5) == b"2"
        counter = app.state.counter
        assert not counter.closed
    assert counter.closed
    print("state: shared by both sessions, closed at shutdown")


if __name__ == "__main__":
    asyncio.run(main())

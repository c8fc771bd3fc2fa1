"""The echo server shown on the home page, checked against a real client when run.

Run it from the repository root:

    python docs/snippets/home_echo.py
"""

from __future__ import annotations

import asyncio

# --8<-- [start:app]
from wtframe import App, ReceiveStream, Session, Stream

app = App()


@app.session("/echo")
class Echo(Session):
    """Sends back every datagram and every bidirectional stream."""

    async def on_connect(self) -> None:
        """Accept every session, and say where it came from."""
        print("session from", self.request.origin)

    async def on_datagram(self, data: bytes) -> None:
        """Send the datagram back."""
        self.send_datagram(data)

    async def on_stream(self, stream: ReceiveStream) -> None:
        """Send a bidirectional stream's bytes back on it, then end it."""
        if isinstance(stream, Stream):
            await stream.write(await stream.read())
            await stream.close()


# --8<-- [end:app]

__all__ = ["Echo", "app", "check"]


async def check() -> None:
    """Serve the app on an ephemeral loopback port and use each of its hooks once."""
    from wtframe.testing import TestClient

    async with TestClient(app) as client:
        async with client.connect("/echo", origin="https://example.com") as session:
            session.send_datagram(b"ping")
            assert await session.receive_datagram() == b"ping"
            stream = await session.open_stream()
            await stream.write(b"hello")
            await stream.close()
            assert await stream.read() == b"hello"
    print("echo checked")


if __name__ == "__main__":
    asyncio.run(check())

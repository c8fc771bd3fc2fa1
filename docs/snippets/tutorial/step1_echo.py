"""Tutorial step 1: a WebTransport server that sends every datagram back.

Serve it with `wtframe run step1_echo:app` from this directory. Run as a script, it serves
itself on a loopback port and checks the echo with a real client.
"""

from __future__ import annotations

import asyncio

# --8<-- [start:app]
from wtframe import App, Session

app = App()


@app.session("/echo")
class Echo(Session):
    """One browser tab's session: every datagram it sends comes back."""

    async def on_datagram(self, data: bytes) -> None:
        """Send the datagram back as it came."""
        self.send_datagram(data)


# --8<-- [end:app]

__all__ = ["Echo", "app"]


async def check() -> None:
    """Serve the app on a free loopback port and echo one datagram through it."""
    from wtframe.testing import TestClient

    async with TestClient(app) as client, client.connect("/echo") as session:
        session.send_datagram(b"ping")
        assert await session.receive_datagram() == b"ping"


if __name__ == "__main__":
    asyncio.run(check())

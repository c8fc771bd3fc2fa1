"""Tutorial step 2: the echo server of step 1, with its tests in the same file.

Run the tests with `python step2_testing.py`, or with `pytest step2_testing.py` given
pytest-asyncio in `asyncio_mode = auto`.
"""

from __future__ import annotations

# --8<-- [start:imports]
import asyncio

import pytest

from wtframe import App, HandshakeError, Session
from wtframe.testing import TestClient

# --8<-- [end:imports]

__all__ = ["Echo", "app", "test_echo", "test_unknown_path_is_refused"]

app = App()


@app.session("/echo")
class Echo(Session):
    """One browser tab's session: every datagram it sends comes back."""

    async def on_datagram(self, data: bytes) -> None:
        """Send the datagram back as it came."""
        self.send_datagram(data)


# --8<-- [start:tests]
async def test_echo() -> None:
    """A datagram comes back unchanged."""
    async with TestClient(app) as client:
        async with client.connect("/echo") as session:
            session.send_datagram(b"ping")
            assert await session.receive_datagram() == b"ping"


async def test_unknown_path_is_refused() -> None:
    """A path without a route gets 404, and no session."""
    async with TestClient(app) as client:
        with pytest.raises(HandshakeError) as refused:
            await client.connect("/nowhere")
        assert refused.value.status == 404


# --8<-- [end:tests]


# --8<-- [start:main]
async def main() -> None:
    """Run every test of this file, one after the other."""
    await test_echo()
    await test_unknown_path_is_refused()
    print("all tests passed")


if __name__ == "__main__":
    asyncio.run(main())
# --8<-- [end:main]

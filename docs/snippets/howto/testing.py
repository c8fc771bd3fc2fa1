"""Testing an app with `TestClient` and pytest; running this file runs its tests.

Run it from the repository root:

    python docs/snippets/howto/testing.py
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from wtframe import App, CloseCode, HandshakeError, Reject, Session, StreamReset
from wtframe.testing import TestClient

# --8<-- [start:app]
app = App()
closed: list[tuple[int, str]] = []  # what on_close saw, for the tests


@app.session("/counter")
class Counter(Session):
    """Counts datagrams; `bye` closes the session, `boom` is a bug."""

    async def on_connect(self) -> None:
        """Only members get in."""
        if self.request.query_params.get("member") != "yes":
            raise Reject(403)
        self.count = 0

    async def on_datagram(self, data: bytes) -> None:
        """Count, or close, or fail."""
        if data == b"bye":
            await self.close(4000, "see you")
        elif data == b"boom":
            raise RuntimeError("a bug in the app")
        else:
            self.count += 1
            self.send_datagram(str(self.count))

    async def on_close(self, code: int, reason: str) -> None:
        """Record how the session ended."""
        closed.append((code, reason))


# --8<-- [end:app]


# --8<-- [start:tests]
@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient]:
    """Serve the app on a free loopback port for one test."""
    async with TestClient(app) as client:
        yield client


@pytest.mark.asyncio
async def test_counts(client: TestClient) -> None:
    async with client.connect("/counter?member=yes") as session:
        session.send_datagram(b"+")
        assert await session.receive_datagram(str) == "1"
        session.send_datagram(b"+")
        assert await session.receive_datagram(str) == "2"


@pytest.mark.asyncio
async def test_refuses_strangers(client: TestClient) -> None:
    with pytest.raises(HandshakeError) as refused:
        await client.connect("/counter")
    assert refused.value.status == 403


@pytest.mark.asyncio
async def test_close_code(client: TestClient) -> None:
    session = await client.connect("/counter?member=yes")
    session.send_datagram(b"bye")
    assert await session.wait_closed() == (4000, "see you")
    assert closed[-1] == (4000, "see you")


@pytest.mark.asyncio
async def test_a_bug_closes_the_session(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    session = await client.connect("/counter?member=yes")
    session.send_datagram(b"boom")
    code, _ = await session.wait_closed()
    assert code == CloseCode.INTERNAL_ERROR  # 1011
    assert "a bug in the app" in caplog.text  # the traceback is logged by `wtframe`


@pytest.mark.asyncio
async def test_streams_are_refused(client: TestClient) -> None:
    async with client.connect("/counter?member=yes") as session:
        stream = await session.open_stream()  # Counter has no on_stream nor on_request
        await stream.write(b"hello")
        with pytest.raises(StreamReset):
            await stream.read()


@pytest.mark.asyncio
async def test_two_sessions_on_one_connection(client: TestClient) -> None:
    async with client.connect("/counter?member=yes") as first:
        second = await first.open_session("/counter?member=yes")  # as browsers pool them
        second.send_datagram(b"+")
        assert await second.receive_datagram(str) == "1"
        await second.close()


# --8<-- [end:tests]

__all__ = ["Counter", "app", "client", "closed"]

if __name__ == "__main__":
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__]
    sys.exit(subprocess.run(command, check=False).returncode)

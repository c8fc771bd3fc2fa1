"""Datagrams for state that goes stale, streams for what must arrive; checked when run.

Run it from the repository root:

    python docs/snippets/howto/datagrams_streams.py
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from wtframe import App, DatagramTooLarge, ReceiveStream, Session
from wtframe.testing import TestClient


# --8<-- [start:app]
class Position(BaseModel):
    """Where a player is now: sent many times a second, only the newest matters."""

    seq: int
    x: float
    y: float


class Chat(BaseModel):
    """A chat line: every one must arrive, in order."""

    text: str


app = App()


@app.session("/play")
class Play(Session):
    """Positions come as datagrams, chat lines on one long-lived stream."""

    async def on_connect(self) -> None:
        """Start with no position and an empty chat log."""
        self.last_seq = -1
        self.position: Position | None = None
        self.chat: list[str] = []

    async def on_datagram(self, msg: Position) -> None:
        """Keep the newest position; a late or duplicated datagram is ignored."""
        if msg.seq > self.last_seq:
            self.last_seq, self.position = msg.seq, msg
            self.send_datagram(msg)  # echo it, as a server would broadcast it

    async def on_stream(self, stream: ReceiveStream) -> None:
        """Read chat lines until the peer ends the stream; reply with the count."""
        async for line in stream.messages(Chat):
            self.chat.append(line.text)
        self.send_datagram({"lines": len(self.chat)})


# --8<-- [end:app]

__all__ = ["Chat", "Play", "Position", "app", "check"]


async def check() -> None:
    """Send positions and chat lines, and one datagram that is too big."""
    async with TestClient(app) as client, client.connect("/play") as session:
        # --8<-- [start:client]
        session.send_datagram(Position(seq=1, x=1.0, y=2.0))
        assert await session.receive_datagram(Position) == Position(seq=1, x=1.0, y=2.0)

        # Datagrams must fit in one QUIC packet: ask how much fits now.
        limit = session.max_datagram_size  # 1169 bytes with aioquic's 1200-byte packets
        assert 1000 < limit < 1500
        try:
            session.send_datagram(b"x" * (limit + 1))
        except DatagramTooLarge as exc:
            assert (exc.size, exc.limit) == (limit + 1, limit)
        else:
            raise AssertionError("expected DatagramTooLarge")

        stream = await session.open_uni_stream()
        for text in ("hi", "ready?", "go"):
            await stream.send(Chat(text=text))  # framed: many messages on one stream
        await stream.close()
        assert await session.receive_datagram(dict) == {"lines": 3}
        # --8<-- [end:client]
    print("datagram limit", limit)


if __name__ == "__main__":
    asyncio.run(check())

"""A Python client for a wtframe server, checked against a real server when run.

Run it from the repository root:

    python docs/snippets/howto/python_client.py
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from wtframe import App, Session, Stream, connect, serve


class Tick(BaseModel):
    """A price update."""

    symbol: str
    price: float


app = App()


@app.session("/ticker")
class Ticker(Session):
    """Pushes two ticks as datagrams and two on a stream it opens, then says goodbye."""

    async def on_connect(self) -> None:
        """Accept at once, and start pushing."""
        await self.accept()
        self.create_task(self.push())

    async def push(self) -> None:
        """Send what the client below expects, then close with code 4001."""
        self.send_datagram(Tick(symbol="ACME", price=1.5))
        stream = await self.open_uni_stream()
        await stream.send(Tick(symbol="ACME", price=1.75))
        await stream.send(Tick(symbol="ACME", price=2.0))
        await stream.close()
        question = await self.open_stream()
        await question.write_message("ready?")
        assert await question.read_message(str) == "yes"
        await self.close(4001, "market closed")


__all__ = ["Tick", "Ticker", "app", "check", "client"]


# --8<-- [start:client]
async def client(url: str, fingerprint: str) -> None:
    """Talk to the ticker as any Python program would."""
    async with connect(url, cert_hash=fingerprint) as session:
        first = await session.receive_datagram(Tick)  # decoded and validated
        assert first.price == 1.5

        stream = await session.accept_stream()  # the server's unidirectional stream
        prices = [tick.price async for tick in stream.messages(Tick)]  # framed messages
        assert prices == [1.75, 2.0]

        async for incoming in session.incoming_streams():  # every further stream
            assert isinstance(incoming, Stream)  # bidirectional: we can answer
            assert await incoming.read_message(str) == "ready?"
            await incoming.write_message("yes")
            break

        assert await session.wait_closed() == (4001, "market closed")


# --8<-- [end:client]


async def check() -> None:
    """Serve the app on a free loopback port and run the client against it."""
    server = await serve(app, "127.0.0.1", 0)
    try:
        url = server.url("/ticker", host="127.0.0.1")
        await client(url, server.certificate.fingerprint)
    finally:
        await server.shutdown(grace=0)
    print("python client checked")


if __name__ == "__main__":
    asyncio.run(check())

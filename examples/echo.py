"""Echo server: datagrams, bidirectional and unidirectional streams come back as they went.

Run it with `wtframe run examples.echo:app`.
"""

from __future__ import annotations

from wtframe import App, ReceiveStream, Reject, Session, Stream

app = App()


@app.session("/echo")
class Echo(Session):
    """Echoes everything the peer sends."""

    async def on_datagram(self, data: bytes) -> None:
        """Send the datagram back."""
        self.send_datagram(data)

    async def on_stream(self, stream: ReceiveStream) -> None:
        """Send the stream's bytes back: on the same stream, or on a new uni stream."""
        data = await stream.read()  # all bytes until the peer's FIN
        if isinstance(stream, Stream):
            await stream.write(data)
            await stream.close()  # FIN on our side
        else:
            reply = await self.open_uni_stream()
            await reply.write(data)
            await reply.close()


@app.session("/rooms/{room:int}")
class Room(Session):
    """Accepts only requests that carry the right token; closes when asked to via a datagram."""

    async def on_connect(self) -> None:
        """Check the token header."""
        if self.request.headers.get("x-token") != "secret":
            raise Reject(403)
        self.room: int = self.request.path_params["room"]

    async def on_datagram(self, data: bytes) -> None:
        """Answer with the room number; `close` closes the session with code 7."""
        if data == b"close":
            await self.close(7, "bye")
        else:
            self.send_datagram(f"room {self.room}".encode())

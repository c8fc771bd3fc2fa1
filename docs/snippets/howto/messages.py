"""Typed messages and codecs, checked against a real client when run.

Run it from the repository root:

    python docs/snippets/howto/messages.py
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from typing import Annotated, Any

from pydantic import BaseModel

from wtframe import App, DecodeError, ReceiveStream, Session, Stream, StreamErrorCode, StreamReset
from wtframe.codecs import JSON
from wtframe.framing import FrameDecoder, encode_frame
from wtframe.testing import TestClient


# --8<-- [start:models]
class Move(BaseModel):
    """A move in a game."""

    x: int
    y: int


class Ack(BaseModel):
    """The server's answer to a move."""

    ok: bool
    moves: int


# --8<-- [end:models]

# --8<-- [start:hooks]
app = App()


@app.session("/game")
class Game(Session):
    """One move per datagram, and a framed stream of moves answered move by move."""

    async def on_connect(self) -> None:
        """Start counting."""
        self.moves = 0

    async def on_datagram(self, msg: Move) -> None:
        """`msg` is parsed from JSON and validated; invalid datagrams never get here."""
        self.moves += 1
        self.send_datagram(Ack(ok=True, moves=self.moves))  # a model is sent as JSON

    def on_invalid_datagram(self, data: bytes, error: DecodeError) -> None:
        """Count and log it as the default does, and tell the client."""
        super().on_invalid_datagram(data, error)
        self.send_datagram({"invalid": self.invalid_datagrams})

    async def on_stream(self, stream: ReceiveStream) -> None:
        """A framed stream: many messages each way, each with its length in front."""
        if not isinstance(stream, Stream):
            return  # a unidirectional stream: wtframe refuses the rest with STOP_SENDING
        async for move in stream.messages(Move):
            self.moves += 1
            await stream.send(Ack(ok=move.x >= 0, moves=self.moves))


# --8<-- [end:hooks]


# --8<-- [start:request]
@app.session("/rpc")
class Rpc(Session):
    """One request per stream: read up to FIN, answer, FIN."""

    async def on_request(self, move: Move) -> Ack:
        """The default `on_stream` reads the stream as one `Move` and writes the answer."""
        return Ack(ok=move.x >= 0, moves=1)


# --8<-- [end:request]


# --8<-- [start:codec]
class PointCodec:
    """A `Move` as 8 bytes: two big-endian signed 32-bit integers."""

    def encode(self, obj: Move) -> bytes:
        """Pack the move."""
        return struct.pack("!ii", obj.x, obj.y)

    def decode(self, data: bytes) -> Move:
        """Unpack the move; anything but 8 bytes is invalid."""
        if len(data) != 8:
            raise DecodeError(f"a point is 8 bytes, not {len(data)}")
        x, y = struct.unpack("!ii", data)
        return Move(x=x, y=y)


POINT = PointCodec()


class ZlibJSON:
    """Any JSON value, compressed: a codec for large snapshots."""

    def encode(self, obj: Any) -> bytes:
        """Compress the JSON text."""
        return zlib.compress(JSON.encode(obj))

    def decode(self, data: bytes) -> Any:
        """Decompress and parse."""
        try:
            return JSON.decode(zlib.decompress(data))
        except zlib.error as exc:
            raise DecodeError(f"not zlib data: {exc}") from exc


@app.session("/points")
class Points(Session):
    """A hook names its codec with `Annotated`; `codec` replaces JSON for the session."""

    codec = ZlibJSON()  # or App(codec=ZlibJSON()) for every session of the app

    async def on_datagram(self, point: Annotated[Move, POINT]) -> None:
        """`point` was decoded by `POINT`; the dict below is sent with `ZlibJSON`."""
        self.send_datagram({"x": point.x, "y": point.y})


# --8<-- [end:codec]

__all__ = ["POINT", "Ack", "Game", "Move", "PointCodec", "Points", "Rpc", "ZlibJSON", "app"]


def check_wire_format() -> None:
    """The framed wire format, byte by byte."""
    # --8<-- [start:wire]
    frame = encode_frame(b'{"x":1,"y":2}')
    assert frame == b"\x00\x00\x00\x0d" + b'{"x":1,"y":2}'  # 13 = 0x0d payload bytes
    assert encode_frame(b"hi") + encode_frame(b"") == bytes.fromhex("00000002 6869 00000000")

    decoder = FrameDecoder(max_size=1 << 20)
    assert decoder.feed(frame[:3]) == []  # chunks may be cut anywhere
    assert decoder.feed(frame[3:]) == [b'{"x":1,"y":2}']
    decoder.eof()  # raises TruncatedMessage if the stream ended inside a frame
    # --8<-- [end:wire]


async def check() -> None:
    """Exchange every kind of message, and some invalid ones."""
    check_wire_format()
    async with TestClient(app) as client:
        # --8<-- [start:client]
        async with client.connect("/game") as session:
            session.send_datagram(Move(x=1, y=2))
            assert await session.receive_datagram(Ack) == Ack(ok=True, moves=1)

            session.send_datagram(b"not json")  # goes to on_invalid_datagram
            assert await session.receive_datagram(dict) == {"invalid": 1}
            session.send_datagram({"x": "left", "y": 0})  # fails validation: the same
            assert await session.receive_datagram(dict) == {"invalid": 2}

            stream = await session.open_stream()
            await stream.send(Move(x=-1, y=0))
            assert await stream.receive(Ack) == Ack(ok=False, moves=2)
            await stream.send(Move(x=3, y=4))
            assert await stream.receive(Ack) == Ack(ok=True, moves=3)
            await stream.close()

            bad = await session.open_stream()
            await bad.write(encode_frame(b'{"x": "left"}'))  # a frame that does not validate
            try:
                await bad.receive(Ack)
            except StreamReset as exc:
                assert exc.code == StreamErrorCode.INVALID_MESSAGE  # 1007
            else:
                raise AssertionError("expected a reset")

        async with client.connect("/rpc") as session:
            assert await session.send_request(Move(x=5, y=6), Ack) == Ack(ok=True, moves=1)

            stream = await session.open_stream()  # what send_request does, by hand
            await stream.write_message(Move(x=-5, y=6))  # the message, then FIN
            assert await stream.read_message(Ack) == Ack(ok=False, moves=1)  # up to FIN

        async with client.connect("/points") as session:
            session.send_datagram(POINT.encode(Move(x=7, y=-8)))  # bytes go as they are
            assert await session.receive_datagram(ZlibJSON()) == {"x": 7, "y": -8}
        # --8<-- [end:client]
    print("messages checked")


if __name__ == "__main__":
    asyncio.run(check())

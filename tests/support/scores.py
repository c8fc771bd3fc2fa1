"""A typed score-keeping session shared by the Python-client and the browser message tests."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from wtframe import ReceiveStream, Session, Stream

__all__ = ["MAX_MESSAGE_SIZE", "Command", "Increment", "Reset", "Score", "TypedScores"]

MAX_MESSAGE_SIZE = 1000


class Increment(BaseModel):
    type: Literal["increment"]
    username: str


class Reset(BaseModel):
    type: Literal["reset"]


class Score(BaseModel):
    username: str
    score: int


Command = Annotated[Increment | Reset, Field(discriminator="type")]


class TypedScores(Session):
    """Counts increments per name: from datagrams (a discriminated union) and framed streams."""

    max_message_size = MAX_MESSAGE_SIZE

    async def on_connect(self) -> None:
        self.scores: dict[str, int] = {}

    async def on_datagram(self, msg: Command) -> None:
        if isinstance(msg, Increment):
            self.send_datagram(self._count(msg.username))
        else:
            self.scores.clear()
            self.send_datagram({"reset": True})

    async def on_stream(self, stream: ReceiveStream) -> None:
        assert isinstance(stream, Stream)
        async for msg in stream.messages(Increment):
            await stream.send(self._count(msg.username))

    def _count(self, username: str) -> Score:
        self.scores[username] = self.scores.get(username, 0) + 1
        return Score(username=username, score=self.scores[username])

"""Tutorial step 5: scores kept in SQLite, each click acknowledged after its commit.

Serve it with `wtframe run step5_persistence:app` (the scores go to `clicker.db`); run it
as a script to run its tests.
"""

from __future__ import annotations

# --8<-- [start:imports]
import asyncio
import logging
import sqlite3
import tempfile
import unicodedata
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field
from store import MemoryStore, ScoreStore, SQLiteStore

from wtframe import (
    App,
    DecodeError,
    MessageTooLarge,
    ReceiveStream,
    Session,
    Stream,
    StreamErrorCode,
)
from wtframe.testing import TestClient

# --8<-- [end:imports]

__all__ = [
    "MAX_REQUEST_SIZE",
    "Click",
    "ErrorReply",
    "Reply",
    "ScoreReply",
    "app",
    "create_app",
    "test_a_failing_store_is_reported",
    "test_an_acknowledged_click_is_committed",
    "test_scores_survive_a_restart",
]

logger = logging.getLogger("clicker")


def check_username(name: str) -> str:
    """Normalise a username, or refuse it with a reason (see step 4)."""
    name = " ".join(unicodedata.normalize("NFC", name).split())
    if not 1 <= len(name) <= 32:
        raise ValueError("a username has 1 to 32 characters")
    for char in name:
        kind = unicodedata.category(char)
        if not (kind[0] in "LM" or kind == "Nd" or char in " _-."):
            raise ValueError(f"a username cannot hold U+{ord(char):04X}")
    return name


class Click(BaseModel):
    """A player clicked once."""

    username: Annotated[str, AfterValidator(check_username)]


class ScoreReply(BaseModel):
    """The player's new score."""

    type: Literal["score"] = "score"
    username: str
    score: int


# --8<-- [start:error]
class ErrorReply(BaseModel):
    """Why a request was refused; nothing was counted."""

    type: Literal["error"] = "error"
    code: Literal["invalid_request", "too_large", "unavailable"]
    message: str


# --8<-- [end:error]

Reply = Annotated[ScoreReply | ErrorReply, Field(discriminator="type")]
MAX_REQUEST_SIZE = 1024


# --8<-- [start:app]
def create_app(store: ScoreStore) -> App:
    """Build the clicker on a score store; the caller opens and closes the store."""
    app = App()

    @app.session("/clicker")
    class Clicker(Session):
        """One player's session. Each click arrives on a stream of its own."""

        max_message_size = MAX_REQUEST_SIZE

        async def on_stream(self, stream: ReceiveStream) -> None:
            """Answer the one request on a bidirectional stream."""
            if not isinstance(stream, Stream):
                stream.stop()
                return
            reply: ScoreReply | ErrorReply
            try:
                click = await stream.read_message(Click)
            except DecodeError as exc:
                reply = ErrorReply(code="invalid_request", message=str(exc))
            except MessageTooLarge:
                stream.stop(StreamErrorCode.MESSAGE_TOO_BIG)
                reply = ErrorReply(code="too_large", message="a request is at most 1024 bytes")
            else:
                reply = await self.count(click.username)
            await stream.write_message(reply)

        async def count(self, username: str) -> ScoreReply | ErrorReply:
            """Count one click, and answer only once the store has kept it."""
            try:
                score = await store.increment(username)
            except Exception:
                logger.exception("the score store failed")
                return ErrorReply(code="unavailable", message="the click was not saved")
            return ScoreReply(username=username, score=score)

    return app


app = create_app(SQLiteStore("clicker.db"))
"""The app `wtframe run` serves: scores in `clicker.db`, in the current directory."""
# --8<-- [end:app]


# --8<-- [start:tests]
def read_score(path: Path, username: str) -> int:
    """Read a score with a connection of our own, as a restarted server would."""
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT score FROM scores WHERE username = ?", (username,)).fetchone()
    return 0 if row is None else int(row[0])


async def test_an_acknowledged_click_is_committed(tmp_path: Path) -> None:
    """By the time a click is answered, any other connection to the file can see it."""
    path = tmp_path / "clicker.db"
    store = SQLiteStore(path)
    async with TestClient(create_app(store)) as client, client.connect("/clicker") as session:
        for expected in (1, 2, 3):
            reply = await session.send_request({"username": "alice"}, Reply)
            assert reply == ScoreReply(username="alice", score=expected)
            assert await asyncio.to_thread(read_score, path, "alice") == expected
    await store.close()


async def test_scores_survive_a_restart(tmp_path: Path) -> None:
    """A new server on the same file carries on from the old scores."""
    for expected in (1, 2):
        store = SQLiteStore(tmp_path / "clicker.db")
        async with TestClient(create_app(store)) as client:
            async with client.connect("/clicker") as session:
                reply = await session.send_request({"username": "bob"}, Reply)
        await store.close()
        assert reply.score == expected


class BrokenStore(MemoryStore):
    """A store whose disk is full."""

    async def increment(self, username: str) -> int:
        """Fail, as a full disk does."""
        raise sqlite3.OperationalError("database or disk is full")


async def test_a_failing_store_is_reported() -> None:
    """The player learns the click was not saved, and the session carries on."""
    async with TestClient(create_app(BrokenStore())) as client:
        async with client.connect("/clicker") as session:
            for _ in range(2):
                reply = await session.send_request({"username": "carol"}, Reply)
                assert isinstance(reply, ErrorReply) and reply.code == "unavailable"


# --8<-- [end:tests]


async def main() -> None:
    """Run every test of this file, one after the other."""
    logging.disable(logging.ERROR)  # the failing store's traceback is expected
    with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
        await test_an_acknowledged_click_is_committed(Path(first))
        await test_scores_survive_a_restart(Path(second))
    await test_a_failing_store_is_reported()
    print("all tests passed")


if __name__ == "__main__":
    asyncio.run(main())

"""Tutorial step 6: a live leaderboard, pushed to every session on a stream of its own.

Serve it with `wtframe run step6_leaderboard:app` (the scores go to `clicker.db`); run it
as a script to run its tests.
"""

from __future__ import annotations

# --8<-- [start:imports]
import asyncio
import logging
import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field
from store import MemoryStore, ScoreStore, SQLiteStore

from wtframe import (
    App,
    ClientSession,
    DecodeError,
    MessageTooLarge,
    ReceiveStream,
    SendStream,
    Session,
    Stream,
    StreamError,
    StreamErrorCode,
)
from wtframe.testing import TestClient

# --8<-- [end:imports]

__all__ = [
    "BoardEntry",
    "Click",
    "ErrorReply",
    "Leaderboard",
    "LeaderboardPush",
    "Reply",
    "ScoreReply",
    "app",
    "create_app",
    "test_a_page_may_stop_reading_the_board",
    "test_boards_are_throttled_and_the_latest_wins",
    "test_every_session_sees_every_click",
    "test_the_board_comes_at_once",
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


class ErrorReply(BaseModel):
    """Why a request was refused; nothing was counted."""

    type: Literal["error"] = "error"
    code: Literal["invalid_request", "too_large", "unavailable"]
    message: str


Reply = Annotated[ScoreReply | ErrorReply, Field(discriminator="type")]
MAX_REQUEST_SIZE = 1024


# --8<-- [start:models]
class BoardEntry(BaseModel):
    """One line of the leaderboard."""

    username: str
    score: int


class LeaderboardPush(BaseModel):
    """The top players, highest score first."""

    type: Literal["leaderboard"] = "leaderboard"
    top: list[BoardEntry]


# --8<-- [end:models]


# --8<-- [start:leaderboard]
class Leaderboard:
    """Tells every session that the scores changed, with one flag per session."""

    def __init__(self) -> None:
        self._flags: set[asyncio.Event] = set()

    def subscribe(self) -> asyncio.Event:
        """Return a new session's flag, already raised: its first board goes at once."""
        flag = asyncio.Event()
        flag.set()
        self._flags.add(flag)
        return flag

    def unsubscribe(self, flag: asyncio.Event) -> None:
        """Forget a session's flag."""
        self._flags.discard(flag)

    def changed(self) -> None:
        """Raise every session's flag. A flag raised twice is still one flag."""
        for flag in self._flags:
            flag.set()


# --8<-- [end:leaderboard]


# --8<-- [start:app]
def create_app(store: ScoreStore, *, board_interval: float = 0.1, board_size: int = 10) -> App:
    """Build the clicker on a score store; the caller opens and closes the store.

    Args:
        store: Where the scores are kept.
        board_interval: The shortest time between two boards sent to a session, in seconds.
        board_size: How many players a board shows.
    """
    app = App()
    leaderboard = Leaderboard()

    @app.session("/clicker")
    class Clicker(Session):
        """One player's session: answers clicks, and keeps the page's leaderboard fresh."""

        max_message_size = MAX_REQUEST_SIZE

        async def on_connect(self) -> None:
            """Accept the session, then open the leaderboard stream and start filling it."""
            await self.accept()  # streams can only be opened in an accepted session
            stream = await self.open_uni_stream()
            self.create_task(self.push_leaderboard(stream))

        async def push_leaderboard(self, stream: SendStream) -> None:
            """Send the board whenever scores changed, at most once per `board_interval`."""
            changed = leaderboard.subscribe()
            try:
                while True:
                    await changed.wait()
                    changed.clear()
                    top = await store.top(board_size)
                    entries = [BoardEntry(username=name, score=score) for name, score in top]
                    await stream.send(LeaderboardPush(top=entries))
                    await asyncio.sleep(board_interval)
            except StreamError:
                pass  # the page stopped reading the board; the session itself goes on
            finally:
                leaderboard.unsubscribe(changed)

        async def on_stream(self, stream: ReceiveStream) -> None:
            """Answer the one request on a bidirectional stream (as in step 5)."""
            # --8<-- [end:app]
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

        # --8<-- [start:count]
        async def count(self, username: str) -> ScoreReply | ErrorReply:
            """Count one click, answer once the store has kept it, and flag the change."""
            try:
                score = await store.increment(username)
            except Exception:
                logger.exception("the score store failed")
                return ErrorReply(code="unavailable", message="the click was not saved")
            leaderboard.changed()
            return ScoreReply(username=username, score=score)

    return app


app = create_app(SQLiteStore("clicker.db"))
# --8<-- [end:count]


# --8<-- [start:tests]
async def next_board(session: ClientSession) -> tuple[ReceiveStream, LeaderboardPush]:
    """Take the session's leaderboard stream and read the first board from it."""
    stream = await asyncio.wait_for(session.accept_stream(), 5)
    return stream, await asyncio.wait_for(stream.receive(LeaderboardPush), 5)


async def test_the_board_comes_at_once() -> None:
    """A new session gets the current board without asking."""
    store = MemoryStore()
    store.scores.update(alice=3, bob=5)
    async with TestClient(create_app(store)) as client, client.connect("/clicker") as session:
        _, board = await next_board(session)
    assert [(entry.username, entry.score) for entry in board.top] == [("bob", 5), ("alice", 3)]


async def test_every_session_sees_every_click() -> None:
    """A click in one session shows up on the board of another."""
    async with TestClient(create_app(MemoryStore())) as client:
        async with client.connect("/clicker") as player, client.connect("/clicker") as viewer:
            stream, board = await next_board(viewer)
            assert board.top == []
            await player.send_request({"username": "alice"}, Reply)
            board = await asyncio.wait_for(stream.receive(LeaderboardPush), 5)
    assert board.top == [BoardEntry(username="alice", score=1)]


async def test_boards_are_throttled_and_the_latest_wins() -> None:
    """Twenty quick clicks make a few boards, not twenty, and the last one is right."""
    app = create_app(MemoryStore(), board_interval=0.5)
    async with TestClient(app) as client:
        async with client.connect("/clicker") as player, client.connect("/clicker") as viewer:
            stream, board = await next_board(viewer)
            boards = 1
            for _ in range(20):
                await player.send_request({"username": "alice"}, Reply)
            while board.top != [BoardEntry(username="alice", score=20)]:
                board = await asyncio.wait_for(stream.receive(LeaderboardPush), 5)
                boards += 1
    assert boards <= 4


async def test_a_page_may_stop_reading_the_board() -> None:
    """A page that stops the board stream keeps its session and its clicks."""
    app = create_app(MemoryStore(), board_interval=0.01)
    async with TestClient(app) as client, client.connect("/clicker") as session:
        stream, _ = await next_board(session)
        stream.stop()  # STOP_SENDING: the server's next send fails
        for expected in (1, 2, 3):
            reply = await session.send_request({"username": "dave"}, Reply)
            assert reply == ScoreReply(username="dave", score=expected)
            await asyncio.sleep(0.05)
        assert not session.is_closed


# --8<-- [end:tests]


async def main() -> None:
    """Run every test of this file, one after the other."""
    await test_the_board_comes_at_once()
    await test_every_session_sees_every_click()
    await test_boards_are_throttled_and_the_latest_wins()
    await test_a_page_may_stop_reading_the_board()
    print("all tests passed")


if __name__ == "__main__":
    asyncio.run(main())

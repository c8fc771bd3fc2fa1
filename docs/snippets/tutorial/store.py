"""Tutorial step 5: where the scores live, in memory or in a SQLite file.

Run as a script, it checks both stores and that a SQLite score outlives its store.
"""

from __future__ import annotations

# --8<-- [start:imports]
import asyncio
import sqlite3
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

# --8<-- [end:imports]

__all__ = ["MemoryStore", "SQLiteStore", "ScoreStore"]

T = TypeVar("T")


# --8<-- [start:protocol]
class ScoreStore(Protocol):
    """What the app needs from a place that keeps scores."""

    async def increment(self, username: str) -> int:
        """Add one to the player's score and return the new score, once it is safe."""
        ...

    async def top(self, n: int) -> list[tuple[str, int]]:
        """Return up to `n` `(username, score)` pairs, highest score first."""
        ...

    async def close(self) -> None:
        """Release the store."""
        ...


# --8<-- [end:protocol]


# --8<-- [start:memory]
class MemoryStore:
    """Scores in a dict: for tests, forgotten when the process ends."""

    def __init__(self) -> None:
        self.scores: dict[str, int] = {}

    async def increment(self, username: str) -> int:
        """Add one to the player's score and return the new score."""
        self.scores[username] = score = self.scores.get(username, 0) + 1
        return score

    async def top(self, n: int) -> list[tuple[str, int]]:
        """Return up to `n` `(username, score)` pairs, highest score first."""
        return sorted(self.scores.items(), key=lambda item: (-item[1], item[0]))[:n]

    async def close(self) -> None:
        """Nothing to release."""


# --8<-- [end:memory]


# --8<-- [start:sqlite]
class SQLiteStore:
    """Scores in a SQLite file. Every database call runs in one worker thread.

    Args:
        path: The database file; created if missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._db: sqlite3.Connection | None = None

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in the worker thread; the event loop serves others meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, self._call, work)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:  # first call: open the file, in the worker thread
            self._db = sqlite3.connect(self.path)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")  # on disk at every commit
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS scores"
                " (username TEXT PRIMARY KEY, score INTEGER NOT NULL)"
            )
        return work(self._db)

    async def increment(self, username: str) -> int:
        """Add one to the player's score; return the new score once it is committed."""

        def work(db: sqlite3.Connection) -> int:
            with db:  # one transaction, committed when the block ends
                (score,) = db.execute(
                    "INSERT INTO scores VALUES (?, 1) ON CONFLICT (username)"
                    " DO UPDATE SET score = score + 1 RETURNING score",
                    (username,),
                ).fetchone()
            return int(score)

        return await self._run(work)

    async def top(self, n: int) -> list[tuple[str, int]]:
        """Return up to `n` `(username, score)` pairs, highest score first."""

        def work(db: sqlite3.Connection) -> list[tuple[str, int]]:
            rows = db.execute(
                "SELECT username, score FROM scores ORDER BY score DESC, username LIMIT ?",
                (n,),
            )
            return [(str(name), int(score)) for name, score in rows]

        return await self._run(work)

    async def close(self) -> None:
        """Close the database and stop the worker thread."""

        def work(db: sqlite3.Connection) -> None:
            db.close()

        if self._db is not None:
            await self._run(work)
        self._worker.shutdown()


# --8<-- [end:sqlite]


async def check() -> None:
    """Both stores count and rank alike; a SQLite score outlives its store."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "scores.db"
        for store in (MemoryStore(), SQLiteStore(path)):
            assert [await store.increment(name) for name in "abab"] == [1, 1, 2, 2]
            assert await store.increment("b") == 3
            assert await store.top(10) == [("b", 3), ("a", 2)]
            assert await store.top(1) == [("b", 3)]
            await store.close()
        reopened = SQLiteStore(path)
        assert await reopened.top(10) == [("b", 3), ("a", 2)]
        await reopened.close()


if __name__ == "__main__":
    asyncio.run(check())

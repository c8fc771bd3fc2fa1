"""Score persistence for the clicker example.

[`ScoreStore`][examples.clicker.store.ScoreStore] is the interface the app talks to.
[`MemoryStore`][examples.clicker.store.MemoryStore] keeps scores in a dict and suits tests;
[`SQLiteStore`][examples.clicker.store.SQLiteStore] keeps them in a SQLite file and answers an
increment only once it is committed, so an acknowledged click survives a crash of the server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, Self, TypeAlias, TypeVar

from wtframe.exceptions import ConfigurationError

__all__ = ["MemoryStore", "SQLiteStore", "ScoreStore", "StoreClosed", "Synchronous"]

Synchronous = Literal["NORMAL", "FULL"]
"""The `synchronous` levels [`SQLiteStore`][examples.clicker.store.SQLiteStore] accepts."""

_T = TypeVar("_T")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class StoreClosed(RuntimeError):
    """An operation was attempted on a score store after `close()`."""


class ScoreStore(Protocol):
    """Where the clicker keeps each player's score.

    A store is an async context manager: leaving the `async with` block closes it.
    """

    async def increment(self, username: str, by: int = 1) -> int:
        """Add `by` to the score of `username`, creating the player at 0 if unknown.

        Args:
            username: Any string; the store does not judge names.
            by: The amount to add.

        Returns:
            The new score. A durable store returns only once the change is durable.
        """
        ...

    async def get(self, username: str) -> int:
        """Return the score of `username`.

        Args:
            username: The player.

        Returns:
            The score, or 0 if the player is unknown.
        """
        ...

    async def top(self, n: int = 10) -> list[tuple[str, int]]:
        """Return the leaderboard.

        Args:
            n: How many entries to return at most.

        Returns:
            Up to `n` `(username, score)` pairs, highest score first, ties by name.
        """
        ...

    async def close(self) -> None:
        """Finish pending work and release the store; later calls raise `StoreClosed`."""
        ...

    async def __aenter__(self) -> Self:
        """Enter the `async with` block.

        Returns:
            The store itself.
        """
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store on leaving the `async with` block."""
        await self.close()


def _check_increment(username: str, by: int) -> None:
    """Refuse arguments no store can keep, before they reach a shared transaction.

    Raises:
        TypeError: If `username` is not a `str` or `by` is not an `int`.
        ValueError: If `username` is not encodable as UTF-8 (a lone surrogate) or `by` does
            not fit in a signed 64-bit integer.
    """
    if not isinstance(username, str):
        raise TypeError(f"username must be a str, not {type(username).__name__}")
    if not isinstance(by, int):
        raise TypeError(f"by must be an int, not {type(by).__name__}")
    if not _INT64_MIN <= by <= _INT64_MAX:
        raise ValueError(f"by={by} does not fit in a signed 64-bit integer")
    try:
        username.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"username {username!r} is not valid Unicode text") from exc


class MemoryStore(ScoreStore):
    """Scores in a dict: fast, forgotten when the process ends. For tests."""

    def __init__(self) -> None:
        self._scores: dict[str, int] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the score store is closed")

    async def increment(self, username: str, by: int = 1) -> int:
        """Add `by` to the score of `username`, creating the player at 0 if unknown.

        Args:
            username: Any string that is valid Unicode text.
            by: The amount to add, a signed 64-bit integer.

        Returns:
            The new score.

        Raises:
            StoreClosed: If the store is closed.
            TypeError: If an argument has the wrong type.
            ValueError: If `username` holds a lone surrogate or `by` is out of range.
        """
        self._check_open()
        _check_increment(username, by)
        score = self._scores.get(username, 0) + by
        self._scores[username] = score
        return score

    async def get(self, username: str) -> int:
        """Return the score of `username`.

        Args:
            username: The player.

        Returns:
            The score, or 0 if the player is unknown.

        Raises:
            StoreClosed: If the store is closed.
        """
        self._check_open()
        return self._scores.get(username, 0)

    async def top(self, n: int = 10) -> list[tuple[str, int]]:
        """Return the leaderboard.

        Args:
            n: How many entries to return at most; 0 or less gives an empty list.

        Returns:
            Up to `n` `(username, score)` pairs, highest score first, ties by name.

        Raises:
            StoreClosed: If the store is closed.
        """
        self._check_open()
        if n <= 0:
            return []
        return heapq.nsmallest(n, self._scores.items(), key=lambda item: (-item[1], item[0]))

    async def close(self) -> None:
        """Close the store; later calls raise `StoreClosed`. Closing twice is harmless."""
        self._closed = True


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS scores ("
    " username TEXT PRIMARY KEY,"
    " score INTEGER NOT NULL CHECK (typeof(score) = 'integer'))",
    "CREATE INDEX IF NOT EXISTS scores_rank ON scores (score DESC, username)",
)
_UPSERT = (
    "INSERT INTO scores (username, score) VALUES (?, ?)"
    " ON CONFLICT(username) DO UPDATE SET score = score + excluded.score"
    " RETURNING score"
)
_GET = "SELECT score FROM scores WHERE username = ?"
_TOP = "SELECT username, score FROM scores ORDER BY score DESC, username LIMIT ?"


@dataclass(slots=True)
class _Job(Generic[_T]):
    """One unit of work for the writer thread and the future that awaits its result."""

    run: Callable[[sqlite3.Connection], _T]
    future: asyncio.Future[_T]
    loop: asyncio.AbstractEventLoop
    write: bool


_Outcome: TypeAlias = "tuple[_Job[Any], Any, BaseException | None]"


def _settle(outcomes: list[_Outcome]) -> None:
    """Resolve futures on their event loop; futures whose caller gave up are skipped."""
    for job, value, error in outcomes:
        if job.future.done():
            continue
        if error is None:
            job.future.set_result(value)
        else:
            job.future.set_exception(error)


def _deliver(outcomes: list[_Outcome]) -> None:
    """Hand results to the event loops that wait for them, one thread-safe call per loop."""
    per_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        per_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, group in per_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, group)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _score_of(username: str, by: int) -> Callable[[sqlite3.Connection], int]:
    def run(conn: sqlite3.Connection) -> int:
        row = conn.execute(_UPSERT, (username, by)).fetchone()
        return int(row[0])

    return run


def _get_of(username: str) -> Callable[[sqlite3.Connection], int]:
    def run(conn: sqlite3.Connection) -> int:
        row = conn.execute(_GET, (username,)).fetchone()
        return 0 if row is None else int(row[0])

    return run


def _top_of(n: int) -> Callable[[sqlite3.Connection], list[tuple[str, int]]]:
    def run(conn: sqlite3.Connection) -> list[tuple[str, int]]:
        return [(str(name), int(score)) for name, score in conn.execute(_TOP, (n,))]

    return run


class SQLiteStore(ScoreStore):
    """Scores in a SQLite file (WAL mode), written by one thread in batched transactions.

    Every SQLite call runs in a single dedicated thread that owns the connection, so the
    event loop never waits on the disk. The thread takes the first queued job, keeps
    collecting jobs for `batch_window` seconds or until `max_batch` are in hand, runs all the
    increments of that batch in one transaction and commits it; only then are their futures
    resolved. Under load many clicks therefore share one commit (and one fsync), and a click
    is acknowledged only once it is on disk. If the transaction fails, exactly the increments
    of that batch fail with the exception and the store carries on with the next batch.

    Reads (`get`, `top`) go through the same thread and run after the batch's commit, on
    committed data only: a read issued after an acknowledged increment always sees it, and
    no read can report a value that a failed transaction then took back. The leaderboard is
    read far less often than clicks are written, so a second reading connection would add a
    thread and a second view of the data for no measurable gain.

    Durability: in WAL mode a commit has handed its pages to the operating system before it
    returns, so with either `synchronous` level an acknowledged increment survives the server
    process being killed (`kill -9`). `"FULL"`, the default, also fsyncs the WAL at every
    commit, so acknowledged increments survive a power loss or an operating-system crash too;
    since commits are batched, that fsync is paid once per batch rather than once per click.
    `"NORMAL"` skips it: faster on slow disks, but a power loss may lose the last
    acknowledged transactions (the database itself stays consistent).

    Scores are signed 64-bit integers; an increment that would leave that range fails (with
    `sqlite3.IntegrityError`) together with the rest of its batch.

    Args:
        path: The database file. Its directory must exist; the file is created if missing.
        batch_window: How long, in seconds, the writer gathers jobs after the first one
            before it commits. 0 commits whatever is already queued at once.
        max_batch: The largest number of jobs in one transaction.
        synchronous: SQLite's `synchronous` level, `"FULL"` or `"NORMAL"` (see above).

    Raises:
        ConfigurationError: If `batch_window`, `max_batch` or `synchronous` is invalid, or
            the SQLite library is older than 3.35 (no `RETURNING`).
        FileNotFoundError: If the directory of `path` does not exist.

    Attributes:
        path: The database file, as given.
        commits: How many transactions the store has committed so far.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_window: float = 0.002,
        max_batch: int = 512,
        synchronous: Synchronous = "FULL",
    ) -> None:
        if sqlite3.sqlite_version_info < (3, 35, 0):
            raise ConfigurationError(
                f"SQLiteStore needs SQLite 3.35 or newer, found {sqlite3.sqlite_version}"
            )
        if not batch_window >= 0:
            raise ConfigurationError(f"batch_window must be >= 0, not {batch_window}")
        if max_batch < 1:
            raise ConfigurationError(f"max_batch must be >= 1, not {max_batch}")
        if synchronous not in ("NORMAL", "FULL"):
            raise ConfigurationError(
                f"synchronous must be 'FULL' or 'NORMAL', not {synchronous!r}"
            )
        self.path = path
        self._file = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(self._file))
        if not os.path.isdir(directory):
            raise FileNotFoundError(
                f"cannot open the score database {self._file!r}: "
                f"directory {directory!r} does not exist"
            )
        self._batch_window = float(batch_window)
        self._max_batch = max_batch
        self._synchronous = synchronous
        self.commits = 0
        self._closed = False
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._opened: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._serve, name=f"SQLiteStore({self._file})", daemon=True
        )
        self._thread.start()

    async def __aenter__(self) -> Self:
        """Wait until the database is open, so a bad file fails here rather than later.

        Returns:
            The store itself.

        Raises:
            sqlite3.Error: If the database cannot be opened or prepared; the store is then
                closed.
        """
        try:
            await asyncio.wrap_future(self._opened)
        except BaseException:
            await self.close()
            raise
        return self

    async def increment(self, username: str, by: int = 1) -> int:
        """Add `by` to the score of `username` and wait until the change is committed.

        If the caller is cancelled while waiting, the increment may still be committed.

        Args:
            username: Any string that is valid Unicode text.
            by: The amount to add, a signed 64-bit integer.

        Returns:
            The new score, as committed.

        Raises:
            StoreClosed: If the store is closed.
            TypeError: If an argument has the wrong type.
            ValueError: If `username` holds a lone surrogate or `by` is out of range.
            sqlite3.Error: If the transaction holding this increment failed.
        """
        _check_increment(username, by)
        return await self._submit(_score_of(username, by), write=True)

    async def get(self, username: str) -> int:
        """Return the committed score of `username`.

        Args:
            username: The player.

        Returns:
            The score, or 0 if the player is unknown.

        Raises:
            StoreClosed: If the store is closed.
            sqlite3.Error: If the database cannot be read.
        """
        return await self._submit(_get_of(username), write=False)

    async def top(self, n: int = 10) -> list[tuple[str, int]]:
        """Return the committed leaderboard.

        Args:
            n: How many entries to return at most; 0 or less gives an empty list.

        Returns:
            Up to `n` `(username, score)` pairs, highest score first, ties by name
            (compared by code point).

        Raises:
            StoreClosed: If the store is closed.
            sqlite3.Error: If the database cannot be read.
        """
        if n <= 0:
            self._check_open()
            return []
        return await self._submit(_top_of(n), write=False)

    async def close(self) -> None:
        """Commit the work already queued, close the database and stop the writer thread.

        Later calls raise `StoreClosed`. Closing twice is harmless.
        """
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        await asyncio.wrap_future(self._stopped)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(f"the score store {self._file!r} is closed")

    async def _submit(self, run: Callable[[sqlite3.Connection], _T], *, write: bool) -> _T:
        self._check_open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._queue.put(_Job(run, future, loop, write))
        return await future

    # Everything below runs in the writer thread.

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._file, isolation_level=None)
        try:
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(
                    f"cannot put {self._file!r} in WAL mode (journal_mode is {mode})"
                )
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            for statement in _SCHEMA:
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    def _serve(self) -> None:
        conn: sqlite3.Connection | None = None
        open_error: BaseException | None = None
        try:
            try:
                conn = self._connect()
            except Exception as exc:
                open_error = exc
                self._opened.set_exception(exc)
            else:
                self._opened.set_result(None)
            stop = False
            while not stop:
                batch, stop = self._collect()
                if conn is None:
                    _deliver([(job, None, open_error) for job in batch])
                elif batch:
                    self._run_batch(conn, batch)
        finally:
            if conn is not None:
                conn.close()
            leftover: list[_Job[Any]] = []
            while True:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    leftover.append(job)
            closed = StoreClosed(f"the score store {self._file!r} is closed")
            _deliver([(job, None, closed) for job in leftover])
            self._stopped.set_result(None)

    def _collect(self) -> tuple[list[_Job[Any]], bool]:
        """Wait for a job, then gather more until the window ends or the batch is full.

        Returns:
            The batch, and whether the stop marker was reached.
        """
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self._batch_window
        while len(batch) < self._max_batch:
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    job = self._queue.get(timeout=remaining)
                else:
                    job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job[Any]]) -> None:
        writes = [job for job in batch if job.write]
        outcomes: list[_Outcome] = []
        if writes:
            try:
                conn.execute("BEGIN IMMEDIATE")
                values = [job.run(conn) for job in writes]
                conn.execute("COMMIT")
            except Exception as exc:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                outcomes.extend((job, None, exc) for job in writes)
            else:
                self.commits += 1
                outcomes.extend(
                    (job, value, None) for job, value in zip(writes, values, strict=True)
                )
        for job in batch:
            if job.write:
                continue
            try:
                outcomes.append((job, job.run(conn), None))
            except Exception as exc:
                outcomes.append((job, None, exc))
        _deliver(outcomes)

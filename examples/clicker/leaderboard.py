"""Pushing the leaderboard to every session: throttled, coalesced, latest state wins.

One [`Broadcaster`][examples.clicker.leaderboard.Broadcaster] serves all sessions. Every
committed click marks the board dirty; a background task reads `store.top()` at most once
per `interval`, encodes the board once and offers the same payload to every
[`BoardSender`][examples.clicker.leaderboard.BoardSender]. Each session's sender keeps only
the latest payload it was offered and writes it when its stream can take it, so a slow
session skips boards instead of queueing them, and never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from wtframe.exceptions import SessionClosed, StreamError

from .protocol import BoardEntry, LeaderboardPush, encode
from .store import ScoreStore

__all__ = ["BOARD_SIZE", "BoardSender", "Broadcaster", "MessageSink"]

logger = logging.getLogger("examples.clicker")

BOARD_SIZE = 10
"""How many players the leaderboard shows."""


class MessageSink(Protocol):
    """Where a sender writes boards: a [`SendStream`][wtframe.SendStream] in practice."""

    async def send(self, obj: bytes) -> None:
        """Send one framed message.

        Args:
            obj: The payload.
        """


class BoardSender:
    """Writes leaderboard payloads to one session's stream, keeping only the latest.

    Args:
        open_stream: Opens the session's unidirectional stream (`session.open_uni_stream`).
    """

    def __init__(self, open_stream: Callable[[], Awaitable[MessageSink]]) -> None:
        self._open_stream = open_stream
        self._latest: bytes | None = None
        self._wake = asyncio.Event()
        self.sent = 0
        """How many boards this sender has written."""

    def offer(self, payload: bytes) -> None:
        """Make `payload` the next board to send, replacing one not sent yet.

        Args:
            payload: The encoded leaderboard message.
        """
        self._latest = payload
        self._wake.set()

    async def run(self, broadcaster: Broadcaster) -> None:
        """Open the stream, subscribe, and send boards until cancelled or the stream fails.

        Args:
            broadcaster: Where the boards come from.
        """
        try:
            stream = await self._open_stream()
        except SessionClosed:
            return
        broadcaster.subscribe(self)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                payload, self._latest = self._latest, None
                if payload is not None:
                    await stream.send(payload)
                    self.sent += 1
        except (SessionClosed, StreamError):
            pass
        finally:
            broadcaster.unsubscribe(self)


class Broadcaster:
    """Reads the leaderboard when it changed, at most once per `interval`, for all sessions.

    The background task starts with the first subscriber and stops with the last one.

    Args:
        store: Where the scores are.
        interval: The shortest time between two reads of the board, in seconds.
        size: How many players the board shows.
    """

    def __init__(
        self, store: ScoreStore, *, interval: float = 0.1, size: int = BOARD_SIZE
    ) -> None:
        self.store = store
        self.interval = interval
        self.size = size
        self.reads = 0
        """How many times the board was read and offered to the subscribers."""
        self._senders: set[BoardSender] = set()
        self._dirty = asyncio.Event()
        self._board: bytes | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the background task is running (there are subscribers)."""
        return self._task is not None

    @property
    def subscribers(self) -> int:
        """How many senders are subscribed."""
        return len(self._senders)

    def mark_dirty(self) -> None:
        """Note that the scores changed: the board is read again within `interval`."""
        self._dirty.set()

    def subscribe(self, sender: BoardSender) -> None:
        """Add a sender and give it the current board (reading it first if needed).

        Args:
            sender: The session's sender.
        """
        if self._task is None:
            self._dirty = asyncio.Event()  # bound to the loop that runs the task
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._senders.add(sender)
        if self._board is not None:
            sender.offer(self._board)
        else:
            self._dirty.set()

    def unsubscribe(self, sender: BoardSender) -> None:
        """Remove a sender; the last one out stops the background task.

        Args:
            sender: The session's sender.
        """
        self._senders.discard(sender)
        if not self._senders and self._task is not None:
            self._task.cancel()
            self._task = None
            self._board = None

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                top = await self.store.top(self.size)
            except Exception:
                logger.exception("cannot read the leaderboard")
                self._dirty.set()  # try again after the interval
            else:
                board = LeaderboardPush(
                    top=[BoardEntry(username=name, score=score) for name, score in top]
                )
                self._board = payload = encode(board)
                self.reads += 1
                for sender in self._senders:
                    sender.offer(payload)
            await asyncio.sleep(self.interval)

    async def aclose(self) -> None:
        """Stop the background task now, whatever the subscribers."""
        task, self._task = self._task, None
        self._senders.clear()
        self._board = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

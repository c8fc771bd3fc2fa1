"""A load bot for the clicker: many players clicking at once, then a check of every score.

```
python -m examples.clicker.bot --url https://localhost:4433/clicker --cert-hash HEX --users 200
python -m examples.clicker.bot --launch --users 20 --clicks 10   # its own server
```

Each user has its own QUIC connection and session and clicks `--clicks` times, one
request/response at a time; a `rate_limited` reply is honoured by waiting `retry_after`
and sending the click again (it was not counted). At the end each user asks for its score
with a fresh `hello`, which must equal the number of clicks the server acknowledged.
Usernames carry a random prefix, so scores already in the database do not interfere.
The exit status is 0 only if every score matches and no request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import wtframe

from .app import PATH, create_app
from .protocol import Click, ErrorReply, Hello, Reply, ScoreReply
from .store import SQLiteStore

__all__ = ["BotResult", "UserResult", "launched_server", "main", "parse_args", "run_bot"]

REQUEST_TIMEOUT = 10.0
"""Seconds a request may take before the user gives up."""


@dataclass
class UserResult:
    """What one simulated user did."""

    username: str
    acknowledged: int = 0
    """Clicks the server answered with a score."""
    rate_limited: int = 0
    """Clicks refused with `rate_limited` (and sent again)."""
    final_score: int | None = None
    """The score the final `hello` reported."""
    error: str | None = None
    """Why the user stopped early, if it did."""

    @property
    def ok(self) -> bool:
        """Whether the user finished and its final score equals its acknowledged clicks."""
        return self.error is None and self.final_score == self.acknowledged


@dataclass
class BotResult:
    """The outcome of a bot run."""

    users: list[UserResult] = field(default_factory=list)
    elapsed: float = 0.0
    """Seconds from the first connection to the last final check."""

    @property
    def clicks(self) -> int:
        """Acknowledged clicks of all users."""
        return sum(user.acknowledged for user in self.users)

    @property
    def clicks_per_second(self) -> float:
        """Acknowledged clicks per second of wall time."""
        return self.clicks / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def failures(self) -> list[UserResult]:
        """The users that failed or whose score does not match."""
        return [user for user in self.users if not user.ok]


class _Progress:
    """Counts acknowledged clicks and reports them on stderr once a second."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.limited = 0
        self.started = time.monotonic()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (
            f"bot: {self.done}/{self.total} clicks, {self.done / elapsed:.0f} clicks/s, "
            f"{self.limited} rate-limited"
        )

    async def report(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            print(self.line(), file=sys.stderr, flush=True)


async def _request(session: wtframe.ClientSession, message: Click | Hello) -> ScoreReply | float:
    """Send one request; return the score, or the seconds to wait if rate-limited.

    Raises:
        RuntimeError: On any other error reply.
    """
    reply = await asyncio.wait_for(session.send_request(message, Reply), REQUEST_TIMEOUT)
    if isinstance(reply, ScoreReply):
        return reply
    assert isinstance(reply, ErrorReply)
    if reply.code != "rate_limited":
        raise RuntimeError(f"{reply.code}: {reply.message}")
    return reply.retry_after or 0.05


async def _play(
    url: str, cert_hash: str, result: UserResult, clicks: int, progress: _Progress
) -> None:
    try:
        async with wtframe.connect(url, cert_hash=cert_hash) as session:
            click = Click(username=result.username)
            last = 0
            while result.acknowledged < clicks:
                reply = await _request(session, click)
                if not isinstance(reply, ScoreReply):
                    result.rate_limited += 1
                    progress.limited += 1
                    await asyncio.sleep(reply)
                    continue
                if reply.score <= last:
                    raise RuntimeError(f"score went from {last} to {reply.score}")
                last = reply.score
                result.acknowledged += 1
                progress.done += 1
            final = await _request(session, Hello(username=result.username))
            if not isinstance(final, ScoreReply):
                raise RuntimeError("the final hello was rate-limited")
            result.final_score = final.score
    except Exception as exc:  # one user's failure is reported, not fatal to the others
        result.error = f"{type(exc).__name__}: {exc}"


async def run_bot(
    url: str, cert_hash: str, *, users: int, clicks: int, concurrency: int = 64
) -> BotResult:
    """Run the simulated users against a clicker server.

    Args:
        url: The clicker's WebTransport URL.
        cert_hash: The SHA-256 of the server's certificate, 64 hex digits.
        users: How many users, each with its own connection.
        clicks: How many acknowledged clicks each user makes.
        concurrency: How many users play at the same time.

    Returns:
        What every user did, and how long it took.
    """
    prefix = secrets.token_hex(3)
    outcome = BotResult([UserResult(f"bot-{prefix}-{i}") for i in range(users)])
    progress = _Progress(users * clicks)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(result: UserResult) -> None:
        async with gate:
            await _play(url, cert_hash, result, clicks, progress)

    reporter = asyncio.get_running_loop().create_task(progress.report())
    started = time.monotonic()
    try:
        await asyncio.gather(*(one(user) for user in outcome.users))
    finally:
        outcome.elapsed = time.monotonic() - started
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    return outcome


@contextlib.asynccontextmanager
async def launched_server(
    directory: Path, *, rate: float = 20.0, burst: int = 40
) -> AsyncIterator[tuple[str, str]]:
    """Serve the clicker on loopback with a SQLite database in `directory`.

    Args:
        directory: Where the database file goes.
        rate: Clicks per second per session.
        burst: Clicks at once per session.

    Yields:
        The WebTransport URL and the certificate hash.
    """
    async with SQLiteStore(directory / "clicker.db") as store:
        app = create_app(store, rate=rate, burst=burst)
        server = await wtframe.serve(app, "127.0.0.1", 0)
        try:
            yield server.url(PATH, host="127.0.0.1"), server.certificate.fingerprint
        finally:
            await server.shutdown(1.0)
            await app.leaderboard.aclose()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the bot's command line.

    Args:
        argv: The arguments; `sys.argv[1:]` when `None`.

    Returns:
        The options.
    """
    parser = argparse.ArgumentParser(
        prog="python -m examples.clicker.bot", description="Load-test the clicker."
    )
    parser.add_argument("--url", help="the clicker's WebTransport URL")
    parser.add_argument("--cert-hash", help="SHA-256 of the server certificate (hex)")
    parser.add_argument("--launch", action="store_true", help="start a server in-process")
    parser.add_argument("--users", type=int, default=20, help="simulated users (default 20)")
    parser.add_argument("--clicks", type=int, default=10, help="clicks per user (default 10)")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="users playing at once (default 64)"
    )
    options = parser.parse_args(argv)
    if not options.launch and not (options.url and options.cert_hash):
        parser.error("give --url and --cert-hash, or --launch")
    if options.users < 1 or options.clicks < 0:
        parser.error("--users must be at least 1 and --clicks at least 0")
    return options


async def _run(options: argparse.Namespace) -> BotResult:
    if not options.launch:
        return await run_bot(
            options.url,
            options.cert_hash,
            users=options.users,
            clicks=options.clicks,
            concurrency=options.concurrency,
        )
    with tempfile.TemporaryDirectory(prefix="clicker-bot-") as directory:
        async with launched_server(Path(directory)) as (url, cert_hash):
            print(f"bot: launched {url}", file=sys.stderr, flush=True)
            return await run_bot(
                url,
                cert_hash,
                users=options.users,
                clicks=options.clicks,
                concurrency=options.concurrency,
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bot and print the outcome.

    Args:
        argv: The arguments; `sys.argv[1:]` when `None`.

    Returns:
        The exit status: 0 if every score matched, 1 otherwise.
    """
    options = parse_args(argv)
    result = asyncio.run(_run(options))
    limited = sum(user.rate_limited for user in result.users)
    print(
        f"bot: {len(result.users)} users, {result.clicks} acknowledged clicks in "
        f"{result.elapsed:.2f} s = {result.clicks_per_second:.0f} clicks/s "
        f"({limited} rate-limited and resent)",
        flush=True,
    )
    failures = result.failures
    for user in failures[:10]:
        print(
            f"bot: MISMATCH {user.username}: acknowledged {user.acknowledged}, "
            f"final score {user.final_score}, error {user.error}",
            flush=True,
        )
    if failures:
        print(f"bot: {len(failures)} of {len(result.users)} users failed", flush=True)
        return 1
    print("bot: every final score matches the acknowledged clicks", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Tutorial step 7: the finished clicker in `examples/clicker`, checked end to end.

Run it as a script from the repository root: it tests the rate limit, the page server,
and then runs the launcher and the bot exactly as the tutorial shows.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from examples.clicker.app import create_app
from examples.clicker.protocol import ErrorReply, Reply, ScoreReply
from examples.clicker.ratelimit import TokenBucket
from examples.clicker.store import MemoryStore
from examples.clicker.web import PageServer, page_config
from wtframe.testing import TestClient

__all__ = [
    "test_clicks_are_rate_limited",
    "test_the_launcher_and_the_bot",
    "test_the_page_server",
    "test_the_token_bucket",
]

HASH = "ab" * 32
FREE_PORTS = ["--port", "0", "--http-port", "0"]


# --8<-- [start:bucket-test]
def test_the_token_bucket() -> None:
    """A burst of 3 goes through at once; then one more every half second."""
    now = 0.0
    bucket = TokenBucket(rate=2, burst=3, clock=lambda: now)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == 0.5  # refused: a token comes back in 0.5 s
    now += 0.5
    assert bucket.take() == 0.0


# --8<-- [end:bucket-test]


# --8<-- [start:ratelimit-test]
async def test_clicks_are_rate_limited() -> None:
    """The fourth click of a burst of three is refused, not counted, and says when to retry."""
    app = create_app(MemoryStore(), rate=1, burst=3)
    async with TestClient(app) as client, client.connect("/clicker") as session:
        for expected in (1, 2, 3):
            reply = await session.send_request({"type": "click", "username": "alice"}, Reply)
            assert reply == ScoreReply(username="alice", score=expected)
        refused = await session.send_request({"type": "click", "username": "alice"}, Reply)
        assert isinstance(refused, ErrorReply) and refused.code == "rate_limited"
        assert refused.retry_after is not None and 0 < refused.retry_after <= 1
        hello = await session.send_request({"type": "hello", "username": "alice"}, Reply)
        assert hello == ScoreReply(username="alice", score=3)
    await app.leaderboard.aclose()


# --8<-- [end:ratelimit-test]


# --8<-- [start:page-test]
def fetch(url: str) -> tuple[str, bytes]:
    """GET a URL; return its content type and body."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.headers["Content-Type"], response.read()


def test_the_page_server() -> None:
    """The page, `/wtframe.js` from the installed package, and `/config.json`."""
    config = page_config(4433, HASH)
    with PageServer(lambda: config, "127.0.0.1", 0) as pages:
        base = f"http://127.0.0.1:{pages.port}"
        kind, page = fetch(base + "/")
        assert kind.startswith("text/html") and b"/clicker.js" in page
        kind, module = fetch(base + "/wtframe.js")
        assert kind.startswith("text/javascript") and b"export async function connect" in module
        kind, body = fetch(base + "/config.json")
        assert json.loads(body) == {
            "url": "https://localhost:4433/clicker",
            "certificateHash": HASH,
        }


# --8<-- [end:page-test]


# --8<-- [start:launcher-test]
def test_the_launcher_and_the_bot() -> None:
    """`python -m examples.clicker`, then the bot against it, as the tutorial runs them."""
    with tempfile.TemporaryDirectory() as directory:
        database = str(Path(directory) / "clicker.db")
        launcher = subprocess.Popen(
            [sys.executable, "-m", "examples.clicker", "--db", database, *FREE_PORTS],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert launcher.stdout is not None
            lines = [launcher.stdout.readline().split() for _ in range(3)]
            assert lines[0][:2] == ["clicker:", "open"]
            assert lines[1][:3] == ["clicker:", "WebTransport", "at"]
            assert lines[2][:3] == ["clicker:", "certificate", "sha-256"]
            page, url, cert_hash = lines[0][-1], lines[1][-1], lines[2][-1]
            _, body = fetch(page + "config.json")
            assert json.loads(body) == {"url": url, "certificateHash": cert_hash}
            users = ["--users", "5", "--clicks", "10"]
            bot = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "examples.clicker.bot",
                    "--url",
                    url,
                    "--cert-hash",
                    cert_hash,
                    *users,
                ],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert bot.returncode == 0, bot.stdout + bot.stderr
            assert "every final score matches" in bot.stdout
        finally:
            launcher.send_signal(signal.SIGINT)
            try:
                _, errors = launcher.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                launcher.kill()
                raise
        assert launcher.returncode == 0, errors
        assert "clicker: stopped" in errors


# --8<-- [end:launcher-test]


async def main() -> None:
    """Run every test of this file, one after the other."""
    test_the_token_bucket()
    await test_clicks_are_rate_limited()
    await asyncio.to_thread(test_the_page_server)
    await asyncio.to_thread(test_the_launcher_and_the_bot)
    print("all tests passed")


if __name__ == "__main__":
    asyncio.run(main())

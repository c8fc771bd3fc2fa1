"""Shared helpers of the load scripts: start the clicker server, read scores back."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import wtframe  # noqa: E402
from examples.clicker.protocol import Hello, Reply, ScoreReply  # noqa: E402

__all__ = ["ROOT", "Server", "read_scores", "start_server"]


class Server:
    """A clicker server process (`python -m examples.clicker`) on loopback."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, cert_hash: str) -> None:
        self.process = process
        self.url = url
        self.cert_hash = cert_hash
        self.port = int(url.split(":")[2].split("/")[0])

    async def stop(self) -> int:
        """SIGTERM, as a service manager would; return the exit status."""
        if self.process.returncode is None:
            self.process.terminate()
        return await self.process.wait()

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


async def start_server(
    database: Path, *, grace: float = 2.0, board_interval: float = 1.0
) -> Server:
    """Start the clicker (`serve_clicker.py`) on 127.0.0.1 with no rate limit to speak of."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).resolve().parent / "serve_clicker.py"),
        *("--db", str(database), "--grace", str(grace)),
        *("--board-interval", str(board_interval)),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    url = cert_hash = ""
    while not (url and cert_hash):
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        if not line:
            raise RuntimeError("the clicker server exited during start-up")
        if match := re.search(r"WebTransport at (\S+)", line):
            url = match[1].replace("localhost", "127.0.0.1")
        if match := re.search(r"certificate sha-256 (\S+)", line):
            cert_hash = match[1]
    return Server(process, url, cert_hash)


async def read_scores(
    url: str, cert_hash: str, names: list[str], *, concurrency: int = 50
) -> dict[str, int]:
    """Ask the server for each player's score with a `hello` (counts nothing)."""
    gate = asyncio.Semaphore(concurrency)
    scores: dict[str, int] = {}

    async def one(name: str) -> None:
        async with gate, wtframe.connect(url, cert_hash=cert_hash) as session:
            reply = await asyncio.wait_for(session.send_request(Hello(username=name), Reply), 30)
            assert isinstance(reply, ScoreReply), reply
            scores[name] = reply.score

    await asyncio.gather(*(one(name) for name in names))
    return scores

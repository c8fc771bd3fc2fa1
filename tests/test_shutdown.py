"""Graceful shutdown under load: DRAIN, grace, 1001, 503 meanwhile, no acknowledged click lost."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from examples.clicker.app import PATH, create_app
from examples.clicker.protocol import Click, Reply, ScoreReply
from examples.clicker.store import SQLiteStore
from wtframe import App, ClientSession, CloseCode, HandshakeError, Session, connect, serve
from wtframe.testing import TestClient

ROOT = Path(__file__).resolve().parent.parent
WAIT = 10.0


@dataclass
class Player:
    """One clicking client: what the server acknowledged, and how it ended."""

    username: str
    acknowledged: int = 0
    error: str | None = None
    drained: bool = False
    close_code: int | None = None


async def play(url: str, cert_hash: str, player: Player, stop: asyncio.Event) -> None:
    """Click as fast as answers come until the session ends (or `stop` is set)."""
    session: ClientSession | None = None
    try:
        session = await connect(url, cert_hash=cert_hash)
        while not stop.is_set():
            reply = await asyncio.wait_for(
                session.send_request(Click(username=player.username), Reply), WAIT
            )
            assert isinstance(reply, ScoreReply), reply
            assert reply.score == player.acknowledged + 1
            player.acknowledged += 1
            player.drained = player.drained or session.is_draining
    except Exception as exc:  # the session ending mid-click is the expected way out
        player.error = type(exc).__name__
    finally:
        if session is not None:
            player.close_code = session.close_code
            await session.close()


async def scores(database: Path, names: list[str]) -> dict[str, int]:
    async with SQLiteStore(database) as store:
        return {name: await store.get(name) for name in names}


def check_no_click_lost(players: list[Player], found: dict[str, int]) -> None:
    """Every acknowledged click is stored; at most the one in flight was stored unanswered."""
    for player in players:
        assert player.acknowledged <= found[player.username] <= player.acknowledged + 1, player
    assert sum(player.acknowledged for player in players) > 0


async def test_shutdown_under_load_loses_no_acknowledged_click(tmp_path: Path) -> None:
    database = tmp_path / "scores.db"
    players = [Player(f"p{i}") for i in range(24)]
    async with SQLiteStore(database) as store:
        app = create_app(store, rate=10_000, burst=10_000)
        server = await serve(app, "127.0.0.1", 0)
        url = server.url(PATH, host="127.0.0.1")
        cert_hash = server.certificate.fingerprint
        never = asyncio.Event()
        clicking = [asyncio.ensure_future(play(url, cert_hash, p, never)) for p in players]
        while sum(p.acknowledged for p in players) < 500:
            await asyncio.sleep(0.02)
        shutdown = asyncio.ensure_future(server.shutdown(grace=0.5))
        await asyncio.sleep(0.1)
        assert server.shutting_down
        with pytest.raises(HandshakeError) as info:  # new sessions: 503 during the grace
            await connect(url, cert_hash=cert_hash)
        assert info.value.status == 503
        at_grace = sum(p.acknowledged for p in players)
        await asyncio.wait_for(shutdown, WAIT)
        await asyncio.wait_for(asyncio.gather(*clicking), WAIT)
        await app.leaderboard.aclose()
    # Clicks kept being served during the grace period, then every session got 1001.
    assert sum(p.acknowledged for p in players) > at_grace
    assert all(p.drained for p in players)
    assert {p.close_code for p in players} == {CloseCode.GOING_AWAY}
    check_no_click_lost(players, await scores(database, [p.username for p in players]))


async def test_sigterm_on_the_clicker_loses_no_acknowledged_click(tmp_path: Path) -> None:
    database = tmp_path / "scores.db"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "examples.clicker",
        *("--db", str(database), "--host", "127.0.0.1", "--port", "0"),
        *("--http-host", "127.0.0.1", "--http-port", "0", "--grace", "0.5"),
        *("--rate", "10000", "--burst", "10000"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = cert_hash = ""
        assert process.stdout is not None
        while not (url and cert_hash):
            line = (await asyncio.wait_for(process.stdout.readline(), WAIT)).decode()
            assert line, "the clicker exited early"
            if m := re.search(r"WebTransport at (\S+)", line):
                url = m[1].replace("localhost", "127.0.0.1")
            if m := re.search(r"certificate sha-256 (\S+)", line):
                cert_hash = m[1]
        players = [Player(f"t{i}") for i in range(16)]
        never = asyncio.Event()
        clicking = [asyncio.ensure_future(play(url, cert_hash, p, never)) for p in players]
        while sum(p.acknowledged for p in players) < 300:
            await asyncio.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), WAIT) == 0
        await asyncio.wait_for(asyncio.gather(*clicking), WAIT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert {p.close_code for p in players} == {CloseCode.GOING_AWAY}
    check_no_click_lost(players, await scores(database, [p.username for p in players]))
    assert sqlite3.connect(database).execute("PRAGMA integrity_check").fetchone() == ("ok",)


class Worker(Session):
    """Answers "state?" with whether the server is shutting down."""

    seen: ClassVar[list[bool]]

    async def on_datagram(self, data: bytes) -> None:
        self.send_datagram(b"draining" if self.server_draining else b"serving")


async def test_sessions_know_the_server_is_draining() -> None:
    gate = asyncio.Event()

    class Late(Worker):
        async def on_connect(self) -> None:
            await gate.wait()

    app = App()
    app.add_session("/w", Worker)
    app.add_session("/late", Late)
    async with TestClient(app, grace=5) as client, client.connect("/w") as session:
        session.send_datagram(b"state?")
        assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"serving"
        late = asyncio.ensure_future(client.connect("/late"))
        await asyncio.sleep(0.1)
        shutdown = asyncio.ensure_future(client.server.shutdown(5))
        await asyncio.sleep(0.1)
        session.send_datagram(b"state?")
        assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"draining"
        assert session.is_draining
        # A session accepted during the grace period is drained at once.
        gate.set()
        late_session = await asyncio.wait_for(late, WAIT)
        await asyncio.sleep(0.1)
        assert late_session.is_draining
        await late_session.close()
        # end_grace() closes what is left without waiting for the rest of the grace.
        started = asyncio.get_running_loop().time()
        client.server.end_grace()
        code, _ = await asyncio.wait_for(session.wait_closed(), WAIT)
        assert code == CloseCode.GOING_AWAY
        await asyncio.wait_for(shutdown, WAIT)
        assert asyncio.get_running_loop().time() - started < 1


APP_MODULE = textwrap.dedent(
    """
    import asyncio
    from wtframe import App, Session

    app = App()

    @app.session("/work")
    class Work(Session):
        async def on_datagram(self, data: bytes) -> None:
            if data == b"slow":
                await asyncio.sleep(0.3)  # in flight when the signal comes
                self.send_datagram(b"slow done")
            else:
                self.send_datagram(b"draining" if self.server_draining else b"serving")
    """
)


async def start_wtframe_run(
    tmp_path: Path, grace: float
) -> tuple[asyncio.subprocess.Process, str]:
    (tmp_path / "sigapp.py").write_text(APP_MODULE)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wtframe",
        "run",
        "sigapp:app",
        *("--host", "127.0.0.1", "--port", "0", "--grace", str(grace)),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    port = ""
    while not port:
        line = (await asyncio.wait_for(process.stdout.readline(), WAIT)).decode()
        assert line, "wtframe run exited early"
        if m := re.search(r"serving https://[^:]+:(\d+)", line):
            port = m[1]
    return process, port


async def test_wtframe_run_drains_on_sigterm(tmp_path: Path) -> None:
    process, port = await start_wtframe_run(tmp_path, grace=1.0)
    try:
        url = f"https://127.0.0.1:{port}/work"
        # The process made its own certificate: skip verification for this loopback test.
        session: ClientSession = await connect(url, verify=False)
        session.send_datagram(b"state?")
        assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"serving"
        session.send_datagram(b"slow")
        await asyncio.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        for _ in range(200):
            if session.is_draining:
                break
            await asyncio.sleep(0.01)
        assert session.is_draining
        assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"slow done"
        session.send_datagram(b"state?")
        assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"draining"
        with pytest.raises(HandshakeError) as info:
            await connect(url, verify=False)
        assert info.value.status == 503
        code, _ = await asyncio.wait_for(session.wait_closed(), WAIT)
        assert code == CloseCode.GOING_AWAY
        assert await asyncio.wait_for(process.wait(), WAIT) == 0
        await session.close()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_second_sigterm_ends_the_grace_period(tmp_path: Path) -> None:
    process, port = await start_wtframe_run(tmp_path, grace=60.0)
    try:
        session = await connect(f"https://127.0.0.1:{port}/work", verify=False)
        loop = asyncio.get_running_loop()
        process.send_signal(signal.SIGTERM)
        for _ in range(200):
            if session.is_draining:
                break
            await asyncio.sleep(0.01)
        assert session.is_draining
        started = loop.time()
        process.send_signal(signal.SIGTERM)
        code, _ = await asyncio.wait_for(session.wait_closed(), WAIT)
        assert code == CloseCode.GOING_AWAY
        assert await asyncio.wait_for(process.wait(), WAIT) == 0
        assert loop.time() - started < 5
        await session.close()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

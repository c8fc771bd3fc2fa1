from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import wtframe
from examples.clicker.app import MAX_REQUEST_SIZE, PATH, ClickerApp, create_app
from examples.clicker.leaderboard import BoardSender, Broadcaster
from examples.clicker.protocol import LeaderboardPush, normalize_username
from examples.clicker.ratelimit import TokenBucket
from examples.clicker.store import MemoryStore, ScoreStore, SQLiteStore
from examples.clicker.web import STATIC_DIR, PageServer, page_config
from wtframe.assets import BROWSER_MODULE, browser_module
from wtframe.exceptions import ConfigurationError
from wtframe.testing import TestClient

__all__: list[str] = []

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScoreStore]:
    opened: ScoreStore = (
        MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "scores.db")
    )
    async with opened:
        yield opened


async def ask(session: wtframe.ClientSession, message: Any) -> dict[str, Any]:
    """Send one request (an object as JSON, or raw bytes) and return the decoded reply."""
    payload = message if isinstance(message, bytes) else json.dumps(message).encode()
    reply: dict[str, Any] = await asyncio.wait_for(session.send_request(payload, Any), 10)
    return reply


def click(name: str) -> dict[str, str]:
    return {"type": "click", "username": name}


def hello(name: str) -> dict[str, str]:
    return {"type": "hello", "username": name}


async def board_stream(session: wtframe.ClientSession) -> wtframe.ReceiveStream:
    """The server's leaderboard stream, opened right after the session is accepted."""
    return await asyncio.wait_for(session.accept_stream(), 5)


async def next_board(stream: wtframe.ReceiveStream, timeout: float = 5) -> list[tuple[str, int]]:
    push = await asyncio.wait_for(stream.receive(LeaderboardPush), timeout)
    return [(entry.username, entry.score) for entry in push.top]


# --- requests ---------------------------------------------------------------------------------


async def test_click_adds_exactly_one_and_hello_reads(store: ScoreStore) -> None:
    async with TestClient(create_app(store)) as client, client.connect(PATH) as session:
        assert await ask(session, hello("alice")) == {
            "type": "score",
            "username": "alice",
            "score": 0,
        }
        for expected in (1, 2, 3):
            reply = await ask(session, click("alice"))
            assert reply == {"type": "score", "username": "alice", "score": expected}
            assert await store.get("alice") == expected
        assert (await ask(session, hello("alice")))["score"] == 3
        assert (await ask(session, hello("alice")))["score"] == 3
        assert await store.get("alice") == 3
        assert await store.get("bob") == 0


async def test_click_is_acknowledged_only_after_the_commit(tmp_path: Path) -> None:
    path = tmp_path / "scores.db"
    async with SQLiteStore(path) as store:
        app = create_app(store)
        async with TestClient(app) as client, client.connect(PATH) as session:
            for expected in range(1, 6):
                assert (await ask(session, click("carol")))["score"] == expected
                # An independent connection sees the committed value as soon as the reply is in.
                with contextlib.closing(sqlite3.connect(path)) as reader:
                    row = reader.execute(
                        "SELECT score FROM scores WHERE username = ?", ("carol",)
                    ).fetchone()
                assert row == (expected,)


async def test_usernames_are_normalised(store: ScoreStore) -> None:
    async with TestClient(create_app(store)) as client, client.connect(PATH) as session:
        assert (await ask(session, click("  Zoë   Ng ")))["username"] == "Zoë Ng"
        decomposed = "Zoe\u0308 Ng"  # e + combining diaeresis: NFC makes it ë
        assert await ask(session, click(decomposed)) == {
            "type": "score",
            "username": "Zoë Ng",
            "score": 2,
        }
        for name in ("अनिल", "Ωmega_1.x-y", "李小龙", "x" * 32, "٣٤"):
            assert (await ask(session, click(name)))["username"] == name


BAD_REQUESTS: list[tuple[str, bytes, str]] = [
    ("syntax", b'{"type": "click", ', "invalid_json"),
    ("not utf-8", b"\xff\xfe", "invalid_json"),
    ("empty stream", b"", "invalid_json"),
    ("array", b'[{"type": "click", "username": "alice"}]', "invalid_json"),
    ("string", b'"click"', "invalid_json"),
    ("lone surrogate", b'{"type": "click", "username": "\\ud800"}', "invalid_json"),
    ("no type", b'{"username": "alice"}', "unknown_type"),
    ("unknown type", b'{"type": "reset", "username": "alice"}', "unknown_type"),
    ("numeric type", b'{"type": 1, "username": "alice"}', "unknown_type"),
    ("no username", b'{"type": "click"}', "invalid_username"),
    ("null username", b'{"type": "click", "username": null}', "invalid_username"),
    ("numeric username", b'{"type": "click", "username": 7}', "invalid_username"),
    ("empty username", b'{"type": "click", "username": ""}', "invalid_username"),
    ("blank username", b'{"type": "click", "username": " \\t "}', "invalid_username"),
    ("33 characters", json.dumps(click("y" * 33)).encode(), "invalid_username"),
    ("zero-width space", json.dumps(click("ali\u200bce")).encode(), "invalid_username"),
    ("zero-width joiner", json.dumps(click("ali\u200dce")).encode(), "invalid_username"),
    ("right-to-left override", json.dumps(click("ali\u202ece")).encode(), "invalid_username"),
    ("NUL", json.dumps(click("ali\x00ce")).encode(), "invalid_username"),
    ("newline", json.dumps(click("ali\nce")).encode(), "invalid_username"),
    ("tab", json.dumps(click("ali\tce")).encode(), "invalid_username"),
    ("no-break space", json.dumps(click("ali\u00a0ce")).encode(), "invalid_username"),
    ("emoji", json.dumps(click("alice\U0001f600")).encode(), "invalid_username"),
    ("markup", json.dumps(click("<b>alice</b>")).encode(), "invalid_username"),
    ("leading mark", json.dumps(click("\u0301alice")).encode(), "invalid_username"),
    ("private use", json.dumps(click("ali\ue000ce")).encode(), "invalid_username"),
    ("hello, bad name", json.dumps(hello("a\u200bb")).encode(), "invalid_username"),
    (
        "too large",
        json.dumps(click("z" * MAX_REQUEST_SIZE)).encode(),
        "too_large",
    ),
]


@pytest.mark.parametrize(
    ("payload", "code"),
    [pytest.param(payload, code, id=name) for name, payload, code in BAD_REQUESTS],
)
async def test_bad_requests_get_an_error_and_count_nothing(
    store: ScoreStore, payload: bytes, code: str
) -> None:
    app = create_app(store)
    async with TestClient(app) as client, client.connect(PATH) as session:
        assert (await ask(session, click("alice")))["score"] == 1
        reply = await ask(session, payload)
        assert reply["type"] == "error"
        assert reply["code"] == code
        assert isinstance(reply["message"], str) and reply["message"]
        assert "retry_after" not in reply
        # The session carries on, and no score changed.
        assert (await ask(session, hello("alice")))["score"] == 1
        assert await store.top() == [("alice", 1)]


def test_normalize_username_rules() -> None:
    assert normalize_username(" a  b ") == "a b"
    assert normalize_username("e\u0301") == "\u00e9"
    assert normalize_username("क्षि") == "क्षि"  # virama and vowel sign follow letters
    for bad in ("", "   ", "a" * 33, "a\u200bb", "a\u2028b", "a\U000e0041", "°", "a/b"):
        with pytest.raises(ValueError):
            normalize_username(bad)


async def test_a_failing_store_gets_unavailable_not_a_crash() -> None:
    store = MemoryStore()
    app = create_app(store)
    async with TestClient(app) as client, client.connect(PATH) as session:
        assert (await ask(session, click("alice")))["score"] == 1
        await store.close()
        reply = await ask(session, click("alice"))
        assert (reply["type"], reply["code"]) == ("error", "unavailable")
        assert not session.is_closed


async def test_unidirectional_streams_from_clients_are_refused(store: ScoreStore) -> None:
    async with TestClient(create_app(store)) as client, client.connect(PATH) as session:
        stream = await session.open_uni_stream()
        await stream.write_message(json.dumps(click("alice")).encode())
        assert (await ask(session, hello("alice")))["score"] == 0
        assert await store.get("alice") == 0


# --- rate limiting ----------------------------------------------------------------------------


def test_token_bucket_bursts_then_refills() -> None:
    now = [100.0]
    bucket = TokenBucket(4.0, 3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.25)
    now[0] += 0.1
    assert bucket.take() == pytest.approx(0.15)
    now[0] += 0.15
    assert bucket.take() == 0.0
    now[0] += 100
    assert [bucket.take() for _ in range(4)][-1] == pytest.approx(0.25)  # capped at the burst
    with pytest.raises(ConfigurationError):
        TokenBucket(0, 1)
    with pytest.raises(ConfigurationError):
        TokenBucket(1, 0)


async def test_rate_limit_refuses_clicks_over_the_burst_then_recovers(store: ScoreStore) -> None:
    app = create_app(store, rate=5.0, burst=3)
    async with TestClient(app) as client, client.connect(PATH) as session:
        for expected in (1, 2, 3):
            assert (await ask(session, click("dave")))["score"] == expected
        limited = await ask(session, click("dave"))
        assert (limited["type"], limited["code"]) == ("error", "rate_limited")
        assert 0 < limited["retry_after"] <= 0.2 + 0.001
        assert await store.get("dave") == 3
        # hello is not limited and shows nothing was counted.
        assert (await ask(session, hello("dave")))["score"] == 3
        await asyncio.sleep(limited["retry_after"] + 0.02)
        assert (await ask(session, click("dave")))["score"] == 4
        assert (await ask(session, click("dave")))["code"] == "rate_limited"
        # Another session has its own bucket.
        async with client.connect(PATH) as other:
            assert (await ask(other, click("dave")))["score"] == 5


async def test_concurrent_clicks_over_the_limit_are_counted_exactly(store: ScoreStore) -> None:
    app = create_app(store, rate=1.0, burst=10)
    async with TestClient(app) as client, client.connect(PATH) as session:
        replies = await asyncio.gather(*(ask(session, click("erin")) for _ in range(25)))
        scores = sorted(reply["score"] for reply in replies if reply["type"] == "score")
        limited = [reply for reply in replies if reply["type"] == "error"]
        assert scores == list(range(1, len(scores) + 1))
        assert 10 <= len(scores) <= 11
        assert all(reply["code"] == "rate_limited" for reply in limited)
        assert await store.get("erin") == len(scores)


def test_create_app_checks_its_options() -> None:
    store = MemoryStore()
    for options in ({"rate": 0.0}, {"burst": 0}, {"board_interval": -1.0}):
        with pytest.raises(ConfigurationError):
            create_app(store, **options)
    app = create_app(store)
    assert isinstance(app, ClickerApp)
    assert app.router.match(PATH) is not None


# --- leaderboard ------------------------------------------------------------------------------


async def test_leaderboard_is_pushed_on_connect_and_after_clicks(store: ScoreStore) -> None:
    await store.increment("zed", 2)
    app = create_app(store, board_interval=0.05)
    async with TestClient(app) as client, client.connect(PATH) as session:
        board = await board_stream(session)
        assert board.is_unidirectional
        assert await next_board(board) == [("zed", 2)]
        await ask(session, click("amy"))
        await ask(session, click("amy"))
        await ask(session, click("amy"))
        seen = await next_board(board)
        while seen[0] != ("amy", 3):
            seen = await next_board(board)
        assert seen == [("amy", 3), ("zed", 2)]


async def test_leaderboard_pushes_are_coalesced(store: ScoreStore) -> None:
    app = create_app(store, board_interval=0.25)
    async with TestClient(app) as client, client.connect(PATH) as session:
        board = await board_stream(session)
        assert await next_board(board) == []
        replies = await asyncio.gather(*(ask(session, click("fay")) for _ in range(30)))
        assert sorted(reply["score"] for reply in replies) == list(range(1, 31))
        pushes = [await next_board(board)]
        while pushes[-1] != [("fay", 30)]:
            pushes.append(await next_board(board))
        assert len(pushes) <= 3, pushes
        assert app.leaderboard.reads <= 4
        with pytest.raises(asyncio.TimeoutError):  # nothing changed, so nothing is pushed
            await next_board(board, timeout=0.6)


async def test_a_second_session_sees_the_first_players_score(store: ScoreStore) -> None:
    app = create_app(store, board_interval=0.05)
    async with TestClient(app) as client, client.connect(PATH) as first:
        first_board = await board_stream(first)
        await next_board(first_board)
        for _ in range(7):
            await ask(first, click("gus"))
        while await next_board(first_board) != [("gus", 7)]:
            pass
        async with client.connect(PATH) as second:
            second_board = await board_stream(second)
            assert await next_board(second_board) == [("gus", 7)]
            await ask(second, click("hal"))
            for stream in (first_board, second_board):
                while await next_board(stream) != [("gus", 7), ("hal", 1)]:
                    pass
            assert app.leaderboard.subscribers == 2


async def test_leaderboard_shows_the_top_ten(store: ScoreStore) -> None:
    for i in range(12):
        await store.increment(f"p{i:02d}", i + 1)
    app = create_app(store)
    async with TestClient(app) as client, client.connect(PATH) as session:
        board = await next_board(await board_stream(session))
        assert board == [(f"p{i:02d}", i + 1) for i in range(11, 1, -1)]


async def test_broadcaster_runs_only_while_there_are_sessions(store: ScoreStore) -> None:
    app = create_app(store, board_interval=0.01)
    assert not app.leaderboard.running
    async with TestClient(app) as client:
        async with client.connect(PATH) as one, client.connect(PATH) as two:
            for session in (one, two):
                await next_board(await board_stream(session))
            assert app.leaderboard.running
            assert app.leaderboard.subscribers == 2
        for _ in range(200):
            if not app.leaderboard.running:
                break
            await asyncio.sleep(0.01)
        assert not app.leaderboard.running
        assert app.leaderboard.subscribers == 0
        async with client.connect(PATH) as three:
            await ask(three, click("ivy"))
            board = await session_board(three)
            assert board == [("ivy", 1)]


async def session_board(session: wtframe.ClientSession) -> list[tuple[str, int]]:
    stream = await board_stream(session)
    seen = await next_board(stream)
    while not seen:
        seen = await next_board(stream)
    return seen


class SlowSink:
    """A stream that takes its time: each send waits until the test lets it go."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.gate = asyncio.Event()

    async def send(self, obj: bytes) -> None:
        await self.gate.wait()
        self.gate.clear()
        self.sent.append(obj)


async def test_a_slow_session_gets_only_the_latest_board() -> None:
    store = MemoryStore()
    broadcaster = Broadcaster(store, interval=0)
    sink = SlowSink()

    async def open_sink() -> SlowSink:
        return sink

    sender = BoardSender(open_sink)
    task = asyncio.get_running_loop().create_task(sender.run(broadcaster))
    try:
        while broadcaster.subscribers == 0:
            await asyncio.sleep(0)
        while broadcaster.reads == 0:
            await asyncio.sleep(0.001)
        # The first board is being sent; meanwhile three more are offered.
        for board in (b"one", b"two", b"three"):
            sender.offer(board)
        sink.gate.set()
        while len(sink.sent) < 1:
            await asyncio.sleep(0.001)
        sink.gate.set()
        while len(sink.sent) < 2:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.02)
        assert sink.sent[1:] == [b"three"]
        assert sender.sent == 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert broadcaster.subscribers == 0
    assert not broadcaster.running


# --- persistence ------------------------------------------------------------------------------


async def test_scores_survive_a_server_restart_on_the_same_database(tmp_path: Path) -> None:
    path = tmp_path / "scores.db"
    async with SQLiteStore(path) as store:
        async with TestClient(create_app(store)) as client, client.connect(PATH) as session:
            for _ in range(5):
                await ask(session, click("jo"))
    async with SQLiteStore(path) as store:
        app = create_app(store)
        async with TestClient(app) as client, client.connect(PATH) as session:
            assert await next_board(await board_stream(session)) == [("jo", 5)]
            assert (await ask(session, hello("jo")))["score"] == 5
            assert (await ask(session, click("jo")))["score"] == 6


# --- page server, launcher and bot ------------------------------------------------------------


def fetch(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.headers["Content-Type"], response.read()


def test_assets_ship_the_browser_module() -> None:
    source = REPO_ROOT / "wtframe" / "static" / "wtframe.js"
    assert BROWSER_MODULE.is_file()
    assert browser_module() == source.read_bytes()
    assert b"export async function connect" in browser_module()


def test_page_server_serves_page_module_and_config() -> None:
    config = page_config(4433, "ab" * 32)
    with PageServer(lambda: config, "::1", 0) as pages:
        assert pages.url() == f"http://localhost:{pages.port}/"
        status, content_type, body = fetch(f"http://[::1]:{pages.port}/")
        assert (status, content_type) == (200, "text/html; charset=utf-8")
        assert body == (STATIC_DIR / "index.html").read_bytes()
        status, content_type, body = fetch(f"http://[::1]:{pages.port}/wtframe.js")
        assert content_type.startswith("text/javascript") and body == browser_module()
        status, content_type, body = fetch(f"http://[::1]:{pages.port}/clicker.js")
        assert content_type.startswith("text/javascript") and b'from "/wtframe.js"' in body
        status, content_type, body = fetch(f"http://[::1]:{pages.port}/config.json?t=1")
        assert content_type == "application/json"
        assert json.loads(body) == {
            "url": "https://localhost:4433/clicker",
            "certificateHash": "ab" * 32,
        }
        config["url"] = "https://localhost:5000/clicker"  # read again on every request
        assert json.loads(fetch(f"http://[::1]:{pages.port}/config.json")[2])["url"].endswith(
            ":5000/clicker"
        )
        with pytest.raises(urllib.error.HTTPError) as missing:
            fetch(f"http://[::1]:{pages.port}/../app.py")
        assert missing.value.code == 404
        missing.value.close()


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


@pytest.mark.slow
def test_bot_with_launch_exits_zero() -> None:
    done = subprocess.run(
        python("-m", "examples.clicker.bot", "--launch", "--users", "20", "--clicks", "10"),
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "200 acknowledged clicks" in done.stdout
    assert "every final score matches" in done.stdout


async def test_launcher_serves_and_shuts_down_gracefully(tmp_path: Path) -> None:
    db = tmp_path / "launcher.db"
    args = ["--db", str(db), "--host", "::1", "--port", "0", "--http-host", "::1"]
    process = await asyncio.create_subprocess_exec(
        *python("-m", "examples.clicker", *args, "--http-port", "0", "--burst", "5"),
        cwd=REPO_ROOT,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert first.startswith("clicker: open http://localhost:")
        http_port = int(first.rsplit(":", 1)[1].strip().rstrip("/"))
        config_url = f"http://[::1]:{http_port}/config.json"
        _, _, config_body = await asyncio.to_thread(fetch, config_url)
        config = json.loads(config_body)
        assert config["url"].startswith("https://localhost:")
        assert config["url"].endswith("/clicker")
        assert len(config["certificateHash"]) == 64
        url = config["url"].replace("localhost", "[::1]")
        async with wtframe.connect(url, cert_hash=config["certificateHash"]) as session:
            replies = [await ask(session, click("kim")) for _ in range(6)]
        assert [reply.get("score") for reply in replies] == [1, 2, 3, 4, 5, None]
        assert replies[-1]["code"] == "rate_limited"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()
    assert "cpu time" in err.decode()
    with contextlib.closing(sqlite3.connect(db)) as reader:
        assert reader.execute("SELECT username, score FROM scores").fetchall() == [("kim", 5)]

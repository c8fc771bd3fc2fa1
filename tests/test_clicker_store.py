from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from examples.clicker.store import MemoryStore, ScoreStore, SQLiteStore, StoreClosed
from wtframe.exceptions import ConfigurationError

__all__: list[str] = []

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_store(kind: str, path: Path) -> MemoryStore | SQLiteStore:
    return MemoryStore() if kind == "memory" else SQLiteStore(path)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScoreStore]:
    async with make_store(request.param, tmp_path / "scores.db") as opened:
        yield opened


# Correctness, both stores.


async def test_unknown_player_scores_zero(store: ScoreStore) -> None:
    assert await store.get("nobody") == 0
    assert await store.top() == []


async def test_increment_returns_the_new_score(store: ScoreStore) -> None:
    assert await store.increment("ann") == 1
    assert await store.increment("ann") == 2
    assert await store.increment("ann", by=5) == 7
    assert await store.increment("ann", by=-3) == 4
    assert await store.increment("bob") == 1
    assert await store.get("ann") == 4
    assert await store.get("bob") == 1


async def test_top_orders_by_score_then_name(store: ScoreStore) -> None:
    for name, score in [("dora", 3), ("carl", 5), ("bea", 3), ("abe", 1), ("eve", 5)]:
        await store.increment(name, by=score)
    expected = [("carl", 5), ("eve", 5), ("bea", 3), ("dora", 3), ("abe", 1)]
    assert await store.top() == expected
    assert await store.top(3) == expected[:3]
    assert await store.top(100) == expected
    assert await store.top(0) == []
    assert await store.top(-1) == []


async def test_top_defaults_to_ten(store: ScoreStore) -> None:
    for i in range(15):
        await store.increment(f"p{i:02d}", by=i + 1)
    top = await store.top()
    assert top == [(f"p{i:02d}", i + 1) for i in range(14, 4, -1)]


async def test_any_text_is_a_username(store: ScoreStore) -> None:
    names = [
        "",
        "a\x00b",
        "ünïcødé",
        "🙂",
        " spaced ",
        "x" * 1000,
        "Robert'); DROP TABLE scores;--",
    ]
    for i, name in enumerate(names):
        assert await store.increment(name, by=i + 1) == i + 1
    for i, name in enumerate(names):
        assert await store.get(name) == i + 1
    assert {name for name, _ in await store.top(len(names))} == set(names)
    assert await store.get("a") == 0  # "a\x00b" is not truncated at the NUL


async def test_ties_break_by_code_point(store: ScoreStore) -> None:
    names = ["b", "B", "a", "é", "e", "🙂", "\uffff"]
    for name in names:
        await store.increment(name)
    assert await store.top(len(names)) == [(name, 1) for name in sorted(names)]


async def test_bad_increments_are_refused_before_storage(store: ScoreStore) -> None:
    with pytest.raises(ValueError, match="Unicode"):
        await store.increment("\ud800")
    with pytest.raises(ValueError, match="64-bit"):
        await store.increment("ann", by=2**63)
    with pytest.raises(TypeError):
        await store.increment("ann", by=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await store.increment(b"ann")  # type: ignore[arg-type]
    assert await store.top() == []
    assert await store.increment("ann") == 1


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_ten_thousand_concurrent_increments_are_exact(kind: str, tmp_path: Path) -> None:
    users = [f"user{i}" for i in range(200)]
    async with make_store(kind, tmp_path / "scores.db") as store:
        results = await asyncio.gather(*(store.increment(u) for _ in range(50) for u in users))
        for user in users:
            assert await store.get(user) == 50
        top = await store.top(200)
        if isinstance(store, SQLiteStore):
            assert store.commits <= 10_000 // 20
    assert len(results) == 10_000
    # Each user saw each intermediate score exactly once: 1, 2, ..., 50.
    assert Counter(results) == Counter({score: 200 for score in range(1, 51)})
    assert top == [(user, 50) for user in sorted(users)]


# SQLite specifics.


async def test_reopening_gives_the_same_scores(tmp_path: Path) -> None:
    path = tmp_path / "scores.db"
    async with SQLiteStore(path) as store:
        await asyncio.gather(*(store.increment(f"p{i}", by=i) for i in range(1, 21)))
        await store.increment("p1", by=100)
        before = await store.top(50)
    async with SQLiteStore(str(path)) as store:
        assert await store.top(50) == before
        assert await store.get("p1") == 101
        assert await store.increment("p1") == 102
    async with SQLiteStore(path) as store:
        assert await store.get("p1") == 102
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT score FROM scores WHERE username = 'p20'").fetchone() == (20,)
    finally:
        conn.close()


async def test_concurrent_increments_share_commits(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "scores.db", batch_window=0.05) as store:
        await asyncio.gather(*(store.increment(f"p{i % 7}") for i in range(300)))
        assert 1 <= store.commits <= 3
        for _ in range(3):
            await store.increment("alone")
        assert store.commits <= 6


async def test_max_batch_caps_a_transaction(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "scores.db", batch_window=0.05, max_batch=8) as store:
        await asyncio.gather(*(store.increment("p") for _ in range(100)))
        assert store.commits >= 100 // 8
        assert await store.get("p") == 100


async def test_event_loop_stays_responsive_during_writes(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    gaps: list[float] = []

    async def ticker() -> None:
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = loop.time()
            gaps.append(now - last)
            last = now

    async with SQLiteStore(tmp_path / "scores.db") as db:

        async def player(i: int) -> None:
            for _ in range(100):
                await db.increment(f"p{i}")

        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        ticks_before = len(gaps)
        await asyncio.gather(*(player(i) for i in range(50)))
        ticks_during = len(gaps) - ticks_before
        done.set()
        await ticking
        assert sum(score for _, score in await db.top(50)) == 5_000
    assert ticks_during >= 20
    assert max(gaps) < 0.25


async def test_failed_transaction_rejects_exactly_its_batch(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "scores.db", batch_window=0.1) as store:
        limit = 2**63 - 1
        assert await store.increment("max", by=limit) == limit
        commits = store.commits
        # One batch: the overflow of "max" sinks the increments that share its transaction,
        # while the read in the batch still answers from committed data.
        results = await asyncio.gather(
            store.increment("a"),
            store.increment("max"),
            store.increment("b", by=3),
            store.get("max"),
            return_exceptions=True,
        )
        assert [type(r) for r in results[:3]] == [sqlite3.IntegrityError] * 3
        assert results[3] == limit
        assert store.commits == commits
        # The store keeps working, and nothing of the failed batch was kept.
        assert await store.get("a") == 0
        assert await store.get("b") == 0
        assert await store.increment("a") == 1
        assert await store.top() == [("max", limit), ("a", 1)]
        assert store.commits == commits + 1


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_calls_after_close_raise(kind: str, tmp_path: Path) -> None:
    store = make_store(kind, tmp_path / "scores.db")
    await store.increment("ann")
    await store.close()
    with pytest.raises(StoreClosed, match="closed"):
        await store.increment("ann")
    with pytest.raises(StoreClosed):
        await store.get("ann")
    with pytest.raises(StoreClosed):
        await store.top()
    with pytest.raises(StoreClosed):
        await store.top(0)
    await store.close()  # closing twice is harmless


async def test_close_flushes_queued_increments(tmp_path: Path) -> None:
    path = tmp_path / "scores.db"
    store = SQLiteStore(path, batch_window=0.5)
    tasks = [asyncio.create_task(store.increment(f"p{i % 3}")) for i in range(30)]
    await asyncio.sleep(0)  # every task has queued its increment
    await store.close()
    assert sorted(await asyncio.gather(*tasks)) == sorted([n for n in range(1, 11)] * 3)
    async with SQLiteStore(path) as reopened:
        assert await reopened.top() == [("p0", 10), ("p1", 10), ("p2", 10)]


async def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        SQLiteStore(missing / "scores.db")
    assert str(missing) in str(info.value)
    assert not missing.exists()


async def test_unopenable_file_fails_on_enter_and_on_use(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        async with SQLiteStore(tmp_path):
            pass  # pragma: no cover
    store = SQLiteStore(tmp_path)
    with pytest.raises(sqlite3.OperationalError):
        await store.increment("ann")
    with pytest.raises(sqlite3.OperationalError):
        await store.top()
    await store.close()


@pytest.mark.parametrize(
    "kwargs",
    [{"batch_window": -0.001}, {"max_batch": 0}, {"synchronous": "OFF"}],
)
def test_bad_settings_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        SQLiteStore(tmp_path / "scores.db", **kwargs)  # type: ignore[arg-type]


CHILD = textwrap.dedent(
    """
    import asyncio
    import sys

    from examples.clicker.store import SQLiteStore

    async def main(path, synchronous):
        store = SQLiteStore(path, synchronous=synchronous)
        out = sys.stdout

        async def player(name):
            while True:
                out.write(f"sent {name}\\n")
                out.flush()
                score = await store.increment(name)
                out.write(f"ack {name} {score}\\n")
                out.flush()

        await asyncio.gather(*(player(f"p{i}") for i in range(20)))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
async def test_acknowledged_increments_survive_kill_9(tmp_path: Path, synchronous: str) -> None:
    path = tmp_path / "scores.db"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(path),
        synchronous,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
        env=env,
    )
    assert proc.stdout is not None
    lines: list[bytes] = []
    acks = 0
    try:
        while acks < 1_000:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert line, "the child exited before it was killed"
            lines.append(line)
            acks += line.startswith(b"ack ")
    finally:
        proc.send_signal(signal.SIGKILL)
        lines.extend((await proc.stdout.read()).splitlines(keepends=True))
        assert await proc.wait() == -signal.SIGKILL

    sent: Counter[str] = Counter()
    acked: dict[str, list[int]] = {}
    for line in lines:
        if not line.endswith(b"\n"):
            continue
        kind, name, *rest = line.decode().split()
        if kind == "sent":
            sent[name] += 1
        else:
            acked.setdefault(name, []).append(int(rest[0]))
    assert sum(map(len, acked.values())) >= 1_000
    async with SQLiteStore(path) as store:
        for name, count in sent.items():
            stored = await store.get(name)
            scores = acked.get(name, [])
            assert scores == list(range(1, len(scores) + 1))
            assert max(scores, default=0) <= stored <= count
        assert {name for name, _ in await store.top(100)} <= set(sent)

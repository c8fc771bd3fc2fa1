"""Kill the clicker server with SIGKILL under load; no acknowledged click may be lost.

    python scripts/load/kill9.py --users 300 --clicks 1000 --after 5

Starts the clicker (`serve_clicker.py`) on a SQLite database, lets the bot's players click for
`--after` seconds, kills the server with `kill -9` (no shutdown, no final commit), starts
it again on the same database, and asks it for every player's score. Each score must be
at least the clicks the server acknowledged, and at most one more (the click in flight when
the server died may have been committed without its answer getting out).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clicker import read_scores, start_server

from examples.clicker.bot import run_bot


async def main(options: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="clicker-kill9-") as directory:
        database = Path(directory) / "scores.db"
        server = await start_server(database)
        print(f"kill9: server {server.url} pid {server.process.pid}", flush=True)
        playing = asyncio.ensure_future(
            run_bot(
                server.url,
                server.cert_hash,
                users=options.users,
                clicks=options.clicks,
                concurrency=options.users,
            )
        )
        await asyncio.sleep(options.after)
        await server.kill()
        killed_at = time.monotonic()
        print("kill9: server killed with SIGKILL", flush=True)
        result = await playing
        acknowledged = {user.username: user.acknowledged for user in result.users}
        print(
            f"kill9: {sum(acknowledged.values())} clicks acknowledged before the kill, "
            f"players gave up {time.monotonic() - killed_at:.1f} s after it",
            flush=True,
        )
        server = await start_server(database)
        try:
            found = await read_scores(server.url, server.cert_hash, sorted(acknowledged))
        finally:
            await server.stop()
        lost = {n: (a, found[n]) for n, a in acknowledged.items() if found[n] < a}
        extra = sum(found[n] - a for n, a in acknowledged.items() if found[n] > a)
        bad = {n: (a, found[n]) for n, a in acknowledged.items() if found[n] > a + 1}
        print(
            f"kill9: after restart {sum(found.values())} clicks stored; "
            f"{len(lost)} players lost acknowledged clicks; "
            f"{extra} clicks stored but never acknowledged (in flight at the kill)",
            flush=True,
        )
        for name, (ack, score) in list(lost.items())[:10]:
            print(f"kill9: LOST {name}: acknowledged {ack}, stored {score}", flush=True)
        return 1 if lost or bad else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="kill -9 the clicker under load.")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--clicks", type=int, default=1000, help="more than fit before --after")
    parser.add_argument("--after", type=float, default=5.0, help="seconds before the kill")
    sys.exit(asyncio.run(main(parser.parse_args())))

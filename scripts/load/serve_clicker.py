"""The clicker server for the load scripts: `python -m examples.clicker` minus the page.

    python scripts/load/serve_clicker.py --db scores.db --board-interval 1.0

Serves `/clicker` on 127.0.0.1 (a free port) with a SQLite store and practically no rate
limit, prints the URL and the certificate hash, and shuts down gracefully on SIGTERM. The
leaderboard interval is an option: with a thousand sessions, pushing the board to every
one of them ten times a second (the launcher's default) costs more than the clicks do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.clicker.app import PATH, create_app
from examples.clicker.store import SQLiteStore
from wtframe import serve


async def main(options: argparse.Namespace) -> None:
    async with SQLiteStore(options.db) as store:
        app = create_app(
            store, rate=1_000_000, burst=1_000_000, board_interval=options.board_interval
        )
        server = await serve(app, "127.0.0.1", 0)
        print(f"clicker: WebTransport at {server.url(PATH, host='127.0.0.1')}", flush=True)
        print(f"clicker: certificate sha-256 {server.certificate.fingerprint}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.shutdown(options.grace)
            await app.leaderboard.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve the clicker for load tests.")
    parser.add_argument("--db", required=True)
    parser.add_argument("--board-interval", type=float, default=1.0)
    parser.add_argument("--grace", type=float, default=2.0)
    asyncio.run(main(parser.parse_args()))

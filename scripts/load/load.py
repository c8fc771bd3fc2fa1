"""Many clicker players at once; every final score must equal the acknowledged clicks.

    python scripts/load/load.py --users 1000 --clicks 100
    python scripts/load/load.py --users 200 --clicks 50 --reorder 0.1   # through the relay

Starts the clicker (`serve_clicker.py`) on a fresh SQLite database, then runs the clicker bot
(`examples.clicker.bot`) against it, split over `--processes` processes (through the
reordering relay with `--reorder`), and exits 0 only if every bot saw every score exact.

With a thousand sessions in flight, a click waits for hundreds of others, and on a lossy
path a QUIC handshake may need several retransmissions: the bot's own 10-second timeouts
(handshake and request) are raised to `--request-timeout` so that slowness is not
mistaken for failure (a timed-out click is reported as an error, never retried).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clicker import ROOT, start_server
from relay import start_relay

BOT = """
import functools
import sys
import wtframe
import examples.clicker.bot as bot
bot.REQUEST_TIMEOUT = {timeout}
wtframe.connect = functools.partial(wtframe.connect, timeout={timeout})
sys.exit(bot.main(sys.argv[1:]))
"""


async def main(options: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="clicker-load-") as directory:
        server = await start_server(
            Path(directory) / "scores.db", board_interval=options.board_interval
        )
        url = server.url
        relay = None
        try:
            if options.reorder:
                relay, port = await start_relay(
                    ("127.0.0.1", server.port), reorder=options.reorder
                )
                url = url.replace(f":{server.port}/", f":{port}/")
            print(f"load: server {server.url}, clients use {url}", flush=True)
            started = time.monotonic()
            share, extra = divmod(options.users, options.processes)
            bots = [
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    BOT.format(timeout=options.request_timeout),
                    *("--url", url, "--cert-hash", server.cert_hash),
                    *("--users", str(share + (i < extra)), "--clicks", str(options.clicks)),
                    *("--concurrency", str(options.concurrency)),
                    cwd=ROOT,
                )
                for i in range(options.processes)
            ]
            statuses = [await bot.wait() for bot in bots]
            status = max(statuses)
            elapsed = time.monotonic() - started
            if relay is not None:
                print(
                    f"load: relay forwarded {relay.forwarded} datagrams, delayed {relay.delayed}",
                    flush=True,
                )
            print(
                f"load: {options.users} users x {options.clicks} clicks in {elapsed:.1f} s; "
                f"bot exit statuses {statuses}",
                flush=True,
            )
            return status
        finally:
            print(f"load: server exited {await server.stop()}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Load-test the clicker.")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--clicks", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--reorder", type=float, default=0.0, help="fraction delayed (relay)")
    parser.add_argument("--processes", type=int, default=2, help="bot processes")
    parser.add_argument("--board-interval", type=float, default=1.0, help="seconds")
    parser.add_argument("--request-timeout", type=float, default=120.0, help="seconds")
    sys.exit(asyncio.run(main(parser.parse_args())))

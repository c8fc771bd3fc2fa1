"""Run the clicker: `python -m examples.clicker`, then open the printed address.

Starts the score store (SQLite), the WebTransport server with a fresh development
certificate, and an HTTP server for the page. Ctrl+C or SIGTERM shuts everything down
gracefully: sessions are drained, then the store commits what it holds and closes, so every
acknowledged click is on disk. The process's CPU time is printed on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import signal
import sys
from collections.abc import Sequence

from wtframe import serve

from .app import PATH, create_app
from .store import SQLiteStore
from .web import PageServer, page_config

__all__ = ["main", "parse_args", "run"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the launcher's command line.

    Args:
        argv: The arguments; `sys.argv[1:]` when `None`.

    Returns:
        The options.
    """
    parser = argparse.ArgumentParser(
        prog="python -m examples.clicker", description="Run the clicker demo."
    )
    parser.add_argument("--db", default="clicker.db", help="SQLite file (default clicker.db)")
    parser.add_argument("--host", default="::", help="WebTransport address (default ::)")
    parser.add_argument("--port", type=int, default=4433, help="UDP port, 0 = any free one")
    parser.add_argument("--http-host", default="::", help="HTTP address (default ::)")
    parser.add_argument("--http-port", type=int, default=8000, help="TCP port, 0 = any")
    parser.add_argument("--rate", type=float, default=20.0, help="clicks/s per session")
    parser.add_argument("--burst", type=int, default=40, help="clicks at once per session")
    parser.add_argument("--grace", type=float, default=2.0, help="seconds to drain on exit")
    return parser.parse_args(argv)


async def run(options: argparse.Namespace) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully.

    Args:
        options: The parsed command line.
    """
    async with SQLiteStore(options.db) as store:
        app = create_app(store, rate=options.rate, burst=options.burst)
        server = await serve(app, options.host, options.port)
        try:
            config = page_config(server.port, server.certificate.fingerprint, PATH)
            with PageServer(lambda: config, options.http_host, options.http_port) as pages:
                print(f"clicker: open {pages.url()}", flush=True)
                print(f"clicker: WebTransport at {config['url']}", flush=True)
                print(f"clicker: certificate sha-256 {config['certificateHash']}", flush=True)
                await _wait_for_signal()
                print("clicker: shutting down", file=sys.stderr, flush=True)
        finally:
            await server.shutdown(options.grace)
            await app.leaderboard.aclose()


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the launcher.

    Args:
        argv: The arguments; `sys.argv[1:]` when `None`.
    """
    options = parse_args(argv)
    asyncio.run(run(options))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"clicker: stopped; cpu time user {usage.ru_utime:.2f} s, system {usage.ru_stime:.2f} s",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    main()

"""The benchmark endpoints written with wtframe, the same as `benchmarks.raw_server` offers.

* ``/echo``: every bidirectional stream is echoed back chunk by chunk, ending when the
  request ends; every datagram is echoed back.
* ``/request``: one request per stream, answered with itself by ``on_request`` (an
  ``async def`` that never waits, so a request that arrives whole is answered without a
  task). With ``--stream-handlers`` it is served by ``/echo``'s ``on_stream`` instead.
* ``/sink``: streams are read to their end, then answered with the ASCII line
  ``"<bytes on this stream> <datagrams received by this session>"``; datagrams are counted.
* ``/clicker``: the clicker example itself (`examples.clicker.app.create_app`) on a
  `SQLiteStore` in a temporary directory, with a rate limit too high to be reached. Unlike
  the raw server's endpoint it validates names with pydantic and pushes the leaderboard
  (every 0.1 s while clicks come in, as the app does by default; ``--board-interval``
  changes that).

Usage: ``python -m benchmarks.wtframe_server --certificate CERT --private-key KEY
[--board-interval SECONDS] [--stream-handlers]``. The server listens on 127.0.0.1 on a free
port and prints ``READY <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from examples.clicker.app import create_app
from examples.clicker.store import SQLiteStore
from wtframe import App, ReceiveStream, SendStream, Session, serve

__all__ = ["app", "main", "run"]

UNLIMITED = 1_000_000_000
"""The clicker's rate and burst: no benchmark reaches them."""

app = App()


@app.session("/echo")
class Echo(Session):
    """Echoes datagrams and bidirectional streams."""

    async def on_datagram(self, data: bytes) -> None:
        """Send the datagram back."""
        self.send_datagram(data)

    async def on_stream(self, stream: ReceiveStream) -> None:
        """Send every chunk back as it arrives."""
        assert isinstance(stream, SendStream)
        async for chunk in stream:
            await stream.write(chunk)


class Requests(Session):
    """Answers each request stream with the request."""

    async def on_request(self, data: bytes) -> bytes:
        """Return the request as the answer."""
        return data


@app.session("/sink")
class Sink(Session):
    """Counts what arrives."""

    datagrams = 0

    async def on_datagram(self, data: bytes) -> None:
        """Count the datagram."""
        self.datagrams += 1

    async def on_stream(self, stream: ReceiveStream) -> None:
        """Count the stream's bytes, then answer with the counts."""
        total = 0
        async for chunk in stream:
            total += len(chunk)
        if isinstance(stream, SendStream):
            await stream.write(f"{total} {self.datagrams}".encode())


async def run(
    certificate: str,
    private_key: str,
    board_interval: float | None = None,
    stream_handlers: bool = False,
) -> None:
    """Serve until cancelled, announcing the port on stdout."""
    app.add_session("/request", Echo if stream_handlers else Requests)
    with tempfile.TemporaryDirectory(prefix="wtbench-wtframe-") as tmp:
        async with SQLiteStore(Path(tmp) / "clicker.db") as store:
            options = {} if board_interval is None else {"board_interval": board_interval}
            clicker = create_app(store, rate=UNLIMITED, burst=UNLIMITED, **options)
            for route in clicker.router.routes:
                app.add_session(route.path, route.endpoint, name=route.name)
            server = await serve(app, "127.0.0.1", 0, certfile=certificate, keyfile=private_key)
            print(f"READY {server.port}", flush=True)
            try:
                await asyncio.Event().wait()
            finally:
                server.close()
                await clicker.leaderboard.aclose()


def main() -> None:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--certificate", required=True)
    parser.add_argument("--private-key", required=True)
    parser.add_argument("--board-interval", type=float, help="leaderboard period (s)")
    parser.add_argument(
        "--stream-handlers",
        action="store_true",
        help="serve /request with on_stream, as /echo, rather than on_request",
    )
    args = parser.parse_args()
    asyncio.run(run(args.certificate, args.private_key, args.board_interval, args.stream_handlers))


if __name__ == "__main__":
    main()

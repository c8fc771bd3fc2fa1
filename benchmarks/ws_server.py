"""A TLS WebSocket echo server (the `websockets` package), for context.

Usage: ``python -m benchmarks.ws_server --certificate CERT --private-key KEY``. It
listens on 127.0.0.1 on a free port and prints ``READY <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl

from websockets.asyncio.server import ServerConnection, serve

__all__ = ["echo", "main", "run"]


async def echo(websocket: ServerConnection) -> None:
    """Send every message back.

    Args:
        websocket: The connection.
    """
    async for message in websocket:
        await websocket.send(message)


async def run(certificate: str, private_key: str, host: str = "127.0.0.1") -> None:
    """Serve until cancelled, after printing ``READY <port>``.

    Args:
        certificate: Path of the PEM certificate.
        private_key: Path of the PEM private key.
        host: The address to bind.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, private_key)
    async with serve(echo, host, 0, ssl=context, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"READY {port}", flush=True)
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve.

    Args:
        argv: The arguments, without the program name; `sys.argv` by default.
    """
    parser = argparse.ArgumentParser(description="WebSocket echo server.")
    parser.add_argument("--certificate", required=True)
    parser.add_argument("--private-key", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    asyncio.run(run(args.certificate, args.private_key, args.host))


if __name__ == "__main__":
    main()

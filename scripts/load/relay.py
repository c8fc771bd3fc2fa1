"""A UDP relay that reorders: some datagrams are held back a few milliseconds.

`python scripts/load/relay.py --target 127.0.0.1:4433 --reorder 0.1` (prints its own port)

Each client address gets its own upstream socket, so the server sees one peer per client.
A fraction `--reorder` of the datagrams (both ways) is delayed by 1 to `--max-delay` ms,
so later datagrams overtake it. Loss is left to nftables.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from typing import Any

__all__ = ["Relay", "start_relay"]

Address = tuple[str, int]


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, relay: Relay, client: Address) -> None:
        self.relay = relay
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.BaseTransport)
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        downstream = self.relay.transport
        if downstream is not None:
            self.relay.forward(lambda: downstream.sendto(data, self.client))


class Relay(asyncio.DatagramProtocol):
    """The listening side of the relay."""

    def __init__(self, target: Address, reorder: float, max_delay: float, seed: int) -> None:
        self.target = target
        self.reorder = reorder
        self.max_delay = max_delay
        self.random = random.Random(seed)
        self.transport: asyncio.DatagramTransport | None = None
        self.upstreams: dict[Address, _Upstream] = {}
        self.pending: dict[Address, list[bytes]] = {}
        self.forwarded = 0
        self.delayed = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.BaseTransport)
        self.transport = transport  # type: ignore[assignment]

    def forward(self, send: Any) -> None:
        self.forwarded += 1
        if self.random.random() < self.reorder:
            self.delayed += 1
            delay = self.random.uniform(0.001, self.max_delay)
            asyncio.get_running_loop().call_later(delay, send)
        else:
            send()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        client: Address = (addr[0], addr[1])
        upstream = self.upstreams.get(client)
        if upstream is None:
            upstream = self.upstreams[client] = _Upstream(self, client)
            self.pending[client] = [data]
            asyncio.get_running_loop().create_task(self._open(upstream))
            return
        if upstream.transport is None:
            self.pending[client].append(data)
            return
        transport = upstream.transport
        self.forward(lambda: transport.sendto(data, self.target))

    async def _open(self, upstream: _Upstream) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: upstream, local_addr=("127.0.0.1", 0))
        transport = upstream.transport
        assert transport is not None
        for data in self.pending.pop(upstream.client, []):
            self.forward(lambda data=data: transport.sendto(data, self.target))


async def start_relay(
    target: Address, *, reorder: float = 0.1, max_delay: float = 0.02, seed: int = 1
) -> tuple[Relay, int]:
    """Start a relay on 127.0.0.1 and return it with its port."""
    loop = asyncio.get_running_loop()
    relay = Relay(target, reorder, max_delay, seed)
    transport, _ = await loop.create_datagram_endpoint(lambda: relay, local_addr=("127.0.0.1", 0))
    return relay, transport.get_extra_info("sockname")[1]


async def _main(options: argparse.Namespace) -> None:
    host, port = options.target.rsplit(":", 1)
    _relay, listen = await start_relay(
        (host, int(port)), reorder=options.reorder, max_delay=options.max_delay / 1000
    )
    print(f"relay: 127.0.0.1:{listen} -> {options.target}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="HOST:PORT of the server")
    parser.add_argument("--reorder", type=float, default=0.1, help="fraction delayed")
    parser.add_argument("--max-delay", type=float, default=20, help="milliseconds")
    asyncio.run(_main(parser.parse_args()))

"""The load generator: one workload against one server, driven over stdin/stdout.

Usage: ``python -m benchmarks.loadgen --workload NAME [options]``.

The conversation with the harness, one line each way at a time::

    harness -> PORT <port>       the server is listening
    loadgen -> READY             connected and warmed up
    harness -> GO                server counters were read; start measuring
    loadgen -> SAMPLE <ops>      (streams_memory only, any number of times) read the
    harness -> SAMPLED           server's counters now, after <ops> operations
    loadgen -> RESULT <json>     {"ops": ..., "elapsed": ..., "extra": {...}}
    harness -> BYE               server counters were read again; disconnect and exit
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import time
from typing import Any

from benchmarks.wtclient import WtClient, open_connection

__all__ = ["WORKLOADS", "Workload", "main"]

Result = dict[str, Any]


class Workload:
    """A workload: `setup` connects and warms up, `run` measures, `teardown` leaves."""

    def __init__(self, port: int, options: argparse.Namespace) -> None:
        self.port = port
        self.options = options
        self.clients: list[WtClient] = []
        self.payload: bytes = b"x" * options.size

    async def connect(self, path: str) -> tuple[WtClient, int]:
        """Open one connection with one session on it.

        Args:
            path: The session's path.

        Returns:
            The connection and the session id.
        """
        client = await open_connection(self.port)
        self.clients.append(client)
        return client, await client.open_session(path)

    async def setup(self) -> None:
        """Connect and warm up."""

    async def run(self) -> Result:
        """Measure.

        Returns:
            The result: `ops`, `elapsed` seconds and optional `extra` metrics.
        """
        raise NotImplementedError

    async def teardown(self) -> None:
        """Close every connection."""
        for client in self.clients:
            client.hang_up()
        await asyncio.sleep(0.01)


class Sequential(Workload):
    """`seq` and `seq50`: a new stream per request, one request at a time per connection."""

    path = "/request"
    WARM_UP = 10
    """Requests each connection sends, and checks, before the measurement."""

    def __init__(self, port: int, options: argparse.Namespace, connections: int) -> None:
        super().__init__(port, options)
        self.sessions: list[tuple[WtClient, int]] = []
        self.connections = connections

    def request_body(self, index: int) -> bytes:
        """Return the request that connection `index` sends each time.

        Args:
            index: The connection's position.

        Returns:
            The request body.
        """
        return self.payload

    def check(self, index: int, request: bytes, reply: bytes) -> None:
        """Raise if `reply` is not the right answer to `request` during the warm-up.

        Args:
            index: The connection's position.
            request: What was sent.
            reply: What came back.

        Raises:
            RuntimeError: If the reply is wrong.
        """
        if reply != request:
            raise RuntimeError(f"echo returned {len(reply)} bytes, not {len(request)}")

    async def setup(self) -> None:
        """Connect and check the answers."""
        self.sessions = await asyncio.gather(
            *(self.connect(self.path) for _ in range(self.connections))
        )
        for index, (client, session) in enumerate(self.sessions):
            body = self.request_body(index)
            for _ in range(self.WARM_UP):
                self.check(index, body, await client.request(session, body))

    async def worker(self, index: int, deadline: float) -> int:
        """Send requests one at a time on one connection until `deadline`.

        Args:
            index: The connection's position.
            deadline: When to stop, on the `time.perf_counter` clock.

        Returns:
            How many requests were answered.
        """
        client, session = self.sessions[index]
        body = self.request_body(index)
        count = 0
        while time.perf_counter() < deadline:
            await client.request(session, body)
            count += 1
        return count

    async def run(self) -> Result:
        """Run every connection's request loop for the duration."""
        start = time.perf_counter()
        deadline = start + self.options.duration
        counts = await asyncio.gather(
            *(self.worker(index, deadline) for index in range(len(self.sessions)))
        )
        return {"ops": sum(counts), "elapsed": time.perf_counter() - start}


class Clicker(Sequential):
    """`clicker`: the clicker example's requests, one player per connection, one at a time.

    Each connection clicks for its own player. Every answer must be that player's score,
    and at the end each player's score must equal the clicks sent, so a server that loses
    or double-counts a click fails the run.
    """

    path = "/clicker"

    def __init__(self, port: int, options: argparse.Namespace) -> None:
        super().__init__(port, options, options.connections)
        self.sent: dict[int, int] = {}

    def request_body(self, index: int) -> bytes:
        """Return a click for player `index`."""
        return json.dumps({"type": "click", "username": f"player{index}"}).encode()

    def _score(self, index: int, reply: bytes) -> int:
        answer = json.loads(reply)
        if answer.get("type") != "score" or answer.get("username") != f"player{index}":
            raise RuntimeError(f"player{index} got {reply!r}")
        return int(answer["score"])

    def check(self, index: int, request: bytes, reply: bytes) -> None:
        """Check that the reply is the player's score after one more click."""
        self.sent[index] = self.sent.get(index, 0) + 1
        score = self._score(index, reply)
        if score != self.sent[index]:
            raise RuntimeError(f"player{index} has {score} after {self.sent[index]} clicks")

    async def worker(self, index: int, deadline: float) -> int:
        """Click until `deadline`, then check the player's last score."""
        client, session = self.sessions[index]
        body = self.request_body(index)
        count = 0
        reply = b""
        while time.perf_counter() < deadline:
            reply = await client.request(session, body)
            count += 1
        if count:
            self.sent[index] += count
            score = self._score(index, reply)
            if score != self.sent[index]:
                raise RuntimeError(f"player{index}: {score} after {self.sent[index]} clicks")
        return count


class InFlight(Workload):
    """`inflight100`: a new stream per request, many requests in flight on one connection."""

    async def setup(self) -> None:
        """Connect and warm up."""
        self.client, self.session = await self.connect("/request")
        await asyncio.gather(
            *(self.client.request(self.session, self.payload, batch=True) for _ in range(100))
        )

    async def _worker(self, deadline: float) -> int:
        count = 0
        client, session, payload = self.client, self.session, self.payload
        while time.perf_counter() < deadline:
            await client.request(session, payload, batch=True)
            count += 1
        return count

    async def run(self) -> Result:
        """Keep `--inflight` requests going for the duration."""
        start = time.perf_counter()
        deadline = start + self.options.duration
        counts = await asyncio.gather(
            *(self._worker(deadline) for _ in range(self.options.inflight))
        )
        return {"ops": sum(counts), "elapsed": time.perf_counter() - start}


class Framed(Workload):
    """`framed`: length-prefixed messages pipelined on one long-lived stream."""

    async def setup(self) -> None:
        """Open the stream and warm it up."""
        self.client, session = await self.connect("/echo")
        self.message = struct.pack(">I", len(self.payload)) + self.payload
        self.buffer = bytearray()
        self.received = 0
        self.sending = True
        self.outstanding = 0
        self.drained: asyncio.Future[None] | None = None
        self.stream = self.client.open_stream(session, self._on_data)
        await self._burst(0.0)

    def _on_data(self, data: bytes, end: bool) -> None:
        buffer = self.buffer
        buffer += data
        offset = 0
        complete = 0
        while len(buffer) - offset >= 4:
            (length,) = struct.unpack_from(">I", buffer, offset)
            if len(buffer) - offset - 4 < length:
                break
            offset += 4 + length
            complete += 1
        del buffer[:offset]
        if not complete:
            return
        self.received += complete
        self.outstanding -= complete
        if self.sending:
            self.client.send(self.stream, self.message * complete)
            self.outstanding += complete
            self.client.transmit_soon()
        elif self.outstanding == 0 and self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    async def _burst(self, duration: float) -> None:
        self.received = 0
        self.sending = True
        self.drained = asyncio.get_running_loop().create_future()
        self.outstanding = self.options.inflight
        self.client.send(self.stream, self.message * self.options.inflight)
        self.client.transmit()
        await asyncio.sleep(duration)
        self.sending = False
        if self.outstanding == 0:
            return
        await self.drained

    async def run(self) -> Result:
        """Keep `--inflight` messages in flight for the duration."""
        start = time.perf_counter()
        await self._burst(self.options.duration)
        return {"ops": self.received, "elapsed": time.perf_counter() - start}


class DatagramEcho(Workload):
    """`dgram_echo`: one datagram round trip at a time."""

    TIMEOUT = 0.5

    async def setup(self) -> None:
        """Connect and warm up."""
        self.client, self.session = await self.connect("/echo")
        self.waiter: asyncio.Future[bool] | None = None
        self.client.on_datagram(self.session, self._on_datagram)
        await self._loop(time.perf_counter() + 0.05)

    def _on_datagram(self, data: bytes) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(True)

    @staticmethod
    def _expire(waiter: asyncio.Future[bool]) -> None:
        if not waiter.done():
            waiter.set_result(False)

    async def _loop(self, deadline: float) -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        client, session, payload = self.client, self.session, self.payload
        answered = lost = 0
        while time.perf_counter() < deadline:
            self.waiter = waiter = loop.create_future()
            timer = loop.call_later(self.TIMEOUT, self._expire, waiter)
            client.send_datagram(session, payload)
            client.transmit()
            if await waiter:
                answered += 1
            else:
                lost += 1
            timer.cancel()
        return answered, lost

    async def run(self) -> Result:
        """Bounce datagrams for the duration."""
        start = time.perf_counter()
        answered, lost = await self._loop(start + self.options.duration)
        return {
            "ops": answered,
            "elapsed": time.perf_counter() - start,
            "extra": {"timeouts": lost},
        }


class DatagramIngest(Workload):
    """`dgram_ingest`: datagrams one way as fast as congestion control lets them go."""

    async def setup(self) -> None:
        """Connect and warm up."""
        self.client, self.session = await self.connect("/sink")
        await self._blast(0.05)
        await self._server_count()

    async def _blast(self, duration: float) -> tuple[int, float]:
        client, session, payload = self.client, self.session, self.payload
        window = self.options.window
        sent = 0
        start = time.perf_counter()
        deadline = start + duration
        while time.perf_counter() < deadline:
            for _ in range(window - client.pending_datagrams):
                client.send_datagram(session, payload)
                sent += 1
            client.activity.clear()
            client.transmit()
            if client.pending_datagrams >= window // 2:
                try:
                    await asyncio.wait_for(client.activity.wait(), 0.05)
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)
        while client.pending_datagrams:
            client.activity.clear()
            client.transmit()
            try:
                await asyncio.wait_for(client.activity.wait(), 0.05)
            except TimeoutError:
                pass
        return sent, time.perf_counter() - start

    async def _server_count(self) -> int:
        await asyncio.sleep(0.1)
        reply = await self.client.request(self.session, b"")
        return int(reply.split()[1])

    async def run(self) -> Result:
        """Send for the duration, then ask the server how many arrived."""
        before = await self._server_count()
        sent, elapsed = await self._blast(self.options.duration)
        received = await self._server_count() - before
        loss = 100.0 * (sent - received) / sent if sent else 0.0
        return {
            "ops": received,
            "elapsed": elapsed,
            "extra": {"client sent/s": sent / elapsed, "loss %": loss},
        }


class Bulk(Workload):
    """`bulk`: one large upload on one stream; the server answers with its byte count."""

    CHUNK = 65536
    MAX_UNACKED = 2 * 1024 * 1024

    async def setup(self) -> None:
        """Connect and open the congestion window with a first upload."""
        self.client, self.session = await self.connect("/sink")
        await self._upload(1024 * 1024)

    async def _upload(self, size: int) -> None:
        client = self.client
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        chunks: list[bytes] = []

        def on_data(data: bytes, end: bool) -> None:
            chunks.append(data)
            if end:
                waiter.set_result(b"".join(chunks))

        stream = client.open_stream(self.session, on_data)
        chunk = b"\0" * self.CHUNK
        left = size
        while left > 0:
            while client.unacked_bytes(stream) >= self.MAX_UNACKED:
                client.activity.clear()
                await client.activity.wait()
            piece = chunk if left >= self.CHUNK else chunk[:left]
            left -= len(piece)
            client.send(stream, piece, end_stream=left == 0)
            client.transmit()
        reply = await waiter
        if int(reply.split()[0]) != size:
            raise RuntimeError(f"server counted {reply!r}, expected {size} bytes")

    async def run(self) -> Result:
        """Upload `--bulk-bytes` and wait for the server's answer."""
        start = time.perf_counter()
        await self._upload(self.options.bulk_bytes)
        return {"ops": self.options.bulk_bytes / 1e6, "elapsed": time.perf_counter() - start}


class Idle(Workload):
    """`idle`: many sessions, each on its own connection, doing nothing."""

    BATCH = 50

    async def setup(self) -> None:
        """Open a few sessions so one-time costs are paid before measuring."""
        await asyncio.gather(*(self.connect("/echo") for _ in range(10)))

    async def run(self) -> Result:
        """Open `--sessions` sessions, then let the server settle."""
        start = time.perf_counter()
        left = self.options.sessions
        while left > 0:
            batch = min(left, self.BATCH)
            await asyncio.gather(*(self.connect("/echo") for _ in range(batch)))
            left -= batch
        elapsed = time.perf_counter() - start
        await asyncio.sleep(self.options.settle)
        return {"ops": self.options.sessions, "elapsed": elapsed}


class StreamsMemory(Workload):
    """`streams_memory`: many short streams, one at a time, on one session.

    After a warm-up of `--warm-up` streams, the harness reads the server's memory
    `--samples` times at even intervals over `--streams` more streams.
    """

    async def setup(self) -> None:
        """Connect and warm up: allocator pools and caches fill here."""
        self.client, self.session = await self.connect("/echo")
        for _ in range(self.options.warm_up):
            await self.client.request(self.session, self.payload)

    async def run(self) -> Result:
        """Send the streams, asking the harness for a memory sample at every interval."""
        client, session, payload = self.client, self.session, self.payload
        total = self.options.streams
        marks = {total * k // self.options.samples for k in range(self.options.samples + 1)}
        paused = 0.0
        start = time.perf_counter()
        for done in range(total + 1):
            if done in marks:
                before = time.perf_counter()
                print(f"SAMPLE {done}", flush=True)
                await _expect("SAMPLED")
                paused += time.perf_counter() - before
            if done < total:
                await client.request(session, payload)
        return {"ops": total, "elapsed": time.perf_counter() - start - paused}


class WebSocketEcho(Workload):
    """`websockets`: request/response over one TLS WebSocket connection."""

    async def setup(self) -> None:
        """Connect and warm up."""
        import ssl

        from websockets.asyncio.client import connect

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.ws = await connect(f"wss://127.0.0.1:{self.port}/echo", ssl=context)
        for _ in range(10):
            await self.ws.send(self.payload)
            await self.ws.recv()

    async def run(self) -> Result:
        """Send and await one message at a time for the duration."""
        ws, payload = self.ws, self.payload
        count = 0
        start = time.perf_counter()
        deadline = start + self.options.duration
        while time.perf_counter() < deadline:
            await ws.send(payload)
            await ws.recv()
            count += 1
        return {"ops": count, "elapsed": time.perf_counter() - start}

    async def teardown(self) -> None:
        """Close the WebSocket."""
        await self.ws.close()


def _sequential(port: int, options: argparse.Namespace) -> Workload:
    return Sequential(port, options, 1)


def _sequential_many(port: int, options: argparse.Namespace) -> Workload:
    return Sequential(port, options, options.connections)


WORKLOADS = {
    "seq": _sequential,
    "seq50": _sequential_many,
    "inflight100": InFlight,
    "framed": Framed,
    "dgram_echo": DatagramEcho,
    "dgram_ingest": DatagramIngest,
    "bulk": Bulk,
    "idle": Idle,
    "clicker": Clicker,
    "streams_memory": StreamsMemory,
    "websockets": WebSocketEcho,
}
"""Workload names and how to make them from a port and the parsed options."""


async def _read_line() -> str:
    line: str = await asyncio.to_thread(sys.stdin.readline)
    return line.strip()


async def _expect(word: str) -> str:
    line = await _read_line()
    if not line.startswith(word):
        raise RuntimeError(f"expected {word!r} from the harness, got {line!r}")
    return line


async def _main(options: argparse.Namespace) -> None:
    port = int((await _expect("PORT")).split()[1])
    workload = WORKLOADS[options.workload](port, options)
    await workload.setup()
    print("READY", flush=True)
    await _expect("GO")
    result = await workload.run()
    print("RESULT " + json.dumps(result), flush=True)
    await _read_line()
    await workload.teardown()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the load generator's command line.

    Args:
        argv: The arguments, without the program name; `sys.argv` by default.

    Returns:
        The options.
    """
    parser = argparse.ArgumentParser(description="WebTransport load generator.")
    parser.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    parser.add_argument("--duration", type=float, default=2.0, help="seconds of measuring")
    parser.add_argument("--size", type=int, default=50, help="request/message bytes")
    parser.add_argument("--connections", type=int, default=50, help="for seq50")
    parser.add_argument("--inflight", type=int, default=100, help="for inflight100, framed")
    parser.add_argument("--window", type=int, default=64, help="queued datagrams, ingest")
    parser.add_argument("--bulk-bytes", type=int, default=64 * 1024 * 1024)
    parser.add_argument("--sessions", type=int, default=1000, help="for idle")
    parser.add_argument("--settle", type=float, default=1.0, help="idle: wait before RSS")
    parser.add_argument("--streams", type=int, default=1_000_000, help="for streams_memory")
    parser.add_argument("--warm-up", type=int, default=20_000, help="streams_memory warm-up")
    parser.add_argument("--samples", type=int, default=10, help="streams_memory samples")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run one workload as the harness directs.

    Args:
        argv: The arguments, without the program name; `sys.argv` by default.
    """
    asyncio.run(_main(parse_args(argv)))


if __name__ == "__main__":
    main()

"""A draft-15 WebTransport client (pywebtransport) that exercises a wtframe server.

Runs in its own Python >= 3.12 virtualenv (see scripts/interop-venv.sh), never imported by
the test suite. Usage: `python pwt_client.py BASE_URL`; it prints one JSON object with what
it saw, and exits non-zero if a step failed.

The client grants the server small flow-control windows (CLIENT_WINDOW bytes, 2 streams of
each kind), and the server's are small too, so every step below goes past the first grant
in both directions.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from typing import Any

from pywebtransport import ClientConfig, WebTransportClient  # type: ignore[import-not-found]
from pywebtransport.types import EventType  # type: ignore[import-not-found]

CLIENT_WINDOW = 16 * 1024
STEP_TIMEOUT = 20


def pattern(tag: int, size: int) -> bytes:
    return bytes((tag + i) % 251 for i in range(size))


async def datagrams(session: Any) -> list[str]:
    got = []
    for word in (b"ping", b"pong"):
        await session.send_datagram(data=word)
        got.append((await session.read_datagram()).decode())
    return got


async def bidi_echo(session: Any, count: int, size: int) -> list[bool]:
    """Open `count` bidirectional streams, one after the other; each echoes `size` bytes."""
    results = []
    for i in range(count):
        stream = await session.create_bidirectional_stream()
        payload = pattern(i, size)
        writer = asyncio.create_task(stream.write_all(data=payload, end_stream=True))
        echoed = await stream.read_all()
        await writer
        results.append(echoed == payload)
    return results


async def uni_upload(session: Any, count: int, size: int) -> int:
    """Open `count` unidirectional streams of `size` bytes; the server answers with a datagram
    per stream giving the bytes it read."""
    for i in range(count):
        stream = await session.create_unidirectional_stream()
        await stream.write_all(data=pattern(100 + i, size), end_stream=True)
    total = 0
    for _ in range(count):
        total += int(await session.read_datagram())
    return total


async def server_streams(session: Any, count: int, size: int) -> list[bool]:
    """Ask the server to open `count` unidirectional streams of `size` bytes each."""
    await session.send_datagram(data=f"uni {count} {size}".encode())
    results = []
    incoming = session.incoming_unidirectional_streams()
    for i in range(count):
        stream = await incoming.__anext__()
        data = await stream.read_all()
        results.append(data == pattern(200 + i, size))
    return results


async def server_bidi(session: Any, count: int) -> list[str]:
    """Ask the server to open `count` bidirectional streams; answer each one."""
    await session.send_datagram(data=f"bidi {count}".encode())
    seen = []
    incoming = session.incoming_bidirectional_streams()
    for _ in range(count):
        stream = await incoming.__anext__()
        question = await stream.read_all()
        seen.append(question.decode())
        await stream.write_all(data=b"re: " + question, end_stream=True)
    return seen


async def reset_by_client(session: Any) -> str:
    """Reset a stream with application code 42; the server reports the code it saw."""
    stream = await session.create_unidirectional_stream()
    await stream.write(data=b"partial")
    await stream.reset(error_code=42)
    answer: bytes = await session.read_datagram()
    return answer.decode()


async def closed_by_server(session: Any) -> dict[str, Any]:
    closed: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def on_closed(event: Any) -> None:
        if not closed.done():
            data = event.data or {}
            closed.set_result({"code": data.get("error_code"), "reason": data.get("reason")})

    session.events.on(event_type=EventType.SESSION_CLOSED, handler=on_closed)
    await session.send_datagram(data=b"close")
    return await closed


async def main(base: str) -> dict[str, Any]:
    config = ClientConfig(
        verify_mode=ssl.CERT_NONE,
        initial_max_data=CLIENT_WINDOW,
        initial_max_streams_bidi=2,
        initial_max_streams_uni=2,
    )
    out: dict[str, Any] = {}
    async with WebTransportClient(config=config) as client:
        session = await client.connect(url=f"{base}/interop")
        steps = {
            "datagrams": datagrams(session),
            "bidi_echo": bidi_echo(session, count=6, size=40_000),
            "uni_upload": uni_upload(session, count=6, size=30_000),
            "server_streams": server_streams(session, count=5, size=30_000),
            "server_bidi": server_bidi(session, count=3),
            "reset_by_client": reset_by_client(session),
            "closed_by_server": closed_by_server(session),
        }
        for name, step in steps.items():
            try:
                out[name] = await asyncio.wait_for(step, STEP_TIMEOUT)
            except Exception as exc:  # report the failing step and go on
                out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        try:
            second = await client.connect(url=f"{base}/interop?who=second")
            await second.send_datagram(data=b"hello")
            out["second_session"] = (await second.read_datagram()).decode()
            await second.close(error_code=77, reason="client says bye")
            await asyncio.sleep(0.3)  # let the close capsule leave
        except Exception as exc:
            out["second_session"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1]))
    print(json.dumps(result))
    failed = any(isinstance(v, dict) and "error" in v for v in result.values())
    sys.exit(1 if failed else 0)

"""Graceful shutdown on SIGTERM, checked against `wtframe run` when run.

Run it from the repository root:

    python docs/snippets/howto/deploying.py

It starts `wtframe run deploying:app` on a free loopback port, opens two sessions, sends
the server SIGTERM, and checks how each session ends: one leaves when told to drain, the
other stays and is closed with GOING_AWAY (1001).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from wtframe import App, CloseCode, Session, connect

# --8<-- [start:app]
logger = logging.getLogger("chat")
app = App()


@app.session("/chat")
class Chat(Session):
    """On shutdown, clients are sent DRAIN; those still here after the grace period get 1001."""

    async def on_close(self, code: int, reason: str) -> None:
        """Runs for every accepted session, also when the server shuts down."""
        logger.info("%r ended: %d %s", self, code, reason)


# --8<-- [end:app]

__all__ = ["Chat", "app", "check"]

HERE = Path(__file__).resolve().parent


async def check() -> None:
    """Run the app with `wtframe run`, then stop it with SIGTERM."""
    command = [sys.executable, "-m", "wtframe", "run", "deploying:app"]
    command += ["--host", "127.0.0.1", "--port", "0", "--grace", "1"]
    server = subprocess.Popen(
        command, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()  # wtframe: serving https://127.0.0.1:PORT
        second = server.stdout.readline()  # wtframe: certificate sha-256 HEX
        served = re.fullmatch(r"wtframe: serving (https://\S+)\n", first)
        pinned = re.fullmatch(r"wtframe: certificate sha-256 ([0-9a-f]{64})\n", second)
        assert served is not None and pinned is not None, (first, second)
        base, fingerprint = served.group(1), pinned.group(1)

        patient = await connect(base + "/chat", cert_hash=fingerprint)
        stubborn = await connect(base + "/chat", cert_hash=fingerprint)
        server.send_signal(signal.SIGTERM)
        # --8<-- [start:client]
        while not patient.is_draining:  # the server sent DRAIN: finish up, then leave
            await asyncio.sleep(0.05)
        await patient.close(0, "bye")
        # --8<-- [end:client]
        code, _ = await stubborn.wait_closed()
        assert code == CloseCode.GOING_AWAY  # 1001, after the 1 s grace period
        assert stubborn.is_draining  # it was told, and did not listen
        await asyncio.gather(patient.close(), stubborn.close())
        status = await asyncio.to_thread(server.wait, 10)
        assert status == 0, status
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGKILL)
            server.wait()
    print("graceful shutdown checked")


if __name__ == "__main__":
    asyncio.run(check())

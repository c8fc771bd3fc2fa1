"""serve() and Server: binding, connection bookkeeping and graceful shutdown."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.support.waiting import wait_for
from wtframe import App, CloseCode, HandshakeError, Session, connect, serve
from wtframe.certs import generate_certificate, load_certificate
from wtframe.server import quic_configuration
from wtframe.testing import TestClient

WAIT = 5


class Stubborn(Session):
    """Ignores DRAIN; records how it ended."""

    closes: ClassVar[list[tuple[int, str]]]
    drains: ClassVar[int]

    async def on_datagram(self, data: bytes) -> None:
        self.send_datagram(data)

    async def on_drain(self) -> None:
        type(self).drains += 1

    async def on_close(self, code: int, reason: str) -> None:
        type(self).closes.append((code, reason))


class Polite(Session):
    """Closes itself as soon as it is asked to drain."""

    closes: ClassVar[list[tuple[int, str]]]

    async def on_connect(self) -> None:
        if self.request.query_params.get("slow"):
            await asyncio.sleep(WAIT * 2)

    async def on_close(self, code: int, reason: str) -> None:
        type(self).closes.append((code, reason))


def make_app() -> tuple[App, type[Stubborn], type[Polite]]:
    stubborn = type("S", (Stubborn,), {"closes": [], "drains": 0})
    polite = type("P", (Polite,), {"closes": []})
    app = App()
    app.add_session("/stubborn", stubborn)
    app.add_session("/polite", polite)
    return app, stubborn, polite


async def test_serve_binds_an_ephemeral_port_and_serves() -> None:
    app, _, _ = make_app()
    certificate = generate_certificate()
    server = await serve(app, "127.0.0.1", 0, certificate=certificate)
    async with server:
        assert server.port > 0
        assert server.certificate is certificate
        assert server.url("/stubborn") == f"https://localhost:{server.port}/stubborn"
        url = server.url("/stubborn", host="127.0.0.1")
        async with connect(url, cert_hash=certificate.fingerprint_colons) as session:
            session.send_datagram(b"hi")
            assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"hi"
            assert len(server.connections) == 1
            assert len(server.runners) == 1
        await wait_for(lambda: not server.connections)
        assert server.runners == []
    await asyncio.wait_for(server.wait_closed(), WAIT)


async def test_dual_stack_default_host_and_generated_certificate() -> None:
    app, _, _ = make_app()
    server = await app.serve(port=0)
    try:
        assert server.host == "::"
        for host in ("127.0.0.1", "::1"):
            url = server.url("/stubborn", host=f"[{host}]" if ":" in host else host)
            async with connect(url, cert_hash=server.certificate.fingerprint) as session:
                session.send_datagram(host.encode())
                assert await asyncio.wait_for(session.receive_datagram(), WAIT) == host.encode()
    finally:
        await server.shutdown(0)


async def test_shutdown_drains_then_closes_with_1001() -> None:
    app, stubborn, _ = make_app()
    async with TestClient(app) as client, client.connect("/stubborn") as session:
        server = client.server
        started = time.monotonic()
        shutdown = asyncio.ensure_future(server.shutdown(0.3))
        await wait_for(lambda: session.is_draining)
        assert stubborn.drains == 0  # on_drain is for the peer's DRAIN only
        assert not session.is_closed
        session.send_datagram(b"during grace")
        assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"during grace"
        with pytest.raises(HandshakeError) as info:
            await client.connect("/stubborn")
        assert info.value.status == 503
        code, reason = await asyncio.wait_for(session.wait_closed(), WAIT)
        assert code == CloseCode.GOING_AWAY
        assert reason
        assert time.monotonic() - started >= 0.3
        await asyncio.wait_for(shutdown, WAIT)
        assert stubborn.closes == [(CloseCode.GOING_AWAY, reason)]
        await asyncio.wait_for(server.wait_closed(), WAIT)


async def test_shutdown_returns_early_when_sessions_finish() -> None:
    app, _, polite = make_app()
    async with TestClient(app) as client, client.connect("/polite") as session:
        started = time.monotonic()
        shutdown = asyncio.ensure_future(client.server.shutdown(WAIT))
        await wait_for(lambda: session.is_draining)
        await session.close(0, "drained")
        await asyncio.wait_for(shutdown, WAIT)
        assert time.monotonic() - started < 1
        assert len(polite.closes) == 1


async def test_shutdown_answers_sessions_still_connecting_with_503() -> None:
    app, _, polite = make_app()
    async with TestClient(app) as client:
        pending = asyncio.ensure_future(client.connect("/polite?slow=1"))
        await wait_for(lambda: client.server.runners)
        await asyncio.wait_for(client.server.shutdown(0.1), WAIT)
        with pytest.raises(HandshakeError) as info:
            await asyncio.wait_for(pending, WAIT)
        assert info.value.status == 503
    assert polite.closes == []  # on_close is only for accepted sessions


async def test_close_without_grace_ends_the_connection() -> None:
    app, stubborn, _ = make_app()
    async with TestClient(app) as client, client.connect("/stubborn") as session:
        client.server.close()
        code, _ = await asyncio.wait_for(session.wait_closed(), WAIT)
        assert code == CloseCode.ABNORMAL
        await wait_for(lambda: stubborn.closes)
        assert [code for code, _ in stubborn.closes] == [CloseCode.ABNORMAL]
        assert stubborn.drains == 0
        await asyncio.wait_for(client.server.wait_closed(), WAIT)
        with pytest.raises(HandshakeError):
            await client.connect("/stubborn", timeout=0.3)


async def test_connection_loss_is_forgotten_and_others_carry_on() -> None:
    app, stubborn, _ = make_app()
    async with TestClient(app) as client, client.connect("/stubborn") as survivor:
        lost = await client.connect("/stubborn")
        assert len(client.server.connections) == 2
        lost._connection.close()
        await wait_for(lambda: len(client.server.connections) == 1)
        await wait_for(lambda: stubborn.closes)
        assert [code for code, _ in stubborn.closes] == [CloseCode.ABNORMAL]
        await lost.close()
        survivor.send_datagram(b"ok")
        assert await asyncio.wait_for(survivor.receive_datagram(), WAIT) == b"ok"


def test_a_full_chain_file_serves_its_intermediates(tmp_path: Path) -> None:
    """`fullchain.pem` (leaf, then intermediates) keeps the intermediates in the handshake."""
    leaf = generate_certificate()
    intermediate = generate_certificate(("intermediate.example",))
    chain = tmp_path / "fullchain.pem"
    chain.write_bytes(leaf.cert_pem + intermediate.cert_pem)
    key = tmp_path / "key.pem"
    key.write_bytes(leaf.key_pem)
    configuration = quic_configuration(load_certificate(chain, key))
    assert configuration.certificate is not None
    assert configuration.certificate.public_bytes(Encoding.DER) == leaf.der
    assert [c.public_bytes(Encoding.DER) for c in configuration.certificate_chain] == [
        intermediate.der
    ]

"""TestClient: an app served on loopback for the length of an `async with` block."""

from __future__ import annotations

import asyncio
import time

import pytest

from examples.echo import app as echo_app
from wtframe import CloseCode, HandshakeError, connect
from wtframe.certs import generate_certificate
from wtframe.testing import TestClient

WAIT = 5


def test_refuses_use_outside_async_with() -> None:
    client = TestClient(echo_app)
    with pytest.raises(RuntimeError, match="async with"):
        client.server  # noqa: B018
    with pytest.raises(RuntimeError):
        client.url("/echo")
    with pytest.raises(RuntimeError):
        client.connect("/echo")


async def test_server_url_and_connect() -> None:
    async with TestClient(echo_app) as client:
        server = client.server
        assert server.app is echo_app
        assert server.host == "127.0.0.1"
        assert server.port > 0
        assert client.url("/echo?x=1") == f"https://127.0.0.1:{server.port}/echo?x=1"
        async with client.connect("/echo") as session:
            session.send_datagram(b"ping")
            assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"ping"
        session = await client.connect("/echo")
        await session.close()
        assert await asyncio.wait_for(session.wait_closed(), WAIT) == (CloseCode.NORMAL, "")
    with pytest.raises(RuntimeError):
        client.server  # noqa: B018
    with pytest.raises(HandshakeError):
        await connect(f"https://127.0.0.1:{server.port}/echo", verify=False, timeout=0.3)


async def test_connect_passes_headers_and_origin() -> None:
    async with TestClient(echo_app) as client:
        with pytest.raises(HandshakeError) as info:
            await client.connect("/rooms/1", headers={"x-token": "wrong"})
        assert info.value.status == 403
        async with client.connect(
            "/rooms/1", headers=[("X-Token", "secret")], origin="https://example.com"
        ) as session:
            (runner,) = client.server.runners
            assert runner.session.request.origin == "https://example.com"
            session.send_datagram(b"which")
            assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"room 1"


async def test_two_clients_get_different_ports() -> None:
    async with TestClient(echo_app) as one, TestClient(echo_app) as two:
        assert one.server.port != two.server.port
        assert one.certificate.fingerprint != two.certificate.fingerprint
        with pytest.raises(HandshakeError):
            await connect(two.url("/echo"), cert_hash=one.certificate.fingerprint)


async def test_ipv6_loopback_and_given_certificate() -> None:
    certificate = generate_certificate()
    async with TestClient(echo_app, host="::1", certificate=certificate) as client:
        assert client.certificate is certificate
        assert client.url("/echo").startswith("https://[::1]:")
        async with client.connect("/echo") as session:
            session.send_datagram(b"v6")
            assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"v6"
            (runner,) = client.server.runners
            assert runner.session.request.client is not None
            assert runner.session.request.client[0] == "::1"


async def test_exit_closes_sessions_left_open_after_grace() -> None:
    started = time.monotonic()
    async with TestClient(echo_app, grace=0.2) as client:
        session = await client.connect("/echo")
    try:
        assert await asyncio.wait_for(session.wait_closed(), WAIT) == (
            CloseCode.GOING_AWAY,
            "server shutting down",
        )
        assert session.is_draining
        assert time.monotonic() - started < 2
    finally:
        await session.close()


async def test_serve_options_reach_the_server() -> None:
    async with TestClient(echo_app, idle_timeout=0.3) as client:
        quic_server = client.server._quic_server
        assert quic_server is not None
        assert quic_server._configuration.idle_timeout == 0.3

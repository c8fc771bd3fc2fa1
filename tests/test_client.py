"""The Python client: connecting, certificate checks, and receiving from the server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

import pytest

from wtframe import (
    App,
    CloseCode,
    ConfigurationError,
    HandshakeError,
    ReceiveStream,
    Session,
    SessionClosed,
    Stream,
    connect,
)
from wtframe.certs import generate_certificate
from wtframe.testing import TestClient

WAIT = 5


class Chatty(Session):
    """Answers datagram commands: `burst N` sends N datagrams, `streams N` opens N streams."""

    closes: ClassVar[list[tuple[int, str]]] = []

    async def on_datagram(self, data: bytes) -> None:
        command, _, count = data.partition(b" ")
        if command == b"burst":
            for i in range(int(count)):
                self.send_datagram(b"%d" % i)
        elif command == b"streams":
            for i in range(int(count)):
                stream = await self.open_uni_stream()
                await stream.write(b"%d" % i)
                await stream.close()
        elif command == b"close":
            await self.close(int(count), "as asked")
        else:
            self.send_datagram(data)

    async def on_close(self, code: int, reason: str) -> None:
        type(self).closes.append((code, reason))


def chatty_app() -> tuple[App, type[Chatty]]:
    cls = type("C", (Chatty,), {"closes": []})
    app = App()
    app.add_session("/c", cls)
    return app, cls


# -- connecting ---------------------------------------------------------------------------


def test_url_must_be_https_with_a_host() -> None:
    for url in ("http://localhost:1/x", "wss://localhost/x", "https:///x", "localhost:4433"):
        with pytest.raises(ConfigurationError):
            connect(url)


def test_url_parts() -> None:
    pending = connect("https://[::1]:4433/room/1?x=2", cert_hash="AB:cd")
    assert (pending.host, pending.port, pending.path) == ("::1", 4433, "/room/1?x=2")
    assert pending.authority == "[::1]:4433"
    assert pending.cert_hashes == {"abcd"}
    assert connect("https://example.com").path == "/"
    assert connect("https://example.com").port == 443


async def test_await_form_and_response_headers() -> None:
    app, _ = chatty_app()
    async with TestClient(app) as client:
        session = await client.connect("/c")
        try:
            assert (b":status", b"200") in session.response_headers
            assert not session.is_closed
            assert session.close_code is None
            assert repr(session).endswith("open>")
            session.send_datagram(b"hi")
            assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"hi"
        finally:
            await session.close()
        assert session.is_closed
        await session.close()  # twice is fine


async def test_no_server_gives_handshake_error() -> None:
    app, _ = chatty_app()
    async with TestClient(app) as client:
        url = client.url("/c")
    with pytest.raises(HandshakeError) as info:
        await connect(url, verify=False, timeout=0.3)
    assert info.value.status is None


# -- certificates -------------------------------------------------------------------------


async def test_right_cert_hash_is_trusted() -> None:
    app, _ = chatty_app()
    async with TestClient(app) as client:
        fingerprint = client.certificate.fingerprint
        for cert_hash in (fingerprint, fingerprint.upper(), client.certificate.fingerprint_colons):
            async with connect(client.url("/c"), cert_hash=cert_hash) as session:
                assert not session.is_closed
        other = generate_certificate().fingerprint
        async with connect(client.url("/c"), cert_hash=[other, fingerprint]) as session:
            assert not session.is_closed


async def test_wrong_cert_hash_is_refused() -> None:
    app, _ = chatty_app()
    async with TestClient(app) as client:
        wrong = generate_certificate().fingerprint
        with pytest.raises(HandshakeError) as info:
            await connect(client.url("/c"), cert_hash=wrong)
        assert info.value.status is None
        assert client.server.runners == []


async def test_unknown_certificate_is_refused_without_cafile() -> None:
    app, _ = chatty_app()
    async with TestClient(app) as client:
        with pytest.raises(HandshakeError):
            await connect(client.url("/c"), timeout=WAIT)


async def test_cafile_with_the_self_signed_certificate(tmp_path: Path) -> None:
    app, _ = chatty_app()
    async with TestClient(app) as client:
        certfile, _ = client.certificate.write(tmp_path)
        async with connect(client.url("/c"), cafile=str(certfile)) as session:
            session.send_datagram(b"verified")
            assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"verified"
        other, _ = generate_certificate().write(tmp_path / "other")
        with pytest.raises(HandshakeError):
            await connect(client.url("/c"), cafile=str(other), timeout=WAIT)


async def test_verify_false_skips_checks() -> None:
    app, _ = chatty_app()
    async with TestClient(app) as client, connect(client.url("/c"), verify=False) as session:
        assert not session.is_closed


# -- receiving ----------------------------------------------------------------------------


async def test_datagram_queue_drops_the_oldest() -> None:
    app, _ = chatty_app()
    async with TestClient(app) as client, client.connect("/c", max_queued_datagrams=3) as session:
        session.send_datagram(b"burst 10")
        await asyncio.sleep(0.2)
        assert session.dropped_datagrams == 7
        received = [await asyncio.wait_for(session.receive_datagram(), WAIT) for _ in range(3)]
        assert received == [b"7", b"8", b"9"]


async def test_iterators_end_when_the_session_closes() -> None:
    app, cls = chatty_app()
    async with TestClient(app) as client, client.connect("/c") as session:
        session.send_datagram(b"burst 3")
        datagrams = []
        async for datagram in session.datagrams():
            datagrams.append(datagram)
            if len(datagrams) == 3:
                session.send_datagram(b"streams 3")
                break
        assert datagrams == [b"0", b"1", b"2"]
        contents = []
        async for stream in session.incoming_streams():
            assert isinstance(stream, ReceiveStream) and not isinstance(stream, Stream)
            contents.append(await asyncio.wait_for(stream.read(), WAIT))
            if len(contents) == 3:
                session.send_datagram(b"close 4")

        async def rest() -> list[bytes]:
            return [d async for d in session.datagrams()]

        assert sorted(contents) == [b"0", b"1", b"2"]
        assert await asyncio.wait_for(rest(), WAIT) == []
        assert session.close_code == 4
        assert session.close_reason == "as asked"
        with pytest.raises(SessionClosed) as info:
            await session.receive_datagram()
        assert info.value.code == 4
        with pytest.raises(SessionClosed):
            await session.accept_stream()
        with pytest.raises(SessionClosed):
            await session.open_stream()
        with pytest.raises(SessionClosed):
            await session.drain()
    assert cls.closes == [(4, "as asked")]


async def test_waiting_receivers_wake_when_the_session_closes() -> None:
    app, _ = chatty_app()
    async with TestClient(app) as client, client.connect("/c") as session:
        datagram = asyncio.ensure_future(session.receive_datagram())
        stream = asyncio.ensure_future(session.accept_stream())
        await asyncio.sleep(0.01)
        session.send_datagram(b"close 12")
        for waiter in (datagram, stream):
            with pytest.raises(SessionClosed):
                await asyncio.wait_for(waiter, WAIT)


async def test_close_after_the_transport_was_lost() -> None:
    app, cls = chatty_app()
    async with TestClient(app, idle_timeout=0.3) as client:
        session = await client.connect("/c")
        transport = session._connection._transport
        assert transport is not None
        transport.close()
        await asyncio.sleep(0.05)
        assert session.close_code == CloseCode.ABNORMAL

        async def server_notices() -> None:  # by its idle timeout
            while not cls.closes:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(server_notices(), WAIT)
        assert [code for code, _ in cls.closes] == [CloseCode.ABNORMAL]
        try:
            await asyncio.wait_for(session.close(), WAIT)
        finally:
            timer = session._connection._timer
            if timer is not None:
                timer.cancel()

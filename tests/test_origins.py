"""The origin policy: matching rules, and 403 before any hook runs."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from wtframe import App, HandshakeError, Session
from wtframe.exceptions import ConfigurationError
from wtframe.origins import OriginPolicy, normalize_origin
from wtframe.testing import TestClient

WAIT = 5.0


@pytest.mark.parametrize(
    ("origin", "normalized"),
    [
        ("https://Example.COM", "https://example.com"),
        ("https://example.com:443", "https://example.com"),
        ("http://example.com:80", "http://example.com"),
        ("https://example.com:8443", "https://example.com:8443"),
        ("http://example.com:443", "http://example.com:443"),
        ("https://[::1]:443", "https://[::1]"),
        ("https://[::1]", "https://[::1]"),
        ("null", "null"),
        ("file://", "file://"),
    ],
)
def test_normalize_origin(origin: str, normalized: str) -> None:
    assert normalize_origin(origin) == normalized


def test_allow_all_is_the_default() -> None:
    policy = OriginPolicy()
    assert policy.allow_all
    assert policy.allows("https://anything.example")
    assert policy.allows("null")
    assert policy.allows(None)


def test_exact_origins() -> None:
    policy = OriginPolicy(["https://example.com", "http://localhost:8000", "null"])
    assert policy.allows("https://example.com")
    assert policy.allows("HTTPS://EXAMPLE.com:443")
    assert policy.allows("http://localhost:8000")
    assert policy.allows("null")
    assert not policy.allows("http://example.com")  # another scheme
    assert not policy.allows("https://example.com:8443")  # another port
    assert not policy.allows("https://www.example.com")
    assert not policy.allows("https://example.com.evil.test")
    assert not policy.allows("http://localhost:8001")
    assert not policy.allows("")
    assert policy.allows(None)  # not a browser


def test_wildcards_match_subdomains_only() -> None:
    policy = OriginPolicy(["https://*.example.com"])
    assert policy.allows("https://a.example.com")
    assert policy.allows("https://a.b.example.com")
    assert not policy.allows("https://example.com")
    assert not policy.allows("http://a.example.com")
    assert not policy.allows("https://a.example.com:8443")
    assert not policy.allows("https://evilexample.com")
    assert not policy.allows("https://a.example.com.evil.test")
    assert not policy.allows("https://user@a.example.com")
    with_port = OriginPolicy(["https://*.example.com:8443"])
    assert with_port.allows("https://a.example.com:8443")
    assert not with_port.allows("https://a.example.com")


def test_require_origin() -> None:
    assert not OriginPolicy(require_origin=True).allows(None)
    assert OriginPolicy(require_origin=True).allows("https://x.test")
    policy = OriginPolicy(["https://example.com"], require_origin=True)
    assert not policy.allows(None)
    assert policy.allows("https://example.com")


@pytest.mark.parametrize(
    "allowed",
    [
        "https://example.com",  # a string, not a list
        ["*"],
        [""],
        ["https://example.com/"],
        ["https://ex*.com"],
        ["https://*.*.example.com"],
        ["*.example.com"],
        ["https://*.example.com/path"],
    ],
)
def test_bad_entries_are_refused(allowed: object) -> None:
    with pytest.raises(ConfigurationError):
        OriginPolicy(allowed)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        App(allowed_origins=allowed)  # type: ignore[arg-type]


def test_repr() -> None:
    assert "all" in repr(OriginPolicy())
    assert "https://*.example.com" in repr(OriginPolicy(["https://*.example.com"]))


class Recorder(Session):
    created: ClassVar[list[str | None]]
    connected: ClassVar[list[str | None]]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        type(self).created.append(self.request.headers.get("origin"))

    async def on_connect(self) -> None:
        type(self).connected.append(self.request.headers.get("origin"))

    async def on_datagram(self, data: bytes) -> None:
        self.send_datagram(data)


def recorder_app(**options: object) -> tuple[App, type[Recorder]]:
    cls: type[Recorder] = type("R", (Recorder,), {"created": [], "connected": []})
    app = App(**options)  # type: ignore[arg-type]
    app.add_session("/r", cls)
    return app, cls


async def test_refused_origin_gets_403_before_any_hook() -> None:
    app, cls = recorder_app(allowed_origins=["https://good.test", "https://*.good.test"])
    async with TestClient(app) as client:
        for origin in ("https://evil.test", "http://good.test", "null"):
            with pytest.raises(HandshakeError) as info:
                await client.connect("/r", origin=origin)
            assert info.value.status == 403
        assert cls.created == [] and cls.connected == []
        assert client.server.runners == []
        for allowed in ("https://good.test", "https://app.good.test", None):
            async with client.connect("/r", origin=allowed) as session:
                session.send_datagram(b"in")
                assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"in"
        assert cls.connected == ["https://good.test", "https://app.good.test", None]


async def test_require_origin_refuses_clients_without_one() -> None:
    app, cls = recorder_app(require_origin=True)
    async with TestClient(app) as client:
        with pytest.raises(HandshakeError) as info:
            await client.connect("/r")
        assert info.value.status == 403
        async with client.connect("/r", origin="https://any.test"):
            pass
        assert cls.connected == ["https://any.test"]


async def test_unknown_path_is_404_whatever_the_origin() -> None:
    app, _ = recorder_app(allowed_origins=["https://good.test"])
    async with TestClient(app) as client:
        with pytest.raises(HandshakeError) as info:
            await client.connect("/nowhere", origin="https://evil.test")
        assert info.value.status == 404

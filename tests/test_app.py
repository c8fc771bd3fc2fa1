"""App routing and session admission, over real QUIC on loopback."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from wtframe import App, ClientSession, ConfigurationError, HandshakeError, Reject, Session
from wtframe.requests import Request
from wtframe.testing import TestClient

WAIT = 5


class Recorder(Session):
    """Remembers the request of every session it accepts."""

    requests: list[Request]

    async def on_connect(self) -> None:
        type(self).requests.append(self.request)


def recorder(name: str) -> type[Recorder]:
    return type(name, (Recorder,), {"requests": []})


async def raw_request(session: ClientSession, path: str) -> ClientSession | HandshakeError:
    """Ask for one more session on `session`'s QUIC connection and return the answer."""
    try:
        return await session.open_session(path, timeout=WAIT)
    except HandshakeError as exc:
        return exc


# -- routing ------------------------------------------------------------------------------


async def test_path_params_reach_the_session_typed() -> None:
    app = App()
    chat, room, item, files = (recorder(n) for n in ("Chat", "Room", "Item", "Files"))
    app.add_session("/chat/{name}", chat)
    app.add_session("/rooms/{room:int}", room)
    app.add_session("/items/{id:uuid}", item)
    app.add_session("/files/{rest:path}", files)
    item_id = uuid.uuid4()
    async with TestClient(app) as client:
        for path in ("/chat/alice", "/rooms/42", f"/items/{item_id}", "/files/a/b/c.txt"):
            async with client.connect(path):
                pass
    assert chat.requests[0].path_params == {"name": "alice"}
    assert room.requests[0].path_params == {"room": 42}
    assert isinstance(room.requests[0].path_params["room"], int)
    assert item.requests[0].path_params == {"id": item_id}
    assert isinstance(item.requests[0].path_params["id"], uuid.UUID)
    assert files.requests[0].path_params == {"rest": "a/b/c.txt"}


async def test_query_string_is_parsed_and_not_matched() -> None:
    app = App()
    room = recorder("Room")
    app.add_session("/rooms/{room:int}", room)
    async with TestClient(app) as client:
        async with client.connect("/rooms/7?user=bob&tag=a&tag=b"):
            pass
        with pytest.raises(HandshakeError) as info:
            await client.connect("/nowhere?next=/rooms/7")
        assert info.value.status == 404
    request = room.requests[0]
    assert request.path == "/rooms/7"
    assert request.raw_path == "/rooms/7?user=bob&tag=a&tag=b"
    assert request.path_params == {"room": 7}
    assert request.query_params["user"] == "bob"
    assert request.query_params.getlist("tag") == ["a", "b"]


async def test_unknown_path_and_bad_parameter_get_404() -> None:
    app = App()
    app.add_session("/rooms/{room:int}", recorder("Room"))
    async with TestClient(app) as client:
        for path in ("/nothing", "/rooms/abc", "/rooms/1/extra", "/"):
            with pytest.raises(HandshakeError) as info:
                await client.connect(path)
            assert info.value.status == 404, path


async def test_request_headers_origin_authority_and_client() -> None:
    app = App()
    rec = recorder("Rec")
    app.add_session("/h", rec)
    async with TestClient(app) as client:
        async with client.connect(
            "/h", headers={"X-Token": "secret"}, origin="https://example.com"
        ) as session:
            transport = session._connection._transport
            assert transport is not None
            local_port = transport.get_extra_info("sockname")[1]
        port = client.server.port
    request = rec.requests[0]
    assert request.headers["x-token"] == "secret"
    assert request.headers["X-TOKEN"] == "secret"
    assert "X-Token" in request.headers
    assert request.origin == "https://example.com"
    assert request.authority == f"127.0.0.1:{port}"
    assert request.protocol in ("webtransport", "webtransport-h3")
    assert request.client is not None
    assert request.client[0] in ("127.0.0.1", "::ffff:127.0.0.1")
    assert request.client[1] == local_port


async def test_origin_is_none_without_header() -> None:
    app = App()
    rec = recorder("Rec")
    app.add_session("/h", rec)
    async with TestClient(app) as client, client.connect("/h"):
        pass
    assert rec.requests[0].origin is None


# -- admission ----------------------------------------------------------------------------


class Guarded(Session):
    """Accepts only a token; answers datagrams so a test can see it is alive."""

    async def on_connect(self) -> None:
        token = self.request.headers.get("x-token")
        if token == "crash":
            raise RuntimeError("on_connect exploded")
        if token != "ok":
            raise Reject(403, headers={"X-Reason": "bad token"}, reason="no token")

    async def on_datagram(self, data: bytes) -> None:
        self.send_datagram(data)


async def test_reject_gives_status_and_headers() -> None:
    app = App()
    app.add_session("/g", Guarded)
    async with TestClient(app) as client:
        with pytest.raises(HandshakeError) as info:
            await client.connect("/g")
        assert info.value.status == 403
        async with client.connect("/g", headers={"x-token": "ok"}) as session:
            answer = await raw_request(session, "/g")
            assert isinstance(answer, HandshakeError)
            assert answer.status == 403
            assert (b"x-reason", b"bad token") in answer.headers
            assert not client.server.runners[0].session.is_closed


async def test_on_connect_exception_answers_500_and_server_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()
    app.add_session("/g", Guarded)
    async with TestClient(app) as client:
        async with client.connect("/g", headers={"x-token": "ok"}) as before:
            with caplog.at_level(logging.ERROR, logger="wtframe"):
                with pytest.raises(HandshakeError) as info:
                    await client.connect("/g", headers={"x-token": "crash"})
            assert info.value.status == 500
            before.send_datagram(b"still here")
            assert await asyncio.wait_for(before.receive_datagram(), WAIT) == b"still here"
        async with client.connect("/g", headers={"x-token": "ok"}) as after:
            after.send_datagram(b"new")
            assert await asyncio.wait_for(after.receive_datagram(), WAIT) == b"new"
    records = [r for r in caplog.records if r.name == "wtframe" and r.exc_info]
    assert records
    assert "on_connect exploded" in caplog.text


async def test_max_sessions_answers_429() -> None:
    app = App(max_sessions=2)
    app.add_session("/g", Guarded)
    async with TestClient(app) as client, client.connect("/g", headers={"x-token": "ok"}) as one:
        refused = await raw_request(one, "/g")
        # no token: on_connect rejects it, which must free its slot
        assert isinstance(refused, HandshakeError) and refused.status == 403
        second = await one.open_session("/g", headers={"x-token": "ok"}, timeout=WAIT)
        third = await raw_request(one, "/g")
        assert isinstance(third, HandshakeError)
        assert third.status == 429
        await second.close(0)
        await asyncio.sleep(0.05)
        fourth = await one.open_session("/g", headers={"x-token": "ok"}, timeout=WAIT)
        fourth.send_datagram(b"four")
        assert await asyncio.wait_for(fourth.receive_datagram(), WAIT) == b"four"


async def test_max_sessions_is_per_connection() -> None:
    app = App(max_sessions=1)
    app.add_session("/g", Guarded)
    async with TestClient(app) as client:
        async with client.connect("/g", headers={"x-token": "ok"}) as one:
            async with client.connect("/g", headers={"x-token": "ok"}) as two:
                two.send_datagram(b"2")
                assert await asyncio.wait_for(two.receive_datagram(), WAIT) == b"2"
            answer = await raw_request(one, "/g")
            assert isinstance(answer, HandshakeError) and answer.status == 429


# -- configuration ------------------------------------------------------------------------


def test_app_refuses_non_session_classes_and_bad_limits() -> None:
    app = App()
    with pytest.raises(ConfigurationError):
        app.add_session("/x", object)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        App(max_sessions=0)


def test_url_path_for_uses_route_names() -> None:
    app = App()

    @app.session("/rooms/{room:int}", name="room")
    class Room(Session):
        pass

    assert app.url_path_for("room", room=3) == "/rooms/3"
    assert app.router.match("/rooms/3") is not None


# -- shared state and startup/shutdown hooks ---------------------------------------------


async def test_startup_and_shutdown_hooks_frame_the_sessions_and_share_state() -> None:
    calls: list[str] = []
    app = App(on_startup=[lambda: calls.append("sync startup")])

    @app.on_startup
    async def open_store() -> None:
        calls.append("async startup")
        app.state.scores = {"ada": 41}

    @app.on_shutdown
    async def close_store() -> None:
        calls.append(f"shutdown with {app.state.scores['ada']}")

    @app.on_shutdown
    def broken() -> None:
        raise RuntimeError("a failing hook must not stop the others")

    app.on_shutdown(lambda: calls.append("last"))

    @app.session("/score")
    class Scores(Session):
        async def on_datagram(self, data: bytes) -> None:
            self.app.state.scores["ada"] += 1
            self.send_datagram(str(self.app.state.scores["ada"]).encode())

    async with TestClient(app) as client:
        assert calls == ["sync startup", "async startup"]
        async with client.connect("/score") as session:
            session.send_datagram(b"+1")
            assert await asyncio.wait_for(session.receive_datagram(), WAIT) == b"42"
        assert len(calls) == 2
    assert calls == ["sync startup", "async startup", "shutdown with 42", "last"]

"""Typed messages over real loopback QUIC: datagrams, framed streams, request/response."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.support.scores import Increment, Score, TypedScores
from wtframe import App, MessageTooLarge, ReceiveStream, Session, Stream, StreamErrorCode
from wtframe.exceptions import ConfigurationError, StreamReset
from wtframe.framing import encode_frame
from wtframe.testing import TestClient

app = App()
app.add_session("/typed", TypedScores)


@app.session("/rpc")
class Rpc(Session):
    async def on_request(self, msg: Increment) -> Score:
        return Score(username=msg.username, score=len(msg.username))


@app.session("/text")
class Text(Session):
    async def on_datagram(self, msg: str) -> None:
        self.send_datagram(msg.upper())


async def wait(aw: Any) -> Any:
    return await asyncio.wait_for(aw, 5)


async def test_datagram_decoded_by_annotation_and_encoded_as_json() -> None:
    async with TestClient(app) as client, client.connect("/typed") as session:
        session.send_datagram({"type": "increment", "username": "alice"})
        assert await wait(session.receive_datagram(Score)) == Score(username="alice", score=1)
        session.send_datagram(Increment(type="increment", username="alice"))
        assert await wait(session.receive_datagram(Score)) == Score(username="alice", score=2)
        session.send_datagram({"type": "reset"})
        assert await wait(session.receive_datagram(Any)) == {"reset": True}


async def test_invalid_datagram_is_dropped_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "wtframe")
    async with TestClient(app) as client, client.connect("/typed") as session:
        session.send_datagram(b"not json")
        session.send_datagram({"type": "nope"})
        session.send_datagram({"type": "increment", "username": "bob"})
        assert await wait(session.receive_datagram(Score)) == Score(username="bob", score=1)
        runner = client.server.runners[0]
        assert runner.session.invalid_datagrams == 2
        assert not session.is_closed
    assert sum("invalid datagram" in r.getMessage() for r in caplog.records) == 2


async def test_text_datagrams() -> None:
    async with TestClient(app) as client, client.connect("/text") as session:
        session.send_datagram("héllo")
        assert await wait(session.receive_datagram(str)) == "HÉLLO"


async def test_framed_messages_on_one_stream() -> None:
    async with TestClient(app) as client, client.connect("/typed") as session:
        stream = await session.open_stream()
        for i in range(1, 51):
            await stream.send(Increment(type="increment", username="carol"))
            assert await wait(stream.receive(Score)) == Score(username="carol", score=i)
        await stream.close()
        with pytest.raises(EOFError):
            await wait(stream.receive(Score))


async def test_framed_messages_pipelined_split_anyhow() -> None:
    async with TestClient(app) as client, client.connect("/typed") as session:
        stream = await session.open_stream()
        blob = b"".join(
            encode_frame(Increment(type="increment", username="dan").model_dump_json().encode())
            for _ in range(200)
        )
        for i in range(0, len(blob), 7):  # tiny writes: frames split across packets
            await stream.write(blob[i : i + 7])
        await stream.close()
        scores = [m.score async for m in stream.messages(Score)]
        assert scores == list(range(1, 201))


async def test_bad_message_resets_only_that_stream() -> None:
    async with TestClient(app) as client, client.connect("/typed") as session:
        bad = await session.open_stream()
        good = await session.open_stream()
        await bad.send({"type": "increment"})  # no username: fails validation
        with pytest.raises(StreamReset) as info:
            await wait(bad.read())
        assert info.value.code == StreamErrorCode.INVALID_MESSAGE
        await good.send(Increment(type="increment", username="eve"))
        assert await wait(good.receive(Score)) == Score(username="eve", score=1)
        assert not session.is_closed


async def test_oversize_frame_is_refused_before_buffering() -> None:
    async with TestClient(app) as client, client.connect("/typed") as session:
        stream = await session.open_stream()
        await stream.write((10_000).to_bytes(4, "big"))  # announces more than 1000 bytes
        with pytest.raises(StreamReset) as info:
            await wait(stream.read())
        assert info.value.code == StreamErrorCode.MESSAGE_TOO_BIG
        assert not session.is_closed


async def test_request_response_helper() -> None:
    async with TestClient(app) as client, client.connect("/rpc") as session:
        answers = await wait(
            asyncio.gather(
                *(
                    session.send_request(Increment(type="increment", username=n), Score)
                    for n in ["a", "bb", "ccc"]
                )
            )
        )
        assert [a.score for a in answers] == [1, 2, 3]


async def test_request_answer_too_large_for_client_limit() -> None:
    async with TestClient(app) as client, client.connect("/rpc") as session:
        session.max_message_size = 10
        stream = await session.open_stream()
        stream.max_message_size = 10
        await stream.write_message(Increment(type="increment", username="x"))
        with pytest.raises(MessageTooLarge):
            await wait(stream.read_message(Score))


def test_undecodable_annotation_fails_at_registration() -> None:
    class Weird(Session):
        async def on_datagram(self, msg: "NoSuchType") -> None:  # type: ignore[name-defined]  # noqa: F821, UP037
            pass

    with pytest.raises(ConfigurationError):
        App().add_session("/weird", Weird)


@app.session("/rpc-friendly")
class FriendlyRpc(Session):
    async def on_request(self, msg: Increment) -> Score:
        return Score(username=msg.username, score=1)

    async def on_invalid_request(self, stream: ReceiveStream, error: Exception) -> None:
        assert isinstance(stream, Stream)
        await stream.write_message({"error": "invalid request"})


async def test_invalid_request_is_reset_with_1007_by_default() -> None:
    async with TestClient(app) as client, client.connect("/rpc") as session:
        with pytest.raises(StreamReset) as info:
            await wait(session.send_request({"type": "increment"}, Score))
        assert info.value.code == StreamErrorCode.INVALID_MESSAGE
        ok = await wait(session.send_request(Increment(type="increment", username="z"), Score))
        assert ok == Score(username="z", score=1)


async def test_on_invalid_request_can_answer_instead() -> None:
    async with TestClient(app) as client, client.connect("/rpc-friendly") as session:
        answer = await wait(session.send_request(b"{not json", Any))
        assert answer == {"error": "invalid request"}


class Pusher(Session):
    async def on_connect(self) -> None:
        await self.accept()
        self.create_task(self._push())

    async def _push(self) -> None:
        stream = await self.open_uni_stream()
        while True:
            await stream.send({"tick": True})
            await asyncio.sleep(0.005)

    async def on_datagram(self, data: bytes) -> None:
        self.send_datagram(data)


async def test_a_stream_error_in_a_session_task_ends_only_the_task() -> None:
    pushing = App()
    pushing.add_session("/push", Pusher)
    async with TestClient(pushing) as client, client.connect("/push") as session:
        pushed = await wait(session.accept_stream())
        assert await wait(pushed.receive(Any)) == {"tick": True}
        pushed.stop(5)  # the server's next send raises StreamStopped inside its task
        await asyncio.sleep(0.1)
        session.send_datagram(b"still open?")
        assert await wait(session.receive_datagram()) == b"still open?"
        assert not session.is_closed

"""Typed messages between a real browser running `wtframe.js` and a wtframe server.

Each scenario is a page that imports the ES module shipped in the package (served as
`/wtframe.js`) and talks to a server running in a thread. Pages come from one function,
[`module_page`], and the browser comes from the `page_runner` fixture, so the same
scenarios run in Chromium and in Firefox.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

import wtframe
from tests.support.browser import PageRunner, run_in_thread
from tests.support.pages import PageServer, script_page
from tests.support.scores import Increment, Score, TypedScores
from wtframe import App, Session, StreamErrorCode
from wtframe.assets import BROWSER_MODULE_CONTENT_TYPE, browser_module
from wtframe.certs import Certificate, generate_certificate

__all__: list[str] = []

pytestmark = pytest.mark.browser


class Events:
    """What the server saw, written from the server's thread and read by the test."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.entries: list[tuple[str, object]] = []

    def add(self, kind: str, value: object) -> None:
        with self._changed:
            self.entries.append((kind, value))
            self._changed.notify_all()

    def wait_for(self, kind: str, count: int = 1, timeout: float = 5) -> list[object]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.of(kind)) >= count, timeout)
            return self.of(kind)

    def of(self, kind: str) -> list[object]:
        return [value for entry_kind, value in self.entries if entry_kind == kind]


def build_app(events: Events) -> App:
    """The scenarios' routes; each reports what it saw to `events`."""
    app = App()

    class Typed(TypedScores):
        async def on_close(self, code: int, reason: str) -> None:
            events.add("typed closed", (code, reason, self.invalid_datagrams))

    class Rpc(Session):
        async def on_request(self, msg: Increment) -> Score:
            return Score(username=msg.username, score=len(msg.username))

    class Push(Session):
        async def on_connect(self) -> None:
            await self.accept()
            stream = await self.open_uni_stream()
            for seq in range(5):
                await stream.send({"seq": seq, "text": "pushed"})
            await stream.close()
            self.create_task(self.ask())

        async def ask(self) -> None:
            stream = await self.open_stream()
            await stream.send({"question": "who are you?"})
            events.add("push answer", await stream.receive(Any))
            await stream.send({"thanks": True})
            await stream.close()

    class Junk(Session):
        async def on_datagram(self, data: Any) -> None:
            self.send_datagram(b"\xff not JSON")
            self.send_datagram({"echo": data})

    app.add_session("/typed", Typed)
    app.add_session("/junk", Junk)
    app.add_session("/rpc", Rpc)
    app.add_session("/push", Push)
    return app


PROLOGUE = """
const wt = await import("/wtframe.js");
const BASE = %(base)s;
const HASH = %(hash)s;

/** Connect to a path of the server with the module's connect(). */
function open(path) {
  return withTimeout(wt.connect(BASE + path, { certificateHash: HASH }), 10000, "connect");
}

/** How a promise settled: its value, or the error's name and stream error code. */
async function outcome(promise, what) {
  try {
    return { value: await withTimeout(promise, 10000, what) };
  } catch (error) {
    log("expected failure:", what, String(error));
    return { error: error.name, streamErrorCode: error.streamErrorCode ?? null };
  }
}

/** A function returning the next datagram message, or undefined after `ms` ms. */
function datagramReceiver(session) {
  const messages = session.datagrams();
  let pending = null;
  return async (ms) => {
    pending ??= messages.next();
    const timer = new Promise((resolve) => setTimeout(() => resolve(null), ms));
    const result = await Promise.race([pending, timer]);
    if (result === null) return undefined;
    pending = null;
    if (result.done) throw new Error("the datagrams ended");
    return result.value;
  };
}

/** Send a datagram message until a reply comes (a datagram may be lost); return it. */
async function exchange(session, receive, message) {
  for (let attempt = 0; attempt < 20; attempt++) {
    await session.sendDatagram(message);
    const reply = await receive(500);
    if (reply !== undefined) return reply;
  }
  throw new Error("no reply to " + JSON.stringify(message));
}

/** Close the session and return what its `closed` promise resolved with. */
async function finish(session, code, reason) {
  session.close({ code, reason });
  const info = await withTimeout(session.closed, 10000, "closed");
  return { closeCode: info.closeCode, reason: info.reason };
}
"""


def module_page(body: str, *, base: str, certificate_hash: str, title: str) -> str:
    """Build a page whose async `body` runs with the `wtframe.js` module as `wt`.

    Args:
        body: Statements of an async function that returns the page's result.
        base: The server's `https://localhost:PORT` origin.
        certificate_hash: The server certificate's SHA-256 as hex.
        title: The page title.

    Returns:
        The HTML document.
    """
    prologue = PROLOGUE % {"base": json.dumps(base), "hash": json.dumps(certificate_hash)}
    wrapped = f"""
const unhandled = [];
addEventListener("unhandledrejection", (event) => unhandled.push(String(event.reason)));
{prologue}
const value = await (async () => {{
{body}
}})();
await new Promise((resolve) => setTimeout(resolve, 200));  // let stray rejections surface
return {{ value, unhandled }};
"""
    return script_page(wrapped, title=title)


DATAGRAM_PAGE = """
const session = await open("/typed");
const receive = datagramReceiver(session);
const first = await exchange(session, receive, { type: "increment", username: "alice" });
const second = await exchange(session, receive, { type: "increment", username: "alice" });
const bob = await exchange(session, receive, { type: "increment", username: "bob" });
const reset = await exchange(session, receive, { type: "reset" });
const after = await exchange(session, receive, { type: "increment", username: "alice" });
const closed = await finish(session, 0, "");
return { first, second, bob, reset, after, invalid: session.invalidDatagrams, closed };
"""

STREAM_PAGE = """
const session = await open("/typed");
const stream = await session.openStream();
const lockstep = [];
for (let i = 0; i < 50; i++) {
  await stream.send({ type: "increment", username: "carol" });
  const reply = await withTimeout(stream.receive(), 5000, `reply ${i}`);
  lockstep.push(reply.username === "carol" ? reply.score : reply);
}
await stream.close();
const end = await withTimeout(stream.receive(), 5000, "end of the stream");

const name = "dan".repeat(100);  // 50 replies of 330 bytes: frames cross chunks
const piped = await session.openStream();
for (let i = 0; i < 50; i++) await piped.send({ type: "increment", username: name });
await piped.close();
const pipelined = [];
for await (const reply of piped) pipelined.push(reply.username === name ? reply.score : reply);

const eager = await session.openStream();  // every receive() asked for at once
for (let i = 0; i < 50; i++) await eager.send({ type: "increment", username: "eli" });
await eager.close();
const replies = await withTimeout(
  Promise.all(Array.from({ length: 51 }, () => eager.receive())), 10000, "concurrent receives",
);
const concurrent = replies.map((reply) => (reply === undefined ? "end" : reply.score));
await finish(session, 0, "");
return { lockstep, end: end === undefined ? "undefined" : end, pipelined, concurrent };
"""

REQUEST_PAGE = """
const session = await open("/rpc");
const names = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff"];
const answers = await withTimeout(
  Promise.all(names.map((username) => session.request({ type: "increment", username }))),
  10000,
  "answers",
);
const invalid = await outcome(session.request({ type: "increment" }), "invalid request");
const afterwards = await session.request({ type: "increment", username: "still here" });
await finish(session, 0, "");
return { answers, invalid, afterwards };
"""

PUSH_PAGE = """
const session = await open("/push");
const incoming = session.incomingStreams();
const seen = {};
for (let i = 0; i < 2; i++) {
  const { value: stream, done } = await withTimeout(incoming.next(), 10000, "incoming stream");
  if (done) throw new Error("incomingStreams() ended");
  if (stream.writable) {
    const question = await withTimeout(stream.receive(), 5000, "question");
    await stream.send({ answer: "a browser", to: question });
    const thanks = await withTimeout(stream.receive(), 5000, "thanks");
    const end = await withTimeout(stream.receive(), 5000, "end of the bidi stream");
    await stream.close();
    seen.bidi = { question, thanks, ended: end === undefined };
  } else {
    const messages = [];
    for await (const message of stream) messages.push(message);
    seen.uni = messages;
  }
}
await finish(session, 0, "");
return seen;
"""

INVALID_DATAGRAM_PAGE = """
const session = await open("/typed");
const receive = datagramReceiver(session);
const writer = session.raw.datagrams.writable.getWriter();
await writer.write(bytes("{not json"));
writer.releaseLock();
await session.sendDatagram({ type: "nope" });
await session.sendDatagram({ type: "increment" });
const reply = await exchange(session, receive, { type: "increment", username: "bob" });
const closed = await finish(session, 0, "");
return { reply, closed };
"""

INVALID_STREAM_PAGE = """
const session = await open("/typed");
const bad = await session.openStream();
const good = await session.openStream();
// Read before the reset can arrive: Firefox reports a reset that comes during a read
// and one that comes before it differently (reset_seen, reset_seen_before_read).
const invalidRead = outcome(bad.receive(), "reset of the invalid stream");
await bad.send({ type: "increment" });
const invalid = await invalidRead;
await good.send({ type: "increment", username: "eve" });
const goodFirst = await withTimeout(good.receive(), 5000, "good reply");

const raw = await session.raw.createBidirectionalStream();
const rawWriter = raw.writable.getWriter();
await rawWriter.write(wt.encodeFrame(bytes("{not json")));
await new Promise((resolve) => setTimeout(resolve, 300)); // the reset arrives first
const notJson = await outcome(
  new wt.MessageStream({ readable: raw.readable }).receive(), "reset after bad JSON",
);

const big = await session.raw.createBidirectionalStream();
const header = new Uint8Array(4);
new DataView(header.buffer).setUint32(0, 10000);
await big.writable.getWriter().write(header);
await new Promise((resolve) => setTimeout(resolve, 300)); // the reset arrives first
const oversize = await outcome(
  new wt.MessageStream({ readable: big.readable }).receive(), "reset of the oversize frame",
);

await good.send({ type: "increment", username: "eve" });
const goodSecond = await withTimeout(good.receive(), 5000, "good reply after the resets");
await good.close();
const goodEnd = await withTimeout(good.receive(), 5000, "end of the good stream");
const closed = await finish(session, 0, "");
return {
  invalid, notJson, oversize, goodFirst, goodSecond, goodEnded: goodEnd === undefined, closed,
};
"""

CLOSE_PAGE = """
const session = await open("/typed");
const receive = datagramReceiver(session);
const reply = await exchange(session, receive, { type: "increment", username: "zoe" });
return { reply, closed: await finish(session, 4242, "the page is done \u2713") };
"""

PAGE_LIMITS_PAGE = """
const session = await open("/typed");
const small = await session.openStream({ maxMessageSize: 50 });
await small.send({ type: "increment", username: "x".repeat(100) });
const tooBig = await outcome(small.receive(), "oversize reply");
const again = await outcome(small.receive(), "receive after the oversize reply");
await finish(session, 0, "");

const rpc = await open("/rpc");
const answer = await outcome(
  rpc.request({ type: "increment", username: "y".repeat(100) }, { maxMessageSize: 50 }),
  "oversize answer",
);
await finish(rpc, 0, "");

const junk = await open("/junk");
const receive = datagramReceiver(junk);
const echo = await exchange(junk, receive, "hello");
const invalid = junk.invalidDatagrams;
await finish(junk, 0, "");

const push = await open("/push");
const first = push.incomingStreams();
const second = push.incomingStreams();
const [a, b] = await withTimeout(Promise.all([first.next(), second.next()]), 10000, "streams");
const twoConsumers = {
  distinct: a.value._readable !== b.value._readable,
  kinds: [a.value.writable, b.value.writable].sort(),
};
await finish(push, 0, "");

const refused = await outcome(wt.connect(BASE + "/nope", { certificateHash: HASH }), "404");
const typed = await open("/typed");
let oversizeDatagram = null;
try {
  const username = "x".repeat(typed.raw.datagrams.maxDatagramSize);
  typed.sendDatagram({ type: "increment", username });
} catch (error) {
  oversizeDatagram = error.message.replace(/[0-9]+/g, "N");
}
await finish(typed, 0, "");
return { tooBig, again, answer, echo, invalid, twoConsumers, refused, oversizeDatagram };
"""


def serving(app: App, cert: Certificate) -> Callable[[], AbstractAsyncContextManager[int]]:
    @asynccontextmanager
    async def run() -> AsyncIterator[int]:
        async with await wtframe.serve(app, host="::", port=0, certificate=cert) as server:
            yield server.port

    return run


class Rig:
    """The server in a thread, a page server with `/wtframe.js`, and a browser."""

    def __init__(
        self, runner: PageRunner, pages: PageServer, port: int, cert: Certificate, events: Events
    ) -> None:
        self.runner = runner
        self.pages = pages
        self.port = port
        self.cert = cert
        self.events = events

    def reset_seen(self, code: int) -> dict[str, Any]:
        """How the page sees a stream the server reset with `code`.

        Chromium rejects the read with a `WebTransportError` carrying the code. Firefox ESR
        153 rejects it with `TypeError: Error in input stream` and no code: the page knows
        the stream failed, not why.
        """
        if self.runner.name == "firefox":
            return {"error": "TypeError", "streamErrorCode": None}
        return {"error": "WebTransportError", "streamErrorCode": code}

    def reset_seen_before_read(self, code: int) -> dict[str, Any]:
        """How the page sees a reset that arrived before it started reading the stream.

        Firefox ESR 153 then rejects the read with a `WebTransportError` whose code is 0
        (still not the server's code); Chromium as always.
        """
        if self.runner.name == "firefox":
            return {"error": "WebTransportError", "streamErrorCode": 0}
        return {"error": "WebTransportError", "streamErrorCode": code}

    def run(self, name: str, body: str) -> Any:
        page = module_page(
            body,
            base=f"https://localhost:{self.port}",
            certificate_hash=self.cert.fingerprint,
            title=name,
        )
        url = self.pages.add(f"{name}.html", page)
        result = self.runner.run(url, timeout=30)
        assert isinstance(result, dict) and "value" in result, result
        assert result["unhandled"] == [], "the page left promise rejections unhandled"
        return result["value"]


@pytest.fixture
def rig(
    page_runner: PageRunner, page_server: PageServer, caplog: pytest.LogCaptureFixture
) -> Iterator[Rig]:
    caplog.set_level(logging.INFO, logger="wtframe")
    page_server.add("/wtframe.js", browser_module(), BROWSER_MODULE_CONTENT_TYPE)
    cert = generate_certificate()
    events = Events()
    with run_in_thread(serving(build_app(events), cert)) as thread:
        yield Rig(page_runner, page_server, thread.value, cert, events)
    problems = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "invalid datagram" not in r.getMessage()
    ]
    assert problems == [], "the server logged problems"


def test_datagrams_are_objects_decoded_by_a_discriminated_union(rig: Rig) -> None:
    result = rig.run("datagrams", DATAGRAM_PAGE)
    assert result == {
        "first": {"username": "alice", "score": 1},
        "second": {"username": "alice", "score": 2},
        "bob": {"username": "bob", "score": 1},
        "reset": {"reset": True},
        "after": {"username": "alice", "score": 1},
        "invalid": 0,
        "closed": {"closeCode": 0, "reason": ""},
    }
    assert rig.events.wait_for("typed closed") == [(0, "", 0)]


def test_framed_stream_in_lockstep_and_pipelined(rig: Rig) -> None:
    result = rig.run("stream", STREAM_PAGE)
    assert result == {
        "lockstep": list(range(1, 51)),
        "end": "undefined",
        "pipelined": list(range(1, 51)),
        "concurrent": [*range(1, 51), "end"],
    }


def test_parallel_requests_on_new_streams(rig: Rig) -> None:
    result = rig.run("requests", REQUEST_PAGE)
    names = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff"]
    assert result["answers"] == [{"username": n, "score": len(n)} for n in names]
    assert result["invalid"] == rig.reset_seen(StreamErrorCode.INVALID_MESSAGE)
    assert result["afterwards"] == {"username": "still here", "score": 10}


def test_server_pushed_streams_reach_incoming_streams(rig: Rig) -> None:
    result = rig.run("push", PUSH_PAGE)
    assert result == {
        "uni": [{"seq": seq, "text": "pushed"} for seq in range(5)],
        "bidi": {
            "question": {"question": "who are you?"},
            "thanks": {"thanks": True},
            "ended": True,
        },
    }
    assert rig.events.wait_for("push answer") == [
        {"answer": "a browser", "to": {"question": "who are you?"}}
    ]


def test_invalid_datagrams_are_dropped_and_counted(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    result = rig.run("invalid-datagrams", INVALID_DATAGRAM_PAGE)
    assert result == {
        "reply": {"username": "bob", "score": 1},
        "closed": {"closeCode": 0, "reason": ""},
    }
    assert rig.events.wait_for("typed closed") == [(0, "", 3)]
    assert sum("invalid datagram" in r.getMessage() for r in caplog.records) == 3


def test_invalid_stream_messages_reset_only_their_stream(rig: Rig) -> None:
    result = rig.run("invalid-streams", INVALID_STREAM_PAGE)
    reset = rig.reset_seen(StreamErrorCode.INVALID_MESSAGE)
    assert result == {
        "invalid": reset,
        "notJson": rig.reset_seen_before_read(StreamErrorCode.INVALID_MESSAGE),
        "oversize": rig.reset_seen_before_read(StreamErrorCode.MESSAGE_TOO_BIG),
        "goodFirst": {"username": "eve", "score": 1},
        "goodSecond": {"username": "eve", "score": 2},
        "goodEnded": True,
        "closed": {"closeCode": 0, "reason": ""},
    }
    assert rig.events.wait_for("typed closed") == [(0, "", 0)]


def test_close_code_and_reason_reach_on_close(rig: Rig) -> None:
    result = rig.run("close", CLOSE_PAGE)
    reason = "the page is done \u2713"
    assert result == {
        "reply": {"username": "zoe", "score": 1},
        "closed": {"closeCode": 4242, "reason": reason},
    }
    assert rig.events.wait_for("typed closed") == [(4242, reason, 0)]


def test_page_side_limits_and_invalid_datagrams(rig: Rig) -> None:
    result = rig.run("page-limits", PAGE_LIMITS_PAGE)
    too_big = {"error": "MessageTooLargeError", "streamErrorCode": None}
    assert result == {
        "tooBig": too_big,
        "again": too_big,
        "answer": too_big,
        "echo": {"echo": "hello"},
        "invalid": 1,
        "twoConsumers": {"distinct": True, "kinds": [False, True]},
        "refused": {"error": "WebTransportError", "streamErrorCode": None},
        "oversizeDatagram": "datagram of N bytes exceeds maxDatagramSize (N bytes)",
    }

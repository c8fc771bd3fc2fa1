"""examples/echo.py served by wtframe and driven by headless Chromium's WebTransport API."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

import wtframe
from examples.echo import Echo
from tests.support.browser import ChromiumDriver, LoopThread, run_in_thread, run_page
from tests.support.pages import PageServer, script_page
from wtframe import App, Reject, Session
from wtframe.certs import Certificate, generate_certificate

pytestmark = pytest.mark.browser


class CloseLog:
    """What the server side saw, written from the server's thread and read by the test."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.entries: list[tuple[str, object]] = []

    def add(self, kind: str, value: object) -> None:
        with self._changed:
            self.entries.append((kind, value))
            self._changed.notify_all()

    def wait_for(self, kind: str, timeout: float = 5) -> list[object]:
        with self._changed:
            self._changed.wait_for(lambda: self.of(kind), timeout)
            return self.of(kind)

    def of(self, kind: str) -> list[object]:
        return [value for entry_kind, value in self.entries if entry_kind == kind]


def build_app(log: CloseLog) -> App:
    """The example's Echo plus routes that let the test observe and provoke the server."""
    app = App()
    app.add_session("/echo", Echo)

    class RecordingEcho(Echo):
        async def on_close(self, code: int, reason: str) -> None:
            log.add("record", (code, reason))

    class ServerCloses(Session):
        async def on_datagram(self, data: bytes) -> None:
            await self.close(4000, "server says bye")

        async def on_close(self, code: int, reason: str) -> None:
            log.add("bye", (code, reason))

    class Forbidden(Session):
        async def on_connect(self) -> None:
            log.add("forbidden", self.request.path)
            raise Reject(403, reason="not for browsers")

        async def on_close(self, code: int, reason: str) -> None:
            log.add("forbidden-closed", (code, reason))  # must never run

    app.add_session("/record", RecordingEcho)
    app.add_session("/bye", ServerCloses)
    app.add_session("/forbidden", Forbidden)
    return app


def serving(app: App, cert: Certificate) -> Callable[[], AbstractAsyncContextManager[int]]:
    @asynccontextmanager
    async def run() -> AsyncIterator[int]:
        async with await wtframe.serve(app, host="::1", port=0, certificate=cert) as server:
            yield server.port

    return run


PROLOGUE = """
const BASE = %(base)s;
const HASH = new Uint8Array(%(hash)s);

/** Open a session pinned to the server's certificate. */
function connect(path) {
  const wt = new WebTransport(BASE + path, {
    serverCertificateHashes: [{ algorithm: "sha-256", value: HASH }],
  });
  wt.closed.catch(() => {});
  return wt;
}

/** Send a datagram until one comes back (datagrams may be lost), and return it as text. */
async function datagramEcho(wt, payload) {
  const reader = wt.datagrams.readable.getReader();
  const writer = wt.datagrams.writable.getWriter();
  const pending = reader.read();
  let received = null;
  for (let attempt = 0; attempt < 50 && received === null; attempt++) {
    await writer.write(bytes(payload));
    received = await Promise.race([pending, new Promise((r) => setTimeout(() => r(null), 100))]);
  }
  reader.releaseLock();
  writer.releaseLock();
  if (received === null) throw new Error("no datagram came back");
  return text(received.value);
}

/** The outcome of `ready`: "open", or the name of the error it rejected with. */
async function readiness(wt) {
  try {
    await withTimeout(wt.ready, 10000, "ready");
    return "open";
  } catch (error) {
    return error.name;
  }
}
"""

DATAGRAM_PAGE = """
const wt = connect("/echo");
await withTimeout(wt.ready, 10000, "ready");
const first = await datagramEcho(wt, "ping");
const second = await datagramEcho(wt, "\u00e9t\u00e9 \u2603");
wt.close({ closeCode: 0, reason: "done" });
return { first, second };
"""

BIDI_PAGE = """
const wt = connect("/echo");
await withTimeout(wt.ready, 10000, "ready");
const payload = "x".repeat(100000) + "end";
async function roundTrip(message) {
  const stream = await wt.createBidirectionalStream();
  const writer = stream.writable.getWriter();
  await writer.write(bytes(message));
  await writer.close();
  return text(await withTimeout(readAll(stream.readable), 10000, "bidi echo"));
}
const [small, large] = await Promise.all([roundTrip("hello over a stream"), roundTrip(payload)]);
wt.close();
return { small, largeLength: large.length, largeEnd: large.slice(-3) };
"""

UNI_PAGE = """
const wt = connect("/echo");
await withTimeout(wt.ready, 10000, "ready");
const incoming = wt.incomingUnidirectionalStreams.getReader();
const outgoing = await wt.createUnidirectionalStream();
const writer = outgoing.getWriter();
await writer.write(bytes("one way "));
await writer.write(bytes("and back"));
await writer.close();
const { value: reply, done } = await withTimeout(incoming.read(), 10000, "server uni stream");
if (done) throw new Error("no incoming unidirectional stream");
const echoed = text(await withTimeout(readAll(reply), 10000, "uni echo"));
wt.close();
return { echoed };
"""

CLIENT_CLOSE_PAGE = """
const wt = connect("/record");
await withTimeout(wt.ready, 10000, "ready");
const echoed = await datagramEcho(wt, "before close");
wt.close({ closeCode: 7, reason: "bye" });
const info = await withTimeout(wt.closed, 10000, "closed");
return { echoed, closeCode: info.closeCode, reason: info.reason };
"""

SERVER_CLOSE_PAGE = """
const wt = connect("/bye");
await withTimeout(wt.ready, 10000, "ready");
const writer = wt.datagrams.writable.getWriter();
let settled = false;
const closed = wt.closed.then((info) => { settled = true; return info; });
for (let attempt = 0; attempt < 50 && !settled; attempt++) {
  await writer.write(bytes("please close"));
  await Promise.race([closed, new Promise((r) => setTimeout(r, 100))]);
}
const info = await withTimeout(closed, 10000, "closed");
return { closeCode: info.closeCode, reason: info.reason };
"""

REJECT_PAGE = """
const outcomes = {};
for (const path of ["/nope", "/forbidden"]) {
  const wt = connect(path);
  outcomes[path] = await readiness(wt);
  if (outcomes[path] === "open") wt.close();
  let closed;
  try {
    await withTimeout(wt.closed, 10000, "closed");
    closed = "resolved";
  } catch (error) {
    closed = error.name;
  }
  outcomes[path + " closed"] = closed;
}
const ok = connect("/echo");
outcomes["/echo"] = await readiness(ok);
outcomes["/echo datagram"] = await datagramEcho(ok, "still serving");
ok.close();
return outcomes;
"""


class EchoRig:
    """A wtframe server running the test app, and a way to run pages against it."""

    def __init__(
        self,
        browser: ChromiumDriver,
        pages: PageServer,
        thread: LoopThread[int],
        cert: Certificate,
        log: CloseLog,
    ) -> None:
        self.browser = browser
        self.pages = pages
        self.thread = thread
        self.cert = cert
        self.log = log

    def run(self, name: str, body: str) -> object:
        prologue = PROLOGUE % {
            "base": json.dumps(f"https://localhost:{self.thread.value}"),
            "hash": json.dumps(list(self.cert.sha256)),
        }
        url = self.pages.add(f"{name}.html", script_page(prologue + body, title=name))
        return run_page(self.browser, url, timeout=20)


@pytest.fixture
def rig(
    browser: ChromiumDriver, page_server: PageServer, caplog: pytest.LogCaptureFixture
) -> Iterator[EchoRig]:
    caplog.set_level(logging.INFO, logger="wtframe")
    cert = generate_certificate()
    log = CloseLog()
    with run_in_thread(serving(build_app(log), cert)) as thread:
        yield EchoRig(browser, page_server, thread, cert, log)
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert failures == [], "the server logged problems"


def test_datagram_echo(rig: EchoRig) -> None:
    assert rig.run("datagram", DATAGRAM_PAGE) == {
        "first": "ping",
        "second": "\u00e9t\u00e9 \u2603",
    }


def test_bidirectional_stream_echo(rig: EchoRig) -> None:
    assert rig.run("bidi", BIDI_PAGE) == {
        "small": "hello over a stream",
        "largeLength": 100003,
        "largeEnd": "end",
    }


def test_unidirectional_stream_is_answered_on_a_server_stream(rig: EchoRig) -> None:
    assert rig.run("uni", UNI_PAGE) == {"echoed": "one way and back"}


def test_browser_close_code_and_reason_reach_on_close_once(rig: EchoRig) -> None:
    result = rig.run("client-close", CLIENT_CLOSE_PAGE)
    assert result == {"echoed": "before close", "closeCode": 7, "reason": "bye"}
    assert rig.log.wait_for("record") == [(7, "bye")]
    time.sleep(0.2)  # a second on_close would come right after the first
    assert rig.log.of("record") == [(7, "bye")]


def test_server_close_code_and_reason_reach_the_page(rig: EchoRig) -> None:
    result = rig.run("server-close", SERVER_CLOSE_PAGE)
    assert result == {"closeCode": 4000, "reason": "server says bye"}
    assert rig.log.wait_for("bye") == [(4000, "server says bye")]


def test_rejected_paths_make_ready_reject(rig: EchoRig) -> None:
    assert rig.run("reject", REJECT_PAGE) == {
        "/nope": "WebTransportError",
        "/nope closed": "WebTransportError",
        "/forbidden": "WebTransportError",
        "/forbidden closed": "WebTransportError",
        "/echo": "open",
        "/echo datagram": "still serving",
    }
    assert rig.log.of("forbidden") == ["/forbidden"]
    assert rig.log.of("forbidden-closed") == []

"""Core echo scenarios: examples/echo.py served by wtframe to a real browser.

Each scenario runs in every browser (`page_runner`). After each one the server must hold
nothing for the page (no session runner, no session or stream state on any connection,
including idle extra connections a browser may open) and `on_close` must have run exactly
once per accepted session, with the code and reason that ended it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import cast

import pytest

import wtframe
from examples.echo import Echo
from tests.support.browser import LoopThread, PageRunner, assert_server_idle, run_in_thread
from tests.support.pages import PageServer, script_page
from wtframe import App, Reject, Server, Session
from wtframe.certs import Certificate, generate_certificate

pytestmark = pytest.mark.browser


class ServerLog:
    """What the server side saw, written from the server's thread and read by the test."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.entries: list[tuple[str, object]] = []

    def add(self, kind: str, value: object) -> None:
        with self._changed:
            self.entries.append((kind, value))
            self._changed.notify_all()

    def wait_for(self, kind: str, count: int, timeout: float = 5) -> list[object]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.of(kind)) >= count, timeout)
            return self.of(kind)

    def of(self, kind: str) -> list[object]:
        with self._changed:
            return [value for entry_kind, value in self.entries if entry_kind == kind]


def build_app(log: ServerLog) -> App:
    """The example's Echo, recording its sessions, plus routes that provoke the server."""
    app = App()

    class Recorded(Session):
        async def on_connect(self) -> None:
            log.add("connect", (self.request, self._runner.connection))

        async def on_close(self, code: int, reason: str) -> None:
            log.add("close", (self.request.path, code, reason))

    class RecordedEcho(Recorded, Echo):
        pass

    class ServerCloses(Recorded):
        async def on_datagram(self, data: bytes) -> None:
            await self.close(4000, "server says bye")

    class Forbidden(Recorded):
        async def on_connect(self) -> None:
            log.add("forbidden", self.request.path)
            raise Reject(403, reason="not for browsers")

    class SpeaksFirst(Recorded):
        async def on_stream(self, stream: wtframe.ReceiveStream) -> None:
            assert isinstance(stream, wtframe.Stream)
            await stream.write(b"server first")
            await stream.close()
            await stream.read()

    app.add_session("/first", SpeaksFirst)
    app.add_session("/echo", RecordedEcho)
    app.add_session("/record", RecordedEcho)
    app.add_session("/bye", ServerCloses)
    app.add_session("/forbidden", Forbidden)
    return app


def serving(app: App, cert: Certificate) -> Callable[[], AbstractAsyncContextManager[Server]]:
    @asynccontextmanager
    async def run() -> AsyncIterator[Server]:
        # `::` (dual-stack): Chromium reaches localhost over ::1, Firefox over 127.0.0.1.
        async with await wtframe.serve(app, host="::", port=0, certificate=cert) as server:
            yield server

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

SPEAKS_FIRST_PAGE = """
const wt = connect("/first");
await withTimeout(wt.ready, 10000, "ready");
const stream = await wt.createBidirectionalStream();
const answer = text(await withTimeout(readAll(stream.readable), 10000, "server's first words"));
const writer = stream.writable.getWriter();
await writer.close();
wt.close();
return { answer };
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


LEFT_PAGE = """
const wt = connect("/echo");
await withTimeout(wt.ready, 10000, "ready");
return await datagramEcho(wt, "left open");
"""

PAGEHIDE_PAGE = """
const wt = connect("/echo");
await withTimeout(wt.ready, 10000, "ready");
addEventListener("pagehide", () => wt.close({ closeCode: 4001, reason: "page hidden" }));
return await datagramEcho(wt, "closed on pagehide");
"""

FIREFOX_KEEPS_LEFT_SESSIONS = (
    "Firefox sends nothing for the session of a page that is left or whose window is "
    "closed (no close capsule, no FIN, no reset) and keeps the connection alive with "
    "PINGs, so the server cannot tell that the page is gone"
)


class EchoRig:
    """A wtframe server running the test app, and a way to run pages against it."""

    def __init__(
        self,
        runner: PageRunner,
        pages: PageServer,
        thread: LoopThread[Server],
        cert: Certificate,
        log: ServerLog,
    ) -> None:
        self.runner = runner
        self.pages = pages
        self.thread = thread
        self.server = thread.value
        self.cert = cert
        self.log = log
        self.checked = False

    def run(self, name: str, body: str) -> object:
        prologue = PROLOGUE % {
            "base": json.dumps(f"https://localhost:{self.server.port}"),
            "hash": json.dumps(list(self.cert.sha256)),
        }
        url = self.pages.add(f"{name}.html", script_page(prologue + body, title=name))
        return self.runner.run(url, timeout=20)

    def check_closes(self, expected: list[tuple[str, int, str]]) -> None:
        """on_close ran once per session with these values, and the server holds nothing."""
        self.checked = True
        assert self.log.wait_for("close", len(expected)) == expected
        assert_server_idle(self.thread, self.server)
        time.sleep(0.2)  # a second on_close would come right after the first
        assert self.log.of("close") == expected
        assert len(self.log.of("connect")) == len(expected)


@pytest.fixture
def rig(
    page_runner: PageRunner, page_server: PageServer, caplog: pytest.LogCaptureFixture
) -> Iterator[EchoRig]:
    caplog.set_level(logging.INFO, logger="wtframe")
    cert = generate_certificate()
    log = ServerLog()
    with run_in_thread(serving(build_app(log), cert)) as thread:
        rig = EchoRig(page_runner, page_server, thread, cert, log)
        yield rig
        if not rig.checked:
            assert_server_idle(thread, thread.value)
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert failures == [], "the server logged problems"


def dialect(request: wtframe.Request) -> str:
    """Name the WebTransport dialect of a CONNECT request."""
    protocol = request.protocol
    if protocol == "webtransport" and request.headers.get("sec-webtransport-http3-draft02"):
        return "draft-02 (`:protocol webtransport`, `sec-webtransport-http3-draft02: 1`)"
    return f"`:protocol {protocol}`"


def address_family(client: tuple[str, int] | None) -> str:
    host = client[0] if client else ""
    if host.startswith("::ffff:") or "." in host:
        return f"IPv4 (`{host.removeprefix('::ffff:')}`)"
    return f"IPv6 (`{host}`)"


def test_datagram_echo(rig: EchoRig, page_runner: PageRunner) -> None:
    """Datagrams echo, UTF-8 intact"""
    assert rig.run("datagram", DATAGRAM_PAGE) == {
        "first": "ping",
        "second": "\u00e9t\u00e9 \u2603",
    }
    rig.check_closes([("/echo", 0, "done")])
    [connected] = rig.log.of("connect")
    request, _ = cast("tuple[wtframe.Request, object]", connected)
    page_runner.facts["dialect"] = dialect(request)
    page_runner.facts["localhost"] = address_family(request.client)


def test_bidirectional_stream_echo(rig: EchoRig) -> None:
    """Bidirectional streams echo (a small and a 100 kB one at once)"""
    assert rig.run("bidi", BIDI_PAGE) == {
        "small": "hello over a stream",
        "largeLength": 100003,
        "largeEnd": "end",
    }
    rig.check_closes([("/echo", 0, "")])


def test_a_stream_the_page_opens_without_writing_reaches_on_stream(rig: EchoRig) -> None:
    """A stream the page opens and does not write to reaches `on_stream` at once"""
    assert rig.run("first", SPEAKS_FIRST_PAGE) == {"answer": "server first"}
    rig.check_closes([("/first", 0, "")])


def test_unidirectional_stream_is_answered_on_a_server_stream(rig: EchoRig) -> None:
    """A unidirectional stream is answered on a server-opened one"""
    assert rig.run("uni", UNI_PAGE) == {"echoed": "one way and back"}
    rig.check_closes([("/echo", 0, "")])


def test_browser_close_code_and_reason_reach_on_close_once(
    rig: EchoRig, page_runner: PageRunner
) -> None:
    """`close({closeCode, reason})` from the page reaches `on_close` once"""
    result = rig.run("client-close", CLIENT_CLOSE_PAGE)
    assert result == {"echoed": "before close", "closeCode": 7, "reason": "bye"}
    rig.check_closes([("/record", 7, "bye")])
    [connected] = rig.log.of("connect")
    _, connection = cast("tuple[wtframe.Request, object]", connected)

    async def connection_held() -> bool:
        return connection in rig.server.connections

    deadline = time.monotonic() + 1  # Firefox closes it after about 0.1 s
    while rig.thread.call(connection_held()) and time.monotonic() < deadline:
        time.sleep(0.05)
    page_runner.facts["after_close"] = (
        "kept open (until the idle timeout)"
        if rig.thread.call(connection_held())
        else "closed by the browser"
    )


def test_server_close_code_and_reason_reach_the_page(rig: EchoRig) -> None:
    """`Session.close(code, reason)` reaches the page's `closed`"""
    result = rig.run("server-close", SERVER_CLOSE_PAGE)
    assert result == {"closeCode": 4000, "reason": "server says bye"}
    rig.check_closes([("/bye", 4000, "server says bye")])


def test_rejected_paths_make_ready_reject(rig: EchoRig) -> None:
    """Unknown and rejected paths make `ready` reject; the server keeps serving"""
    assert rig.run("reject", REJECT_PAGE) == {
        "/nope": "WebTransportError",
        "/nope closed": "WebTransportError",
        "/forbidden": "WebTransportError",
        "/forbidden closed": "WebTransportError",
        "/echo": "open",
        "/echo datagram": "still serving",
    }
    assert rig.log.of("forbidden") == ["/forbidden"]
    rig.check_closes([("/echo", 0, "")])  # /forbidden's on_close never runs


def test_leaving_a_page_ends_its_session(
    rig: EchoRig, page_runner: PageRunner, request: pytest.FixtureRequest
) -> None:
    """Leaving a page that never called `close()` ends its session (code 0)"""
    if page_runner.name == "firefox":
        request.applymarker(pytest.mark.xfail(reason=FIREFOX_KEEPS_LEFT_SESSIONS, strict=True))
    assert rig.run("left", LEFT_PAGE) == "left open"
    page_runner.open("about:blank")
    rig.check_closes([("/echo", 0, "")])


def test_closing_on_pagehide_ends_the_session_when_the_page_is_left(rig: EchoRig) -> None:
    """A page that closes its session on `pagehide` ends it when left"""
    assert rig.run("pagehide", PAGEHIDE_PAGE) == "closed on pagehide"
    rig.runner.open("about:blank")
    rig.check_closes([("/echo", 4001, "page hidden")])

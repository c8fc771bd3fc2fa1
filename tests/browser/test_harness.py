"""The browser test harness: page server, event loop thread, and one API for every browser."""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import (
    DatagramReceived,
    H3Event,
    HeadersReceived,
    WebTransportStreamDataReceived,
)
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent

from tests.support.browser import LoopbackNamespace, PageRunner, run_in_thread
from tests.support.pages import PageServer, script_page
from wtframe.certs import Certificate, generate_certificate


def fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], b""


# --- page server --------------------------------------------------------------------------


def test_page_server_serves_added_files_with_content_types(page_server: PageServer) -> None:
    page_url = page_server.add("/index.html", "<p>hi</p>")
    script_url = page_server.add("app/main.js", b"export const x = 1;")
    other_url = page_server.add("/data.bin", b"\x00\x01", "application/x-test")
    assert page_url == f"http://localhost:{page_server.port}/index.html"
    assert fetch(page_url) == (200, "text/html; charset=utf-8", b"<p>hi</p>")
    status, content_type, body = fetch(script_url)
    assert (status, body) == (200, b"export const x = 1;")
    assert content_type.split(";")[0] == "text/javascript"
    assert fetch(other_url) == (200, "application/x-test", b"\x00\x01")
    assert fetch(page_server.url("/"))[2] == b"<p>hi</p>"
    assert fetch(page_server.url("missing.js"))[0] == 404


def test_page_server_listens_on_both_loopback_addresses(page_server: PageServer) -> None:
    page_server.add("ping.txt", "pong")
    for host in ("127.0.0.1", "[::1]", "localhost"):
        url = f"http://{host}:{page_server.port}/ping.txt"
        assert fetch(url)[::2] == (200, b"pong")


def test_page_server_serves_a_directory(tmp_path: Path) -> None:
    (tmp_path / "lib.js").write_text("console.log(1);")
    (tmp_path / "page.html").write_text("<p>file</p>")
    with PageServer(tmp_path) as pages:
        pages.add("page.html", "<p>memory</p>")
        status, content_type, body = fetch(pages.url("lib.js"))
        assert (status, body) == (200, b"console.log(1);")
        assert content_type.split(";")[0] == "text/javascript"
        assert fetch(pages.url("page.html"))[2] == b"<p>memory</p>"
        port = pages.port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_page_server_url_needs_a_running_server() -> None:
    with pytest.raises(RuntimeError):
        PageServer().url("index.html")


# --- event loop in a thread ---------------------------------------------------------------


def test_run_in_thread_sets_up_and_tears_down() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def resource() -> AsyncIterator[int]:
        events.append("setup")
        yield 42
        await asyncio.sleep(0)
        events.append("teardown")

    async def double(value: int) -> int:
        await asyncio.sleep(0)
        return value * 2

    with run_in_thread(resource) as handle:
        assert handle.value == 42
        assert events == ["setup"]
        assert handle.call(double(21)) == 42
    assert events == ["setup", "teardown"]
    assert handle.loop.is_closed()


def test_run_in_thread_raises_setup_errors() -> None:
    @asynccontextmanager
    async def broken() -> AsyncIterator[None]:
        raise OSError("cannot bind")
        yield  # pragma: no cover

    with pytest.raises(OSError, match="cannot bind"), run_in_thread(broken):
        pytest.fail("the block must not run")  # pragma: no cover


def test_run_in_thread_raises_teardown_errors() -> None:
    @asynccontextmanager
    async def broken() -> AsyncIterator[None]:
        yield
        raise RuntimeError("cannot close")

    with pytest.raises(RuntimeError, match="cannot close"), run_in_thread(broken):
        pass


def test_run_in_thread_reports_unhandled_loop_errors() -> None:
    @asynccontextmanager
    async def idle() -> AsyncIterator[None]:
        yield

    def explode() -> None:
        raise ValueError("callback failed")

    with pytest.raises(AssertionError, match="callback failed"), run_in_thread(idle) as handle:
        handle.call_soon(explode)
        handle.call(asyncio.sleep(0.01))


# --- loopback-only network ---------------------------------------------------------------


def test_browser_tests_see_only_loopback(loopback_network: LoopbackNamespace | None) -> None:
    if loopback_network is None:
        pytest.skip("this process may not make a network namespace (it needs root)")
    seen: list[list[str]] = []

    def interfaces() -> None:
        seen.append([name for _, name in socket.if_nameindex()])

    interfaces()
    thread = threading.Thread(target=interfaces)
    thread.start()
    thread.join()
    assert seen == [["lo"], ["lo"]]
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.bind(("::1", 0))  # loopback is up, IPv6 included


# --- browser ------------------------------------------------------------------------------


def test_run_page_returns_the_result(page_runner: PageRunner, page_server: PageServer) -> None:
    """`run(url)` returns what the page stored"""
    url = page_server.add(
        "index.html",
        script_page("await new Promise((r) => setTimeout(r, 50)); return { sum: 1 + 2 };"),
    )
    assert page_runner.run(url) == {"sum": 3}


def test_script_page_reports_thrown_errors(
    page_runner: PageRunner, page_server: PageServer
) -> None:
    """A page that throws reports the error"""
    url = page_server.add("index.html", script_page('throw new TypeError("boom");'))
    assert page_runner.run(url) == {"error": "TypeError: boom"}


def test_run_page_timeout_shows_console_and_text(
    page_runner: PageRunner, page_server: PageServer
) -> None:
    """A page that never finishes fails with its console and text"""
    page = '<p>visible words</p><script>console.log("console words");</script>'
    url = page_server.add("stuck.html", page)
    with pytest.raises(AssertionError) as failure:
        page_runner.run(url, timeout=0.5)
    assert "window.__result" in str(failure.value)
    assert "console words" in str(failure.value)
    assert "visible words" in str(failure.value)


def test_user_actions_and_windows(page_runner: PageRunner, page_server: PageServer) -> None:
    """Typing, clicking and a second window work like a user's"""
    page = """<!doctype html><meta charset="utf-8">
<input id="name"><button id="go">go</button><p id="out"></p>
<script>
const out = document.getElementById("out");
document.getElementById("go").addEventListener("click", () => { out.textContent += "click "; });
document.getElementById("name").addEventListener("keydown", (event) => {
  if (event.key === "Enter") out.textContent += `enter:${event.target.value} `;
});
</script>"""
    url = page_server.add("actions.html", page)
    page_runner.open(url)
    page_runner.type("name", "Ada", enter=True)
    page_runner.click("go")
    page_runner.wait_until(lambda: page_runner.text("out") == "enter:Ada click", "the events")
    with page_runner.new_window():
        page_runner.open(url)
        assert page_runner.text("out") == ""
    assert page_runner.text("out") == "enter:Ada click"
    with pytest.raises(AssertionError, match="never"):
        page_runner.wait_until(lambda: False, "never", timeout=0.2)


# --- WebTransport against plain aioquic ---------------------------------------------------


class EchoProtocol(QuicConnectionProtocol):
    """Accepts WebTransport sessions and echoes datagrams and bidirectional streams."""

    def __init__(self, *args: Any, paths: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.paths = paths
        self._http = H3Connection(self._quic, enable_webtransport=True)

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self._http.handle_event(event):
            self._handle(h3_event)
        self.transmit()

    def _handle(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            headers = dict(event.headers)
            if headers.get(b":method") == b"CONNECT" and headers.get(b":protocol") == (
                b"webtransport"
            ):
                self.paths.append(headers.get(b":path", b"").decode())
                self._http.send_headers(
                    event.stream_id,
                    [(b":status", b"200"), (b"sec-webtransport-http3-draft", b"draft02")],
                )
            else:
                self._http.send_headers(event.stream_id, [(b":status", b"404")], end_stream=True)
        elif isinstance(event, DatagramReceived):
            self._http.send_datagram(event.stream_id, event.data)
        elif isinstance(event, WebTransportStreamDataReceived) and not event.stream_id & 2:
            self._quic.send_stream_data(event.stream_id, event.data, event.stream_ended)


@dataclass
class EchoServer:
    port: int
    paths: list[str] = field(default_factory=list)


def echo_server(
    cert: Certificate, directory: Path
) -> Callable[[], AbstractAsyncContextManager[EchoServer]]:
    @asynccontextmanager
    async def run() -> AsyncIterator[EchoServer]:
        config = QuicConfiguration(
            is_client=False, alpn_protocols=H3_ALPN, max_datagram_frame_size=65536
        )
        config.load_cert_chain(*cert.write(directory))
        paths: list[str] = []
        protocol = functools.partial(EchoProtocol, paths=paths)
        server = await serve("::", 0, configuration=config, create_protocol=protocol)
        try:
            assert server._transport is not None
            yield EchoServer(server._transport.get_extra_info("sockname")[1], paths)
        finally:
            server.close()

    return run


ECHO_BODY = """
const wt = %(connect)s;
await withTimeout(wt.ready, 10000, "session ready");
const reader = wt.datagrams.readable.getReader();
const writer = wt.datagrams.writable.getWriter();
const pending = reader.read();
let received = null;
for (let attempt = 0; attempt < 50 && received === null; attempt++) {
  await writer.write(bytes("ping"));
  received = await Promise.race([pending, new Promise((r) => setTimeout(() => r(null), 200))]);
}
if (received === null) throw new Error("no datagram came back");
const stream = await wt.createBidirectionalStream();
const streamWriter = stream.writable.getWriter();
await streamWriter.write(bytes("hello over a stream"));
await streamWriter.close();
const echoed = await withTimeout(readAll(stream.readable), 10000, "stream echo");
wt.close({ closeCode: 0, reason: "done" });
return { datagram: text(received.value), stream: text(echoed) };
"""

PINNING_BODY = """
const wrong = %(wrong)s;
wrong.closed.catch(() => {});
let wrongOutcome;
try {
  await withTimeout(wrong.ready, 10000, "ready with the wrong hash");
  wrongOutcome = "connected";
} catch (error) {
  wrongOutcome = error.name;
}
const right = %(right)s;
await withTimeout(right.ready, 10000, "ready with the right hash");
right.close();
return { wrong: wrongOutcome, right: "connected" };
"""


def test_webtransport_echo_against_plain_aioquic(
    page_runner: PageRunner, page_server: PageServer, tmp_path: Path
) -> None:
    """Datagram and stream echo against plain aioquic (no wtframe)"""
    cert = generate_certificate()
    with run_in_thread(echo_server(cert, tmp_path)) as server:
        target = f"https://localhost:{server.value.port}/echo"
        url = page_server.add(
            "echo.html", script_page(ECHO_BODY % {"connect": cert.js_snippet(target)})
        )
        result = page_runner.run(url)
        assert result == {"datagram": "ping", "stream": "hello over a stream"}
        assert server.value.paths == ["/echo"]


def test_certificate_pinning_is_enforced(
    page_runner: PageRunner, page_server: PageServer, tmp_path: Path
) -> None:
    """`serverCertificateHashes`: a wrong hash is refused, the right one accepted"""
    cert = generate_certificate()
    stranger = generate_certificate()
    with run_in_thread(echo_server(cert, tmp_path)) as server:
        target = f"https://localhost:{server.value.port}/pinned"
        body = PINNING_BODY % {
            "wrong": stranger.js_snippet(target),
            "right": cert.js_snippet(target),
        }
        url = page_server.add("pinning.html", script_page(body))
        assert page_runner.run(url) == {"wrong": "WebTransportError", "right": "connected"}
        assert server.value.paths == ["/pinned"]

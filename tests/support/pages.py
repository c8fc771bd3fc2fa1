"""Serving test pages to a browser over plain HTTP on the loopback interface.

`http://localhost` is a secure context, so pages served by [`PageServer`] may use the
`WebTransport` API. [`script_page`] wraps an async JavaScript body into a page that stores
the body's return value (or the error it threw) in `window.__result`, where
`tests.support.browser.run_page` picks it up.
"""

from __future__ import annotations

import errno
import http.server
import io
import logging
import os
import posixpath
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

__all__ = ["JS_HELPERS", "PageServer", "script_page"]

logger = logging.getLogger(__name__)

CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
    ".txt": "text/plain; charset=utf-8",
}

JS_HELPERS = """
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encode a string as UTF-8 bytes. */
function bytes(text) { return encoder.encode(text); }

/** Decode UTF-8 bytes into a string. */
function text(data) { return decoder.decode(data); }

/** Read a ReadableStream of Uint8Array chunks to its end and return one Uint8Array. */
async function readAll(readable) {
  const reader = readable.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) { out.set(chunk, offset); offset += chunk.byteLength; }
  return out;
}

/** Reject with a clear message if `promise` does not settle within `ms` milliseconds. */
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Append a line to the page body (shown when a test times out). */
function log(...parts) {
  const line = parts.map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join(" ");
  document.getElementById("log").textContent += line + "\\n";
}
"""
"""JavaScript functions every `script_page` defines: `bytes`, `text`, `readAll`,
`withTimeout` and `log`."""


def script_page(body: str, *, result_var: str = "__result", title: str = "test page") -> str:
    """Build an HTML page that runs an async JavaScript body and publishes its outcome.

    The body runs inside an async function (so it may `await` and must `return` its result)
    with [`JS_HELPERS`] in scope. Its return value is stored in `window.<result_var>`; if it
    throws, `window.<result_var>` becomes `{"error": "<name>: <message>"}` instead.

    Args:
        body: The statements of the async function.
        result_var: The global variable that receives the outcome.
        title: The page title.

    Returns:
        The HTML document.

    Raises:
        ValueError: If `result_var` is not a JavaScript identifier.
    """
    if not result_var.isidentifier():
        raise ValueError(f"not a JavaScript identifier: {result_var!r}")
    return f"""<!doctype html>
<html>
<head><meta charset="utf-8"><title>{title}</title></head>
<body>
<pre id="log"></pre>
<script type="module">
{JS_HELPERS}
try {{
  const result = await (async () => {{
{body}
  }})();
  window.{result_var} = result === undefined ? null : result;
}} catch (error) {{
  log("error:", String(error));
  const name = error && error.name ? error.name : "Error";
  const message = error && error.message !== undefined ? error.message : String(error);
  window.{result_var} = {{ error: `${{name}}: ${{message}}` }};
}}
</script>
</body>
</html>
"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves in-memory files first, then files of the server's directory."""

    server: _HTTPServer

    def __init__(
        self,
        request: socket.socket,
        client_address: tuple[str, int],
        server: _HTTPServer,
    ) -> None:
        directory = server.owner.directory
        super().__init__(
            request,
            client_address,
            server,
            directory=os.fspath(directory) if directory is not None else None,
        )

    def send_head(self) -> io.BytesIO | BinaryIO | None:
        path = posixpath.normpath(unquote(urlsplit(self.path).path))
        if self.path.split("?", 1)[0].endswith("/") and path != "/":
            path += "/"
        entry = self.server.owner.lookup(path)
        if entry is not None:
            body, content_type = entry
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return io.BytesIO(body)
        if self.server.owner.directory is None:
            self.send_error(404, "File not found")
            return None
        return super().send_head()

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        extension = posixpath.splitext(os.fspath(path))[1].lower()
        return CONTENT_TYPES.get(extension) or super().guess_type(path)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, owner: PageServer):
        self.address_family = family
        self.owner = owner
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


class PageServer:
    """A static HTTP server on the loopback interface, for pages a browser loads.

    It listens on `::1` and `127.0.0.1` with the same free port, so `http://localhost:PORT`
    works whichever address a client picks for `localhost`. Files added with [`add`] are
    served from memory and take precedence over files of `directory`.

    Args:
        directory: A directory whose files are served, or None to serve added files only.

    Example:
        with PageServer() as pages:
            pages.add("/index.html", script_page("return 1 + 1;"))
            assert run_page(driver, pages.url("index.html")) == 2
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._files: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()
        self._servers: list[_HTTPServer] = []
        self._threads: list[threading.Thread] = []
        self.port = 0

    def add(self, path: str, data: bytes | str, content_type: str | None = None) -> str:
        """Serve `data` at `path` from memory.

        Args:
            path: The URL path, with or without a leading slash.
            data: The body; a string is encoded as UTF-8.
            content_type: The Content-Type; guessed from the path's extension when omitted.

        Returns:
            The full URL of the added file.
        """
        path = posixpath.normpath("/" + path.lstrip("/"))
        if content_type is None:
            content_type = CONTENT_TYPES.get(
                posixpath.splitext(path)[1].lower(), "application/octet-stream"
            )
        body = data.encode() if isinstance(data, str) else bytes(data)
        with self._lock:
            self._files[path] = (body, content_type)
        return self.url(path)

    def lookup(self, path: str) -> tuple[bytes, str] | None:
        """Return the in-memory body and content type at `path`, if any.

        Args:
            path: A normalised URL path with a leading slash.

        Returns:
            The body and content type, or None.
        """
        with self._lock:
            entry = self._files.get(path)
            if entry is None and path.endswith("/"):
                entry = self._files.get(path + "index.html")
            if entry is None and path == "/":
                entry = self._files.get("/index.html")
            return entry

    def url(self, path: str = "") -> str:
        """Return `http://localhost:PORT/<path>`.

        Args:
            path: The path of a served file, with or without a leading slash.

        Returns:
            The URL a browser loads.
        """
        if not self.port:
            raise RuntimeError("the page server is not running")
        return f"http://localhost:{self.port}/{path.lstrip('/')}"

    def start(self) -> None:
        """Bind both loopback addresses and start serving in background threads."""
        for _ in range(20):
            first = _HTTPServer(("::1", 0), socket.AF_INET6, self)
            port = first.server_address[1]
            try:
                second = _HTTPServer(("127.0.0.1", port), socket.AF_INET, self)
            except OSError as exc:
                first.server_close()
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            break
        else:
            raise RuntimeError("no port is free on both ::1 and 127.0.0.1")
        self.port = port
        self._servers = [first, second]
        for server in self._servers:
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"page-server-{port}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop serving and close the sockets."""
        for server in self._servers:
            server.shutdown()
        for thread in self._threads:
            thread.join(timeout=5)
        for server in self._servers:
            server.server_close()
        self._servers.clear()
        self._threads.clear()
        self.port = 0

    def __enter__(self) -> PageServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

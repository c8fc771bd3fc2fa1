"""The HTTP side of the clicker: the page, `/wtframe.js` and `/config.json`.

Browsers load the page over plain HTTP from `localhost` (a secure context, so WebTransport
is allowed) and learn where the WebTransport server is from `/config.json`:
`{"url": "https://localhost:4433/clicker", "certificateHash": "<64 hex digits>"}`.
The page reads it again before every reconnect, so a server restarted on another port or
with another certificate is found again.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from wtframe.assets import BROWSER_MODULE_CONTENT_TYPE, browser_module

__all__ = ["STATIC_DIR", "PageConfig", "PageServer", "page_config"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The page's files: `index.html`, `clicker.js`."""


class PageConfig(TypedDict):
    """What `/config.json` holds."""

    url: str
    certificateHash: str


def page_config(port: int, fingerprint: str, path: str = "/clicker") -> PageConfig:
    """Build the page's configuration for a WebTransport server on this machine.

    Args:
        port: The server's UDP port.
        fingerprint: The SHA-256 of its certificate, 64 hex digits.
        path: The clicker's route.

    Returns:
        The configuration, with a `https://localhost:<port><path>` URL.
    """
    return {"url": f"https://localhost:{port}{path}", "certificateHash": fingerprint}


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves `static/`, `/wtframe.js` from the package, and `/config.json`."""

    server: _HTTPServer

    extensions_map = {  # noqa: RUF012 - the stdlib declares it as a plain class attribute
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".json": "application/json",
        ".svg": "image/svg+xml",
        ".ico": "image/x-icon",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(STATIC_DIR), **kwargs)

    def do_GET(self) -> None:
        """Answer a GET request."""
        if not self._send_generated(head=False):
            super().do_GET()

    def do_HEAD(self) -> None:
        """Answer a HEAD request."""
        if not self._send_generated(head=True):
            super().do_HEAD()

    def _send_generated(self, *, head: bool) -> bool:
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path == "/config.json":
            body = json.dumps(self.server.config()).encode()
            content_type = "application/json"
        elif path == "/wtframe.js":
            body, content_type = browser_module(), BROWSER_MODULE_CONTENT_TYPE
        else:
            return False
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
        return True

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the terminal for the launcher's own output."""


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, config: Callable[[], PageConfig]) -> None:
        self.config = config
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class PageServer:
    """Serves the clicker page over HTTP in a background thread.

    Args:
        config: Returns the current `/config.json` content; called on every request.
        host: The address to bind; `::` is dual-stack (IPv6 and IPv4).
        port: The TCP port; 0 picks a free one (read it back from `port`).

    Raises:
        OSError: If the address cannot be bound.
    """

    def __init__(
        self, config: Callable[[], PageConfig], host: str = "::", port: int = 8000
    ) -> None:
        self._server = _HTTPServer(host, port, config)
        self.port: int = self._server.server_address[1]
        """The TCP port bound."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"clicker-http-{self.port}",
            daemon=True,
        )

    def url(self, path: str = "/") -> str:
        """Return the `http://localhost` URL of `path`.

        Args:
            path: The path, with a leading slash.

        Returns:
            The URL a browser opens.
        """
        return f"http://localhost:{self.port}{path}"

    def start(self) -> None:
        """Start serving in the background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> PageServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

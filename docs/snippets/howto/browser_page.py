"""Serving a page and the `wtframe.js` browser module over HTTP; checked when run.

Run it from the repository root:

    python docs/snippets/howto/browser_page.py
"""

from __future__ import annotations

import http.server
import threading
import urllib.request

from wtframe.assets import BROWSER_MODULE_CONTENT_TYPE, browser_module

# --8<-- [start:page]
PAGE = b"""<!doctype html>
<meta charset="utf-8">
<title>ticker</title>
<pre id="log"></pre>
<script type="module">
  import { connect } from "/wtframe.js";
  const config = await (await fetch("/config.json")).json();
  const session = await connect(config.url, { certificateHash: config.certificateHash });
  session.sendDatagram({ subscribe: "ACME" });
  for await (const tick of session.datagrams()) {
    document.querySelector("#log").textContent += JSON.stringify(tick) + "\\n";
  }
</script>
"""
# --8<-- [end:page]


# --8<-- [start:server]
class Handler(http.server.BaseHTTPRequestHandler):
    """Serves the page, the browser module, and where the WebTransport server is."""

    config = b'{"url": "https://localhost:4433/ticker", "certificateHash": "..."}'

    def do_GET(self) -> None:
        """Answer `/`, `/wtframe.js` and `/config.json`."""
        files = {
            "/": (PAGE, "text/html; charset=utf-8"),
            "/wtframe.js": (browser_module(), BROWSER_MODULE_CONTENT_TYPE),
            "/config.json": (self.config, "application/json"),
        }
        if self.path not in files:
            self.send_error(404)
            return
        body, content_type = files[self.path]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# --8<-- [end:server]

__all__ = ["PAGE", "Handler", "check"]


def check() -> None:
    """Serve on a free loopback port and fetch the module."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/wtframe.js"
        with urllib.request.urlopen(url, timeout=5) as answer:
            assert answer.headers["Content-Type"] == "text/javascript; charset=utf-8"
            source = answer.read()
        assert b"export async function connect(" in source
        assert source == browser_module()
    finally:
        server.shutdown()
        server.server_close()
    print("browser module served")


if __name__ == "__main__":
    check()

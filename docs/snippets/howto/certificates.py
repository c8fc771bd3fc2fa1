"""Development certificates and certificate files, checked against a real client when run.

Run it from the repository root:

    python docs/snippets/howto/certificates.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from wtframe import App, HandshakeError, Session, connect, serve
from wtframe.certs import (
    MAX_VALIDITY,
    certificate_fingerprint,
    generate_certificate,
    load_certificate,
)

app = App()


@app.session("/echo")
class Echo(Session):
    """Sends every datagram back."""

    async def on_datagram(self, data: bytes) -> None:
        """Send the datagram back."""
        self.send_datagram(data)


__all__ = ["Echo", "app", "check"]


async def check(folder: Path) -> None:
    """Make, write, load and serve certificates, and connect through each kind of trust."""
    # --8<-- [start:generate]
    cert = generate_certificate(["localhost", "127.0.0.1", "::1"], days=10)
    assert cert.not_after - cert.not_before <= MAX_VALIDITY  # browsers refuse longer spans
    print(cert.fingerprint)  # 64 hex digits: the page's serverCertificateHashes value
    print(cert.js_snippet("https://localhost:4433/echo"))  # ready to paste into a page
    cert_path, key_path = cert.write(folder)  # cert.pem, and key.pem with mode 0600
    # --8<-- [end:generate]

    # --8<-- [start:files]
    loaded = load_certificate(cert_path, key_path)
    assert certificate_fingerprint(cert_path.read_bytes()) == loaded.fingerprint
    server = await serve(app, "127.0.0.1", 0, certfile=str(cert_path), keyfile=str(key_path))
    url = f"https://localhost:{server.port}/echo"
    try:
        # Trust by hash, as a page with serverCertificateHashes does:
        async with connect(url, cert_hash=cert.fingerprint) as session:
            session.send_datagram(b"by hash")
            assert await session.receive_datagram() == b"by hash"
        # Trust by chain, as for a CA-signed certificate (here the file is its own CA):
        async with connect(url, cafile=str(cert_path)) as session:
            session.send_datagram(b"by chain")
            assert await session.receive_datagram() == b"by chain"
        # Neither: the TLS handshake fails, as it does in a browser.
        try:
            await connect(url, timeout=2)
        except HandshakeError:
            pass
        else:
            raise AssertionError("an untrusted certificate was accepted")
    finally:
        await server.shutdown(grace=0)
    # --8<-- [end:files]


async def main() -> None:
    """Run the check in a temporary directory."""
    with tempfile.TemporaryDirectory() as folder:
        await check(Path(folder))


if __name__ == "__main__":
    asyncio.run(main())

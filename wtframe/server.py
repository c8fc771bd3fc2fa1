"""Serving an app over QUIC: `serve()` and `Server`.

`serve()` binds a UDP socket (dual-stack `::` by default: browsers reach `localhost` over
IPv6 only), and runs every WebTransport session of every connection through the app's
router. Without a certificate it generates a development one that browsers accept through
`serverCertificateHashes`; [`Server.certificate`][wtframe.Server] gives its hash.

Shutdown ([`Server.shutdown()`][wtframe.Server.shutdown]) is graceful: every open session
is sent DRAIN, sessions get `grace` seconds to finish, and those still open are closed with
[`CloseCode.GOING_AWAY`][wtframe.CloseCode] (1001).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING, Any

from aioquic.asyncio.server import QuicServer
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, QuicEvent
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import events
from ._connection import WebTransportConnection
from ._runner import SessionRunner, logger
from .certs import Certificate, generate_certificate, load_certificate
from .codes import CloseCode
from .requests import Request

if TYPE_CHECKING:
    from typing_extensions import Self

    from .app import App

__all__ = ["Server", "serve"]


class _ServerConnection(WebTransportConnection):
    """A server-side QUIC connection: session requests go through the app's router."""

    def __init__(self, quic: QuicConnection, *, server: Server, **kwargs: Any) -> None:
        super().__init__(quic, max_sessions=server.app.max_sessions, **kwargs)
        self.server = server
        server.connections.add(self)

    def session_requested(self, event: events.SessionRequested) -> None:
        request = Request(event.headers, client=self._client_address())
        match = self.server.app.router.match(request.raw_path)
        if match is None or self.server.shutting_down:
            self.wt.reject(event.session_id, 503 if match else 404)
            self._transmit_soon()
            return
        request.path_params.update(match.path_params)
        runner = SessionRunner(
            self, event.session_id, match.route.endpoint, request, self.server.app.codec
        )
        self.links[event.session_id] = runner
        runner.start()

    def _client_address(self) -> tuple[str, int] | None:
        paths = self._quic._network_paths
        if not paths:
            return None
        addr = paths[0].addr
        return (str(addr[0]), int(addr[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.server.connections.discard(self)

    def quic_event_received(self, event: QuicEvent) -> None:
        super().quic_event_received(event)
        if isinstance(event, ConnectionTerminated):
            self.server.connections.discard(self)


class Server:
    """A running wtframe server. Use [`serve()`][wtframe.serve] to create one.

    Attributes:
        app: The app being served.
        certificate: The TLS certificate in use (generated or loaded).
        host: The address bound.
        port: The UDP port bound (the real one, also when 0 was asked for).
    """

    def __init__(self, app: App, certificate: Certificate, host: str) -> None:
        self.app = app
        self.certificate = certificate
        self.host = host
        self.port = 0
        self.connections: set[_ServerConnection] = set()
        self.shutting_down = False
        self._quic_server: QuicServer | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._closed = asyncio.Event()

    def url(self, path: str = "/", host: str = "localhost") -> str:
        """Return the `https://` URL a client uses to reach `path` on this server.

        Args:
            path: The path, query string allowed.
            host: The host name to put in the URL.

        Returns:
            The URL, with the real port.
        """
        return f"https://{host}:{self.port}{path}"

    @property
    def runners(self) -> list[SessionRunner]:
        """The sessions currently held, on every connection."""
        return [
            link
            for connection in self.connections
            for link in connection.links.values()
            if isinstance(link, SessionRunner)
        ]

    async def shutdown(self, grace: float = 5.0) -> None:
        """Stop accepting sessions, drain the open ones, then close what is left.

        Args:
            grace: Seconds that sessions get to finish after DRAIN before they are closed
                with `CloseCode.GOING_AWAY`.
        """
        self.shutting_down = True
        for runner in self.runners:
            if runner.state == "open":
                runner.drain()
        deadline = time.monotonic() + grace
        while self.runners and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for runner in self.runners:
            if runner.state == "open":
                runner.close(CloseCode.GOING_AWAY, "server shutting down")
            else:
                runner.connection.close_session(runner.session_id, CloseCode.GOING_AWAY, "")
        pending = [t for c in self.connections for t in c.background_tasks]
        if pending:
            await asyncio.wait(pending, timeout=grace)
        await asyncio.sleep(0)  # let the close capsules leave
        self.close()

    def close(self) -> None:
        """Close every connection and the socket at once, without draining."""
        if self._quic_server is not None and self._transport is not None:
            for connection in list(self.connections):
                connection.transmit()
            self._quic_server.close()
            self._quic_server = None
        self._closed.set()

    async def wait_closed(self) -> None:
        """Wait until the server is closed."""
        await self._closed.wait()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown(grace=0)

    async def _start(self, port: int, configuration: QuicConfiguration) -> None:
        loop = asyncio.get_running_loop()
        sock = _bind(self.host, port)
        self.port = sock.getsockname()[1]
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: QuicServer(
                configuration=configuration,
                create_protocol=lambda quic, **kw: _ServerConnection(quic, server=self, **kw),
            ),
            sock=sock,
        )
        self._transport = transport
        self._quic_server = protocol


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6 and host == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def quic_configuration(certificate: Certificate, **options: Any) -> QuicConfiguration:
    """Build the aioquic server configuration wtframe uses.

    Args:
        certificate: The certificate and key to present.
        **options: Other `QuicConfiguration` fields (e.g. `idle_timeout`).

    Returns:
        The configuration.
    """
    configuration = QuicConfiguration(
        is_client=False,
        alpn_protocols=H3_ALPN,
        max_datagram_frame_size=65536,
        **options,
    )
    configuration.certificate = x509.load_pem_x509_certificate(certificate.cert_pem)
    configuration.private_key = serialization.load_pem_private_key(
        certificate.key_pem, password=None
    )
    return configuration


async def serve(
    app: App,
    host: str = "::",
    port: int = 4433,
    *,
    certfile: str | None = None,
    keyfile: str | None = None,
    certificate: Certificate | None = None,
    idle_timeout: float = 60.0,
) -> Server:
    """Start serving `app` and return the running [`Server`][wtframe.Server].

    Args:
        app: The app.
        host: The address to bind; `::` (the default) is dual-stack IPv6 and IPv4.
        port: The UDP port; 0 picks a free one (read it back from `Server.port`).
        certfile: A PEM certificate (chain) file; with `keyfile`.
        keyfile: The PEM private key file for `certfile`.
        certificate: A [`Certificate`][wtframe.certs.Certificate] object instead of files.
            With neither, a development certificate is generated.
        idle_timeout: Seconds of silence after which a QUIC connection is dropped.

    Returns:
        The running server.
    """
    if certificate is None:
        if certfile is not None:
            certificate = load_certificate(certfile, keyfile or certfile)
        else:
            certificate = generate_certificate()
            logger.info("development certificate sha-256: %s", certificate.fingerprint)
    server = Server(app, certificate, host)
    await server._start(port, quic_configuration(certificate, idle_timeout=idle_timeout))
    logger.info("serving on %s", server.url())
    return server

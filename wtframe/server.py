"""Serving an app over QUIC: `serve()` and `Server`.

`serve()` binds a UDP socket (dual-stack `::` by default: browsers reach `localhost` over
IPv6 only), and runs every WebTransport session of every connection through the app's
router. Without a certificate it generates a development one that browsers accept through
`serverCertificateHashes`; [`Server.certificate`][wtframe.Server] gives its hash.

Before a session request reaches its `Session` class it passes the app's checks, in this
order: a path without a route gets `404`, an origin the app does not allow `403`
([`OriginPolicy`][wtframe.origins.OriginPolicy]), a server shutting down `503`, and a
connection already holding `Limits.max_sessions` sessions `429`.

Shutdown ([`Server.shutdown()`][wtframe.server.Server.shutdown]) is graceful: every open session
is sent DRAIN and sees `Session.server_draining`, sessions get `grace` seconds to finish,
and those still open are closed with [`CloseCode.GOING_AWAY`][wtframe.CloseCode] (1001).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import TYPE_CHECKING, Any

from aioquic.asyncio.server import QuicServer
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import events
from ._connection import WebTransportConnection
from ._runner import SessionRunner, logger
from ._udp import open_endpoint
from .certs import Certificate, generate_certificate, load_certificate
from .codes import CloseCode
from .flowcontrol import FlowLimits
from .requests import Request

if TYPE_CHECKING:
    from typing import Self

    from .app import App

__all__ = ["Server", "serve"]


RECEIVE_BUFFER = 4 * 1024 * 1024
"""The UDP receive buffer the server asks for (the kernel may grant less)."""

CLOSE_LINGER = 1.0
"""Seconds a peer has to end the CONNECT stream after the server closed the session."""

_H3_NO_ERROR = 0x100


class _ServerConnection(WebTransportConnection):
    """A server-side QUIC connection: session requests go through the app's router."""

    def __init__(self, quic: QuicConnection, *, server: Server, **kwargs: Any) -> None:
        limits = server.app.limits
        # Draft-15 peers are held to the same budget by WebTransport flow control.
        flow = FlowLimits(limits.max_session_buffer, limits.max_streams, limits.max_streams)
        super().__init__(quic, max_sessions=limits.max_sessions, flow_limits=flow, **kwargs)
        self.wt.max_capsule_size = limits.max_capsule_size
        self.server = server
        server.connections.add(self)

    def session_requested(self, event: events.SessionRequested) -> None:
        app = self.server.app
        request = Request(event.headers, client=self._client_address(), app=self.server.app)
        match = app.router.match(request.raw_path)
        status = 0
        if match is None:
            status = 404
        elif not app.origin_policy.allows(_origin(event.headers)):
            logger.info("session refused: origin %r not allowed", _origin(event.headers))
            status = 403
        elif self.server.shutting_down:
            status = 503
        if status or match is None:
            self.wt.reject(event.session_id, status)
            self._transmit_soon()
            return
        request.path_params.update(match.path_params)
        runner = SessionRunner(
            self, event.session_id, match.route.endpoint, request, app.codec, app.limits
        )
        self.links[event.session_id] = runner
        runner.start()

    def close_session(self, session_id: int, code: int, reason: str) -> None:
        """Close a session; stop the CONNECT stream if the peer never ends its side."""
        super().close_session(session_id, code, reason)
        self._loop.call_later(CLOSE_LINGER, self._abandon_connect_stream, session_id)

    def _abandon_connect_stream(self, session_id: int) -> None:
        # After the close capsule and FIN, a peer ends its side of the CONNECT stream at
        # once; one that does not would hold aioquic's stream state until the connection
        # ends. STOP_SENDING is sent only now, as browsers want the capsule to come first.
        h3_stream = self.wt.h3._stream.get(session_id)
        if (
            h3_stream is None
            or h3_stream.receiving_ended
            or not h3_stream.sending_ended
            or session_id in self.links
            or session_id not in self._quic._streams
            or self._transport is None
            or self._transport.is_closing()
        ):
            return
        self._quic.stop_stream(session_id, _H3_NO_ERROR)
        self.transmit()

    def _client_address(self) -> tuple[str, int] | None:
        paths = self._quic._network_paths
        if not paths:
            return None
        addr = paths[0].addr
        return (str(addr[0]), int(addr[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.server.connections.discard(self)

    def connection_terminated(self) -> None:
        """Forget the connection at once (its sessions end next)."""
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
        self._hurry = asyncio.Event()
        self._quic_server: QuicServer | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._closed = asyncio.Event()
        self._hooks_done = False

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

        New session requests are answered `503` from the start. Every session held gets
        `Session.server_draining`, open ones are sent DRAIN (sessions still in `on_connect`
        get it once accepted), and sessions that have not ended after `grace` seconds (or
        at `end_grace()`) are closed with `CloseCode.GOING_AWAY`; those still connecting
        are answered `503`. Returns early once every session has ended.

        Args:
            grace: Seconds that sessions get to finish after DRAIN before they are closed
                with `CloseCode.GOING_AWAY`.
        """
        self.shutting_down = True
        for runner in self.runners:
            runner.server_draining = True
            if runner.state == "open":
                runner.drain()
        deadline = time.monotonic() + grace
        while self.runners and not self._hurry.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), min(0.05, remaining))
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
        if not self._hooks_done:
            self._hooks_done = True
            await self.app.shutdown()

    def end_grace(self) -> None:
        """Cut a running `shutdown()`'s grace period short: close the sessions now."""
        self._hurry.set()

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
        sock = _bind(self.host, port)
        self.port = sock.getsockname()[1]
        protocol = QuicServer(
            configuration=configuration,
            create_protocol=lambda quic, **kw: _ServerConnection(quic, server=self, **kw),
        )
        self._transport = await open_endpoint(sock, protocol)
        self._quic_server = protocol


def _origin(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"origin":
            return value.decode("utf-8", "replace")
    return None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6 and host == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        # Every connection shares this socket: a burst (a thousand handshakes at once)
        # must not overflow it. The kernel caps the size at net.core.rmem_max.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
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
    leaf, *intermediates = x509.load_pem_x509_certificates(certificate.cert_pem)
    configuration.certificate = leaf
    configuration.certificate_chain = intermediates  # a fullchain.pem is served whole
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
    configuration = quic_configuration(certificate, idle_timeout=idle_timeout)
    await app.startup()
    try:
        await server._start(port, configuration)
    except BaseException:
        await app.shutdown()
        raise
    logger.info("serving on %s", server.url())
    return server

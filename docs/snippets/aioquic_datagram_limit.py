"""Show that one oversize QUIC datagram blocks every later datagram in aioquic.

A client and a server `QuicConnection` exchange packets in memory (no sockets). The client
sends datagrams of growing size and reports which ones arrive, then sends a 5-byte datagram
after the first one that did not fit.

Run it from the repository root:

    python docs/snippets/aioquic_datagram_limit.py

Only aioquic and cryptography are needed; wtframe is not used.
"""

from __future__ import annotations

import datetime
import ssl

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import DatagramFrameReceived
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["main"]

ADDRESS = ("127.0.0.1", 4433)
"""A made-up peer address: packets are handed over in memory, never sent."""


class Pair:
    """A client and a server connection that pass packets to each other in memory."""

    def __init__(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        start = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - datetime.timedelta(minutes=1))
            .not_valid_after(start + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        server_config = QuicConfiguration(
            is_client=False, alpn_protocols=["h3"], max_datagram_frame_size=65536
        )
        server_config.certificate = certificate
        server_config.private_key = key
        client_config = QuicConfiguration(
            is_client=True, alpn_protocols=["h3"], max_datagram_frame_size=65536
        )
        client_config.verify_mode = ssl.CERT_NONE
        self.packet_size = client_config.max_datagram_size
        self.now = 0.0
        self.client = QuicConnection(configuration=client_config)
        self.server = QuicConnection(
            configuration=server_config,
            original_destination_connection_id=self.client.original_destination_connection_id,
        )
        self.client.connect(ADDRESS, now=self.now)
        self.pump()
        self.received()

    def pump(self) -> None:
        """Move packets both ways until neither side has anything to send."""
        for _ in range(20):
            self.now += 0.05
            moved = False
            for sender, receiver in ((self.client, self.server), (self.server, self.client)):
                for data, _ in sender.datagrams_to_send(now=self.now):
                    receiver.receive_datagram(data, ADDRESS, now=self.now)
                    moved = True
            if not moved:
                return

    def received(self) -> list[int]:
        """Drain the server's events.

        Returns:
            The sizes of the datagrams the server received.
        """
        sizes = []
        while (event := self.server.next_event()) is not None:
            if isinstance(event, DatagramFrameReceived):
                sizes.append(len(event.data))
        while self.client.next_event() is not None:
            pass
        return sizes

    def send(self, size: int) -> list[int]:
        """Send one datagram from the client and deliver what can be delivered.

        Args:
            size: The datagram's payload size in bytes.

        Returns:
            The sizes of the datagrams the server received meanwhile.
        """
        self.client.send_datagram_frame(b"x" * size)
        self.pump()
        return self.received()


def main() -> None:
    """Find the largest datagram that fits, then show what a bigger one does."""
    pair = Pair()
    size = 1100
    while pair.send(size) == [size]:
        size += 1
    print(f"QUIC packet size limit (max_datagram_size): {pair.packet_size} bytes")
    print(f"largest datagram payload delivered: {size - 1} bytes")
    print(f"a {size}-byte datagram: not delivered")
    for later in (5, 5, 5):
        print(f"a {later}-byte datagram sent after it: received {pair.send(later)}")


if __name__ == "__main__":
    main()

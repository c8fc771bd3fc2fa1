"""HTTP/3 for WebTransport: aioquic's `H3Connection` with the few things it lacks.

* extra SETTINGS (max sessions, in both numberings, and every dialect's flow-control
  settings) advertised with aioquic's own;
* the CONNECT stream's plumbing: answering a request, ending or abandoning our side,
  asking the peer to end its side, and queueing capsules;
* the exact size of the largest datagram payload that fits in one QUIC packet.
"""

from __future__ import annotations

from aioquic.buffer import size_uint_var
from aioquic.h3.connection import H3Connection
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet_builder import PACKET_NUMBER_SEND_SIZE

from .capsules import encode_close

__all__ = ["WebTransportH3", "header_value"]

_H3_NO_ERROR = 0x100
_H3_REQUEST_CANCELLED = 0x10C
_AEAD_TAG_SIZE = 16  # every QUIC v1 cipher suite
# The largest value a QUIC variable-length integer of each size holds.
_VARINT_LIMITS = ((1, 0x3F), (2, 0x3FFF), (4, 0x3FFFFFFF), (8, 0x3FFFFFFFFFFFFFFF))


def header_value(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """Return the value of the first header of a name.

    Args:
        headers: The header list.
        name: The lowercase name.

    Returns:
        The value, or `None` if the header is absent.
    """
    for key, value in headers:
        if key == name:
            return value
    return None


class WebTransportH3(H3Connection):
    """aioquic's HTTP/3 connection, with WebTransport enabled and extra settings.

    Args:
        quic: The QUIC connection.
        settings: Settings advertised besides aioquic's own.
    """

    def __init__(self, quic: QuicConnection, settings: dict[int, int]) -> None:
        self._wt_settings = settings
        super().__init__(quic, enable_webtransport=True)  # sends SETTINGS, and keeps them
        del self._wt_settings  # not a second copy per connection

    def _get_local_settings(self) -> dict[int, int]:
        settings = super()._get_local_settings()
        settings.update(self._wt_settings)
        return settings

    def respond(
        self,
        stream_id: int,
        status: int,
        *,
        end_stream: bool,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Answer a request with a status; a server that ends its answer stops the request.

        Args:
            stream_id: The request stream.
            status: The HTTP status.
            end_stream: Whether the answer ends the stream.
            headers: Extra response headers.
        """
        self.send_headers(
            stream_id, [(b":status", str(status).encode()), *(headers or [])], end_stream
        )
        if end_stream and not self._is_client:
            self.stop_request(stream_id)

    def reset_request(self, stream_id: int) -> None:
        """Abandon our side of a CONNECT stream with H3_REQUEST_CANCELLED.

        aioquic's HTTP/3 layer does not see resets sent through QUIC, so its stream state
        is marked (and released once both sides are done) here.

        Args:
            stream_id: The request stream.
        """
        h3_stream = self._stream.get(stream_id)
        if h3_stream is None or h3_stream.sending_ended:
            return
        self._quic.reset_stream(stream_id, _H3_REQUEST_CANCELLED)
        h3_stream.sending_ended = True
        if h3_stream.is_ended():
            del self._stream[stream_id]

    def stop_request(self, stream_id: int) -> None:
        """Ask the peer to end a request stream whose answer is complete (RFC 9114 4.1.1).

        Without it, a peer that never ends its side would keep aioquic's state for the
        stream until the connection closes.

        Args:
            stream_id: The request stream.
        """
        h3_stream = self._stream.get(stream_id)
        if h3_stream is not None and not h3_stream.receiving_ended:
            self._quic.stop_stream(stream_id, _H3_NO_ERROR)

    def send_capsule(self, stream_id: int, capsule: bytes) -> bool:
        """Queue a capsule on a CONNECT stream, unless our side of it is finished.

        Args:
            stream_id: The CONNECT stream.
            capsule: The encoded capsule.

        Returns:
            Whether the capsule was queued.
        """
        h3_stream = self._stream.get(stream_id)
        if h3_stream is None or h3_stream.sending_ended:
            return False
        self.send_data(stream_id, capsule, end_stream=False)
        return True

    def send_close(self, stream_id: int, code: int, reason: str) -> None:
        """End our side of a CONNECT stream with a close capsule, unless it is finished.

        Args:
            stream_id: The CONNECT stream.
            code: The application close code.
            reason: The close reason.
        """
        h3_stream = self._stream.get(stream_id)
        if h3_stream is None or h3_stream.sending_ended:
            return  # our side is finished (aioquic forgets the stream when both are)
        self.send_data(stream_id, encode_close(code, reason), end_stream=True)

    def max_datagram_payload(self, session_id: int) -> int:
        """Return the largest datagram payload for a session that fits in one QUIC packet.

        Args:
            session_id: The session, whose quarter id precedes the payload.

        Returns:
            The size in bytes; 0 if the peer accepts no datagrams.
        """
        quic = self._quic
        remote = quic._remote_max_datagram_frame_size
        if not remote:
            return 0
        header = 1 + len(quic._peer_cid.cid) + PACKET_NUMBER_SEND_SIZE
        frame = min(quic._max_datagram_size - header - _AEAD_TAG_SIZE, remote)
        # A DATAGRAM frame is a type byte, the payload length as a varint, the payload.
        payload = max(min(frame - 1 - size, limit) for size, limit in _VARINT_LIMITS)
        return max(0, payload - size_uint_var(session_id // 4))

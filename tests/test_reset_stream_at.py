"""RESET_STREAM_AT on aioquic's sans-I/O connections, and the private aioquic API it uses."""

from __future__ import annotations

import inspect
import ssl
from collections.abc import Callable

import aioquic
import pytest
from aioquic._buffer import Buffer
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import H3_ALPN
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection as AioquicConnection
from aioquic.quic.connection import QuicConnectionError, QuicReceiveContext
from aioquic.quic.packet import QuicErrorCode
from aioquic.quic.stream import QuicStreamReceiver, QuicStreamSender

from tests.support.quic_pair import certificate
from wtframe._quic import (
    RESET_STREAM_AT_FRAME,
    TP_RESET_STREAM_AT,
    QuicConnection,
    ReliableStreamReset,
    _ReliableResetSender,
)
from wtframe.server import quic_configuration

CLIENT = ("127.0.0.1", 50001)
SERVER = ("127.0.0.1", 4433)
Datagrams = list[tuple[bytes, tuple[str, int]]]


class Pair:
    """A client and a server QUIC connection joined in memory, with a fake clock."""

    def __init__(
        self,
        client_cls: type[AioquicConnection] = QuicConnection,
        server_cls: type[AioquicConnection] = QuicConnection,
    ) -> None:
        self.now = 1000.0
        self.client = client_cls(
            configuration=QuicConfiguration(
                is_client=True,
                alpn_protocols=H3_ALPN,
                verify_mode=ssl.CERT_NONE,
                server_name="localhost",
            )
        )
        self.server = server_cls(
            configuration=quic_configuration(certificate()),
            original_destination_connection_id=self.client.original_destination_connection_id,
        )
        self.events: dict[str, list[events.QuicEvent]] = {"client": [], "server": []}
        self.client.connect(SERVER, now=self.now)
        self.transfer()

    def collect(self) -> None:
        for name, quic in (("client", self.client), ("server", self.server)):
            while (event := quic.next_event()) is not None:
                self.events[name].append(event)

    def take(self, quic: AioquicConnection) -> Datagrams:
        return list(quic.datagrams_to_send(now=self.now))

    def deliver(self, datagrams: Datagrams, to: AioquicConnection) -> None:
        source = CLIENT if to is self.server else SERVER
        for data, _ in datagrams:
            to.receive_datagram(data, source, now=self.now)
        self.collect()

    def transfer(self, rounds: int = 200) -> None:
        for _ in range(rounds):
            self.now += 0.005
            for quic in (self.client, self.server):
                timer = quic.get_timer()
                if timer is not None and timer <= self.now:
                    quic.handle_timer(now=self.now)
            to_server = self.take(self.client)
            self.deliver(to_server, self.server)
            to_client = self.take(self.server)
            self.deliver(to_client, self.client)
            if not to_server and not to_client:
                return
        raise AssertionError("the connections never went quiet")

    def settle(self, seconds: float = 3.0) -> None:
        """Let timers fire (loss recovery) for `seconds` of fake time."""
        end = self.now + seconds
        while self.now < end:
            self.transfer()
            self.now += 0.05

    def received(self, stream_id: int) -> bytes:
        return b"".join(
            e.data
            for e in self.events["server"]
            if isinstance(e, events.StreamDataReceived) and e.stream_id == stream_id
        )

    def resets(self, stream_id: int) -> list[events.StreamReset]:
        return [
            e
            for e in self.events["server"]
            if isinstance(e, events.StreamReset) and e.stream_id == stream_id
        ]


def kinds(pair: Pair, stream_id: int) -> list[str]:
    return [
        type(e).__name__
        for e in pair.events["server"]
        if isinstance(e, events.StreamDataReceived | events.StreamReset)
        and e.stream_id == stream_id
    ]


HEADER = b"\x41\x00"  # a WebTransport bidi stream header for session 0
BODY = bytes(range(256)) * 40


# -- transport parameters ----------------------------------------------------------------


def test_both_ends_advertise_and_see_the_parameter() -> None:
    pair = Pair()
    assert pair.client.peer_supports_reset_stream_at  # type: ignore[attr-defined]
    assert pair.server.peer_supports_reset_stream_at  # type: ignore[attr-defined]


def test_parameter_is_absent_against_plain_aioquic() -> None:
    pair = Pair(client_cls=AioquicConnection)
    assert not pair.server.peer_supports_reset_stream_at  # type: ignore[attr-defined]


def test_serialized_parameters_carry_both_codepoints() -> None:
    data = Pair().server._serialize_transport_parameters()
    found = set()
    buf = Buffer(data=data)
    while not buf.eof():
        param, length = buf.pull_uint_var(), buf.pull_uint_var()
        buf.seek(buf.tell() + length)
        found.add((param, length))
    assert (TP_RESET_STREAM_AT, 0) in found
    assert (0x17F7586D2CB571, 0) in found


# -- sending and receiving -------------------------------------------------------------------


def test_reliable_prefix_then_reset() -> None:
    pair = Pair()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, HEADER + BODY)
    pair.client.reset_stream_at(sid, 7, len(HEADER))  # type: ignore[attr-defined]
    pair.transfer()
    assert pair.received(sid) == HEADER  # nothing past the reliable size was sent
    (reset,) = pair.resets(sid)
    assert isinstance(reset, ReliableStreamReset)
    assert (reset.error_code, reset.reliable_size) == (7, len(HEADER))
    assert kinds(pair, sid) == ["StreamDataReceived", "ReliableStreamReset"]


def test_lost_prefix_is_retransmitted_and_the_rest_abandoned() -> None:
    pair = Pair()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, HEADER + BODY)
    lost = pair.take(pair.client)  # every packet of the data is lost
    assert lost
    pair.client.reset_stream_at(sid, 9, len(HEADER) + 10)  # type: ignore[attr-defined]
    pair.settle()
    assert pair.received(sid) == (HEADER + BODY)[: len(HEADER) + 10]
    (reset,) = pair.resets(sid)
    assert isinstance(reset, ReliableStreamReset)
    assert (reset.error_code, reset.reliable_size) == (9, len(HEADER) + 10)
    # the sending side is finished once the prefix and the reset are acknowledged
    assert pair.client._streams[sid].sender.is_finished


def test_reset_arriving_before_the_prefix_waits_for_it() -> None:
    pair = Pair()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, HEADER + b"hello")
    held = pair.take(pair.client)
    pair.client.reset_stream_at(sid, 3, len(HEADER) + 5)  # type: ignore[attr-defined]
    reset_packets = pair.take(pair.client)
    pair.deliver(reset_packets, pair.server)
    assert pair.resets(sid) == []  # the reliable bytes are not there yet
    pair.deliver(held, pair.server)
    assert pair.received(sid) == HEADER + b"hello"
    assert kinds(pair, sid) == ["StreamDataReceived", "ReliableStreamReset"]
    pair.transfer()
    assert len(pair.resets(sid)) == 1


def test_prefix_already_delivered_resets_at_once() -> None:
    pair = Pair()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, HEADER + b"abc")
    pair.transfer()
    pair.client.send_stream_data(sid, b"more")
    pair.client.reset_stream_at(sid, 1, len(HEADER))  # type: ignore[attr-defined]
    pair.transfer()
    assert pair.received(sid) == HEADER + b"abc"
    assert [r.error_code for r in pair.resets(sid)] == [1]


def test_falls_back_to_reset_stream_without_peer_support() -> None:
    pair = Pair(server_cls=AioquicConnection)
    assert not pair.client.peer_supports_reset_stream_at  # type: ignore[attr-defined]
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, HEADER + b"abc")
    pair.client.reset_stream_at(sid, 5, len(HEADER))  # type: ignore[attr-defined]
    pair.transfer()
    (reset,) = pair.resets(sid)
    assert type(reset) is events.StreamReset and reset.error_code == 5


@pytest.mark.parametrize("reliable", [0, 1])
def test_plain_reset_when_nothing_needs_to_be_reliable_or_fin_was_sent(reliable: int) -> None:
    pair = Pair()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, HEADER, end_stream=bool(reliable))
    pair.client.reset_stream_at(sid, 4, reliable)  # type: ignore[attr-defined]
    assert not isinstance(pair.client._streams[sid].sender, _ReliableResetSender)


def test_reliable_size_is_capped_at_what_was_written() -> None:
    pair = Pair()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, HEADER)
    pair.client.reset_stream_at(sid, 2, 1000)  # type: ignore[attr-defined]
    pair.transfer()
    (reset,) = pair.resets(sid)
    assert isinstance(reset, ReliableStreamReset) and reset.reliable_size == len(HEADER)


def test_a_plain_reset_supersedes_a_reliable_one() -> None:
    pair = Pair()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, HEADER + BODY)
    lost = pair.take(pair.client)
    assert lost
    pair.client.reset_stream_at(sid, 6, len(HEADER))  # type: ignore[attr-defined]
    pair.client.reset_stream(sid, 8)
    pair.settle()
    (reset,) = pair.resets(sid)
    assert type(reset) is events.StreamReset and reset.error_code == 8


# -- malformed frames ------------------------------------------------------------------


def frame(*fields: int) -> Buffer:
    return Buffer(data=b"".join(encode_uint_var(f) for f in fields))


def receive_frame(pair: Pair, *fields: int) -> None:
    context: QuicReceiveContext = None  # type: ignore[assignment]  # unused by the handler
    pair.server._handle_reset_stream_at_frame(  # type: ignore[attr-defined]
        context, RESET_STREAM_AT_FRAME, frame(*fields)
    )


def test_reliable_size_beyond_final_size_is_an_encoding_error() -> None:
    pair = Pair()
    with pytest.raises(QuicConnectionError) as info:
        receive_frame(pair, 0, 1, 10, 11)
    assert info.value.error_code == QuicErrorCode.FRAME_ENCODING_ERROR


def test_final_size_below_received_data_is_an_error() -> None:
    pair = Pair()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, HEADER + b"abcdef")
    pair.transfer()
    with pytest.raises(QuicConnectionError) as info:
        receive_frame(pair, sid, 1, 3, 2)
    assert info.value.error_code == QuicErrorCode.FINAL_SIZE_ERROR


def test_final_size_cannot_change_between_frames() -> None:
    pair = Pair()
    receive_frame(pair, 0, 1, 10, 5)
    with pytest.raises(QuicConnectionError) as info:
        receive_frame(pair, 0, 1, 12, 5)
    assert info.value.error_code == QuicErrorCode.FINAL_SIZE_ERROR


def test_a_second_frame_can_only_shrink_the_reliable_size() -> None:
    pair = Pair()
    receive_frame(pair, 0, 1, 10, 8)
    receive_frame(pair, 0, 1, 10, 0)  # now nothing is owed: the reset is reported
    pair.collect()
    (reset,) = pair.resets(0)
    assert isinstance(reset, ReliableStreamReset) and reset.reliable_size == 0


# -- the private aioquic API this relies on ----------------------------------------------


def params(function: Callable[..., object]) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_aioquic_version_is_the_one_checked() -> None:
    assert aioquic.__version__.startswith("1.7."), aioquic.__version__


def test_private_connection_api_still_has_the_expected_shape() -> None:
    quic = AioquicConnection(configuration=QuicConfiguration(is_client=True))
    handlers = vars(quic)["_QuicConnection__frame_handlers"]
    handler, epochs = handlers[0x04]
    assert callable(handler) and isinstance(epochs, frozenset)
    assert RESET_STREAM_AT_FRAME not in handlers
    assert params(AioquicConnection._write_reset_stream_frame) == ["self", "builder", "stream"]
    assert params(AioquicConnection._handle_stream_frame) == [
        "self",
        "context",
        "frame_type",
        "buf",
    ]
    assert params(AioquicConnection._serialize_transport_parameters) == ["self"]
    assert params(AioquicConnection._parse_transport_parameters) == [
        "self",
        "data",
        "from_session_ticket",
    ]
    assert params(AioquicConnection._get_or_create_stream) == ["self", "frame_type", "stream_id"]
    assert params(AioquicConnection._get_or_create_stream_for_send) == ["self", "stream_id"]
    assert params(AioquicConnection._assert_stream_can_receive) == [
        "self",
        "frame_type",
        "stream_id",
    ]
    assert params(AioquicConnection._stream_can_send) == ["self", "stream_id"]
    assert params(AioquicConnection._stream_is_discarded) == ["self", "stream_id"]
    for name in ("_local_max_data", "_events", "_streams"):
        assert hasattr(quic, name), name
    assert hasattr(quic._local_max_data, "used") and hasattr(quic._local_max_data, "value")
    # RESET_STREAM frames are written through the overridable method
    source = inspect.getsource(AioquicConnection._write_application)
    assert "self._write_reset_stream_frame(builder=builder, stream=stream)" in source


def test_private_stream_api_still_has_the_expected_shape() -> None:
    sender = QuicStreamSender(stream_id=0, writable=True)
    for name in (
        "_pending",
        "_buffer",
        "_buffer_start",
        "_buffer_stop",
        "_buffer_fin",
        "_pending_eof",
        "_reset_error_code",
        "reset_pending",
        "highest_offset",
        "is_finished",
        "buffer_is_empty",
    ):
        assert hasattr(sender, name), name
    assert not hasattr(QuicStreamSender, "__slots__")  # the class of a sender can be switched
    assert params(QuicStreamSender.on_data_delivery) == [
        "self",
        "delivery",
        "start",
        "stop",
        "fin",
    ]
    receiver = QuicStreamReceiver(stream_id=0, readable=True)
    for name in ("_final_size", "highest_offset", "is_finished"):
        assert hasattr(receiver, name), name
    assert receiver.starting_offset() == 0


# -- upgrading aioquic's own connections ---------------------------------------------------


def test_upgrade_in_place_before_the_handshake() -> None:
    from wtframe._quic import upgrade

    class Upgraded(Pair):
        def __init__(self) -> None:
            super().__init__(client_cls=AioquicConnection, server_cls=AioquicConnection)

    # connections built by aioquic itself, as its asyncio helpers do, then upgraded
    original_init = Pair.__init__

    def build(pair: Pair) -> None:
        pair.now = 1000.0
        pair.client = upgrade(
            AioquicConnection(
                configuration=QuicConfiguration(
                    is_client=True,
                    alpn_protocols=H3_ALPN,
                    verify_mode=ssl.CERT_NONE,
                    server_name="localhost",
                )
            )
        )
        pair.server = upgrade(
            AioquicConnection(
                configuration=quic_configuration(certificate()),
                original_destination_connection_id=pair.client.original_destination_connection_id,
            )
        )
        pair.events = {"client": [], "server": []}
        pair.client.connect(SERVER, now=pair.now)
        pair.transfer()

    pair = Pair.__new__(Pair)
    build(pair)
    assert original_init is Pair.__init__
    assert isinstance(pair.client, QuicConnection) and isinstance(pair.server, QuicConnection)
    assert upgrade(pair.client) is pair.client
    assert pair.server.peer_supports_reset_stream_at
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, HEADER + b"abc")
    pair.client.reset_stream_at(sid, 11, len(HEADER) + 3)
    pair.transfer()
    assert pair.received(sid) == HEADER + b"abc"
    (reset,) = pair.resets(sid)
    assert isinstance(reset, ReliableStreamReset)


# -- through the WebTransport layer --------------------------------------------------------


def test_webtransport_resets_keep_the_header_and_the_data_before_them() -> None:
    from tests.support.quic_pair import QuicPair
    from wtframe.events import StreamDataReceived, StreamResetReceived

    pair = QuicPair()
    session_id = pair.open_session()
    client, server = pair.client.protocol, pair.server.protocol
    stream_id = client.open_stream(session_id, unidirectional=True)
    client.send_stream_data(stream_id, b"before")
    lost = pair.client.quic.datagrams_to_send(now=pair.now)  # header and data are lost
    assert lost
    client.reset_stream(stream_id, 5)
    out: list[object] = []
    for _ in range(40):  # loss recovery resends the header, not the abandoned data
        pair.now += 0.1
        out.extend(pair.transfer()[1])
    kinds = [type(e).__name__ for e in out]
    assert kinds[0] == "StreamOpened" and kinds[-1] == "StreamResetReceived"
    data = b"".join(e.data for e in out if isinstance(e, StreamDataReceived))
    assert data == b""  # the reliable size covers the header only
    (reset,) = [e for e in out if isinstance(e, StreamResetReceived)]
    assert reset.code == 5
    assert server.reset_was_reliable(stream_id)
    assert server.stream_count == 0


def test_a_reliable_reset_leaves_the_data_readable() -> None:
    from wtframe.exceptions import StreamReset
    from wtframe.streams import ReceiveStream, SendStream, _StreamBase

    class IO:
        consumed = 0

        def stream_send(self, stream: SendStream, data: bytes, end_stream: bool) -> None: ...

        def stream_reset(self, stream: SendStream, code: int) -> None: ...

        def stream_stop(self, stream_id: int, code: int) -> None: ...

        def stream_buffered(self, stream_id: int) -> int:
            return 0

        def stream_consumed(self, stream_id: int, size: int) -> None:
            self.consumed += size

        def stream_wait_writable(self, stream: SendStream) -> None: ...

        def stream_done(self, stream: _StreamBase) -> None: ...

    async def scenario() -> None:
        io = IO()
        kept = ReceiveStream(io, 2, None)
        kept._feed(b"prefix", False)
        kept._reset_by_peer(9, keep_data=True)
        assert await kept.read() == b"prefix"
        with pytest.raises(StreamReset):
            await kept.read()
        dropped = ReceiveStream(io, 6, None)
        dropped._feed(b"gone", False)
        dropped._reset_by_peer(9)
        with pytest.raises(StreamReset):
            await dropped.read()
        assert io.consumed == len(b"prefix") + len(b"gone")

    import asyncio

    asyncio.run(scenario())

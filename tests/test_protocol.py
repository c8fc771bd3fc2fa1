from __future__ import annotations

import itertools

import pytest
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import ErrorCode as H3ErrorCode
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import StopSendingReceived as QuicStopSendingReceived
from aioquic.quic.events import StreamReset as QuicStreamReset

from tests.support.quic_pair import QuicPair, RawClientPair
from wtframe._lifecycle import _Session
from wtframe.capsules import (
    CLOSE_WEBTRANSPORT_SESSION,
    CapsuleParser,
    encode_capsule,
    encode_close,
    encode_drain,
)
from wtframe.codes import CloseCode, WTErrorCode, to_http3_error
from wtframe.events import (
    DatagramReceived,
    DrainRequested,
    Event,
    SessionEnded,
    SessionEstablished,
    SessionRefused,
    SessionRequested,
    SettingsReceived,
    StopSendingReceived,
    StreamDataReceived,
    StreamOpened,
    StreamResetReceived,
)
from wtframe.exceptions import DatagramTooLarge, SessionClosed
from wtframe.protocol import (
    SETTING_MAX_SESSIONS,
    SETTING_MAX_SESSIONS_DRAFT,
    TRANSITIONS,
    SessionState,
    Trigger,
    WebTransportProtocol,
)

SESSION_GONE = WTErrorCode.SESSION_GONE
H3_MESSAGE_ERROR = 0x10E
H3_REQUEST_CANCELLED = 0x10C
H3_NO_ERROR = 0x100
ENABLE_WEBTRANSPORT = 0x2B603742
H3_DATAGRAM = 0x33
ENABLE_CONNECT_PROTOCOL = 0x8
GREASE_CAPSULE = 0x29 * 7 + 0x17

WT_REQUEST = [
    (b":method", b"CONNECT"),
    (b":scheme", b"https"),
    (b":authority", b"localhost"),
    (b":path", b"/wt"),
    (b":protocol", b"webtransport-h3"),
]
NO_EVENTS: tuple[list[Event], list[Event]] = ([], [])


def raw_resets(pair: QuicPair | RawClientPair, side: str) -> dict[int, int]:
    end = pair.client if side == "client" else pair.server
    return {event.stream_id: event.error_code for event in end.raw_of(QuicStreamReset)}


def raw_stops(pair: QuicPair | RawClientPair, side: str) -> dict[int, int]:
    end = pair.client if side == "client" else pair.server
    return {event.stream_id: event.error_code for event in end.raw_of(QuicStopSendingReceived)}


def assert_released(pair: QuicPair) -> None:
    for side in (pair.client, pair.server):
        assert side.protocol.stream_count == 0
        assert side.protocol.session_count == 0


# -- settings ------------------------------------------------------------------------------


def test_settings_received_on_both_sides() -> None:
    pair = QuicPair(max_sessions=5)
    client_events, server_events = pair.handshake_events
    server_settings = pair.server.protocol.h3.sent_settings
    client_settings = pair.client.protocol.h3.sent_settings
    assert server_settings is not None and client_settings is not None
    assert client_events == [SettingsReceived(settings=server_settings)]
    assert server_events == [SettingsReceived(settings=client_settings)]
    wanted = {
        ENABLE_WEBTRANSPORT: 1,
        H3_DATAGRAM: 1,
        ENABLE_CONNECT_PROTOCOL: 1,
        0xC671706A: 5,
        0x14E9CD29: 5,
    }
    assert {key: server_settings[key] for key in wanted} == wanted
    assert (SETTING_MAX_SESSIONS, SETTING_MAX_SESSIONS_DRAFT) == (0xC671706A, 0x14E9CD29)
    # Reported once only.
    pair.open_session()
    assert pair.transfer() == NO_EVENTS


# -- session establishment -----------------------------------------------------------------


def test_request_and_accept() -> None:
    pair = QuicPair()
    session_id = pair.client.protocol.request_session(
        "localhost:4433", "/echo?x=1", [(b"origin", b"http://localhost:8000")]
    )
    assert pair.client.protocol.session_state(session_id) is SessionState.REQUESTED
    request = [
        (b":method", b"CONNECT"),
        (b":scheme", b"https"),
        (b":authority", b"localhost:4433"),
        (b":path", b"/echo?x=1"),
        (b":protocol", b"webtransport"),
        (b"sec-webtransport-http3-draft02", b"1"),
        (b"origin", b"http://localhost:8000"),
    ]
    assert pair.transfer() == ([], [SessionRequested(session_id=session_id, headers=request)])
    assert pair.server.protocol.session_state(session_id) is SessionState.REQUESTED

    pair.server.protocol.accept(session_id, [(b"x-extra", b"1")])
    response = [
        (b":status", b"200"),
        (b"sec-webtransport-http3-draft", b"draft02"),
        (b"x-extra", b"1"),
    ]
    assert pair.transfer() == (
        [SessionEstablished(session_id=session_id, headers=response)],
        [],
    )
    for side in (pair.client, pair.server):
        assert side.protocol.session_state(session_id) is SessionState.OPEN
        assert side.protocol.session_count == 1


def test_reject() -> None:
    pair = QuicPair()
    session_id = pair.client.protocol.request_session("localhost", "/missing")
    pair.transfer()
    pair.server.protocol.reject(session_id, 404, [(b"x-why", b"no route")])
    headers = [(b":status", b"404"), (b"x-why", b"no route")]
    assert pair.transfer() == (
        [SessionRefused(session_id=session_id, status=404, headers=headers)],
        [],
    )
    for side in (pair.client, pair.server):
        assert side.protocol.session_state(session_id) is SessionState.CLOSED
    assert_released(pair)
    with pytest.raises(SessionClosed):
        pair.server.protocol.accept(session_id)


def test_webtransport_h3_token_is_accepted_without_draft02_echo() -> None:
    pair = RawClientPair()
    session_id = pair.request(WT_REQUEST)
    assert pair.transfer() == ([], [SessionRequested(session_id=session_id, headers=WT_REQUEST)])
    pair.server.protocol.accept(session_id)
    pair.transfer()
    assert pair.client.h3_events == [
        HeadersReceived(headers=[(b":status", b"200")], stream_id=session_id, stream_ended=False)
    ]


def test_get_is_answered_405_without_event() -> None:
    pair = RawClientPair()
    stream_id = pair.request(
        [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"x"), (b":path", b"/")],
        end_stream=True,
    )
    assert pair.transfer() == NO_EVENTS
    assert pair.client.h3_events == [
        HeadersReceived(headers=[(b":status", b"405")], stream_id=stream_id, stream_ended=True)
    ]
    assert pair.server.protocol.session_count == 0


@pytest.mark.parametrize(
    ("headers", "end_stream"),
    [
        ([(b":method", b"CONNECT"), (b":authority", b"localhost:4433")], False),
        ([*WT_REQUEST[:4], (b":protocol", b"websocket")], False),
        (WT_REQUEST, True),
    ],
    ids=["plain-connect", "other-protocol", "ended-request"],
)
def test_bad_connect_is_answered_400(headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
    pair = RawClientPair()
    stream_id = pair.request(headers, end_stream=end_stream)
    assert pair.transfer() == NO_EVENTS
    assert pair.client.h3_events == [
        HeadersReceived(headers=[(b":status", b"400")], stream_id=stream_id, stream_ended=True)
    ]


def test_sessions_beyond_max_sessions_get_429() -> None:
    pair = QuicPair(max_sessions=2)
    first = pair.open_session()
    pair.open_session()
    third = pair.client.protocol.request_session("localhost", "/")
    assert pair.transfer() == (
        [SessionRefused(session_id=third, status=429, headers=[(b":status", b"429")])],
        [],
    )
    # A freed slot can be used again.
    pair.server.protocol.close_session(first)
    pair.transfer()
    assert pair.server.protocol.session_count == 1
    pair.open_session()


def test_interim_response_is_not_an_answer() -> None:
    pair = QuicPair()
    session_id = pair.client.protocol.request_session("localhost", "/")
    pair.transfer()
    pair.server.protocol.h3.send_headers(session_id, [(b":status", b"103")])
    assert pair.transfer() == NO_EVENTS
    assert pair.client.protocol.session_state(session_id) is SessionState.REQUESTED
    pair.server.protocol.accept(session_id)
    client_events, _ = pair.transfer()
    assert [type(event) for event in client_events] == [SessionEstablished]


def test_success_status_that_ends_the_stream_is_a_refusal() -> None:
    pair = QuicPair()
    session_id = pair.client.protocol.request_session("localhost", "/")
    pair.transfer()
    pair.server.protocol.h3.send_headers(session_id, [(b":status", b"200")], end_stream=True)
    assert pair.transfer() == (
        [SessionRefused(session_id=session_id, status=200, headers=[(b":status", b"200")])],
        [],
    )


def test_trailers_on_the_connect_stream_are_ignored() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    pair.client.protocol.h3.send_headers(session_id, [(b"x-trailer", b"1")])
    pair.server.protocol.h3.send_headers(session_id, [(b"x-trailer", b"2")])
    assert pair.transfer() == NO_EVENTS
    for side in (pair.client, pair.server):
        assert side.protocol.session_state(session_id) is SessionState.OPEN


def test_server_push_is_ignored_by_the_client() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    push_stream = pair.server.protocol.h3.send_push_promise(
        session_id,
        [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"x"), (b":path", b"/")],
    )
    pair.server.protocol.h3.send_headers(push_stream, [(b":status", b"200")])
    pair.server.protocol.h3.send_data(push_stream, b"pushed", end_stream=True)
    assert pair.transfer() == NO_EVENTS


# -- datagrams -----------------------------------------------------------------------------


def test_datagrams_both_ways() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    pair.client.protocol.send_datagram(session_id, b"ping")
    assert pair.transfer() == ([], [DatagramReceived(session_id=session_id, data=b"ping")])
    pair.server.protocol.send_datagram(session_id, b"pong")
    assert pair.transfer() == ([DatagramReceived(session_id=session_id, data=b"pong")], [])


def test_datagrams_for_unknown_or_unaccepted_sessions_are_dropped() -> None:
    pair = RawClientPair()
    session_id = pair.request(WT_REQUEST)
    pair.client.h3.send_datagram(session_id, b"too early")
    pair.client.h3.send_datagram(session_id + 400, b"nobody")
    assert pair.transfer() == ([], [SessionRequested(session_id=session_id, headers=WT_REQUEST)])
    pair.server.protocol.accept(session_id)
    pair.client.h3.send_datagram(session_id, b"now")
    assert pair.transfer() == ([], [DatagramReceived(session_id=session_id, data=b"now")])


def test_datagrams_are_dropped_once_the_session_is_closed() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    pair.server.protocol.close_session(session_id, 0, "")
    pair.client.quic.send_datagram_frame(encode_uint_var(session_id // 4) + b"late")
    _, server_events = pair.transfer()
    assert not [e for e in server_events if isinstance(e, DatagramReceived)]


def test_a_datagram_without_a_session_id_closes_the_connection() -> None:
    pair = QuicPair()
    pair.open_session()
    pair.client.quic.send_datagram_frame(b"")
    pair.transfer()
    closed = pair.server.quic._close_event
    assert closed is not None and closed.error_code == H3ErrorCode.H3_DATAGRAM_ERROR


def test_datagram_commands_need_an_open_session() -> None:
    pair = QuicPair()
    session_id = pair.client.protocol.request_session("localhost", "/")
    with pytest.raises(SessionClosed):
        pair.client.protocol.send_datagram(session_id, b"x")
    with pytest.raises(SessionClosed):
        pair.client.protocol.send_datagram(404, b"x")


def check_datagram_limit(pair: QuicPair, session_id: int, sender: str) -> int:
    """Check that the limit is exact for one session, one way; return it."""
    side, other = (pair.client, pair.server) if sender == "client" else (pair.server, pair.client)
    limit = side.protocol.max_datagram_size(session_id)
    with pytest.raises(DatagramTooLarge) as caught:
        side.protocol.send_datagram(session_id, b"x" * (limit + 1))
    assert (caught.value.size, caught.value.limit) == (limit + 1, limit)
    side.protocol.send_datagram(session_id, b"y" * limit)
    got = pair.transfer()[0 if sender == "server" else 1]
    assert got == [DatagramReceived(session_id=session_id, data=b"y" * limit)]
    # One byte more, bypassing the check, would stay stuck at the head of aioquic's queue.
    side.protocol.h3.send_datagram(session_id, b"z" * (limit + 1))
    assert pair.transfer() == NO_EVENTS
    assert list(side.quic._datagrams_pending) == [
        encode_uint_var(session_id // 4) + b"z" * (limit + 1)
    ]
    side.quic._datagrams_pending.clear()
    assert other.protocol.session_state(session_id) is SessionState.OPEN
    return limit


@pytest.mark.parametrize("sender", ["client", "server"])
def test_max_datagram_size_is_exact(sender: str) -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    limit = check_datagram_limit(pair, session_id, sender)
    side = pair.client if sender == "client" else pair.server
    assert side.protocol.max_datagram_size() == limit
    # The defaults: 1200-byte packets, 8-byte connection ids, 2-byte packet numbers.
    assert limit == 1200 - (1 + 8 + 2) - 16 - (1 + 2) - 1


def test_max_datagram_size_follows_the_session_id_length() -> None:
    pair = QuicPair(max_sessions=100)
    ids = [pair.client.protocol.request_session("localhost", "/") for _ in range(65)]
    assert ids[-1] == 256  # the first session whose quarter id takes two bytes
    pair.transfer()
    for session_id in ids[:-1]:
        pair.server.protocol.reject(session_id, 404)
    pair.server.protocol.accept(ids[-1])
    pair.transfer()
    small = pair.server.protocol.max_datagram_size(0)
    assert pair.server.protocol.max_datagram_size() == small - 1
    assert check_datagram_limit(pair, 256, "server") == small - 1


def test_no_datagrams_when_the_peer_takes_none() -> None:
    pair = RawClientPair(webtransport=False)
    session_id = pair.request(WT_REQUEST)
    pair.transfer()
    pair.server.protocol.accept(session_id)
    assert pair.server.protocol.max_datagram_size() == 0
    with pytest.raises(DatagramTooLarge) as caught:
        pair.server.protocol.send_datagram(session_id, b"x")
    assert (caught.value.size, caught.value.limit) == (1, 0)


# -- streams -------------------------------------------------------------------------------


def test_client_unidirectional_stream() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    stream_id = pair.client.protocol.open_stream(session_id, unidirectional=True)
    pair.client.protocol.send_stream_data(stream_id, b"hello")
    assert pair.transfer() == (
        [],
        [
            StreamOpened(session_id=session_id, stream_id=stream_id, is_unidirectional=True),
            StreamDataReceived(
                session_id=session_id, stream_id=stream_id, data=b"hello", end_stream=False
            ),
        ],
    )
    pair.client.protocol.send_stream_data(stream_id, b" world", end_stream=True)
    assert pair.transfer() == (
        [],
        [
            StreamDataReceived(
                session_id=session_id, stream_id=stream_id, data=b" world", end_stream=True
            )
        ],
    )
    for side in (pair.client, pair.server):
        assert side.protocol.stream_count == 0
        assert stream_id not in side.protocol.h3._stream
    with pytest.raises(SessionClosed):
        pair.client.protocol.send_stream_data(stream_id, b"more")


def test_server_unidirectional_stream() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    stream_id = pair.server.protocol.open_stream(session_id, unidirectional=True)
    pair.server.protocol.send_stream_data(stream_id, b"news", end_stream=True)
    assert pair.transfer() == (
        [
            StreamOpened(session_id=session_id, stream_id=stream_id, is_unidirectional=True),
            StreamDataReceived(
                session_id=session_id, stream_id=stream_id, data=b"news", end_stream=True
            ),
        ],
        [],
    )
    assert pair.client.protocol.stream_count == pair.server.protocol.stream_count == 0


@pytest.mark.parametrize("opener", ["client", "server"])
def test_bidirectional_stream_replies_surface(opener: str) -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    local, remote = (
        (pair.client, pair.server) if opener == "client" else (pair.server, pair.client)
    )
    stream_id = local.protocol.open_stream(session_id)
    local.protocol.send_stream_data(stream_id, b"ping")
    client_events, server_events = pair.transfer()
    assert (client_events if opener == "server" else server_events) == [
        StreamOpened(session_id=session_id, stream_id=stream_id, is_unidirectional=False),
        StreamDataReceived(
            session_id=session_id, stream_id=stream_id, data=b"ping", end_stream=False
        ),
    ]
    assert (server_events if opener == "server" else client_events) == []

    remote.protocol.send_stream_data(stream_id, b"pong", end_stream=True)
    client_events, server_events = pair.transfer()
    assert (server_events if opener == "server" else client_events) == [
        StreamDataReceived(
            session_id=session_id, stream_id=stream_id, data=b"pong", end_stream=True
        )
    ]
    assert (client_events if opener == "server" else server_events) == []

    local.protocol.send_stream_data(stream_id, b"", end_stream=True)
    client_events, server_events = pair.transfer()
    assert (client_events if opener == "server" else server_events) == [
        StreamDataReceived(session_id=session_id, stream_id=stream_id, data=b"", end_stream=True)
    ]
    for side in (pair.client, pair.server):
        assert side.protocol.stream_count == 0
        assert stream_id not in side.protocol.h3._stream


def test_stream_commands_need_an_open_session_and_a_known_stream() -> None:
    pair = QuicPair()
    session_id = pair.client.protocol.request_session("localhost", "/")
    pair.transfer()
    with pytest.raises(SessionClosed):
        pair.client.protocol.open_stream(session_id)
    with pytest.raises(SessionClosed):
        pair.client.protocol.send_stream_data(1234, b"x")
    # Resetting or stopping an unknown stream does nothing.
    pair.client.protocol.reset_stream(1234, 1)
    pair.client.protocol.stop_stream(1234, 1)
    assert pair.client.quic.datagrams_to_send(now=pair.now) == []


def test_reset_carries_the_application_code() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    stream_id = pair.client.protocol.open_stream(session_id)
    pair.client.protocol.send_stream_data(stream_id, b"x")
    pair.transfer()
    pair.client.protocol.reset_stream(stream_id, 7)
    pair.client.protocol.reset_stream(stream_id, 8)  # the sending side is gone already
    assert pair.transfer() == (
        [],
        [StreamResetReceived(session_id=session_id, stream_id=stream_id, code=7)],
    )
    assert raw_resets(pair, "server") == {stream_id: to_http3_error(7)}
    # The other direction still works, and the stream is released when it ends.
    pair.server.protocol.send_stream_data(stream_id, b"late", end_stream=True)
    assert pair.transfer() == (
        [
            StreamDataReceived(
                session_id=session_id, stream_id=stream_id, data=b"late", end_stream=True
            )
        ],
        [],
    )
    assert pair.client.protocol.stream_count == pair.server.protocol.stream_count == 0


def test_reset_without_an_application_code() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    stream_id = pair.client.protocol.open_stream(session_id, unidirectional=True)
    pair.client.protocol.send_stream_data(stream_id, b"x")
    pair.transfer()
    pair.client.quic.reset_stream(stream_id, H3ErrorCode.H3_NO_ERROR)
    assert pair.transfer() == (
        [],
        [StreamResetReceived(session_id=session_id, stream_id=stream_id, code=None)],
    )
    assert pair.server.protocol.stream_count == 0


def test_reply_and_reset_crossing_keep_the_reply() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    stream_id = pair.client.protocol.open_stream(session_id)
    pair.client.protocol.send_stream_data(stream_id, b"x")
    pair.transfer()
    pair.server.protocol.send_stream_data(stream_id, b"reply", end_stream=True)
    pair.client.protocol.reset_stream(stream_id, 3)
    # The reset reaches the server before the reply leaves it.
    pair._send(pair.client, pair.server)
    assert pair.server.drain() == [
        StreamResetReceived(session_id=session_id, stream_id=stream_id, code=3)
    ]
    assert pair.transfer() == (
        [
            StreamDataReceived(
                session_id=session_id, stream_id=stream_id, data=b"reply", end_stream=True
            )
        ],
        [],
    )
    assert raw_resets(pair, "client") == {}


def test_stop_sending_carries_the_application_code() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    stream_id = pair.client.protocol.open_stream(session_id)
    pair.client.protocol.send_stream_data(stream_id, b"x")
    pair.transfer()
    pair.server.protocol.stop_stream(stream_id, 9)
    pair.server.protocol.stop_stream(stream_id, 10)  # asked already
    # Data already on its way when the STOP_SENDING is sent is dropped.
    pair.client.protocol.send_stream_data(stream_id, b"dropped")
    assert pair.transfer() == (
        [StopSendingReceived(session_id=session_id, stream_id=stream_id, code=9)],
        [StreamResetReceived(session_id=session_id, stream_id=stream_id, code=9)],
    )
    assert raw_stops(pair, "client") == {stream_id: to_http3_error(9)}
    with pytest.raises(SessionClosed):
        pair.client.protocol.send_stream_data(stream_id, b"more")
    pair.client.protocol.reset_stream(stream_id, 1)  # already reset: nothing happens
    pair.server.protocol.send_stream_data(stream_id, b"", end_stream=True)
    assert pair.transfer() == (
        [
            StreamDataReceived(
                session_id=session_id, stream_id=stream_id, data=b"", end_stream=True
            )
        ],
        [],
    )
    assert pair.client.protocol.stream_count == pair.server.protocol.stream_count == 0


def test_stop_sending_after_fin_and_fin_after_stop() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    stream_id = pair.server.protocol.open_stream(session_id)
    pair.server.protocol.send_stream_data(stream_id, b"a")
    pair.transfer()
    pair.server.protocol.send_stream_data(stream_id, b"b", end_stream=True)
    pair.client.protocol.stop_stream(stream_id, 4)
    # The server had finished sending: nothing to report there. aioquic answers the
    # STOP_SENDING with a reset, which replaces the data and the FIN.
    assert pair.transfer() == (
        [StreamResetReceived(session_id=session_id, stream_id=stream_id, code=4)],
        [],
    )
    assert pair.client.protocol.stream_count == 1  # its sending side is still open
    pair.client.protocol.send_stream_data(stream_id, b"bye", end_stream=True)
    assert pair.transfer() == (
        [],
        [
            StreamDataReceived(
                session_id=session_id, stream_id=stream_id, data=b"bye", end_stream=True
            )
        ],
    )
    assert pair.client.protocol.stream_count == pair.server.protocol.stream_count == 0


def test_stream_buffered() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    stream_id = pair.server.protocol.open_stream(session_id, unidirectional=True)
    pair.server.protocol.send_stream_data(stream_id, b"x" * 5000)
    assert pair.server.protocol.stream_buffered(stream_id) >= 5000
    pair.transfer()
    assert pair.server.protocol.stream_buffered(stream_id) == 0
    assert pair.server.protocol.stream_buffered(4444) == 0


# -- closing -------------------------------------------------------------------------------


def test_close_session_ends_the_peer_session_and_resets_its_streams() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    client_bidi = pair.client.protocol.open_stream(session_id)
    client_uni = pair.client.protocol.open_stream(session_id, unidirectional=True)
    server_bidi = pair.server.protocol.open_stream(session_id)
    for stream_id in (client_bidi, client_uni):
        pair.client.protocol.send_stream_data(stream_id, b"c")
    pair.server.protocol.send_stream_data(server_bidi, b"s")
    pair.transfer()

    pair.server.protocol.close_session(session_id, 42, "bye")
    assert pair.server.protocol.session_state(session_id) is SessionState.CLOSED
    pair.server.protocol.close_session(session_id)  # closed already: nothing happens
    # Sent before the client learns of the close: dropped.
    pair.client.protocol.send_stream_data(client_bidi, b"late")
    assert pair.transfer() == (
        [SessionEnded(session_id=session_id, code=42, reason="bye", by_peer=True)],
        [],
    )
    # The server reset and stopped every stream of the session with SESSION_GONE.
    assert raw_resets(pair, "client") == {client_bidi: SESSION_GONE, server_bidi: SESSION_GONE}
    assert raw_stops(pair, "client") == {
        client_bidi: SESSION_GONE,
        client_uni: SESSION_GONE,
        server_bidi: SESSION_GONE,
    }
    # The client answered with FIN and abandoned its side of the streams, quietly.
    assert raw_resets(pair, "server") == {
        client_bidi: SESSION_GONE,
        client_uni: SESSION_GONE,
        server_bidi: SESSION_GONE,
    }
    assert raw_stops(pair, "server") == {client_bidi: SESSION_GONE, server_bidi: SESSION_GONE}
    assert_released(pair)
    for side in (pair.client, pair.server):
        assert session_id not in side.protocol.h3._stream
    with pytest.raises(SessionClosed):
        pair.server.protocol.send_stream_data(server_bidi, b"x")
    with pytest.raises(SessionClosed):
        pair.client.protocol.drain_session(session_id)


def test_simultaneous_close_is_quiet() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    pair.client.protocol.close_session(session_id, 1, "client")
    pair.server.protocol.close_session(session_id, 2, "server")
    assert pair.transfer() == NO_EVENTS
    assert_released(pair)


def test_close_of_a_requested_session() -> None:
    pair = QuicPair()
    session_id = pair.client.protocol.request_session("localhost", "/")
    pair.transfer()
    # The server withdraws its offer with 503.
    pair.server.protocol.close_session(session_id)
    assert pair.transfer() == (
        [SessionRefused(session_id=session_id, status=503, headers=[(b":status", b"503")])],
        [],
    )
    # The client withdraws its request: the CONNECT stream is reset.
    session_id = pair.client.protocol.request_session("localhost", "/")
    pair.transfer()
    pair.client.protocol.close_session(session_id)
    assert pair.transfer() == (
        [],
        [SessionEnded(session_id=session_id, code=CloseCode.ABNORMAL, reason="", by_peer=True)],
    )
    # The 503 answer came with STOP_SENDING (H3_NO_ERROR): the client's QUIC reset its side.
    assert raw_resets(pair, "server") == {
        session_id - 4: H3_NO_ERROR,
        session_id: H3_REQUEST_CANCELLED,
    }
    assert_released(pair)


def test_rejecting_a_session_resets_its_early_streams() -> None:
    pair = RawClientPair()
    session_id = pair.request(WT_REQUEST)
    stream_id = pair.client.h3.create_webtransport_stream(session_id)
    pair.client.quic.send_stream_data(stream_id, b"early")
    assert pair.transfer() == (
        [],
        [
            SessionRequested(session_id=session_id, headers=WT_REQUEST),
            StreamOpened(session_id=session_id, stream_id=stream_id, is_unidirectional=False),
            StreamDataReceived(
                session_id=session_id, stream_id=stream_id, data=b"early", end_stream=False
            ),
        ],
    )
    pair.server.protocol.reject(session_id, 403)
    assert pair.transfer() == NO_EVENTS
    assert raw_resets(pair, "client") == {stream_id: SESSION_GONE}
    assert raw_stops(pair, "client") == {session_id: H3_NO_ERROR, stream_id: SESSION_GONE}
    assert pair.server.protocol.stream_count == 0


def test_fin_without_capsule_ends_with_code_0() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    pair.client.protocol.h3.send_data(session_id, b"", end_stream=True)
    ended = SessionEnded(session_id=session_id, code=0, reason="", by_peer=True)
    # The server answers with a close capsule echoing the code, and FIN.
    assert pair.transfer() == ([ended], [ended])
    assert_released(pair)


def test_fin_on_a_requested_session_is_answered_400() -> None:
    pair = RawClientPair()
    session_id = pair.request(WT_REQUEST)
    pair.client.h3.send_data(session_id, b"", end_stream=True)
    assert pair.transfer() == (
        [],
        [
            SessionRequested(session_id=session_id, headers=WT_REQUEST),
            SessionEnded(session_id=session_id, code=0, reason="", by_peer=True),
        ],
    )
    assert pair.client.h3_events == [
        HeadersReceived(headers=[(b":status", b"400")], stream_id=session_id, stream_ended=True)
    ]


def test_close_capsule_on_a_requested_session() -> None:
    pair = RawClientPair()
    session_id = pair.request(WT_REQUEST)
    pair.client.h3.send_data(session_id, encode_close(5, "gone"), end_stream=True)
    assert pair.transfer() == (
        [],
        [
            SessionRequested(session_id=session_id, headers=WT_REQUEST),
            SessionEnded(session_id=session_id, code=5, reason="gone", by_peer=True),
        ],
    )
    assert pair.client.h3_events == [
        HeadersReceived(headers=[(b":status", b"400")], stream_id=session_id, stream_ended=True)
    ]
    assert pair.server.protocol.session_count == 0


def test_reset_of_the_connect_stream_ends_with_1006() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    stream_id = pair.server.protocol.open_stream(session_id)
    pair.server.protocol.send_stream_data(stream_id, b"x")
    pair.transfer()
    pair.client.quic.reset_stream(session_id, H3_REQUEST_CANCELLED)
    # The server abandons its side of the CONNECT stream too, so the client, which reset
    # the stream behind its protocol's back, learns that the session ended.
    ended = SessionEnded(session_id=session_id, code=CloseCode.ABNORMAL, reason="", by_peer=True)
    assert pair.transfer() == ([ended], [ended])
    assert raw_resets(pair, "client") == {
        stream_id: SESSION_GONE,
        session_id: H3_REQUEST_CANCELLED,
    }
    assert pair.server.protocol.session_count == 0
    assert pair.server.protocol.stream_count == 0


def test_capsule_split_byte_by_byte() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    for byte in encode_close(7, "bye"):
        pair.client.protocol.h3.send_data(session_id, bytes([byte]), end_stream=False)
    pair.client.protocol.h3.send_data(session_id, b"", end_stream=True)
    client_events, server_events = pair.transfer()
    assert server_events == [
        SessionEnded(session_id=session_id, code=7, reason="bye", by_peer=True)
    ]
    assert client_events == [SessionEnded(session_id=session_id, code=7, reason="", by_peer=True)]


def test_unknown_capsules_are_skipped_unbuffered() -> None:
    pair = QuicPair(max_capsule_size=64)
    session_id = pair.open_session()
    parser = pair.server.protocol._sessions[session_id].parser
    h3 = pair.client.protocol.h3
    grease = encode_capsule(GREASE_CAPSULE, bytes(range(30)))
    h3.send_data(session_id, grease + encode_drain(), end_stream=False)
    assert pair.transfer() == ([], [DrainRequested(session_id=session_id)])
    # A large one, far over max_capsule_size, arriving in pieces.
    size, chunk = 200_000, 20_000
    header = encode_uint_var(GREASE_CAPSULE + 0x1F) + encode_uint_var(size)
    h3.send_data(session_id, header, end_stream=False)
    for _ in range(size // chunk):
        h3.send_data(session_id, b"\xaa" * chunk, end_stream=False)
        assert pair.transfer() == NO_EVENTS
        assert parser.buffered == 0
    h3.send_data(session_id, encode_drain(), end_stream=False)
    assert pair.transfer() == ([], [DrainRequested(session_id=session_id)])


def test_drain_both_ways() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    pair.server.protocol.drain_session(session_id)
    assert pair.transfer() == ([DrainRequested(session_id=session_id)], [])
    pair.client.protocol.drain_session(session_id)
    assert pair.transfer() == ([], [DrainRequested(session_id=session_id)])
    for side in (pair.client, pair.server):
        assert side.protocol.session_state(session_id) is SessionState.OPEN


MALFORMED_CLOSE = {
    "short": (b"\x00\x00\x01", "capsule shorter than 4 bytes"),
    "long-reason": (b"\x00\x00\x00\x01" + b"r" * 1025, "reason longer than 1024 bytes"),
    "bad-utf8": (b"\x00\x00\x00\x01\xff\xfe", "reason is not UTF-8"),
}


@pytest.mark.parametrize(("payload", "why"), MALFORMED_CLOSE.values(), ids=MALFORMED_CLOSE.keys())
def test_malformed_close_capsule_ends_only_its_session(payload: bytes, why: str) -> None:
    pair = QuicPair()
    broken = pair.open_session()
    healthy = pair.open_session()
    healthy_stream = pair.client.protocol.open_stream(healthy)
    pair.client.protocol.send_stream_data(healthy_stream, b"a")
    pair.transfer()

    pair.client.protocol.h3.send_data(
        broken, encode_capsule(CLOSE_WEBTRANSPORT_SESSION, payload), end_stream=False
    )
    client_events, server_events = pair.transfer()
    reason = f"CLOSE_WEBTRANSPORT_SESSION {why}"
    assert server_events == [
        SessionEnded(
            session_id=broken, code=CloseCode.PROTOCOL_ERROR, reason=reason, by_peer=False
        )
    ]
    assert client_events == [
        SessionEnded(session_id=broken, code=CloseCode.PROTOCOL_ERROR, reason=reason, by_peer=True)
    ]
    assert raw_stops(pair, "client") == {broken: H3_MESSAGE_ERROR}

    pair.client.protocol.send_datagram(healthy, b"still")
    pair.client.protocol.send_stream_data(healthy_stream, b"b", end_stream=True)
    assert pair.transfer() == (
        [],
        [
            DatagramReceived(session_id=healthy, data=b"still"),
            StreamDataReceived(
                session_id=healthy, stream_id=healthy_stream, data=b"b", end_stream=True
            ),
        ],
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            encode_capsule(CLOSE_WEBTRANSPORT_SESSION, b"\x00" * 5000),
            "capsule 0x2843 of 5000 bytes exceeds 4096",
        ),
        (encode_close(1, "truncated")[:-3], "CONNECT stream ended inside a capsule"),
    ],
    ids=["oversize", "truncated"],
)
def test_broken_capsule_stream_ends_with_1002(data: bytes, reason: str) -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    pair.client.protocol.h3.send_data(session_id, data, end_stream=True)
    code = CloseCode.PROTOCOL_ERROR
    assert pair.transfer() == (
        [SessionEnded(session_id=session_id, code=code, reason=reason, by_peer=True)],
        [SessionEnded(session_id=session_id, code=code, reason=reason, by_peer=False)],
    )
    assert_released(pair)


def test_malformed_capsule_on_a_requested_session_is_answered_400() -> None:
    pair = RawClientPair()
    session_id = pair.request(WT_REQUEST)
    pair.client.h3.send_data(
        session_id, encode_capsule(CLOSE_WEBTRANSPORT_SESSION, b"\x00"), end_stream=False
    )
    _, server_events = pair.transfer()
    assert server_events == [
        SessionRequested(session_id=session_id, headers=WT_REQUEST),
        SessionEnded(
            session_id=session_id,
            code=CloseCode.PROTOCOL_ERROR,
            reason="CLOSE_WEBTRANSPORT_SESSION capsule shorter than 4 bytes",
            by_peer=False,
        ),
    ]
    assert pair.client.h3_events == [
        HeadersReceived(headers=[(b":status", b"400")], stream_id=session_id, stream_ended=True)
    ]
    assert raw_stops(pair, "client") == {session_id: H3_MESSAGE_ERROR}


def test_no_close_echo_on_a_finished_connect_stream() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    # Behind the protocols' backs: the server ends its side of the CONNECT stream, the
    # client sends a close capsule without FIN.
    pair.server.protocol.h3.send_data(session_id, b"", end_stream=True)
    pair.client.protocol.h3.send_data(session_id, encode_close(3, "x"), end_stream=False)
    assert pair.transfer() == (
        [SessionEnded(session_id=session_id, code=0, reason="", by_peer=True)],
        [SessionEnded(session_id=session_id, code=3, reason="x", by_peer=True)],
    )
    assert_released(pair)


def test_connection_terminated_ends_every_session() -> None:
    pair = QuicPair()
    first = pair.open_session()
    second = pair.open_session()
    stream_id = pair.client.protocol.open_stream(second)
    pair.client.protocol.send_stream_data(stream_id, b"x")
    pair.transfer()
    pair.client.quic.close(error_code=0, reason_phrase="going")
    client_events, server_events = pair.advance(1.0)
    expected = [
        SessionEnded(session_id=session_id, code=CloseCode.ABNORMAL, reason="going", by_peer=True)
        for session_id in (first, second)
    ]
    assert client_events == expected
    assert server_events == expected
    assert_released(pair)


def test_streams_of_unknown_sessions_are_refused() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    h3 = pair.client.protocol.h3
    unknown = session_id + 400
    bidi_open = h3.create_webtransport_stream(unknown)
    bidi_ended = h3.create_webtransport_stream(unknown)
    uni_open = h3.create_webtransport_stream(unknown, is_unidirectional=True)
    uni_ended = h3.create_webtransport_stream(unknown, is_unidirectional=True)
    for stream_id in (bidi_open, uni_open):
        pair.client.quic.send_stream_data(stream_id, b"hello")
    for stream_id in (bidi_ended, uni_ended):
        pair.client.quic.send_stream_data(stream_id, b"bye", end_stream=True)
    good = pair.client.protocol.open_stream(session_id)
    pair.client.protocol.send_stream_data(good, b"fine")
    assert pair.transfer() == (
        [],
        [
            StreamOpened(session_id=session_id, stream_id=good, is_unidirectional=False),
            StreamDataReceived(
                session_id=session_id, stream_id=good, data=b"fine", end_stream=False
            ),
        ],
    )
    assert raw_resets(pair, "client") == {bidi_open: SESSION_GONE, bidi_ended: SESSION_GONE}
    assert raw_stops(pair, "client") == {bidi_open: SESSION_GONE, uni_open: SESSION_GONE}
    # Whatever else arrives on them is dropped; the server forgets them once they end.
    assert pair.server.protocol.stream_count == 1
    for stream_id in (bidi_open, uni_open, bidi_ended, uni_ended):
        assert stream_id not in pair.server.protocol.h3._stream


def open_raw_stream(pair: QuicPair, opener: str, unidirectional: bool) -> tuple[int, bytes]:
    """Open a stream with aioquic alone; return it and the WebTransport header to send."""
    quic = (pair.client if opener == "client" else pair.server).quic
    stream_id = quic.get_next_available_stream_id(is_unidirectional=unidirectional)
    return stream_id, encode_uint_var(0x54 if unidirectional else 0x41)


@pytest.mark.parametrize("unidirectional", [False, True])
@pytest.mark.parametrize("opener", ["client", "server"])
def test_stream_header_in_pieces(opener: str, unidirectional: bool) -> None:
    """A header cut in pieces is read by HTTP/3; the stream opens once it is whole."""
    pair = QuicPair()
    session_id = pair.open_session()
    local, remote = (
        (pair.client, pair.server) if opener == "client" else (pair.server, pair.client)
    )
    stream_id, signal = open_raw_stream(pair, opener, unidirectional)
    header = signal + encode_uint_var(session_id)
    opened = StreamOpened(
        session_id=session_id, stream_id=stream_id, is_unidirectional=unidirectional
    )
    for index, byte in enumerate(header):
        local.quic.send_stream_data(stream_id, bytes([byte]))
        client_events, server_events = pair.transfer()
        received = server_events if opener == "client" else client_events
        assert received == ([opened] if index == len(header) - 1 else [])
    local.quic.send_stream_data(stream_id, b"body")
    local.quic.send_stream_data(stream_id, b"more", end_stream=True)
    client_events, server_events = pair.transfer()
    received = server_events if opener == "client" else client_events
    data = [e for e in received if isinstance(e, StreamDataReceived)]
    assert len(data) == len(received)
    assert b"".join(e.data for e in data) == b"bodymore" and data[-1].end_stream
    # Known to the protocol from then on; HTTP/3 keeps nothing for it.
    assert stream_id not in remote.protocol.h3._stream
    assert remote.protocol.stream_count == (0 if unidirectional else 1)


@pytest.mark.parametrize("unidirectional", [False, True])
def test_a_header_alone_opens_the_stream(unidirectional: bool) -> None:
    """The opener may wait for the other side to speak first: the stream is reported."""
    pair = QuicPair()
    session_id = pair.open_session()
    stream_id, signal = open_raw_stream(pair, "client", unidirectional)
    pair.client.quic.send_stream_data(stream_id, signal + encode_uint_var(session_id))
    assert pair.transfer()[1] == [
        StreamOpened(session_id=session_id, stream_id=stream_id, is_unidirectional=unidirectional)
    ]
    pair.client.quic.send_stream_data(stream_id, b"late", end_stream=True)
    assert pair.transfer()[1] == [
        StreamDataReceived(
            session_id=session_id, stream_id=stream_id, data=b"late", end_stream=True
        ),
    ]
    assert stream_id not in pair.server.protocol.h3._stream


def test_reset_of_a_stream_whose_header_came_alone_reaches_its_session() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    stream_id, signal = open_raw_stream(pair, "client", True)
    pair.client.quic.send_stream_data(stream_id, signal + encode_uint_var(session_id))
    assert pair.transfer()[1] == [
        StreamOpened(session_id=session_id, stream_id=stream_id, is_unidirectional=True)
    ]
    pair.client.quic.reset_stream(stream_id, to_http3_error(7))
    assert pair.transfer()[1] == [
        StreamResetReceived(session_id=session_id, stream_id=stream_id, code=7),
    ]
    assert pair.server.protocol.stream_count == 0
    assert stream_id not in pair.server.protocol.h3._stream


def test_peer_resets_of_webtransport_streams_leave_our_side_alone() -> None:
    """HTTP/3 would take a reset of a stream it does not know for a cancelled request."""
    pair = QuicPair()
    session_id = pair.open_session()
    stream_id = pair.client.protocol.open_stream(session_id)
    pair.client.protocol.send_stream_data(stream_id, b"question")
    pair.transfer()
    pair.client.protocol.reset_stream(stream_id, 3)
    _, server_events = pair.transfer()
    assert server_events == [
        StreamResetReceived(session_id=session_id, stream_id=stream_id, code=3)
    ]
    pair.server.protocol.send_stream_data(stream_id, b"answer", end_stream=True)
    client_events, _ = pair.transfer()
    assert client_events == [
        StreamDataReceived(
            session_id=session_id, stream_id=stream_id, data=b"answer", end_stream=True
        )
    ]
    assert raw_resets(pair, "client") == {}


# -- memory --------------------------------------------------------------------------------


def exchange_streams(pair: QuicPair, session_id: int, opener: str, count: int) -> None:
    local, remote = (
        (pair.client, pair.server) if opener == "client" else (pair.server, pair.client)
    )
    batch = 100
    for _ in range(count // batch):
        for _ in range(batch):
            stream_id = local.protocol.open_stream(session_id)
            local.protocol.send_stream_data(stream_id, b"request", end_stream=True)
        client_events, server_events = pair.transfer()
        opened = [
            event.stream_id
            for event in (server_events if opener == "client" else client_events)
            if isinstance(event, StreamOpened)
        ]
        assert len(opened) == batch
        for stream_id in opened:
            remote.protocol.send_stream_data(stream_id, b"response", end_stream=True)
        client_events, server_events = pair.transfer()
        replies = client_events if opener == "client" else server_events
        received: dict[int, bytes] = {}
        for event in replies:
            assert isinstance(event, StreamDataReceived)
            received[event.stream_id] = received.get(event.stream_id, b"") + event.data
        assert received == dict.fromkeys(opened, b"response")
        assert sum(isinstance(e, StreamDataReceived) and e.end_stream for e in replies) == batch


def test_finished_streams_leave_no_state() -> None:
    pair = QuicPair()
    session_id = pair.open_session()
    bounds = []
    for opener in ("client", "server", "client", "server"):
        exchange_streams(pair, session_id, opener, 1000)
        for side in (pair.client, pair.server):
            assert side.protocol.stream_count == 0
            bounds.append(len(side.protocol.h3._stream))
    # 2,000 streams each way; what is left is the CONNECT stream and the control streams.
    assert max(bounds) <= 8
    assert bounds[:2] == bounds[-2:]


# -- the state machine ---------------------------------------------------------------------


def test_no_datagrams_before_the_handshake() -> None:
    configuration = QuicConfiguration(is_client=True, max_datagram_frame_size=65536)
    protocol = WebTransportProtocol(QuicConnection(configuration=configuration))
    assert protocol.max_datagram_size() == 0


def test_transitions_table() -> None:
    protocol = WebTransportProtocol(QuicConnection(configuration=QuicConfiguration()))
    for state, trigger in itertools.product(SessionState, Trigger):
        session = _Session(session_id=0, state=state, parser=CapsuleParser())
        if (state, trigger) in TRANSITIONS:
            protocol._move(session, trigger)
            assert session.state is TRANSITIONS[state, trigger]
        else:
            with pytest.raises(RuntimeError):
                protocol._move(session, trigger)
            assert session.state is state

    def triggers(state: SessionState) -> set[Trigger]:
        return {trigger for (source, trigger) in TRANSITIONS if source is state}

    assert triggers(SessionState.CLOSED) == set()
    assert triggers(SessionState.OPEN) == set(Trigger) - {
        Trigger.ACCEPT,
        Trigger.REJECT,
        Trigger.PEER_ACCEPTED,
        Trigger.PEER_REFUSED,
    }
    assert triggers(SessionState.REQUESTED) == set(Trigger)
    assert TRANSITIONS[SessionState.REQUESTED, Trigger.ACCEPT] is SessionState.OPEN
    assert TRANSITIONS[SessionState.REQUESTED, Trigger.PEER_ACCEPTED] is SessionState.OPEN
    others = {key: value for key, value in TRANSITIONS.items() if value is not SessionState.CLOSED}
    assert set(others) == {
        (SessionState.REQUESTED, Trigger.ACCEPT),
        (SessionState.REQUESTED, Trigger.PEER_ACCEPTED),
    }


def test_stop_sending_before_the_stream_is_known_is_reported() -> None:
    """A server stream stopped before its first byte: the client learns it can't write."""
    pair = QuicPair()
    session_id = pair.open_session()
    server, client = pair.server.protocol, pair.client.protocol
    stream_id = server.open_stream(session_id)
    server.stop_stream(stream_id, 9)
    server.send_stream_data(stream_id, b"", True)
    client_events, _ = pair.transfer()
    assert client_events[:2] == [
        StreamOpened(session_id=session_id, stream_id=stream_id, is_unidirectional=False),
        StopSendingReceived(session_id=session_id, stream_id=stream_id, code=9),
    ]
    with pytest.raises(SessionClosed):
        client.send_stream_data(stream_id, b"too late")
    assert client.stream_count == 0

"""WebTransport flow control: the pure accounting, then the sans-I/O protocol running it."""

from __future__ import annotations

import pytest
from aioquic.quic.events import StreamReset as QuicStreamReset

from tests.support.quic_pair import QuicPair
from wtframe import events
from wtframe.capsules import encode_capsule
from wtframe.codes import CloseCode, WTErrorCode
from wtframe.dialects import Dialect
from wtframe.exceptions import CapsuleError, SessionClosed
from wtframe.flowcontrol import (
    MAX_STREAMS_LIMIT,
    WT_DATA_BLOCKED,
    WT_MAX_DATA,
    WT_MAX_STREAM_DATA,
    WT_MAX_STREAMS_BIDI,
    WT_STREAMS_BLOCKED_UNI,
    FlowControlError,
    FlowLimits,
    ReceiveWindow,
    SendCredit,
    StreamsBlocked,
    decode_value,
    encode_value,
)

# -- capsule payloads ------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 63, 64, 16383, 16384, 2**30, 2**62 - 1])
def test_value_round_trip(value: int) -> None:
    capsule = encode_value(WT_MAX_DATA, value)
    assert capsule.startswith(encode_capsule(WT_MAX_DATA, b"")[:4])
    assert decode_value(capsule[5:]) == value


@pytest.mark.parametrize("payload", [b"", b"\x40", b"\x01\x02"])
def test_malformed_values_are_capsule_errors(payload: bytes) -> None:
    with pytest.raises(CapsuleError):
        decode_value(payload)


# -- what the peer allows us -----------------------------------------------------------


def test_send_credit_spends_and_reports_blocking_once_per_limit() -> None:
    credit = SendCredit(max_data=10)
    assert credit.take(4) == 4
    assert credit.take(10) == 6
    assert credit.available == 0
    assert credit.take(1) == 0
    assert credit.data_blocked() == 10
    assert credit.data_blocked() is None  # already reported at this limit
    assert credit.update_max_data(15)
    assert credit.data_blocked() is None  # not blocked any more
    assert credit.take(20) == 5
    assert credit.data_blocked() == 15


def test_send_credit_ignores_smaller_limits() -> None:
    credit = SendCredit(max_data=10, max_streams_bidi=3)
    assert not credit.update_max_data(5)
    assert not credit.update_max_streams(False, 2)
    assert (credit.max_data, credit.max_streams_bidi) == (10, 3)


def test_stream_credit_per_kind() -> None:
    credit = SendCredit(max_streams_bidi=1, max_streams_uni=0)
    assert credit.can_open(False) and not credit.can_open(True)
    credit.open(False)
    with pytest.raises(StreamsBlocked) as info:
        credit.open(False)
    assert not info.value.unidirectional
    assert credit.streams_blocked(False) == 1
    assert credit.streams_blocked(False) is None
    assert credit.streams_blocked(True) == 0
    assert credit.update_max_streams(True, 2)
    credit.open(True)
    assert credit.opened_uni == 1 and credit.opened_bidi == 1


def test_too_many_streams_in_a_limit_is_an_error() -> None:
    with pytest.raises(FlowControlError):
        SendCredit().update_max_streams(True, MAX_STREAMS_LIMIT + 1)
    assert SendCredit().update_max_streams(True, MAX_STREAMS_LIMIT)


# -- what we allow the peer ------------------------------------------------------------


def test_data_credit_follows_consumption_by_half_windows() -> None:
    window = ReceiveWindow(FlowLimits(max_data=100))
    window.on_data(100)
    with pytest.raises(FlowControlError):
        window.on_data(1)
    window = ReceiveWindow(FlowLimits(max_data=100))
    window.on_data(100)
    assert window.on_consumed(49) is None  # less than half a window consumed
    assert window.on_consumed(1) == 150
    assert window.max_data == 150
    window.on_data(50)
    assert window.on_consumed(10) is None
    assert window.on_consumed(1000) == 250  # consumption is capped at what arrived (150)


def test_data_blocked_grants_whatever_consumption_allows() -> None:
    window = ReceiveWindow(FlowLimits(max_data=100))
    window.on_data(100)
    assert window.on_data_blocked() is None  # nothing consumed: nothing to give
    window.on_consumed(10)
    assert window.on_data_blocked() == 110


def test_stream_credit_follows_finished_streams() -> None:
    window = ReceiveWindow(FlowLimits(max_streams_bidi=4, max_streams_uni=1))
    for _ in range(4):
        window.on_stream_opened(False)
    with pytest.raises(FlowControlError):
        window.on_stream_opened(False)
    window = ReceiveWindow(FlowLimits(max_streams_bidi=4, max_streams_uni=1))
    assert window.on_stream_closed(False) is None  # 1 of a window of 4
    assert window.on_stream_closed(False) == 6
    assert window.on_stream_closed(True) == 2
    assert window.on_streams_blocked(True) is None
    window.closed[True] += 1
    assert window.on_streams_blocked(True) == 3


# -- the protocol, in memory -------------------------------------------------------------

LIMITS = FlowLimits(max_data=1000, max_streams_bidi=2, max_streams_uni=1)


def draft15_pair(limits: FlowLimits = LIMITS) -> tuple[QuicPair, int]:
    pair = QuicPair(flow_limits=limits)
    session_id = pair.client.protocol.request_session("localhost", "/", dialect=Dialect.DRAFT15)
    pair.transfer()
    pair.server.protocol.accept(session_id)
    pair.transfer()
    return pair, session_id


def data_of(out: list[events.Event], stream_id: int | None = None) -> bytes:
    return b"".join(
        e.data
        for e in out
        if isinstance(e, events.StreamDataReceived)
        and (stream_id is None or e.stream_id == stream_id)
    )


def test_both_ends_negotiate_flow_control() -> None:
    pair, session_id = draft15_pair()
    for side in (pair.client.protocol, pair.server.protocol):
        assert side.flow_controlled(session_id)
        assert side.dialect(session_id) is Dialect.DRAFT15


def test_writes_past_the_limit_wait_for_consumption() -> None:
    pair, session_id = draft15_pair()
    client, server = pair.client.protocol, pair.server.protocol
    stream_id = client.open_stream(session_id, unidirectional=True)
    payload = bytes(range(256)) * 10  # 2560 bytes: more than two windows
    client.send_stream_data(stream_id, payload, end_stream=True)
    assert client.stream_buffered(stream_id) > len(payload) - 1000  # held back
    received = b""
    for _ in range(10):
        _, out = pair.transfer()
        chunk = data_of(out, stream_id)
        received += chunk
        if chunk:
            server.stream_consumed(stream_id, len(chunk))
    assert received == payload
    assert client.stream_buffered(stream_id) == 0
    assert server.stream_count == 0 and client.stream_count == 0  # FIN went out after the data


def test_a_blocked_sender_says_so() -> None:
    pair, session_id = draft15_pair()
    client, server = pair.client.protocol, pair.server.protocol
    stream_id = client.open_stream(session_id)
    client.send_stream_data(stream_id, b"x" * 1500)
    _, out = pair.transfer()
    assert len(data_of(out)) == 1000
    assert client._sessions[session_id].flow.send._data_blocked_at == 1000  # type: ignore[union-attr]
    # DATA_BLOCKED made the server grant what was consumed, which is nothing yet
    assert server._sessions[session_id].flow.receive.max_data == 1000  # type: ignore[union-attr]
    server.stream_consumed(stream_id, 200)
    assert pair.transfer() == ([], [])  # less than half a window consumed: no grant yet
    server.stream_consumed(stream_id, 300)
    _, out = pair.transfer()
    assert len(data_of(out)) == 500


def test_stream_opens_wait_for_the_peer_to_finish_streams() -> None:
    pair, session_id = draft15_pair()
    client, server = pair.client.protocol, pair.server.protocol
    first = client.open_stream(session_id, unidirectional=True)
    assert not client.stream_credit(session_id, True)
    with pytest.raises(StreamsBlocked):
        client.open_stream(session_id, unidirectional=True)
    client.send_stream_data(first, b"done", end_stream=True)
    pair.transfer()
    server.stream_consumed(first, 4)
    pair.transfer()
    assert client.stream_credit(session_id, True)
    client.open_stream(session_id, unidirectional=True)
    assert client.stream_credit(session_id, False)
    client.open_stream(session_id)
    client.open_stream(session_id)
    assert not client.stream_credit(session_id, False)


def test_streams_blocked_capsule_reaches_the_peer() -> None:
    pair, session_id = draft15_pair()
    client, server = pair.client.protocol, pair.server.protocol
    client.open_stream(session_id, unidirectional=True)
    assert not client.stream_credit(session_id, True)
    flow = server._sessions[session_id].flow
    assert flow is not None
    flow.receive.closed[True] += 1  # as if the stream had finished without a grant
    pair.transfer()
    assert client.stream_credit(session_id, True)  # WT_STREAMS_BLOCKED made it grant


def overrun_checks(pair: QuicPair, session_id: int, server_out: list[events.Event]) -> None:
    ended = [e for e in server_out if isinstance(e, events.SessionEnded)]
    assert len(ended) == 1 and ended[0].code == CloseCode.PROTOCOL_ERROR
    assert not ended[0].by_peer
    resets = {e.stream_id: e.error_code for e in pair.client.raw_of(QuicStreamReset)}
    assert resets[session_id] == WTErrorCode.FLOW_CONTROL_ERROR


def test_data_beyond_the_limit_ends_the_session() -> None:
    pair, session_id = draft15_pair()
    client = pair.client.protocol
    flow = client._sessions[session_id].flow
    assert flow is not None
    flow.send.max_data = 10**6  # a client that ignores the server's limit
    stream_id = client.open_stream(session_id)
    client.send_stream_data(stream_id, b"y" * 1001)
    client_out, server_out = pair.transfer()
    overrun_checks(pair, session_id, server_out)
    assert any(isinstance(e, events.SessionEnded) for e in client_out)


def test_streams_beyond_the_limit_end_the_session() -> None:
    pair, session_id = draft15_pair()
    client = pair.client.protocol
    flow = client._sessions[session_id].flow
    assert flow is not None
    flow.send.max_streams_uni = 5
    for _ in range(2):
        client.send_stream_data(client.open_stream(session_id, unidirectional=True), b"z")
    _, server_out = pair.transfer()
    overrun_checks(pair, session_id, server_out)


def test_a_reset_counts_up_to_its_final_size() -> None:
    pair, session_id = draft15_pair()
    client, server = pair.client.protocol, pair.server.protocol
    stream_id = client.open_stream(session_id, unidirectional=True)
    client.send_stream_data(stream_id, b"a" * 100)
    pair.transfer()
    client.send_stream_data(stream_id, b"b" * 200)
    lost = pair.client.quic.datagrams_to_send(now=pair.now)  # these bytes are lost...
    assert lost
    pair.client.quic.reset_stream(stream_id, 0)  # ...and a plain reset never resends it
    pair.transfer()
    flow = server._sessions[session_id].flow
    assert flow is not None
    assert flow.receive.received == 300


def test_forbidden_capsules_close_the_session() -> None:
    pair, session_id = draft15_pair()
    pair.client.protocol.h3.send_data(session_id, encode_value(WT_MAX_STREAM_DATA, 5), False)
    _, server_out = pair.transfer()
    (ended,) = [e for e in server_out if isinstance(e, events.SessionEnded)]
    assert ended.code == CloseCode.PROTOCOL_ERROR


def test_limits_only_grow() -> None:
    pair, session_id = draft15_pair()
    client = pair.client.protocol
    pair.server.protocol.h3.send_data(session_id, encode_value(WT_MAX_DATA, 10), False)
    pair.server.protocol.h3.send_data(session_id, encode_value(WT_MAX_STREAMS_BIDI, 1), False)
    pair.transfer()
    flow = client._sessions[session_id].flow
    assert flow is not None
    assert (flow.send.max_data, flow.send.max_streams_bidi) == (1000, 2)


def test_draft02_sessions_have_no_flow_control() -> None:
    pair = QuicPair(flow_limits=LIMITS)
    session_id = pair.open_session()
    client = pair.client.protocol
    assert not client.flow_controlled(session_id)
    streams = [client.open_stream(session_id, unidirectional=True) for _ in range(3)]
    for stream_id in streams:
        client.send_stream_data(stream_id, b"q" * 5000, end_stream=True)
    _, out = pair.transfer()
    assert len(data_of(out)) == 15000
    # and flow-control capsules from the peer mean nothing
    pair.server.protocol.h3.send_data(session_id, encode_value(WT_DATA_BLOCKED, 0), False)
    pair.server.protocol.h3.send_data(session_id, encode_value(WT_STREAMS_BLOCKED_UNI, 0), False)
    assert pair.transfer() == ([], [])


def test_ending_a_session_drops_what_waits() -> None:
    pair, session_id = draft15_pair()
    client = pair.client.protocol
    stream_id = client.open_stream(session_id)
    client.send_stream_data(stream_id, b"w" * 3000, end_stream=True)
    client.close_session(session_id, 0, "")
    assert client.stream_buffered(stream_id) < 3000
    pair.transfer()
    assert client.stream_count == 0
    with pytest.raises(SessionClosed):
        client.send_stream_data(stream_id, b"more")

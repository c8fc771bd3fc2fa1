"""The sans-I/O core under random interleavings of everything a peer and an app can do.

A Hypothesis state machine drives a client and a server `WebTransportProtocol` joined in
memory: session requests, accepts and rejects, stream data in random chunks, FINs, resets,
stop-sendings, capsules (valid, malformed, unknown), datagrams, closes from either side and
connection loss, in any order. Whatever happens:

* no exception escapes `handle_event` (a command may refuse with `SessionClosed`);
* every session ends exactly once on each side, however it ends;
* once everything is closed, neither side holds session or stream state, and aioquic's
  HTTP/3 stream table is back to its size after the handshake.

`WTFRAME_STATEFUL_EXAMPLES` raises the number of runs (default 150) for a deeper search.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.support.quic_pair import QuicPair
from wtframe import events
from wtframe.capsules import (
    CLOSE_WEBTRANSPORT_SESSION,
    encode_capsule,
    encode_close,
    encode_drain,
)
from wtframe.exceptions import DatagramTooLarge, SessionClosed
from wtframe.protocol import SessionState, WebTransportProtocol

EXAMPLES = int(os.environ.get("WTFRAME_STATEFUL_EXAMPLES", "150"))
MAX_SESSIONS = 4

CAPSULES = st.one_of(
    st.just(encode_drain()),
    st.builds(
        encode_close,
        st.integers(0, 0xFFFFFFFF),
        st.text(max_size=20),
    ),
    st.just(encode_capsule(CLOSE_WEBTRANSPORT_SESSION, b"\x01")),  # too short
    st.just(encode_capsule(CLOSE_WEBTRANSPORT_SESSION, b"\x00\x00\x00\x01\xff")),  # not UTF-8
    st.builds(encode_capsule, st.integers(0x20, 0x3FFF), st.binary(max_size=40)),  # unknown
    st.binary(min_size=1, max_size=12),  # anything at all
)

SIDES = st.sampled_from(["client", "server"])


class ProtocolMachine(RuleBasedStateMachine):
    """Random interleavings over one in-memory connection."""

    def __init__(self) -> None:
        super().__init__()
        self.pair = QuicPair(max_sessions=MAX_SESSIONS)
        self.baseline = {
            side: len(self.protocol(side).h3._stream) for side in ("client", "server")
        }
        self.requested: set[int] = set()  # every session the client asked for
        self.ended: dict[str, Counter[int]] = {"client": Counter(), "server": Counter()}
        self.server_known: set[int] = set()  # sessions the server heard about
        self.streams: dict[int, int] = {}  # stream id -> session id, opened by either side
        self.lost = False
        self.raw_finished: set[int] = set()  # CONNECT streams the client ended by hand

    # -- helpers -----------------------------------------------------------------------------

    def protocol(self, side: str) -> WebTransportProtocol:
        return (self.pair.client if side == "client" else self.pair.server).protocol

    def record(self, client_events: list[events.Event], server_events: list[events.Event]) -> None:
        for side, happened in (("client", client_events), ("server", server_events)):
            for event in happened:
                if isinstance(event, events.SessionEnded | events.SessionRefused):
                    self.ended[side][event.session_id] += 1
                elif isinstance(event, events.SessionRequested):
                    self.server_known.add(event.session_id)
                elif isinstance(event, events.StreamOpened):
                    self.streams[event.stream_id] = event.session_id

    def pump(self) -> None:
        self.record(*self.pair.transfer())

    def ending_locally(self, side: str, session_id: int) -> None:
        """A command that ends a session without an event counts as its end."""
        if self.protocol(side).session_state(session_id) is not SessionState.CLOSED:
            self.ended[side][session_id] += 1

    def sessions(self, side: str, state: SessionState) -> list[int]:
        protocol = self.protocol(side)
        return sorted(s for s in self.requested if protocol.session_state(s) is state)

    # -- rules -------------------------------------------------------------------------------

    @precondition(lambda self: not self.lost and len(self.requested) < 12)
    @rule(pump=st.booleans())
    def request(self, pump: bool) -> None:
        session_id = self.pair.client.protocol.request_session("localhost", "/")
        self.requested.add(session_id)
        if pump:
            self.pump()

    @precondition(lambda self: not self.lost)
    @rule(data=st.data(), accept=st.booleans())
    def answer(self, data: st.DataObject, accept: bool) -> None:
        waiting = self.sessions("server", SessionState.REQUESTED)
        if not waiting:
            return
        session_id = data.draw(st.sampled_from(waiting))
        if accept:
            self.pair.server.protocol.accept(session_id)
        else:
            self.ending_locally("server", session_id)
            self.pair.server.protocol.reject(session_id, data.draw(st.sampled_from([403, 503])))

    @precondition(lambda self: not self.lost)
    @rule(data=st.data(), side=SIDES, unidirectional=st.booleans())
    def open_stream(self, data: st.DataObject, side: str, unidirectional: bool) -> None:
        open_sessions = self.sessions(side, SessionState.OPEN)
        if not open_sessions:
            return
        session_id = data.draw(st.sampled_from(open_sessions))
        stream_id = self.protocol(side).open_stream(session_id, unidirectional)
        self.streams[stream_id] = session_id

    @precondition(lambda self: not self.lost and self.streams)
    @rule(
        data=st.data(),
        side=SIDES,
        size=st.sampled_from([0, 1, 7, 1200, 5000]),
        fin=st.booleans(),
    )
    def stream_data(self, data: st.DataObject, side: str, size: int, fin: bool) -> None:
        stream_id = data.draw(st.sampled_from(sorted(self.streams)))
        try:
            self.protocol(side).send_stream_data(stream_id, b"s" * size, fin)
        except SessionClosed:
            pass

    @precondition(lambda self: not self.lost and self.streams)
    @rule(data=st.data(), side=SIDES, code=st.integers(0, 0xFFFFFFFF), stop=st.booleans())
    def abort_stream(self, data: st.DataObject, side: str, code: int, stop: bool) -> None:
        stream_id = data.draw(st.sampled_from(sorted(self.streams)))
        protocol = self.protocol(side)
        if stop:
            protocol.stop_stream(stream_id, code)
        else:
            protocol.reset_stream(stream_id, code)

    @precondition(lambda self: not self.lost and self.requested)
    @rule(data=st.data(), capsule=CAPSULES, fin=st.booleans())
    def capsule(self, data: st.DataObject, capsule: bytes, fin: bool) -> None:
        """The client writes raw capsule bytes on a CONNECT stream, as a peer may."""
        session_id = data.draw(st.sampled_from(sorted(self.requested)))
        h3_stream = self.pair.client.protocol.h3._stream.get(session_id)
        if h3_stream is None or h3_stream.sending_ended:
            return  # our side of that CONNECT stream is finished
        try:
            self.pair.client.protocol.h3.send_data(session_id, capsule, end_stream=fin)
        except (RuntimeError, ValueError):
            return  # the server stopped the stream, and aioquic reset our side of it
        if fin:
            self.raw_finished.add(session_id)

    @precondition(lambda self: not self.lost)
    @rule(data=st.data(), side=SIDES, size=st.sampled_from([0, 10, 1000, 2000]))
    def datagram(self, data: st.DataObject, side: str, size: int) -> None:
        open_sessions = self.sessions(side, SessionState.OPEN)
        if not open_sessions:
            return
        session_id = data.draw(st.sampled_from(open_sessions))
        try:
            self.protocol(side).send_datagram(session_id, b"d" * size)
        except DatagramTooLarge:
            assert size > self.protocol(side).max_datagram_size(session_id)

    @precondition(lambda self: not self.lost and self.requested)
    @rule(data=st.data(), side=SIDES, code=st.integers(0, 0xFFFFFFFF))
    def close(self, data: st.DataObject, side: str, code: int) -> None:
        session_id = data.draw(st.sampled_from(sorted(self.requested)))
        self.ending_locally(side, session_id)
        self.protocol(side).close_session(session_id, code, "bye")

    @precondition(lambda self: not self.lost)
    @rule(drain_side=SIDES, data=st.data())
    def drain(self, drain_side: str, data: st.DataObject) -> None:
        open_sessions = self.sessions(drain_side, SessionState.OPEN)
        if drain_side == "client":  # the protocol object does not know of raw FINs
            open_sessions = [s for s in open_sessions if s not in self.raw_finished]
        if open_sessions:
            self.protocol(drain_side).drain_session(data.draw(st.sampled_from(open_sessions)))

    @rule()
    def transfer(self) -> None:
        self.pump()

    @precondition(lambda self: not self.lost)
    @rule(side=SIDES)
    def lose_connection(self, side: str) -> None:
        end = self.pair.client if side == "client" else self.pair.server
        end.quic.close(error_code=0, reason_phrase="lost")
        self.record(*self.pair.advance(5.0))
        self.lost = True

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def sessions_end_at_most_once(self) -> None:
        for side in ("client", "server"):
            assert all(count == 1 for count in self.ended[side].values()), self.ended[side]

    @invariant()
    def sessions_are_bounded(self) -> None:
        assert self.pair.server.protocol.session_count <= MAX_SESSIONS

    def teardown(self) -> None:
        if not self.lost:
            self.pump()
            for session_id in sorted(self.requested):
                for side in ("client", "server"):
                    self.ending_locally(side, session_id)
                    self.protocol(side).close_session(session_id, 0, "")
            self.record(*self.pair.advance(1.0))
            self.record(*self.pair.advance(1.0))
        for side in ("client", "server"):
            protocol = self.protocol(side)
            assert protocol.session_count == 0
            assert protocol.stream_count == 0
            known = self.requested if side == "client" else self.server_known
            assert {s: self.ended[side][s] for s in known} == dict.fromkeys(known, 1), side
            if not self.lost:
                assert len(protocol.h3._stream) <= self.baseline[side], (
                    side,
                    sorted(protocol.h3._stream),
                )


ProtocolMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no slow tracing
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestProtocolMachine = ProtocolMachine.TestCase

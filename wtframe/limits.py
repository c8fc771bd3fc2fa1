"""[`Limits`][wtframe.limits.Limits]: how much one peer may make a server hold, and for how long.

A wtframe server sits on a public UDP port. Every resource a peer can make it hold (sessions,
streams, buffered bytes, handler tasks, time) has a limit here, with a default that is safe
on a public port. Give your own to the app:

```python
app = App(limits=Limits(max_streams=20, idle_timeout=300))
```

What a peer sees when it trips a limit:

| limit | outcome |
|---|---|
| `max_sessions` | CONNECT answered `429` |
| `max_pending_streams`, `max_streams` | stream refused, code `TOO_MANY_STREAMS` (1013) |
| `max_message_size` | stream refused, code `MESSAGE_TOO_BIG` (1009) |
| `max_capsule_size` | session closed, code `PROTOCOL_ERROR` (1002), or `400` |
| `max_stream_buffer`, `max_session_buffer` | stream stopped, code `BUFFER_FULL` (1008) |
| `max_datagram_tasks` | datagram dropped, counted in `Session.dropped_datagrams` |
| `handshake_timeout` | CONNECT answered `503` |
| `idle_timeout` | session closed, code `POLICY_VIOLATION` (1008), reason `idle timeout` |

Stream codes are [`StreamErrorCode`][wtframe.codes.StreamErrorCode] members, session codes
[`CloseCode`][wtframe.codes.CloseCode] members.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from .capsules import MAX_CAPSULE_SIZE_DEFAULT
from .exceptions import ConfigurationError
from .framing import MAX_MESSAGE_SIZE_DEFAULT

__all__ = ["HANDSHAKE_TIMEOUT_STATUS", "Limits"]

HANDSHAKE_TIMEOUT_STATUS = 503
"""The status a CONNECT gets when `on_connect` does not finish within `handshake_timeout`."""

_MiB = 1024 * 1024
_FRAME_HEADER = 4  # the length prefix of a framed message


@dataclass(frozen=True, slots=True)
class Limits:
    """The resource limits of a server, per connection and per session.

    Every field has a default that is safe on a public port. Sizes are in bytes, times in
    seconds; `None` turns a timeout off.

    Raises:
        ConfigurationError: If a field is out of range (checked on creation).
    """

    max_sessions: int = 16
    """Sessions one QUIC connection may hold at once, requested or open. A CONNECT beyond
    it is answered `429`. Also advertised to the peer in SETTINGS."""

    max_pending_streams: int = 16
    """Streams a peer may open in a session that is not accepted yet (while `on_connect`
    runs); they are held and handed to `on_stream` on acceptance. Later ones are refused
    with `StreamErrorCode.TOO_MANY_STREAMS`."""

    max_streams: int = 100
    """Streams the peer may have open at once in one accepted session, both kinds
    together. A stream counts until it is finished both ways (its `on_stream` handler
    returned, or both sides ended). One more is refused at once with STOP_SENDING and
    RESET_STREAM `StreamErrorCode.TOO_MANY_STREAMS`; the session carries on. In a session
    with WebTransport flow control (draft-15 clients), the peer is told this limit for
    each kind of stream, and each kind is counted on its own: a peer that keeps to what
    it was told is never refused."""

    max_message_size: int = MAX_MESSAGE_SIZE_DEFAULT
    """The largest message read with `read_message`, `receive` or `on_request`, for
    sessions whose class does not set `Session.max_message_size` itself. A bigger one
    raises `MessageTooLarge` in the handler, and a handler that lets it escape has its
    stream refused with `StreamErrorCode.MESSAGE_TOO_BIG`."""

    max_capsule_size: int = MAX_CAPSULE_SIZE_DEFAULT
    """The largest payload of a close or drain capsule on the CONNECT stream. A bigger one
    is a protocol error: the session is closed with `CloseCode.PROTOCOL_ERROR`. Capsules of
    unknown types are skipped as they arrive, whatever their size, and never buffered."""

    max_stream_buffer: int = 2 * _MiB
    """Bytes received on one stream and not read by the application yet. When a slow
    reader lets more pile up, the stream is stopped with `StreamErrorCode.BUFFER_FULL`
    and the reader gets `StreamClosed`. Must hold a whole message of `max_message_size`:
    `read()` without a size reads the stream to its end, so larger streams must be read in
    chunks (`async for chunk in stream`)."""

    max_session_buffer: int = 8 * _MiB
    """Bytes received and not read yet on all the streams of one session together. The
    stream whose data crosses the line is stopped with `StreamErrorCode.BUFFER_FULL`."""

    max_datagram_tasks: int = 64
    """`on_datagram` calls of one session that may be waiting at once (an `async` handler
    that awaits something). Datagrams arriving beyond it are dropped, as the network
    may drop any datagram, and counted in `Session.dropped_datagrams`."""

    handshake_timeout: float | None = 10.0
    """Seconds `on_connect` may take. If the session is neither accepted nor rejected by
    then, `on_connect` is cancelled and the CONNECT is answered `503`."""

    idle_timeout: float | None = None
    """Seconds an accepted session may go without any activity (a datagram or stream data
    either way, a stream opened by either side) before it is closed with
    `CloseCode.POLICY_VIOLATION` and the reason `idle timeout`. Checked four times per
    period, so a session closes between 1 and 1.25 periods after its last activity.
    Off by default: a peer that vanishes is already dropped by the QUIC idle timeout
    (`serve(idle_timeout=...)`); this one reclaims sessions whose peer is alive but
    silent."""

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name.endswith("_timeout"):
                if value is not None and not (math.isfinite(value) and value > 0):
                    raise ConfigurationError(f"{spec.name} must be > 0 or None, not {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{spec.name} must be an integer >= 1, not {value!r}")
        if self.max_stream_buffer < self.max_message_size + _FRAME_HEADER:
            raise ConfigurationError(
                f"max_stream_buffer ({self.max_stream_buffer}) must hold a whole message: "
                f"at least max_message_size + {_FRAME_HEADER} ({self.max_message_size + 4})"
            )
        if self.max_session_buffer < self.max_stream_buffer:
            raise ConfigurationError(
                f"max_session_buffer ({self.max_session_buffer}) must be at least "
                f"max_stream_buffer ({self.max_stream_buffer})"
            )

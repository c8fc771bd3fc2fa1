"""The WebTransport dialects a session can speak, and how wtframe tells them apart.

Three generations of draft-ietf-webtrans-http3 are in use, and one wtframe server speaks
all of them at once: its SETTINGS carry every generation's settings, and each session's
dialect is read from its CONNECT request.

* [`DRAFT02`][wtframe.dialects.Dialect.DRAFT02], Chromium and Firefox: `:protocol
  webtransport` with `sec-webtransport-http3-draft02: 1`; no flow control.
* [`DRAFT07`][wtframe.dialects.Dialect.DRAFT07], drafts 07 to 14 (Safari): `:protocol
  webtransport` without the draft-02 header.
* [`DRAFT15`][wtframe.dialects.Dialect.DRAFT15], draft-15 and later (e.g. pywebtransport):
  `:protocol webtransport-h3`.

Flow control is on for a session when its dialect has it and the peer's SETTINGS carry a
non-zero `SETTINGS_WT_INITIAL_MAX_*` value (wtframe always sends its own).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from .flowcontrol import FlowLimits

__all__ = [
    "SETTING_ENABLE_WEBTRANSPORT_DRAFT02",
    "SETTING_WT_ENABLED",
    "SETTING_WT_INITIAL_MAX_DATA",
    "SETTING_WT_INITIAL_MAX_STREAMS_BIDI",
    "SETTING_WT_INITIAL_MAX_STREAMS_UNI",
    "Dialect",
    "dialect_of_request",
    "flow_control_offered",
    "format_protocol",
    "local_settings",
    "parse_available_protocols",
    "peer_limits",
]

SETTING_ENABLE_WEBTRANSPORT_DRAFT02 = 0x2B603742
"""SETTINGS_ENABLE_WEBTRANSPORT of draft-02, which Chromium and Firefox require."""

SETTING_WT_ENABLED = 0x2C7CF000
"""SETTINGS_WT_ENABLED (draft-15 and later)."""

SETTING_WT_INITIAL_MAX_DATA = 0x2B61
"""SETTINGS_WT_INITIAL_MAX_DATA: the data limit every new session starts with."""

SETTING_WT_INITIAL_MAX_STREAMS_UNI = 0x2B64
"""SETTINGS_WT_INITIAL_MAX_STREAMS_UNI: the unidirectional stream limit sessions start with."""

SETTING_WT_INITIAL_MAX_STREAMS_BIDI = 0x2B65
"""SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI: the bidirectional stream limit sessions start with."""

_FLOW_SETTINGS = (
    SETTING_WT_INITIAL_MAX_DATA,
    SETTING_WT_INITIAL_MAX_STREAMS_UNI,
    SETTING_WT_INITIAL_MAX_STREAMS_BIDI,
)


class Dialect(enum.Enum):
    """The WebTransport over HTTP/3 draft a session speaks."""

    DRAFT02 = "draft-02"
    """`:protocol webtransport` with `sec-webtransport-http3-draft02: 1`: today's Chromium
    and Firefox. No WebTransport flow control; the answer echoes
    `sec-webtransport-http3-draft: draft02`."""

    DRAFT07 = "draft-07"
    """`:protocol webtransport` without the draft-02 header: drafts 07 to 14 (Safari)."""

    DRAFT15 = "draft-15"
    """`:protocol webtransport-h3`: draft-15 and later, with `SETTINGS_WT_ENABLED`."""

    @property
    def upgrade_token(self) -> bytes:
        """The `:protocol` value of this dialect's CONNECT requests."""
        return b"webtransport-h3" if self is Dialect.DRAFT15 else b"webtransport"

    @property
    def has_flow_control(self) -> bool:
        """Whether sessions of this dialect can negotiate WebTransport flow control."""
        return self is not Dialect.DRAFT02

    def request_headers(self) -> list[tuple[bytes, bytes]]:
        """Return the headers a client adds to its CONNECT request in this dialect.

        Returns:
            The `:protocol` pseudo-header, and the draft-02 marker where it applies.
        """
        headers = [(b":protocol", self.upgrade_token)]
        if self is Dialect.DRAFT02:
            headers.append((b"sec-webtransport-http3-draft02", b"1"))
        return headers

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """Return the headers a server adds to its 200 answer in this dialect.

        Returns:
            `sec-webtransport-http3-draft: draft02` for draft-02; nothing otherwise.
        """
        if self is Dialect.DRAFT02:
            return [(b"sec-webtransport-http3-draft", b"draft02")]
        return []


def dialect_of_request(headers: list[tuple[bytes, bytes]]) -> Dialect | None:
    """Tell a CONNECT request's dialect from its headers.

    Args:
        headers: The request headers.

    Returns:
        The dialect, or `None` if `:protocol` names no WebTransport dialect.
    """
    protocol = None
    draft02 = False
    for name, value in headers:
        if name == b":protocol":
            protocol = value
        elif name == b"sec-webtransport-http3-draft02":
            draft02 = True
    if protocol == b"webtransport-h3":
        return Dialect.DRAFT15
    if protocol == b"webtransport":
        return Dialect.DRAFT02 if draft02 else Dialect.DRAFT07
    return None


def local_settings(limits: FlowLimits) -> dict[int, int]:
    """Return the WebTransport settings to add to aioquic's (which carry draft-02's).

    Args:
        limits: The flow-control windows advertised as initial limits.

    Returns:
        `SETTINGS_WT_ENABLED` and the three initial flow-control limits.
    """
    return {
        SETTING_WT_ENABLED: 1,
        SETTING_WT_INITIAL_MAX_DATA: limits.max_data,
        SETTING_WT_INITIAL_MAX_STREAMS_UNI: limits.max_streams_uni,
        SETTING_WT_INITIAL_MAX_STREAMS_BIDI: limits.max_streams_bidi,
    }


def flow_control_offered(settings: Mapping[int, int] | None) -> bool:
    """Return whether the peer's SETTINGS offer WebTransport flow control.

    Args:
        settings: The peer's SETTINGS, or `None` before they arrive.

    Returns:
        Whether any `SETTINGS_WT_INITIAL_MAX_*` value is non-zero.
    """
    if not settings:
        return False
    return any(settings.get(key, 0) for key in _FLOW_SETTINGS)


def peer_limits(settings: Mapping[int, int]) -> FlowLimits:
    """Read the initial limits the peer grants every session from its SETTINGS.

    Args:
        settings: The peer's SETTINGS.

    Returns:
        The limits (0 where a setting is absent).
    """
    return FlowLimits(
        max_data=settings.get(SETTING_WT_INITIAL_MAX_DATA, 0),
        max_streams_bidi=settings.get(SETTING_WT_INITIAL_MAX_STREAMS_BIDI, 0),
        max_streams_uni=settings.get(SETTING_WT_INITIAL_MAX_STREAMS_UNI, 0),
    )


def parse_available_protocols(value: bytes) -> list[str]:
    """Parse a `wt-available-protocols` header: a structured-field list of strings.

    Members that are not strings are skipped and parameters are ignored; a malformed
    field yields an empty list, as the draft asks to ignore the whole field.

    Args:
        value: The raw header value, e.g. `b'"chat-v2", "chat-v1"'`.

    Returns:
        The protocols, most preferred first.
    """
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return []
    protocols: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        if text[i] != '"':
            # not a string: skip this member
            while i < n and text[i] != ",":
                i += 1
        else:
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    return []  # unterminated string: the field is malformed
                char = text[i]
                if char == "\\":
                    if i + 1 >= n or text[i + 1] not in '"\\':
                        return []
                    chars.append(text[i + 1])
                    i += 2
                    continue
                i += 1
                if char == '"':
                    break
                chars.append(char)
            protocols.append("".join(chars))
            while i < n and text[i] != ",":  # parameters, ignored
                i += 1
        i += 1  # the comma
    return protocols


def format_protocol(protocol: str) -> bytes:
    """Format a `wt-protocol` header value: a structured-field string.

    Args:
        protocol: The chosen protocol (printable ASCII).

    Returns:
        The header value, quoted and escaped.

    Raises:
        ValueError: If `protocol` holds characters a structured-field string cannot.
    """
    if not all(" " <= char <= "~" for char in protocol):
        raise ValueError(f"not a structured-field string: {protocol!r}")
    escaped = protocol.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'.encode("ascii")

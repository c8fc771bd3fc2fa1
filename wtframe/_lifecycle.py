"""The session lifecycle: its states, what can happen to a session, and the legal moves.

Every state change of a session goes through `TRANSITIONS`; `_Session.move()` applies one
and refuses anything the table does not list. [`wtframe.protocol`][wtframe.protocol]
re-exports the public names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .dialects import Dialect

if TYPE_CHECKING:
    from ._session_flow import SessionFlow
    from .capsules import CapsuleParser

__all__ = ["TRANSITIONS", "SessionState", "Trigger"]


class SessionState(enum.Enum):
    """Where a session is in its life."""

    REQUESTED = "requested"
    """CONNECT sent (client) or received (server), not answered yet."""

    OPEN = "open"
    """Accepted: datagrams and streams flow."""

    CLOSED = "closed"
    """Ended; the session's state is released."""


class Trigger(enum.Enum):
    """What can happen to a session."""

    ACCEPT = "accept"
    REJECT = "reject"
    PEER_ACCEPTED = "peer accepted"
    PEER_REFUSED = "peer refused"
    CLOSE_CAPSULE = "close capsule received"
    FIN = "CONNECT stream ended"
    RESET = "CONNECT stream reset"
    LOCAL_CLOSE = "closed locally"
    PROTOCOL_ERROR = "protocol error"
    CONNECTION_LOST = "connection lost"


_R, _O, _C = SessionState.REQUESTED, SessionState.OPEN, SessionState.CLOSED

TRANSITIONS: dict[tuple[SessionState, Trigger], SessionState] = {
    (_R, Trigger.ACCEPT): _O,
    (_R, Trigger.REJECT): _C,
    (_R, Trigger.PEER_ACCEPTED): _O,
    (_R, Trigger.PEER_REFUSED): _C,
    (_R, Trigger.CLOSE_CAPSULE): _C,
    (_R, Trigger.FIN): _C,
    (_R, Trigger.RESET): _C,
    (_R, Trigger.LOCAL_CLOSE): _C,
    (_R, Trigger.PROTOCOL_ERROR): _C,
    (_R, Trigger.CONNECTION_LOST): _C,
    (_O, Trigger.CLOSE_CAPSULE): _C,
    (_O, Trigger.FIN): _C,
    (_O, Trigger.RESET): _C,
    (_O, Trigger.LOCAL_CLOSE): _C,
    (_O, Trigger.PROTOCOL_ERROR): _C,
    (_O, Trigger.CONNECTION_LOST): _C,
}
"""Every legal session transition. Anything else is a bug in the caller or in wtframe."""


@dataclass(slots=True)
class _Session:
    """What the protocol holds for one session, from its CONNECT until it ends."""

    session_id: int
    state: SessionState
    parser: CapsuleParser
    dialect: Dialect = Dialect.DRAFT02
    flow: SessionFlow | None = None
    streams: set[int] = field(default_factory=set)

    def move(self, trigger: Trigger) -> None:
        """Apply a transition of `TRANSITIONS`.

        Raises:
            RuntimeError: If the table has no transition from the current state on `trigger`.
        """
        new = TRANSITIONS.get((self.state, trigger))
        if new is None:
            raise RuntimeError(f"no transition from {self.state} on {trigger}")
        self.state = new

"""The clicker: every click adds one to a player's score, and everyone sees the top ten.

Build the app with `create_app(store)` and serve it; `python -m examples.clicker` does that
with a SQLite store and also serves the page.

Protocol, at the route `/clicker`:

* **Requests** are request/response exchanges, one per **new bidirectional stream**: the
  client sends one JSON message as the whole stream and ends it (FIN); the server answers
  with one JSON message and ends its side too.

    - `{"type": "click", "username": "alice"}` adds one to alice's score and is answered
      with `{"type": "score", "username": "alice", "score": 17}`, the new score;
    - `{"type": "hello", "username": "alice"}` gets the same answer with the current score,
      adding nothing (the page sends it when a name is entered and on every reconnect).

    A click is answered only after the store committed it, so an acknowledged click is
    never lost. The `username` of the reply is the normalised name (see below).

* **Errors** are answered on the same stream, and nothing is counted:
  `{"type": "error", "code": ..., "message": "..."}` with `code` one of

    | code | when |
    |---|---|
    | `invalid_json` | the request is not a UTF-8 JSON object |
    | `unknown_type` | `type` is missing or neither `click` nor `hello` |
    | `invalid_username` | the username is missing, not a string, or breaks the rules |
    | `rate_limited` | too many clicks; the reply also has `retry_after` (seconds) |
    | `too_large` | the request is over 1024 bytes |
    | `unavailable` | the store failed; the click may be sent again |

* **Usernames** are normalised to Unicode NFC, stripped, with runs of spaces collapsed;
  then they must be 1 to 32 characters: letters and digits of any script (with their
  combining marks), space, `_`, `-` and `.`. Control and format characters (zero-width
  spaces, direction marks) and everything else are refused.

* **Rate limit**: each session has a token bucket of `burst` clicks (default 40) refilled at
  `rate` clicks per second (default 20). A click over the limit is not counted and gets
  `rate_limited` with `retry_after`, the seconds until one more click is allowed.
  `hello` is not limited.

* **Leaderboard**: right after the session is accepted the server opens one
  **unidirectional stream** and sends framed messages (4-byte big-endian length + JSON)
  `{"type": "leaderboard", "top": [{"username": "alice", "score": 17}, ...]}` with the
  top 10, highest first: the current board at once, then a new board when scores changed,
  at most once every `board_interval` seconds. A session that reads slowly skips boards
  and gets the latest one; boards are never queued up.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, ClassVar

from wtframe import (
    App,
    MessageTooLarge,
    ReceiveStream,
    Session,
    Stream,
)
from wtframe.codes import StreamErrorCode
from wtframe.exceptions import ConfigurationError

from .leaderboard import BoardSender, Broadcaster
from .protocol import Click, ErrorReply, Hello, ScoreReply, encode, parse_request
from .ratelimit import TokenBucket

if TYPE_CHECKING:
    from .store import ScoreStore

__all__ = ["MAX_REQUEST_SIZE", "PATH", "ClickerApp", "ClickerSession", "create_app"]

logger = logging.getLogger("examples.clicker")

PATH = "/clicker"
"""The route of the clicker sessions."""

MAX_REQUEST_SIZE = 1024
"""The largest request accepted, in bytes."""


class ClickerApp(App):
    """The clicker [`App`][wtframe.App]; build it with [`create_app`].

    Args:
        store: Where the scores are kept.
        rate: Clicks per second each session may sustain.
        burst: Clicks each session may send at once.
        board_interval: The shortest time between two leaderboard pushes, in seconds.

    Raises:
        ConfigurationError: If an option is out of range.
    """

    def __init__(
        self, store: ScoreStore, *, rate: float, burst: int, board_interval: float
    ) -> None:
        super().__init__()
        TokenBucket(rate, burst)  # checks the options now rather than at the first session
        if not board_interval >= 0:
            raise ConfigurationError(f"board_interval must be >= 0, not {board_interval}")
        self.store = store
        """The score store."""
        self.rate = rate
        """Clicks per second each session may sustain."""
        self.burst = burst
        """Clicks each session may send at once."""
        self.leaderboard = Broadcaster(store, interval=board_interval)
        """The leaderboard broadcaster shared by every session."""
        session_cls = type("ClickerSession", (ClickerSession,), {"clicker": self})
        self.add_session(PATH, session_cls, name="clicker")


class ClickerSession(Session):
    """One player's session: answers clicks and hellos, and pushes the leaderboard."""

    max_message_size = MAX_REQUEST_SIZE
    clicker: ClassVar[ClickerApp]
    """The app whose store and leaderboard the session uses (set by `ClickerApp`)."""

    bucket: TokenBucket
    """This session's click allowance."""
    board: BoardSender
    """This session's leaderboard sender."""

    async def on_connect(self) -> None:
        """Accept the session, then start its leaderboard sender on a server stream."""
        self.bucket = TokenBucket(self.clicker.rate, self.clicker.burst)
        await self.accept()
        self.board = BoardSender(self.open_uni_stream)
        self.create_task(self.board.run(self.clicker.leaderboard))  # ends with the session

    async def on_stream(self, stream: ReceiveStream) -> None:
        """Answer the one request on a bidirectional stream; refuse unidirectional ones.

        Args:
            stream: The stream the client opened.
        """
        if not isinstance(stream, Stream):
            stream.stop()
            return
        try:
            payload: bytes = await stream.read_message(bytes)
        except MessageTooLarge:
            stream.stop(StreamErrorCode.MESSAGE_TOO_BIG)
            reply: ScoreReply | ErrorReply = ErrorReply(
                code="too_large", message=f"a request is at most {MAX_REQUEST_SIZE} bytes"
            )
        else:
            reply = await self.answer(payload)
        await stream.write_message(encode(reply))

    async def answer(self, payload: bytes) -> ScoreReply | ErrorReply:
        """Work out the reply to one request.

        Args:
            payload: The request as received.

        Returns:
            The score, or the error that explains why nothing was counted.
        """
        request = parse_request(payload)
        if isinstance(request, ErrorReply):
            return request
        store = self.clicker.store
        name = request.username
        if isinstance(request, Click):
            wait = self.bucket.take()
            if wait:
                return ErrorReply(
                    code="rate_limited",
                    message=(
                        f"too many clicks: at most {self.clicker.rate:g} per second"
                        f" (bursts of {self.clicker.burst})"
                    ),
                    retry_after=math.ceil(wait * 1000) / 1000,
                )
        try:
            if isinstance(request, Hello):
                score = await store.get(name)
            else:
                score = await store.increment(name)
                self.clicker.leaderboard.mark_dirty()
        except Exception:
            logger.exception("the score store failed")
            return ErrorReply(code="unavailable", message="the score could not be saved")
        return ScoreReply(username=name, score=score)


def create_app(
    store: ScoreStore, *, rate: float = 20.0, burst: int = 40, board_interval: float = 0.1
) -> ClickerApp:
    """Build the clicker app on a score store.

    Args:
        store: Where the scores are kept; the caller opens and closes it.
        rate: Clicks per second each session may sustain (token bucket refill rate).
        burst: Clicks each session may send at once (token bucket capacity).
        board_interval: The shortest time between two leaderboard pushes, in seconds.

    Returns:
        The app, serving sessions at `/clicker`.

    Raises:
        ConfigurationError: If `rate`, `burst` or `board_interval` is out of range.
    """
    return ClickerApp(store, rate=rate, burst=burst, board_interval=board_interval)

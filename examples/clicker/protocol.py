"""The clicker's messages: requests, replies, leaderboard pushes, and username rules.

Requests are decoded with one pydantic discriminated union on `type`;
[`parse_request`][examples.clicker.protocol.parse_request] turns every way a payload can be
wrong into an [`ErrorReply`][examples.clicker.protocol.ErrorReply] with a precise `code`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Final, Literal, Union

import pydantic
from pydantic import AfterValidator, BaseModel, Field

from wtframe.codecs import codec_for
from wtframe.exceptions import DecodeError

__all__ = [
    "USERNAME_MAX_LENGTH",
    "BoardEntry",
    "Click",
    "ErrorCode",
    "ErrorReply",
    "Hello",
    "LeaderboardPush",
    "Reply",
    "Request",
    "ScoreReply",
    "Username",
    "encode",
    "normalize_username",
    "parse_request",
]

USERNAME_MAX_LENGTH: Final = 32
"""The longest username, in characters after normalisation."""

_USERNAME_PUNCTUATION: Final = frozenset(" _-.")
_SPACES: Final = re.compile(" {2,}")
_USERNAME_RULE: Final = (
    f"a username is 1 to {USERNAME_MAX_LENGTH} letters or digits (any script), "
    "spaces, '_', '-' or '.'"
)


def normalize_username(value: str) -> str:
    """Normalise a username and check that it is acceptable.

    The name is put in Unicode NFC form, stripped of surrounding whitespace, and runs of
    spaces are collapsed to one. What remains must be 1 to 32 characters, each a letter or
    a decimal digit of any script, a combining mark following one of those, a space, `_`,
    `-` or `.`. Control, format (zero-width), private-use and other characters are refused.

    Args:
        value: The name as sent.

    Returns:
        The normalised name.

    Raises:
        ValueError: If the name is empty, too long, or holds a character that is not allowed.
    """
    name = _SPACES.sub(" ", unicodedata.normalize("NFC", value).strip())
    if not name:
        raise ValueError(f"the username is empty: {_USERNAME_RULE}")
    if len(name) > USERNAME_MAX_LENGTH:
        raise ValueError(f"the username has {len(name)} characters: {_USERNAME_RULE}")
    previous = ""
    for char in name:
        category = unicodedata.category(char)
        if category[0] == "L" or category == "Nd" or char in _USERNAME_PUNCTUATION:
            pass
        elif category[0] == "M" and previous[:1] in ("L", "N", "M"):
            pass
        else:
            raise ValueError(f"the username holds U+{ord(char):04X}: {_USERNAME_RULE}")
        previous = category
    return name


Username = Annotated[str, Field(strict=True), AfterValidator(normalize_username)]
"""A username, normalised and checked by [`normalize_username`][examples.clicker.protocol]."""


class Click(BaseModel):
    """Add one to the player's score; answered with a `ScoreReply` after the commit."""

    type: Literal["click"] = "click"
    username: Username


class Hello(BaseModel):
    """Ask for the player's current score without changing it."""

    type: Literal["hello"] = "hello"
    username: Username


Request = Annotated[Union[Click, Hello], Field(discriminator="type")]  # noqa: UP007
"""Any request a client may send."""


class ScoreReply(BaseModel):
    """The player's score, as committed."""

    type: Literal["score"] = "score"
    username: str
    score: int


ErrorCode = Literal[
    "invalid_json", "unknown_type", "invalid_username", "rate_limited", "too_large", "unavailable"
]
"""Why a request was refused."""


class ErrorReply(BaseModel):
    """A refused request. Nothing was counted."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    retry_after: float | None = None
    """Seconds to wait before clicking again; only with `rate_limited`."""


Reply = Annotated[Union[ScoreReply, ErrorReply], Field(discriminator="type")]  # noqa: UP007
"""Any reply the server sends to a request."""


class BoardEntry(BaseModel):
    """One line of the leaderboard."""

    username: str
    score: int


class LeaderboardPush(BaseModel):
    """The top players, pushed as framed messages on the server's unidirectional stream."""

    type: Literal["leaderboard"] = "leaderboard"
    top: list[BoardEntry]


def encode(message: BaseModel) -> bytes:
    """Encode a message as compact JSON, leaving out fields that are `None`.

    Args:
        message: A reply or a push.

    Returns:
        The JSON payload.
    """
    return message.model_dump_json(exclude_none=True).encode()


_REQUEST_CODEC: Final = codec_for(Request)


def parse_request(payload: bytes) -> Click | Hello | ErrorReply:
    """Decode and validate one request.

    Args:
        payload: The whole content of the request stream.

    Returns:
        The request, or the error reply that explains what is wrong with it: `invalid_json`
        if the payload is not a JSON object, `unknown_type` if its `type` is missing or
        unknown, `invalid_username` if the username is missing or breaks the rules.
    """
    try:
        request: Click | Hello = _REQUEST_CODEC.decode(payload)
    except DecodeError as exc:
        return _explain(exc)
    return request


def _explain(exc: DecodeError) -> ErrorReply:
    cause = exc.__cause__
    if not isinstance(cause, pydantic.ValidationError):
        return ErrorReply(code="invalid_json", message=f"the request is not valid JSON: {exc}")
    errors = cause.errors(include_url=False, include_input=False)
    first: dict[str, Any] = dict(errors[0]) if errors else {"type": "", "loc": (), "msg": ""}
    kind, loc = first["type"], tuple(first["loc"])
    if kind == "json_invalid":
        return ErrorReply(code="invalid_json", message="the request is not valid UTF-8 JSON")
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        return ErrorReply(
            code="unknown_type", message="the request's type must be 'click' or 'hello'"
        )
    if "username" in loc:
        if kind == "missing":
            detail = "the username is missing"
        elif kind == "value_error":
            detail = str(first.get("ctx", {}).get("error", first["msg"]))
        else:
            detail = "the username must be a string"
        return ErrorReply(code="invalid_username", message=detail)
    return ErrorReply(code="invalid_json", message="a request is one JSON object with a 'type'")

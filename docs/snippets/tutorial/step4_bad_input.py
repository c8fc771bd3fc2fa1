"""Tutorial step 4: bad requests get an error reply that says what is wrong.

Serve it with `wtframe run step4_bad_input:app`; run it as a script to run its tests.
"""

from __future__ import annotations

# --8<-- [start:imports]
import asyncio
import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from wtframe import (
    App,
    DecodeError,
    MessageTooLarge,
    ReceiveStream,
    Session,
    Stream,
    StreamErrorCode,
)
from wtframe.testing import TestClient

# --8<-- [end:imports]

__all__ = [
    "MAX_REQUEST_SIZE",
    "Click",
    "Clicker",
    "ErrorReply",
    "Reply",
    "ScoreReply",
    "Username",
    "app",
    "check_username",
    "scores",
    "test_bad_requests_are_explained",
    "test_bad_usernames_are_refused",
    "test_usernames_are_normalised",
]


# --8<-- [start:username]
def check_username(name: str) -> str:
    """Normalise a username, or refuse it with a reason.

    Raises:
        ValueError: If the name is empty, too long, or holds a character that is not a
            letter, a digit, a space, `_`, `-` or `.`.
    """
    name = " ".join(unicodedata.normalize("NFC", name).split())
    if not 1 <= len(name) <= 32:
        raise ValueError("a username has 1 to 32 characters")
    for char in name:
        kind = unicodedata.category(char)  # "Lu", "Ll", "Mn", "Nd", "Cf", ...
        if not (kind[0] in "LM" or kind == "Nd" or char in " _-."):
            raise ValueError(f"a username cannot hold U+{ord(char):04X}")
    return name


Username = Annotated[str, AfterValidator(check_username)]
# --8<-- [end:username]


# --8<-- [start:models]
class Click(BaseModel):
    """A player clicked once."""

    username: Username


class ScoreReply(BaseModel):
    """The player's new score."""

    type: Literal["score"] = "score"
    username: str
    score: int


class ErrorReply(BaseModel):
    """Why a request was refused; nothing was counted."""

    type: Literal["error"] = "error"
    code: Literal["invalid_request", "too_large"]
    message: str


Reply = Annotated[ScoreReply | ErrorReply, Field(discriminator="type")]
"""What the server answers to a click; the client tells them apart by `type`."""
# --8<-- [end:models]


# --8<-- [start:app]
MAX_REQUEST_SIZE = 1024
"""The largest request accepted, in bytes."""

scores: dict[str, int] = {}
app = App()


@app.session("/clicker")
class Clicker(Session):
    """One player's session. Each click arrives on a stream of its own."""

    max_message_size = MAX_REQUEST_SIZE

    async def on_stream(self, stream: ReceiveStream) -> None:
        """Answer the one request on a bidirectional stream."""
        if not isinstance(stream, Stream):  # one-way: there is no way to answer
            stream.stop()
            return
        reply: ScoreReply | ErrorReply
        try:
            click = await stream.read_message(Click)
        except DecodeError as exc:
            reply = ErrorReply(code="invalid_request", message=str(exc))
        except MessageTooLarge:
            stream.stop(StreamErrorCode.MESSAGE_TOO_BIG)  # "send no more"
            reply = ErrorReply(
                code="too_large", message=f"a request is at most {MAX_REQUEST_SIZE} bytes"
            )
        else:
            score = scores.get(click.username, 0) + 1
            scores[click.username] = score
            reply = ScoreReply(username=click.username, score=score)
        await stream.write_message(reply)


# --8<-- [end:app]


# --8<-- [start:tests]
async def test_usernames_are_normalised() -> None:
    """Spaces are trimmed and collapsed, and accents composed (NFC)."""
    decomposed = "  Zoe\N{COMBINING DIAERESIS}   Q.  "
    async with TestClient(app) as client, client.connect("/clicker") as session:
        reply = await session.send_request({"username": decomposed}, Reply)
    assert reply == ScoreReply(username="Zo\N{LATIN SMALL LETTER E WITH DIAERESIS} Q.", score=1)


async def test_bad_usernames_are_refused() -> None:
    """Empty, too long, invisible characters, not a string: refused, not counted."""
    bad = ["", "   ", "x" * 33, "eve\N{ZERO WIDTH SPACE}", "<script>", 42, None]
    async with TestClient(app) as client, client.connect("/clicker") as session:
        for username in bad:
            reply = await session.send_request({"username": username}, Reply)
            assert isinstance(reply, ErrorReply), username
            assert reply.code == "invalid_request"
            assert "username" in reply.message
    assert not any(name.startswith(("eve", "<")) for name in scores)


async def test_bad_requests_are_explained() -> None:
    """Not JSON, the wrong shape, too large: each gets an error reply."""
    async with TestClient(app) as client, client.connect("/clicker") as session:
        not_json = await session.send_request(b"click!", Reply)
        wrong_shape = await session.send_request({"user": "alice"}, Reply)
        too_large = await session.send_request({"username": "x" * 2000}, Reply)
    assert not_json.code == "invalid_request" and "JSON" in not_json.message
    assert wrong_shape.code == "invalid_request" and "username" in wrong_shape.message
    assert too_large.code == "too_large"


# --8<-- [end:tests]


async def main() -> None:
    """Run every test of this file, one after the other."""
    await test_usernames_are_normalised()
    await test_bad_usernames_are_refused()
    await test_bad_requests_are_explained()
    print("all tests passed")


if __name__ == "__main__":
    asyncio.run(main())

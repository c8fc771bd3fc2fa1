"""Tutorial step 3: clicks as typed requests on streams, scores in a dict.

Serve it with `wtframe run step3_clicks:app`; run it as a script to run its tests.
"""

from __future__ import annotations

# --8<-- [start:imports]
import asyncio

import pytest
from pydantic import BaseModel

from wtframe import App, Session, StreamErrorCode, StreamReset
from wtframe.testing import TestClient

# --8<-- [end:imports]

__all__ = [
    "Click",
    "Clicker",
    "Score",
    "app",
    "scores",
    "test_bad_json_resets_the_stream",
    "test_clicks_add_up",
    "test_concurrent_clicks_are_all_counted",
]


# --8<-- [start:models]
class Click(BaseModel):
    """A player clicked once."""

    username: str


class Score(BaseModel):
    """A player's score, sent back for every click."""

    username: str
    score: int


# --8<-- [end:models]


# --8<-- [start:app]
scores: dict[str, int] = {}
"""Every player's score. Kept in memory for now: a restart forgets it (step 5 fixes that)."""

app = App()


@app.session("/clicker")
class Clicker(Session):
    """One player's session. Each click arrives on a stream of its own."""

    async def on_request(self, click: Click) -> Score:
        """Count a click and answer with the new score."""
        score = scores.get(click.username, 0) + 1
        scores[click.username] = score
        return Score(username=click.username, score=score)


# --8<-- [end:app]


# --8<-- [start:tests]
async def test_clicks_add_up() -> None:
    """Each click is answered with the player's new score."""
    async with TestClient(app) as client, client.connect("/clicker") as session:
        first = await session.send_request(Click(username="alice"), Score)
        second = await session.send_request(Click(username="alice"), Score)
        other = await session.send_request(Click(username="bob"), Score)
    assert (first.score, second.score, other.score) == (1, 2, 1)


async def test_concurrent_clicks_are_all_counted() -> None:
    """Fifty clicks in flight at once, from two sessions: none is lost."""
    async with TestClient(app) as client:
        async with client.connect("/clicker") as one, client.connect("/clicker") as two:
            replies = await asyncio.gather(
                *(
                    session.send_request(Click(username="carol"), Score)
                    for session in [one, two] * 25
                )
            )
    assert sorted(reply.score for reply in replies) == list(range(1, 51))


async def test_bad_json_resets_the_stream() -> None:
    """A request that is not a `Click` gets no answer: the stream is reset."""
    async with TestClient(app) as client, client.connect("/clicker") as session:
        with pytest.raises(StreamReset) as reset:
            await session.send_request(b'{"user": "alice"}', Score)
    assert reset.value.code == StreamErrorCode.INVALID_MESSAGE  # 1007


# --8<-- [end:tests]


async def main() -> None:
    """Run every test of this file, one after the other."""
    await test_clicks_add_up()
    await test_concurrent_clicks_are_all_counted()
    await test_bad_json_resets_the_stream()
    print("all tests passed")


if __name__ == "__main__":
    asyncio.run(main())

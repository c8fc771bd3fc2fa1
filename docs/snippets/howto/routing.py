"""Routes and path parameters, checked against a real client when run.

Run it from the repository root:

    python docs/snippets/howto/routing.py
"""

from __future__ import annotations

import asyncio
import uuid

from wtframe import App, HandshakeError, Router, Session, SessionRoute
from wtframe.testing import TestClient

# --8<-- [start:app]
app = App()


@app.session("/rooms/{room:int}")
class Room(Session):
    """`{room:int}` matches digits only and gives an `int`."""

    async def on_connect(self) -> None:
        """Keep the room number and the optional `?nick=` query parameter."""
        self.room: int = self.request.path_params["room"]
        self.nick = self.request.query_params.get("nick", "anonymous")

    async def on_datagram(self, data: bytes) -> None:
        """Say which room this is, and who is asking."""
        self.send_datagram(f"{self.nick} in room {self.room}")


@app.session("/players/{player:uuid}", name="player")
class Player(Session):
    """`{player:uuid}` gives a `uuid.UUID`; the route is named `player`."""

    async def on_datagram(self, data: bytes) -> None:
        """Answer with the player's id."""
        self.send_datagram(self.request.path_params["player"].hex)


@app.session("/files/{rest:path}")
class Files(Session):
    """`{rest:path}` takes the rest of the path, slashes included (last parameter only)."""

    async def on_datagram(self, data: bytes) -> None:
        """Answer with the captured path."""
        self.send_datagram(self.request.path_params["rest"])


# --8<-- [end:app]


# --8<-- [start:router]
class Echo(Session):
    """A session class routed without the decorator."""

    async def on_datagram(self, data: bytes) -> None:
        """Send the datagram back."""
        self.send_datagram(data)


routes = [
    SessionRoute("/echo", Echo),
    SessionRoute("/echo/{name}", Echo, name="named-echo"),
]
other = App(routes)  # the same as other.add_session("/echo", Echo) for each route
assert other.url_path_for("named-echo", name="a b") == "/echo/a%20b"

router = Router(routes)  # the router alone, e.g. to test the templates
match = router.match("/echo/alice?x=1")  # the query string takes no part in matching
assert match is not None and match.route.endpoint is Echo
assert match.path_params == {"name": "alice"}
assert router.match("/echo/") is None  # `{name}` never matches an empty segment
# --8<-- [end:router]

__all__ = ["Echo", "Files", "Player", "Room", "app", "check"]


async def check() -> None:
    """Open a session on each route, and one on a path no route matches."""
    player_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    # --8<-- [start:url]
    assert app.url_path_for("Room", room=7) == "/rooms/7"  # default name: the class name
    assert app.url_path_for("player", player=player_id) == f"/players/{player_id}"
    # --8<-- [end:url]
    async with TestClient(app) as client:
        # --8<-- [start:client]
        async with client.connect("/rooms/7?nick=ada") as session:
            session.send_datagram(b"?")
            assert await session.receive_datagram(str) == "ada in room 7"

        async with client.connect(app.url_path_for("player", player=player_id)) as session:
            session.send_datagram(b"?")
            assert await session.receive_datagram(str) == player_id.hex

        async with client.connect("/files/docs/a%2Fb.txt") as session:
            session.send_datagram(b"?")
            assert await session.receive_datagram(str) == "docs/a/b.txt"

        try:
            await client.connect("/rooms/seven")  # not digits: no route matches
        except HandshakeError as exc:
            assert exc.status == 404
        else:
            raise AssertionError("expected a 404")
        # --8<-- [end:client]
    print("routing checked")


if __name__ == "__main__":
    asyncio.run(check())

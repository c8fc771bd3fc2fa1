"""Authenticating sessions in `on_connect`, checked against a real client when run.

Run it from the repository root:

    python docs/snippets/howto/auth.py
"""

from __future__ import annotations

import asyncio
import hmac

from wtframe import App, HandshakeError, Reject, Session
from wtframe.testing import TestClient

# --8<-- [start:app]
TOKENS = {"s3cret-token": "ada"}  # in real life: a database, or a signed token


def user_for(token: str) -> str | None:
    """Return the user a token belongs to, comparing in constant time."""
    for known, user in TOKENS.items():
        if hmac.compare_digest(known, token):
            return user
    return None


ALLOWED_ORIGINS = {"https://game.example.com", "http://localhost:8000"}
app = App()


@app.session("/game")
class Game(Session):
    """Only pages from our origins, with a valid `?token=`, get a session."""

    async def on_connect(self) -> None:
        """Check the page's origin, then the token in the query string."""
        if self.request.origin not in ALLOWED_ORIGINS:
            raise Reject(403, reason=f"origin {self.request.origin!r}")
        user = user_for(self.request.query_params.get("token", ""))
        if user is None:
            raise Reject(401, {"www-authenticate": "Bearer"}, reason="bad token")
        self.user = user

    async def on_datagram(self, data: bytes) -> None:
        """Greet the authenticated user."""
        self.send_datagram(f"hello {self.user}")


# --8<-- [end:app]


# --8<-- [start:header]
@app.session("/service")
class Service(Session):
    """For programs that are not browsers, which can send headers."""

    async def on_connect(self) -> None:
        """Require `authorization: Bearer <token>`, and no browser origin at all."""
        if self.request.origin is not None:
            raise Reject(403, reason=f"a page from {self.request.origin}")
        scheme, _, token = self.request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or user_for(token) is None:
            raise Reject(401)


# --8<-- [end:header]

__all__ = ["Game", "Service", "app", "check", "user_for"]


async def check() -> None:
    """Try each way in and each way out."""
    async with TestClient(app) as client:
        # --8<-- [start:client]
        origin = "https://game.example.com"
        async with client.connect("/game?token=s3cret-token", origin=origin) as session:
            session.send_datagram(b"hi")
            assert await session.receive_datagram(str) == "hello ada"

        try:
            await client.connect("/game?token=wrong", origin=origin)
        except HandshakeError as exc:
            assert exc.status == 401
            assert (b"www-authenticate", b"Bearer") in exc.headers
        else:
            raise AssertionError("expected a 401")

        try:
            await client.connect("/game?token=s3cret-token", origin="https://evil.example")
        except HandshakeError as exc:
            assert exc.status == 403
        else:
            raise AssertionError("expected a 403")
        # --8<-- [end:client]

        headers = {"authorization": "Bearer s3cret-token"}
        async with client.connect("/service", headers=headers) as session:
            assert not session.is_closed
        try:
            await client.connect("/service", headers=headers, origin=origin)
        except HandshakeError as exc:
            assert exc.status == 403
        else:
            raise AssertionError("expected a 403")
    print("auth checked")


if __name__ == "__main__":
    asyncio.run(check())

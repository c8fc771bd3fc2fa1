"""[`Request`][wtframe.Request]: what a client asked for when it opened a session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .datastructures import Headers, QueryParams, parse_query

if TYPE_CHECKING:
    from .app import App

__all__ = ["Request"]


class Request:
    """The CONNECT request that opened a WebTransport session.

    Args:
        headers: The request headers, pseudo-headers included, as aioquic delivers them.
        path_params: The converted path parameters of the matched route.
        client: The peer's address, `(host, port)`.
        app: The [`App`][wtframe.App] serving the request, if any.
    """

    __slots__ = ("_query", "app", "client", "headers", "path_params", "raw_path")

    def __init__(
        self,
        headers: list[tuple[bytes, bytes]],
        path_params: dict[str, Any] | None = None,
        client: tuple[str, int] | None = None,
        app: App | None = None,
    ) -> None:
        self.headers = Headers(headers)
        """All request headers, case-insensitive (pseudo-headers such as `:path` included)."""
        self.raw_path = self.headers.get(":path", "/")
        """The `:path` pseudo-header as sent, query string included."""
        self.path_params: dict[str, Any] = dict(path_params or {})
        """The route's path parameters, converted (`{room:int}` gives an `int`)."""
        self.client = client
        """The peer's `(host, port)`, or `None` if unknown."""
        self._query: QueryParams | None = None
        self.app = app
        """The app serving the request (`None` for a request built by hand)."""

    @property
    def path(self) -> str:
        """The request path without its query string."""
        return self.raw_path.partition("?")[0].partition("#")[0]

    @property
    def query_params(self) -> QueryParams:
        """The query string's parameters (`?room=1&x=2`)."""
        if self._query is None:
            self._query = parse_query(self.raw_path)
        return self._query

    @property
    def origin(self) -> str | None:
        """The `origin` header browsers send (e.g. `https://example.com`), if any."""
        return self.headers.get("origin")

    @property
    def authority(self) -> str:
        """The `:authority` pseudo-header: the host and port the client asked for."""
        return self.headers.get(":authority", "")

    @property
    def protocol(self) -> str:
        """The `:protocol` pseudo-header: `webtransport` (draft-02) or `webtransport-h3`."""
        return self.headers.get(":protocol", "")

    def __repr__(self) -> str:
        return f"<Request {self.raw_path!r} from {self.client}>"

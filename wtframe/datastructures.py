"""Immutable multi-dicts for the query string and the headers of a session request.

Both types are read-only `collections.abc.Mapping`s of `str` to `str` that keep
every value of a repeated key:

* [`QueryParams`][wtframe.datastructures.QueryParams]: `params["x"]` is the *last* value
  given for `x`.
* [`Headers`][wtframe.datastructures.Headers]: names are case-insensitive and `headers["x"]`
  is the *first* value given for `x`.

`getlist(key)` returns every value of a key, in order, and `multi_items()` every pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TypeAlias
from urllib.parse import parse_qsl, urlencode

__all__ = ["HeaderPair", "Headers", "QueryParams", "parse_query"]

HeaderPair: TypeAlias = tuple[bytes, bytes] | tuple[str, str]
"""One header as it arrives: `(name, value)` as bytes or as text."""


class QueryParams(Mapping[str, str]):
    """The parameters of a query string, with every value of a repeated name kept.

    `params["x"]` and `params.get("x")` give the last value of `x`, `getlist("x")` all of
    them. Equality ignores the order of the pairs; `str()` gives the encoded query string.

    Args:
        query: An encoded query string without the leading `?` (decoded with
            `urllib.parse.parse_qsl`, blank values kept), a mapping, or `(name, value)`
            pairs. `None` gives empty parameters.
    """

    __slots__ = ("_dict", "_list")

    def __init__(
        self, query: str | Mapping[str, str] | Iterable[tuple[str, str]] | None = None
    ) -> None:
        pairs: list[tuple[str, str]]
        if query is None:
            pairs = []
        elif isinstance(query, str):
            pairs = parse_qsl(query, keep_blank_values=True)
        elif isinstance(query, QueryParams):
            pairs = query.multi_items()
        elif isinstance(query, Mapping):
            pairs = list(query.items())
        else:
            pairs = [(name, value) for name, value in query]
        self._list = pairs
        self._dict = dict(pairs)

    def __getitem__(self, key: str) -> str:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __contains__(self, key: object) -> bool:
        return key in self._dict

    def getlist(self, key: str) -> list[str]:
        """Return every value of `key`, in order.

        Args:
            key: The parameter name.

        Returns:
            The values; an empty list when the name is absent.
        """
        return [value for name, value in self._list if name == key]

    def multi_items(self) -> list[tuple[str, str]]:
        """Return every `(name, value)` pair, repeated names included, in order.

        Returns:
            A new list of the pairs.
        """
        return list(self._list)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, QueryParams):
            return sorted(self._list) == sorted(other._list)
        return super().__eq__(other)

    def __str__(self) -> str:
        return urlencode(self._list)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


def parse_query(raw_path: str) -> QueryParams:
    """Parse the query string of a request target such as `/echo?x=1&x=2`.

    The fragment, if any, is ignored; a target without `?` has no parameters.

    Args:
        raw_path: The `:path` pseudo-header as received, still percent-encoded.

    Returns:
        The query parameters.
    """
    target = raw_path.partition("#")[0]
    return QueryParams(target.partition("?")[2])


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


class Headers(Mapping[str, str]):
    """Request or response headers, with case-insensitive names.

    Names are lower-cased (keys, `items()` and `multi_items()` give them so); values are
    `str`, decoded from latin-1 when given as bytes. `headers["x"]` and `headers.get("x")`
    give the first value of `x`, `getlist("x")` all of them. Equality compares the pairs,
    ignoring their order.

    Args:
        raw: `(name, value)` pairs as `bytes` or `str`, or a mapping of names to values.
            `None` gives empty headers.
    """

    __slots__ = ("_dict", "_raw")

    def __init__(self, raw: Iterable[HeaderPair] | Mapping[str, str] | None = None) -> None:
        pairs: list[HeaderPair]
        if raw is None:
            pairs = []
        elif isinstance(raw, Mapping):
            pairs = list(raw.items())
        else:
            pairs = list(raw)
        self._raw = pairs
        self._dict: dict[str, str] = {}
        for name, value in self._pairs():
            self._dict.setdefault(name, value)

    def _pairs(self) -> list[tuple[str, str]]:
        # Computed when needed rather than kept: every session holds its request headers.
        return [(_text(name).lower(), _text(value)) for name, value in self._raw]

    @property
    def raw(self) -> list[HeaderPair]:
        """The pairs exactly as given (a new list each time)."""
        return list(self._raw)

    def __getitem__(self, key: str) -> str:
        if not isinstance(key, str):
            raise KeyError(key)
        return self._dict[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._dict

    def getlist(self, key: str) -> list[str]:
        """Return every value of the header `key`, in order.

        Args:
            key: The header name, in any case.

        Returns:
            The values; an empty list when the header is absent.
        """
        wanted = key.lower()
        return [value for name, value in self._pairs() if name == wanted]

    def multi_items(self) -> list[tuple[str, str]]:
        """Return every `(name, value)` pair with lower-cased names, in order.

        Returns:
            A new list of the pairs.
        """
        return self._pairs()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted(self._pairs()) == sorted(other._pairs())
        return super().__eq__(other)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._pairs()!r})"

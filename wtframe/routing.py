"""Map WebTransport CONNECT paths to session classes.

A route is a path template such as `/rooms/{room:int}`. Each `{name}` or
`{name:convertor}` parameter matches part of the path and is converted to a Python
value by a [`Convertor`][wtframe.routing.Convertor]:

| convertor | matches                                      | value       |
|-----------|----------------------------------------------|-------------|
| `str`     | one path segment, not empty (the default)    | `str`       |
| `int`     | decimal digits, no sign                      | `int`       |
| `float`   | digits with an optional fraction, no sign    | `float`     |
| `uuid`    | `8-4-4-4-12` hex digits, any case            | `uuid.UUID` |
| `path`    | the rest of the path, slashes included       | `str`       |

`path` may only be used by the last parameter of a template. More convertors can be
added with [`register_convertor`][wtframe.routing.register_convertor].

Templates are written as decoded text. A request path is matched as follows: the query
string and fragment are dropped, every percent-escape except `%2F` (`/`) and `%25` (`%`) is
decoded, the routes are tried in the order they were added (the first match wins), and
then each captured value is fully decoded. An encoded slash therefore stays inside its
parameter: `/files/a%2Fb` gives `{name}` the value `"a/b"` instead of two segments.

Trailing slashes are significant: `/echo` and `/echo/` are different paths. WebTransport
has no redirects, so a session requested at one never reaches a route registered for the
other; register both if both should work.
"""

from __future__ import annotations

import math
import re
import uuid
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar
from urllib.parse import quote, unquote

from wtframe.exceptions import ConfigurationError

__all__ = [
    "CONVERTORS",
    "Convertor",
    "FloatConvertor",
    "IntegerConvertor",
    "Match",
    "PathConvertor",
    "Router",
    "SessionRoute",
    "StringConvertor",
    "UUIDConvertor",
    "compile_path",
    "register_convertor",
]

T = TypeVar("T")

# Characters left as they are when a path is built: RFC 3986 `pchar` minus `%`.
_SEGMENT_SAFE = "!$&'()*+,;=:@"
_PATH_SAFE = _SEGMENT_SAFE + "/"


class Convertor(ABC, Generic[T]):
    """Turns one path parameter into a Python value and back.

    Attributes:
        regex: The regular expression a parameter must match, without anchors or groups
            of its own. It is matched against the path with every percent-escape decoded
            except `%2F` and `%25`.
    """

    regex: str

    @abstractmethod
    def convert(self, value: str) -> T:
        """Convert a matched, percent-decoded parameter to its value.

        Args:
            value: The decoded text that matched `regex`.

        Returns:
            The parameter value.

        Raises:
            ValueError: To decline the value; the route then does not match.
        """

    @abstractmethod
    def to_string(self, value: T) -> str:
        """Turn a value back into the (not yet percent-encoded) text of a path.

        Args:
            value: The parameter value.

        Returns:
            The text `convert` would turn back into `value`.

        Raises:
            ValueError: If the value cannot appear in this parameter.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class StringConvertor(Convertor[str]):
    """One path segment, not empty; an encoded slash (`%2F`) is part of the value."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        """Return the segment unchanged.

        Args:
            value: The decoded segment.

        Returns:
            `value`.
        """
        return value

    def to_string(self, value: str) -> str:
        """Return the value as text.

        Args:
            value: The segment text; other objects are passed through `str()`.

        Returns:
            The text.

        Raises:
            ValueError: If the text is empty.
        """
        text = str(value)
        if not text:
            raise ValueError("a str parameter cannot be empty")
        return text


class PathConvertor(Convertor[str]):
    """The rest of the path, slashes included, possibly empty."""

    regex = ".*"

    def convert(self, value: str) -> str:
        """Return the path unchanged.

        Args:
            value: The decoded path.

        Returns:
            `value`.
        """
        return value

    def to_string(self, value: str) -> str:
        """Return the value as text.

        Args:
            value: The path; other objects are passed through `str()`.

        Returns:
            The text.
        """
        return str(value)


class IntegerConvertor(Convertor[int]):
    """A non-negative decimal integer, without a sign."""

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        """Parse the digits.

        Args:
            value: Decimal digits.

        Returns:
            The integer.

        Raises:
            ValueError: If the number has more digits than Python converts.
        """
        return int(value)

    def to_string(self, value: int) -> str:
        """Format a non-negative integer.

        Args:
            value: The integer.

        Returns:
            Its decimal digits.

        Raises:
            ValueError: If `value` is not an `int` (or is a `bool`) or is negative.
        """
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"expected a non-negative int, got {value!r}")
        return str(value)


class FloatConvertor(Convertor[float]):
    """A non-negative finite decimal number, such as `3` or `2.5`, without sign or exponent."""

    regex = r"[0-9]+(?:\.[0-9]+)?"

    def convert(self, value: str) -> float:
        """Parse the number.

        Args:
            value: Digits with an optional fraction.

        Returns:
            The float.

        Raises:
            ValueError: If the number is too large for a float.
        """
        number = float(value)
        if math.isinf(number):
            raise ValueError(f"{value!r} is too large for a float")
        return number

    def to_string(self, value: float) -> str:
        """Format a non-negative finite number in plain decimal notation.

        The text is exact: `convert` turns it back into the same float.

        Args:
            value: A `float` or `int`.

        Returns:
            The number without exponent, e.g. `"2.5"`, `"0.0001"` or `"100000000000000000000"`.

        Raises:
            ValueError: If `value` is not a number, is negative, infinite or NaN.
        """
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a non-negative finite number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:
            raise ValueError(f"{value!r} is too large for a float") from None
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"expected a non-negative finite number, got {value!r}")
        return format(Decimal(repr(abs(number))), "f")


class UUIDConvertor(Convertor[uuid.UUID]):
    """A UUID in canonical `8-4-4-4-12` hex form, upper or lower case."""

    regex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def convert(self, value: str) -> uuid.UUID:
        """Parse the UUID.

        Args:
            value: The canonical hex form.

        Returns:
            The UUID.
        """
        return uuid.UUID(value)

    def to_string(self, value: uuid.UUID) -> str:
        """Format a UUID in canonical lower-case form.

        Args:
            value: A `uuid.UUID`, or a string `uuid.UUID` accepts.

        Returns:
            The canonical form.

        Raises:
            ValueError: If `value` is neither a UUID nor a string holding one.
        """
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, str):
            return str(uuid.UUID(value))
        raise ValueError(f"expected a UUID, got {value!r}")


CONVERTORS: dict[str, Convertor[Any]] = {
    "str": StringConvertor(),
    "path": PathConvertor(),
    "int": IntegerConvertor(),
    "float": FloatConvertor(),
    "uuid": UUIDConvertor(),
}
"""The convertors a template can name, by name."""


def register_convertor(name: str, convertor: Convertor[Any]) -> None:
    """Make a convertor available to templates as `{param:name}`.

    Registering an existing name replaces its convertor for templates compiled afterwards.

    Args:
        name: The convertor name, a Python identifier.
        convertor: The convertor instance.

    Raises:
        ConfigurationError: If `name` is not an identifier or `convertor` is not a
            [`Convertor`][wtframe.routing.Convertor].
    """
    if not name.isidentifier():
        raise ConfigurationError(f"convertor name {name!r} is not a valid identifier")
    if not isinstance(convertor, Convertor):
        raise ConfigurationError(f"{convertor!r} is not a Convertor instance")
    CONVERTORS[name] = convertor


_PARAM = re.compile(r"\{([^{}]*)\}")


def _check_literal(literal: str, path: str) -> None:
    if "{" in literal or "}" in literal:
        raise ConfigurationError(f"unbalanced '{{' or '}}' in route path {path!r}")
    if "?" in literal or "#" in literal:
        raise ConfigurationError(
            f"route path {path!r} contains '?' or '#'; query strings and fragments are "
            "not part of routing"
        )


def compile_path(path: str) -> tuple[re.Pattern[str], str, dict[str, Convertor[Any]]]:
    """Compile a route template.

    Args:
        path: A template such as `/rooms/{room:int}/{rest:path}`.

    Returns:
        The anchored regex (matched against a path whose percent-escapes are decoded except
        `%2F` and `%25`), the format string with plain `{name}` fields (such as
        `/rooms/{room}/{rest}`), and the convertor of each parameter in template order.

    Raises:
        ConfigurationError: If the template does not start with `/`, has unbalanced braces,
            contains `?` or `#`, or has a parameter whose name is not an identifier, is used
            twice, names an unknown convertor, or follows a `path` parameter.
    """
    if not path.startswith("/"):
        raise ConfigurationError(f"route path {path!r} must start with '/'")
    regex = "^"
    path_format = ""
    convertors: dict[str, Convertor[Any]] = {}
    spanning: str | None = None
    position = 0
    for field in _PARAM.finditer(path):
        literal = path[position : field.start()]
        _check_literal(literal, path)
        name, colon, convertor_name = field.group(1).partition(":")
        if not colon:
            convertor_name = "str"
        if not name.isidentifier():
            raise ConfigurationError(
                f"parameter name {name!r} in route path {path!r} is not a valid identifier"
            )
        if name in convertors:
            raise ConfigurationError(f"parameter {name!r} appears twice in route path {path!r}")
        if convertor_name not in CONVERTORS:
            known = ", ".join(sorted(CONVERTORS))
            raise ConfigurationError(
                f"unknown convertor {convertor_name!r} for parameter {name!r} in route path "
                f"{path!r} (known: {known})"
            )
        if spanning is not None:
            raise ConfigurationError(
                f"parameter {spanning!r} uses the 'path' convertor, which is only allowed on "
                f"the last parameter of route path {path!r}"
            )
        convertor = CONVERTORS[convertor_name]
        if isinstance(convertor, PathConvertor):
            spanning = name
        convertors[name] = convertor
        regex += re.escape(literal.replace("%", "%25")) + f"(?P<{name}>{convertor.regex})"
        path_format += literal + "{" + name + "}"
        position = field.end()
    tail = path[position:]
    _check_literal(tail, path)
    regex += re.escape(tail.replace("%", "%25")) + r"\Z"
    path_format += tail
    try:
        pattern = re.compile(regex, re.DOTALL)
    except re.error as exc:
        raise ConfigurationError(f"route path {path!r} compiles to a bad regex: {exc}") from exc
    return pattern, path_format, convertors


_KEPT_ESCAPE = re.compile("(%2[fF]|%25)")


def _normalize(path: str) -> str:
    """Decode every percent-escape of `path` except `%2F` and `%25`.

    A `%` that was not part of a valid escape is re-escaped as `%25`, so decoding a
    captured value once more with `unquote` is exact.
    """
    if "%" not in path:
        return path
    pieces = _KEPT_ESCAPE.split(path)
    for index in range(0, len(pieces), 2):
        pieces[index] = unquote(pieces[index]).replace("%", "%25")
    return "".join(pieces)


def _strip_target(path: str) -> str:
    return path.partition("?")[0].partition("#")[0]


def _quote_format(path_format: str) -> str:
    pieces = re.split(r"(\{[^{}]*\})", path_format)
    for index in range(0, len(pieces), 2):
        pieces[index] = quote(pieces[index], safe=_PATH_SAFE)
    return "".join(pieces)


class SessionRoute:
    """A route from a path template to a session class.

    Args:
        path: The template, such as `/rooms/{room:int}`.
        endpoint: The class that handles sessions on this path.
        name: The route name for [`url_path_for`][wtframe.routing.Router.url_path_for];
            defaults to the endpoint's `__name__`.

    Attributes:
        path: The template.
        endpoint: The session class.
        name: The route name.
        path_regex: The compiled template (see [`compile_path`][wtframe.routing.compile_path]).
        path_format: The template with plain `{name}` fields.
        param_convertors: The convertor of each parameter, in template order.

    Raises:
        ConfigurationError: If the template is invalid.
    """

    def __init__(self, path: str, endpoint: type[Any], *, name: str | None = None) -> None:
        self.path = path
        self.endpoint = endpoint
        self.name: str = endpoint.__name__ if name is None else name
        self.path_regex, self.path_format, self.param_convertors = compile_path(path)
        self._url_format = _quote_format(self.path_format)

    def match(self, path: str) -> dict[str, Any] | None:
        """Match a percent-encoded path, without query string, against this route.

        Args:
            path: The path as sent, e.g. `/rooms/42` or `/files/a%2Fb`.

        Returns:
            The converted parameters, or `None` if the path does not match.
        """
        return self._match_normalized(_normalize(path))

    def _match_normalized(self, path: str) -> dict[str, Any] | None:
        found = self.path_regex.match(path)
        if found is None:
            return None
        params: dict[str, Any] = {}
        for name, convertor in self.param_convertors.items():
            try:
                params[name] = convertor.convert(unquote(found.group(name)))
            except ValueError:
                return None
        return params

    def url_path_for(self, /, **params: Any) -> str:
        """Build the percent-encoded path that matches this route with `params`.

        Args:
            **params: A value for every parameter of the template.

        Returns:
            The path, e.g. `/rooms/42`.

        Raises:
            ConfigurationError: If a parameter is missing or unknown, or its convertor
                cannot format the value.
        """
        missing = self.param_convertors.keys() - params.keys()
        if missing:
            raise ConfigurationError(
                f"route {self.name!r} ({self.path}) is missing parameter(s): "
                + ", ".join(sorted(missing))
            )
        unexpected = params.keys() - self.param_convertors.keys()
        if unexpected:
            raise ConfigurationError(
                f"route {self.name!r} ({self.path}) has no parameter(s): "
                + ", ".join(sorted(unexpected))
            )
        values: dict[str, str] = {}
        for name, convertor in self.param_convertors.items():
            try:
                text = convertor.to_string(params[name])
            except ValueError as exc:
                raise ConfigurationError(
                    f"cannot build parameter {name!r} of route {self.name!r} ({self.path}): {exc}"
                ) from exc
            safe = _PATH_SAFE if isinstance(convertor, PathConvertor) else _SEGMENT_SAFE
            values[name] = quote(text, safe=safe)
        return self._url_format.format_map(values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, name={self.name!r})"


@dataclass(frozen=True)
class Match:
    """The route a path matched and its converted parameters.

    Attributes:
        route: The matching route.
        path_params: The converted parameters, by name.
    """

    route: SessionRoute
    path_params: dict[str, Any]


class Router:
    """An ordered list of session routes; the first route that matches a path wins.

    Results of [`match`][wtframe.routing.Router.match] are cached by path (query string
    removed) in a least-recently-used cache, emptied whenever a route is added.

    Args:
        routes: Initial routes, in priority order.
        cache_size: How many paths the match cache remembers; 0 disables it.

    Raises:
        ConfigurationError: If `cache_size` is negative.
    """

    def __init__(
        self, routes: Sequence[SessionRoute] | None = None, *, cache_size: int = 1024
    ) -> None:
        if cache_size < 0:
            raise ConfigurationError(f"cache_size must be 0 or more, not {cache_size}")
        self._routes: list[SessionRoute] = list(routes or ())
        self._cache_size = cache_size
        self._cache: OrderedDict[str, tuple[SessionRoute, dict[str, Any]] | None] = OrderedDict()

    @property
    def routes(self) -> list[SessionRoute]:
        """The routes in priority order (a new list each time)."""
        return list(self._routes)

    def add_session(
        self, path: str, endpoint: type[Any], *, name: str | None = None
    ) -> SessionRoute:
        """Add a route after the existing ones.

        Args:
            path: The template, such as `/rooms/{room:int}`.
            endpoint: The session class.
            name: The route name; defaults to the endpoint's `__name__`.

        Returns:
            The new route.

        Raises:
            ConfigurationError: If the template is invalid.
        """
        route = SessionRoute(path, endpoint, name=name)
        self._routes.append(route)
        self._cache.clear()
        return route

    def match(self, path: str) -> Match | None:
        """Find the route for a request's `:path`.

        Args:
            path: The `:path` pseudo-header as received; a query string and fragment are
                ignored.

        Returns:
            The first matching route with its parameters, or `None`.
        """
        key = _strip_target(path)
        try:
            found = self._cache[key]
        except KeyError:
            found = self._lookup(key)
            if self._cache_size:
                self._cache[key] = found
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        if found is None:
            return None
        route, params = found
        return Match(route, dict(params))

    def _lookup(self, path: str) -> tuple[SessionRoute, dict[str, Any]] | None:
        normalized = _normalize(path)
        for route in self._routes:
            params = route._match_normalized(normalized)
            if params is not None:
                return route, params
        return None

    def url_path_for(self, name: str, /, **params: Any) -> str:
        """Build the path of the named route.

        When several routes share the name, the first whose parameter names are exactly
        those given is used.

        Args:
            name: The route name.
            **params: A value for every parameter of the route.

        Returns:
            The percent-encoded path.

        Raises:
            ConfigurationError: If no route has that name, or the parameters do not fit.
        """
        named = [route for route in self._routes if route.name == name]
        if not named:
            raise ConfigurationError(f"no session route named {name!r}")
        for route in named:
            if route.param_convertors.keys() == params.keys():
                return route.url_path_for(**params)
        return named[0].url_path_for(**params)

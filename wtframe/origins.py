"""[`OriginPolicy`][wtframe.origins.OriginPolicy]: which web pages may open sessions.

Browsers send the page's origin (`https://app.example.com`) with every WebTransport CONNECT,
and a page's script cannot change it. Checking it stops pages on other sites from opening
sessions with your users' browsers. It does not authenticate anyone: a program that is not
a browser sends whatever origin it likes, or none.

```python
app = App(allowed_origins=["https://example.com", "https://*.example.com"])
```

* `allowed_origins=None` (the default) allows every origin: convenient in development,
  to be locked down before deployment.
* An exact origin is `scheme://host` or `scheme://host:port`, compared without regard to
  case; a default port (443 for https, 80 for http) may be written or left out. Special
  values such as `null` (sandboxed pages) or `file://` match themselves only.
* `scheme://*.domain` (optionally with a port) matches every subdomain of `domain`, at any
  depth, but not `domain` itself: list both when both are wanted.
* A request without an `origin` header comes from a program that is not a browser. It is
  allowed unless `require_origin=True`.

A refused request is answered `403` before any of the session's code runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .exceptions import ConfigurationError

__all__ = ["OriginPolicy", "normalize_origin"]

_DEFAULT_PORTS = {"https": "443", "http": "80"}


def normalize_origin(origin: str) -> str:
    """Return an origin in the form the policy compares: lowercase, without a default port.

    Args:
        origin: An origin such as `https://Example.com:443`.

    Returns:
        The normalised origin, e.g. `https://example.com`; anything that is not
        `scheme://host[:port]` is returned lowercased and otherwise unchanged.
    """
    origin = origin.strip().lower()
    scheme, sep, rest = origin.partition("://")
    if not sep or not rest:
        return origin
    host, colon, port = rest.rpartition(":")
    if colon and host and port.isdigit() and _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return origin


@dataclass(frozen=True, slots=True)
class _Wildcard:
    prefix: str  # "https://"
    suffix: str  # ".example.com" or ".example.com:8443"

    def matches(self, origin: str) -> bool:
        if not (origin.startswith(self.prefix) and origin.endswith(self.suffix)):
            return False
        label = origin[len(self.prefix) : len(origin) - len(self.suffix)]
        return bool(label) and ":" not in label and "/" not in label and "@" not in label


class OriginPolicy:
    """Decides from its `origin` header whether a session request may go on.

    Args:
        allowed_origins: Origins allowed to open sessions (exact, or `scheme://*.domain`
            wildcards); `None` allows every origin.
        require_origin: Refuse requests that carry no `origin` header.

    Raises:
        ConfigurationError: If an entry is not an origin or a supported wildcard.
    """

    def __init__(
        self, allowed_origins: Iterable[str] | None = None, *, require_origin: bool = False
    ) -> None:
        self.require_origin = require_origin
        self.allow_all = allowed_origins is None
        self._exact: frozenset[str] = frozenset()
        self._wildcards: tuple[_Wildcard, ...] = ()
        if allowed_origins is None:
            return
        if isinstance(allowed_origins, str):
            raise ConfigurationError("allowed_origins must be a list of origins, not a string")
        exact: set[str] = set()
        wildcards: list[_Wildcard] = []
        for entry in allowed_origins:
            if not isinstance(entry, str) or not entry.strip():
                raise ConfigurationError(f"{entry!r} is not an origin")
            origin = normalize_origin(entry)
            if origin == "*":
                raise ConfigurationError("use allowed_origins=None to allow every origin")
            if "*" not in origin:
                if origin.endswith("/") and "://" in origin and origin != "file://":
                    raise ConfigurationError(f"an origin has no path: {entry!r}")
                exact.add(origin)
                continue
            scheme, sep, rest = origin.partition("://")
            if not sep or not rest.startswith("*.") or "*" in rest[2:] or "/" in rest:
                raise ConfigurationError(
                    f"{entry!r}: a wildcard must look like https://*.example.com"
                )
            wildcards.append(_Wildcard(f"{scheme}://", rest[1:]))
        self._exact = frozenset(exact)
        self._wildcards = tuple(wildcards)

    def allows(self, origin: str | None) -> bool:
        """Return whether a request with this `origin` header may open a session.

        Args:
            origin: The header's value, or `None` if the request carries none.

        Returns:
            `True` to let the request go on, `False` to answer it `403`.
        """
        if origin is None:
            return not self.require_origin
        if self.allow_all:
            return True
        origin = normalize_origin(origin)
        if origin in self._exact:
            return True
        return any(wildcard.matches(origin) for wildcard in self._wildcards)

    def __repr__(self) -> str:
        allowed = (
            "all"
            if self.allow_all
            else sorted(self._exact) + [f"{w.prefix}*{w.suffix}" for w in self._wildcards]
        )
        return f"OriginPolicy({allowed!r}, require_origin={self.require_origin})"

"""How a `Session` subclass's hook annotations decide the decoding of its messages.

Computed once per class (and checked when the class is registered), never per message.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._eager import never_suspends
from .codecs import JSON, Codec, codec_for, payload_type

if TYPE_CHECKING:
    from .session import Session

__all__ = ["HookTypes", "hook_types"]


@dataclass(frozen=True, slots=True)
class HookTypes:
    """The decoding a session class declares through its hook annotations."""

    datagram: Codec[Any] | None
    """The codec for `on_datagram`'s payload; `None` for raw bytes (no decoding at all)."""

    request: Any | None
    """The message type of `on_request`, or `None` if the class does not define it."""

    request_now: bool = False
    """Whether a request that arrived whole can be answered at once, without a task: the
    class serves `on_request` through the default `on_stream`, and its `on_request` is an
    `async def` that never waits (no `await`, `async for` or `async with` in its body)."""


_cache: dict[type[Any], HookTypes] = {}


def hook_types(cls: type[Session]) -> HookTypes:
    """Return (and cache) the decoding that `cls`'s hook annotations declare.

    Args:
        cls: A `Session` subclass.

    Returns:
        The codecs and types.

    Raises:
        ConfigurationError: If an annotation cannot be resolved or decoded.
    """
    found = _cache.get(cls)
    if found is None:
        tp = payload_type(cls.on_datagram)
        if tp is bytes:
            datagram: Codec[Any] | None = None
        elif tp is Any or tp is object:
            datagram = JSON
        else:
            datagram = codec_for(tp)
        on_request = getattr(cls, "on_request", None)
        request = payload_type(on_request) if on_request is not None else None
        if request is not None and request is not typing.Any:
            codec_for(request)
        from .session import Session  # a cycle: session imports this module

        request_now = (
            on_request is not None
            and cls.on_stream is Session.on_stream
            and never_suspends(on_request)
        )
        found = _cache[cls] = HookTypes(
            datagram=datagram, request=request, request_now=request_now
        )
    return found

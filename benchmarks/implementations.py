"""The servers the benchmark knows by name.

The first entry of [`IMPLEMENTATIONS`][benchmarks.implementations.IMPLEMENTATIONS] is
the baseline every other column is compared with. A module
``benchmarks/wtframe_server.py``, when present, is picked up as ``wtframe``.
"""

from __future__ import annotations

import importlib.util

from benchmarks.harness import Implementation

__all__ = ["CONTEXT", "IMPLEMENTATIONS", "parse_implementation"]

CONTEXT = Implementation("websockets", "benchmarks.ws_server")
"""The server of context-only workloads (WebSocket echo)."""


def _known() -> dict[str, Implementation]:
    known = {"raw": Implementation("raw", "benchmarks.raw_server")}
    if importlib.util.find_spec("benchmarks.wtframe_server") is not None:
        known["wtframe"] = Implementation("wtframe", "benchmarks.wtframe_server")
    return known


IMPLEMENTATIONS: dict[str, Implementation] = _known()
"""Known implementations by name, baseline first."""


def parse_implementation(text: str) -> Implementation:
    """Read an ``--impl`` value: a known name, or ``NAME=MODULE [ARGS...]``.

    Args:
        text: The value.

    Returns:
        The implementation.

    Raises:
        ValueError: If `text` names no known implementation and has no module.
    """
    name, sep, rest = text.partition("=")
    if not sep:
        if name not in IMPLEMENTATIONS:
            raise ValueError(f"unknown implementation {name!r}; known: {sorted(IMPLEMENTATIONS)}")
        return IMPLEMENTATIONS[name]
    module, *args = rest.split()
    return Implementation(name, module, tuple(args))

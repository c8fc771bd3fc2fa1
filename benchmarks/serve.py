"""Run a benchmark server module with UDP packet counters and a stats probe.

Usage: ``python -m benchmarks.serve [--profile FILE] MODULE [ARGS...]``.

The module is run as ``__main__`` with ``ARGS``. Before it starts, every asyncio
datagram transport (and wtframe's own) is made to count the datagrams it receives and
sends, and ``SIGUSR1`` makes the process write one line to stdout::

    STATS {"cpu": <process CPU seconds>, "rx": <datagrams in>, "tx": <datagrams out>,
           "rss_kib": <resident set size>}

This works for any asyncio server without its cooperation, so every implementation
is measured the same way. ``SIGTERM`` stops the server as Ctrl+C would, so it cleans up.

With ``--profile FILE``, ``SIGUSR2`` starts `cProfile` on the main thread and the next
``SIGUSR2`` stops it, writes its statistics to ``FILE`` and prints ``PROFILED``.
"""

from __future__ import annotations

import asyncio.selector_events
import cProfile
import json
import os
import resource
import runpy
import signal
import sys
import time
from types import FrameType
from typing import Any

__all__ = ["install_counters", "main", "snapshot"]

_counts = {"rx": 0, "tx": 0}
_PAGE_KIB = resource.getpagesize() // 1024


class _CountingProtocol:
    """Forwards everything to the wrapped datagram protocol, counting arrivals."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        _counts["rx"] += 1
        self._inner.datagram_received(data, addr)


def install_counters() -> None:
    """Make the datagram transports count the datagrams they receive and send.

    These are asyncio's selector datagram transports and, where wtframe is installed,
    the batching transport its server reads with.
    """
    classes: list[Any] = [asyncio.selector_events._SelectorDatagramTransport]  # type: ignore[attr-defined]
    try:
        from wtframe._udp import DatagramEndpoint
    except ImportError:
        pass
    else:
        classes.append(DatagramEndpoint)
    for cls in classes:
        _count(cls)


def _count(cls: Any) -> None:
    original_init = cls.__init__
    original_sendto = cls.sendto

    def counting_init(
        self: Any, loop: Any, sock: Any, protocol: Any, *args: Any, **kw: Any
    ) -> None:
        original_init(self, loop, sock, _CountingProtocol(protocol), *args, **kw)

    def counting_sendto(self: Any, data: Any, addr: Any = None) -> None:
        _counts["tx"] += 1
        original_sendto(self, data, addr)

    cls.__init__ = counting_init
    cls.sendto = counting_sendto


def snapshot() -> dict[str, float]:
    """Return the process's CPU time, datagram counts and resident set size.

    Returns:
        A mapping with keys `cpu` (seconds), `rx`, `tx` and `rss_kib`.
    """
    with open("/proc/self/statm", encoding="ascii") as statm:
        rss_pages = int(statm.read().split()[1])
    return {
        "cpu": time.process_time(),
        "rx": float(_counts["rx"]),
        "tx": float(_counts["tx"]),
        "rss_kib": float(rss_pages * _PAGE_KIB),
    }


def _on_signal(signum: int, frame: FrameType | None) -> None:
    os.write(1, ("STATS " + json.dumps(snapshot()) + "\n").encode())


class _ProfileSwitch:
    """Starts and stops a profiler of the main thread on each signal."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.profiler: cProfile.Profile | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.profiler is None:
            self.profiler = cProfile.Profile()
            self.profiler.enable()
            return
        self.profiler.disable()
        self.profiler.dump_stats(self.path)
        self.profiler = None
        os.write(1, b"PROFILED\n")


USAGE = "usage: python -m benchmarks.serve [--profile FILE] MODULE [ARGS...]"


def main() -> None:
    """Install the counters and the probes, then run the named module."""
    args = sys.argv[1:]
    if args[:1] == ["--profile"]:
        if len(args) < 2:
            raise SystemExit(USAGE)
        signal.signal(signal.SIGUSR2, _ProfileSwitch(args[1]))
        args = args[2:]
    if not args:
        raise SystemExit(USAGE)
    install_counters()
    signal.signal(signal.SIGUSR1, _on_signal)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.argv = args
    try:
        runpy.run_module(args[0], run_name="__main__", alter_sys=True)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

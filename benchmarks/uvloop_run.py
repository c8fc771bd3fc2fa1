"""Run a benchmark server module on uvloop instead of asyncio's own event loop.

Usage, as an implementation of the benchmark::

    python -m benchmarks.run --impl raw --impl wtframe \\
        --impl "wtframe-uvloop=benchmarks.uvloop_run --module benchmarks.wtframe_server"

The server gets every other argument. uvloop has its own transports, so the packet
counters of `benchmarks.serve` stay at zero; CPU time and memory are still reported.
"""

from __future__ import annotations

import argparse
import asyncio
import runpy
import sys

__all__ = ["main"]


def main() -> None:
    """Install uvloop's event loop policy, then run the module named by ``--module``."""
    import uvloop

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--module", required=True)
    options, rest = parser.parse_known_args()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    sys.argv = [options.module, *rest]
    runpy.run_module(options.module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

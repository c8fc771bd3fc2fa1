"""Side-by-side benchmarks of WebTransport server implementations.

Run `python -m benchmarks.run --help` for the command line.
"""

from __future__ import annotations

__all__: list[str] = []

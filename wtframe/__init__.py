"""wtframe: a Python microframework for WebTransport servers, built on aioquic."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

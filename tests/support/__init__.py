"""Support code for the test suite: serving pages and driving a headless browser."""

from __future__ import annotations

__all__: list[str] = []

"""Tests that run a real headless browser."""

from __future__ import annotations

__all__: list[str] = []

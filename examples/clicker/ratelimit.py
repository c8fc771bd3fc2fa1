"""A token bucket: a sustained rate with room for bursts."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from wtframe.exceptions import ConfigurationError

__all__ = ["TokenBucket"]


class TokenBucket:
    """Allows `rate` events per second on average and up to `burst` at once.

    The bucket starts full with `burst` tokens and refills continuously at `rate` tokens
    per second, never above `burst`. Each allowed event takes one token.

    Args:
        rate: Tokens added per second; must be positive.
        burst: The bucket's capacity; at least 1.
        clock: Returns the current time in seconds (monotonic); for tests.

    Raises:
        ConfigurationError: If `rate` or `burst` is out of range.
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ConfigurationError(f"rate must be a positive number, not {rate}")
        if burst < 1:
            raise ConfigurationError(f"burst must be at least 1, not {burst}")
        self.rate = float(rate)
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def take(self) -> float:
        """Take one token if there is one.

        Returns:
            0.0 if the event is allowed (a token was taken); otherwise the number of seconds
            until a token will be available, and nothing is taken.
        """
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate

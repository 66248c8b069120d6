"""Limits on failed admission attempts per client address, and rate buckets."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

# Failed invite checks an address may make in WINDOW seconds before its
# further attempts are refused, valid tokens included, until the window
# passes. A person who mistyped a link needs a handful.
MAX_FAILURES = 30
WINDOW = 60.0
# Addresses remembered at most; the oldest are forgotten first.
MAX_ADDRESSES = 10_000


class FailureLimiter:
    """Counts failed admission attempts per address in a sliding window."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    def blocked(self, address: str) -> bool:
        """Tell whether ``address`` has used up its failed attempts."""
        failures = self._failures.get(address)
        if failures is None:
            return False
        self._expire(failures)
        if not failures:
            del self._failures[address]
            return False
        return len(failures) >= self.max_failures

    def record_failure(self, address: str) -> None:
        failures = self._failures.pop(address, None) or collections.deque()
        self._expire(failures)
        failures.append(self._clock())
        self._failures[address] = failures
        while len(self._failures) > MAX_ADDRESSES:
            self._failures.popitem(last=False)

    def _expire(self, failures: collections.deque[float]) -> None:
        oldest = self._clock() - self.window
        while failures and failures[0] < oldest:
            failures.popleft()


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

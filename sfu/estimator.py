"""A cheaper rate counter for aiortc's receive-side bandwidth estimator.

aiortc 1.16.0's ``RemoteBitrateEstimator`` measures the incoming bitrate with
a ``RateCounter`` of 1000 one-millisecond buckets, each a Python object. Every
video receiver gets one, including the receivers of send-only transceivers
that never receive a packet, so a participant with 24 receive slots cost the
server 25,000 objects. Creating them made answering a large offer slow, and
the garbage collector walked them on every full collection. On each packet the
counter also clears one bucket per millisecond that passed.

:class:`WindowRateCounter` returns the same rates from a queue of the packets
inside the window.
"""

from __future__ import annotations

import collections
import logging

import aiortc.rate

logger = logging.getLogger(__name__)

# aiortc's own counter, kept for comparison after the replacement.
AIORTC_RATE_COUNTER = aiortc.rate.RateCounter


class WindowRateCounter:
    """Sum of the values added in the last ``window_size`` milliseconds.

    A drop-in replacement for ``aiortc.rate.RateCounter`` with the same
    results, as long as ``now_ms`` never goes back in time.
    """

    def __init__(self, window_size: int, scale: int = 8000) -> None:
        self._window_size = window_size
        self._scale = scale
        self.reset()

    def reset(self) -> None:
        self._entries: collections.deque[tuple[int, int]] = collections.deque()
        self._origin_ms: int | None = None
        self._count = 0
        self._total = 0

    def add(self, value: int, now_ms: int) -> None:
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        self._entries.append((now_ms, value))
        self._count += 1
        self._total += value

    def rate(self, now_ms: int) -> int | None:
        """Return the rate over the window in ``scale`` units, or None."""
        if self._origin_ms is None:
            return None
        self._erase_old(now_ms)
        active_window_size = now_ms - self._origin_ms + 1
        if self._count > 0 and active_window_size > 1:
            return round(self._scale * self._total / active_window_size)
        return None

    def _erase_old(self, now_ms: int) -> None:
        assert self._origin_ms is not None
        new_origin_ms = now_ms - self._window_size + 1
        if self._origin_ms >= new_origin_ms:
            return
        self._origin_ms = new_origin_ms
        entries = self._entries
        while entries and entries[0][0] < new_origin_ms:
            _, value = entries.popleft()
            self._count -= 1
            self._total -= value


def install_window_rate_counter() -> None:
    """Make aiortc's bandwidth estimators in this process use the cheap counter."""
    aiortc.rate.RateCounter = WindowRateCounter  # type: ignore[misc]
    logger.debug("- aiortc's rate counter replaced")

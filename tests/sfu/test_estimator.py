"""The rate counter that replaces aiortc's in the bandwidth estimator."""

from __future__ import annotations

import random

import aiortc.rate
import pytest

from sfu.estimator import (
    AIORTC_RATE_COUNTER,
    WindowRateCounter,
    install_window_rate_counter,
)


def packet_times(seed: int, count: int) -> list[tuple[int, int]]:
    """Return (arrival ms, size) pairs: bursts, gaps and several per ms."""
    rng = random.Random(seed)
    now = 1_000_000
    result = []
    for _ in range(count):
        now += rng.choice([0, 0, 1, 2, 5, 33, 120, 700, 1500])
        result.append((now, rng.randint(50, 1200)))
    return result


@pytest.mark.parametrize("seed", range(5))
def test_rates_match_aiortc(seed):
    ours = WindowRateCounter(1000, 8000)
    theirs = AIORTC_RATE_COUNTER(1000, 8000)
    for index, (now, size) in enumerate(packet_times(seed, 3000)):
        assert ours.rate(now) == theirs.rate(now), f"packet {index} at {now} ms"
        ours.add(size, now)
        theirs.add(size, now)
        if index % 500 == 499:
            ours.reset()
            theirs.reset()


def test_rate_none_until_two_ms():
    counter = WindowRateCounter(1000)
    assert counter.rate(5) is None
    counter.add(100, 5)
    assert counter.rate(5) is None
    assert counter.rate(6) == round(8000 * 100 / 2)


def test_old_values_leave_window():
    counter = WindowRateCounter(1000)
    counter.add(100, 0)
    counter.add(300, 500)
    assert counter.rate(999) == round(8000 * 400 / 1000)
    assert counter.rate(1000) == round(8000 * 300 / 1000)
    assert counter.rate(2000) is None


def test_install_replaces_estimator_counter(monkeypatch):
    monkeypatch.setattr(aiortc.rate, "RateCounter", AIORTC_RATE_COUNTER)
    install_window_rate_counter()
    estimator = aiortc.rate.RemoteBitrateEstimator()
    assert isinstance(estimator.incoming_bitrate, WindowRateCounter)

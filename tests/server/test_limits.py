from server.limits import FailureLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_blocks_after_max_failures() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(max_failures=3, window=60, clock=clock)
    for _ in range(2):
        limiter.record_failure("192.0.2.1")

    assert not limiter.blocked("192.0.2.1")
    limiter.record_failure("192.0.2.1")
    assert limiter.blocked("192.0.2.1")
    assert not limiter.blocked("192.0.2.2")


def test_limiter_forgets_after_window() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(max_failures=2, window=60, clock=clock)
    limiter.record_failure("192.0.2.1")
    limiter.record_failure("192.0.2.1")
    assert limiter.blocked("192.0.2.1")

    clock.now += 61

    assert not limiter.blocked("192.0.2.1")

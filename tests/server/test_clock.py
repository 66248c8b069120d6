"""The session clock's phases, controls and timers, with phases of milliseconds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.session import Clock, ClockError, Plan, PlanError, next_phase

# Short enough for quick tests, long enough that a test sees each phase.
FAST = Plan(focus=1, short_break=1, rounds=2, long_break=1)


def fast_plan(seconds: float) -> Plan:
    return Plan(focus=seconds, short_break=seconds, rounds=2, long_break=seconds)


async def wait_messages(messages: list[Any], count: int) -> None:
    """Wait until `count` messages arrived; the timers run late on a busy machine."""
    for _ in range(200):
        if len(messages) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only {len(messages)} of {count} clock messages arrived")


def recording_clock(plan: Plan) -> tuple[Clock, list[dict[str, Any]]]:
    messages: list[dict[str, Any]] = []
    return Clock(plan, messages.append, "room"), messages


def test_plan_parse_minutes() -> None:
    plan = Plan.parse("50/10/4/30")
    assert plan.focus == 3000
    assert plan.short_break == 600
    assert plan.rounds == 4
    assert plan.long_break == 1800


def test_plan_parse_seconds() -> None:
    plan = Plan.parse("6s/4s/2/5s")
    assert (plan.focus, plan.short_break, plan.rounds, plan.long_break) == (6, 4, 2, 5)


def test_plan_text_round_trip() -> None:
    plan = Plan.parse("25/5/3/15")
    assert Plan.parse(str(plan)) == plan


@pytest.mark.parametrize(
    "text", ["", "50/10/4", "50/10/x/30", "a/10/4/30", "0/10/4/30", "50/10/101/30"]
)
def test_plan_parse_rejects(text: str) -> None:
    with pytest.raises(PlanError):
        Plan.parse(text)


def test_next_phase_cycle() -> None:
    plan = Plan(focus=60, short_break=60, rounds=2, long_break=60)
    steps = [("idle", 0)]
    for _ in range(6):
        steps.append(next_phase(*steps[-1], plan))
    assert steps == [
        ("idle", 0),
        ("focus", 1),
        ("break", 1),
        ("focus", 2),
        ("long_break", 2),
        ("focus", 1),
        ("break", 1),
    ]


async def test_clock_start_message() -> None:
    clock, messages = recording_clock(FAST)
    clock.start()
    message = messages[-1]
    assert message["type"] == "clock"
    assert message["phase"] == "focus"
    assert message["round"] == 1
    assert message["rounds"] == 2
    assert message["ends_at"] - message["started_at"] == 1000
    assert message["paused"] is False
    assert 900 <= message["remaining_ms"] <= 1000
    assert message["plan"] == {"focus": 1, "break": 1, "long_break": 1, "rounds": 2}
    assert abs(message["now"] - message["started_at"]) < 100
    clock.close()


async def test_clock_idle_message() -> None:
    clock, _ = recording_clock(FAST)
    message = clock.message()
    assert message["phase"] == "idle"
    assert message["ends_at"] is None
    assert message["remaining_ms"] is None


async def test_clock_timer_advances_phases() -> None:
    clock, messages = recording_clock(fast_plan(0.05))
    clock.start()
    await wait_messages(messages, 4)
    clock.close()
    phases = [(m["phase"], m["round"]) for m in messages]
    assert phases[:4] == [("focus", 1), ("break", 1), ("focus", 2), ("long_break", 2)]


async def test_clock_pause_keeps_remaining() -> None:
    clock, messages = recording_clock(fast_plan(1.0))
    clock.start()
    started = messages[-1]
    await asyncio.sleep(0.05)
    clock.pause()
    paused = messages[-1]
    assert paused["paused"] is True
    assert paused["ends_at"] is None
    assert abs(paused["remaining_ms"] - (started["ends_at"] - paused["now"])) <= 5
    await asyncio.sleep(1.2)
    assert clock.phase == "focus", "a paused phase must not end"
    assert clock.message()["remaining_ms"] == paused["remaining_ms"]
    clock.resume()
    resumed = messages[-1]
    assert resumed["paused"] is False
    assert resumed["ends_at"] is not None
    assert abs(resumed["ends_at"] - resumed["now"] - paused["remaining_ms"]) <= 50
    await wait_messages(messages, 4)
    assert messages[3]["phase"] == "break"
    clock.close()


async def test_clock_skip_and_end() -> None:
    clock, messages = recording_clock(FAST)
    clock.start()
    clock.skip()
    assert messages[-1]["phase"] == "break"
    clock.pause()
    clock.skip()
    assert messages[-1]["phase"] == "focus"
    assert messages[-1]["round"] == 2
    assert messages[-1]["paused"] is False
    clock.end()
    assert messages[-1]["phase"] == "ended"
    assert messages[-1]["ends_at"] is None
    clock.start()
    assert messages[-1]["phase"] == "focus"
    assert messages[-1]["round"] == 1
    clock.close()


async def test_clock_rejects_invalid_actions() -> None:
    clock, messages = recording_clock(FAST)
    for action in (clock.pause, clock.resume, clock.skip, clock.end):
        with pytest.raises(ClockError):
            action()
    clock.start()
    with pytest.raises(ClockError):
        clock.start()
    with pytest.raises(ClockError):
        clock.resume()
    clock.pause()
    with pytest.raises(ClockError):
        clock.pause()
    assert [m["phase"] for m in messages] == ["focus", "focus"]
    clock.close()


async def test_clock_close_cancels_timer() -> None:
    clock, messages = recording_clock(fast_plan(0.05))
    clock.start()
    clock.close()
    await asyncio.sleep(0.15)
    assert len(messages) == 1


async def test_clock_survives_failing_listener() -> None:
    calls: list[str] = []

    def listener(message: dict[str, Any]) -> None:
        calls.append(message["phase"])
        raise RuntimeError("listener failed")

    clock = Clock(fast_plan(0.05), listener, "room")
    clock.start()
    await wait_messages(calls, 2)
    clock.close()
    assert calls[:2] == ["focus", "break"]


def test_next_phase_without_long_break() -> None:
    plan = Plan(focus=60, short_break=60, rounds=0, long_break=60)
    steps = [("idle", 0)]
    for _ in range(6):
        steps.append(next_phase(*steps[-1], plan))
    assert [phase for phase, _ in steps].count("long_break") == 0
    assert steps[-1] == ("break", 3)

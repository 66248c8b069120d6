"""The shared focus/break clock of a room, owned by the server.

A session runs focus, break, focus, break, ... and takes a long break in place
of the short one after every ``rounds`` focus rounds. The host starts, pauses,
resumes, skips and ends it. Every change produces one ``clock`` message
(docs/protocol.md) that the room sends to everyone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

PHASES = ("idle", "focus", "break", "long_break", "ended")
RUNNING_PHASES = ("focus", "break", "long_break")
BREAK_PHASES = ("break", "long_break")

# Each duration of a plan: digits with an optional unit, m (minutes, the
# default) or s (seconds).
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([ms]?)\s*")
# Phases shorter than a second exist only in tests.
MIN_PHASE_SECONDS = 0.01
MAX_PHASE_SECONDS = 24 * 3600
MAX_ROUNDS = 100


class PlanError(ValueError):
    """A plan text that cannot be read; the message names what is accepted."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """Phase lengths in seconds, and focus rounds before each long break."""

    focus: float = 50 * 60
    short_break: float = 10 * 60
    rounds: int = 4
    long_break: float = 30 * 60

    def __post_init__(self) -> None:
        for name in ("focus", "short_break", "long_break"):
            value = getattr(self, name)
            if not MIN_PHASE_SECONDS <= value <= MAX_PHASE_SECONDS:
                raise PlanError(
                    f"The {name.replace('_', ' ')} must last from "
                    f"{MIN_PHASE_SECONDS} s to {MAX_PHASE_SECONDS // 3600} h, "
                    f"got {value} s."
                )
        if not 0 <= self.rounds <= MAX_ROUNDS:
            raise PlanError(
                f"Rounds before a long break must be from 0 (no long break) to "
                f"{MAX_ROUNDS}, "
                f"got {self.rounds}."
            )

    @classmethod
    def parse(cls, text: str) -> Plan:
        """Read ``FOCUS/BREAK/ROUNDS/LONG_BREAK``, such as ``50/10/4/30``.

        Durations are minutes unless they end in ``s`` for seconds, so tests
        can write ``6s/4s/2/5s``.
        """
        parts = text.split("/")
        if len(parts) != 4:
            raise PlanError(
                "A session plan is FOCUS/BREAK/ROUNDS/LONG_BREAK in minutes, such "
                f"as 50/10/4/30 (add s for seconds, as in 30s), got {text!r}."
            )
        focus, short_break, long_break = (
            _parse_duration(parts[i], text) for i in (0, 1, 3)
        )
        rounds_text = parts[2].strip()
        if not rounds_text.isdigit():
            raise PlanError(
                f"The third part of a session plan, the rounds before a long "
                f"break, must be a whole number, got {text!r}."
            )
        return cls(focus, short_break, int(rounds_text), long_break)

    def __str__(self) -> str:
        # Plan.parse reads this back, which passes the plan to worker processes.
        return (
            f"{self.focus:.12g}s/{self.short_break:.12g}s/{self.rounds}/"
            f"{self.long_break:.12g}s"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "focus": self.focus,
            "break": self.short_break,
            "long_break": self.long_break,
            "rounds": self.rounds,
        }

    def length_of(self, phase: str) -> float:
        if phase == "focus":
            return self.focus
        if phase == "break":
            return self.short_break
        if phase == "long_break":
            return self.long_break
        raise ValueError(f"phase {phase!r} has no length")


def _parse_duration(part: str, text: str) -> float:
    match = _DURATION.fullmatch(part)
    if match is None:
        raise PlanError(
            f"Each duration of a session plan is a number of minutes, or of "
            f"seconds when it ends in s, got {part.strip()!r} in {text!r}."
        )
    value = float(match.group(1))
    return value if match.group(2) == "s" else value * 60


def next_phase(phase: str, round_: int, plan: Plan) -> tuple[str, int]:
    """Return the phase and round that follow ``phase`` in ``round_``."""
    if phase in ("idle", "ended"):
        return "focus", 1
    if phase == "focus":
        long = plan.rounds > 0 and round_ >= plan.rounds
        return ("long_break" if long else "break"), round_
    if phase == "break":
        return "focus", round_ + 1
    return "focus", 1


class ClockError(Exception):
    """A control action that the clock's current phase does not allow."""


def now_ms() -> int:
    return int(time.time() * 1000)


class Clock:
    """One room's session clock.

    Times in messages are server epoch milliseconds. The timer that ends each
    phase runs on the event loop; :meth:`close` cancels it. ``on_change`` is
    called with the clock message after every change, timer or action.
    """

    def __init__(
        self,
        plan: Plan,
        on_change: Callable[[dict[str, Any]], None],
        room_id: str = "",
    ) -> None:
        self.plan = plan
        self.room_id = room_id
        self.phase = "idle"
        self.round = 0
        self.started_at = now_ms()
        self.ends_at: int | None = None
        self.paused = False
        self.remaining_ms: int | None = None
        self._on_change = on_change
        self._timer: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        return self.phase in RUNNING_PHASES

    def message(self) -> dict[str, Any]:
        """Return the ``clock`` message of the current state."""
        now = now_ms()
        if self.paused:
            remaining = self.remaining_ms
        elif self.ends_at is not None:
            remaining = max(0, self.ends_at - now)
        else:
            remaining = None
        return {
            "type": "clock",
            "phase": self.phase,
            "round": self.round,
            "rounds": self.plan.rounds,
            "started_at": self.started_at,
            "ends_at": self.ends_at,
            "paused": self.paused,
            "remaining_ms": remaining,
            "plan": self.plan.describe(),
            "now": now,
        }

    def start(self) -> None:
        if self.running:
            raise ClockError("The session is already running.")
        self._enter("focus", 1)

    def pause(self) -> None:
        if not self.running:
            raise ClockError("The session is not running, so it cannot be paused.")
        if self.paused:
            raise ClockError("The session is already paused.")
        assert self.ends_at is not None
        self._cancel_timer()
        self.remaining_ms = max(0, self.ends_at - now_ms())
        self.ends_at = None
        self.paused = True
        self._changed("paused")

    def resume(self) -> None:
        if not self.paused:
            raise ClockError("The session is not paused.")
        assert self.remaining_ms is not None
        self.paused = False
        self._schedule(self.remaining_ms / 1000)
        self.remaining_ms = None
        self._changed("resumed")

    def skip(self) -> None:
        """End the current phase now and start the next one, unpaused."""
        if not self.running:
            raise ClockError("The session is not running, so there is nothing to skip.")
        phase, round_ = next_phase(self.phase, self.round, self.plan)
        self._enter(phase, round_)

    def end(self) -> None:
        if not self.running:
            raise ClockError("The session is not running, so it cannot be ended.")
        self._cancel_timer()
        self.phase = "ended"
        self.started_at = now_ms()
        self.ends_at = None
        self.paused = False
        self.remaining_ms = None
        self._changed("ended")

    def set_plan(self, plan: Plan) -> None:
        """Use ``plan`` from the next phase on; the current phase keeps its end."""
        self.plan = plan

    def close(self) -> None:
        """Stop the timer, as when the room closes; no message is sent."""
        self._cancel_timer()

    def _enter(self, phase: str, round_: int) -> None:
        self._cancel_timer()
        self.phase = phase
        self.round = round_
        self.started_at = now_ms()
        self.paused = False
        self.remaining_ms = None
        length = self.plan.length_of(phase)
        self.ends_at = self.started_at + round(length * 1000)
        self._schedule(length)
        self._changed(f"{phase} round {round_}")

    def _schedule(self, seconds: float) -> None:
        self._cancel_timer()
        if self.paused:
            return
        if self.ends_at is None:
            self.ends_at = now_ms() + round(seconds * 1000)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(seconds, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        phase, round_ = next_phase(self.phase, self.round, self.plan)
        self._enter(phase, round_)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _changed(self, change: str) -> None:
        logger.info("room %s clock: %s", self.room_id, change)
        message = self.message()
        try:
            self._on_change(message)
        except Exception:
            # A failing listener must not stop the clock's timer chain.
            logger.exception("room %s: clock listener failed", self.room_id)

"""Virtual coffee: small random groups of opted-in participants during breaks.

While a group exists, its members see and hear only each other, and the main
room (everyone not in a group) does not see or hear them. The room applies
that through :meth:`sfu.router.Router.set_groups`.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

MIN_GROUP = 2
MAX_GROUP = 4
# Pairs, with one group of three when the count is odd, make the most new
# acquaintances per break.
DEFAULT_GROUP_SIZE = 2

PROMPTS = (
    "What are you working on today, and what would make it a good day?",
    "What is one tool or habit that saves you time every week?",
    "What did you learn recently that surprised you?",
    "What is the hardest part of your current project?",
    "Where do you work best: at home, in a cafe or in an office?",
    "What is a small win you had this week?",
    "What are you reading, watching or listening to at the moment?",
    "What would you like to get better at this year?",
    "How do you take a real break during a long working day?",
    "What is the best advice you got about your kind of work?",
    "If you could swap jobs for a day, whose job would you try?",
    "What is something you are looking forward to?",
    "How did you get into the work you do now?",
    "What is one thing you would change about how your field works?",
    "Which distraction is hardest for you to resist, and how do you handle it?",
    "What does a perfect focus session look like for you?",
)


def split_groups(
    ids: Sequence[str],
    size: int = DEFAULT_GROUP_SIZE,
    rng: random.Random | None = None,
) -> list[list[str]]:
    """Shuffle ``ids`` into groups of MIN_GROUP to MAX_GROUP members.

    Groups come as close to ``size`` as the count allows and differ by at
    most one member. Fewer than MIN_GROUP ids give no group, so nobody is
    ever alone in one.
    """
    if not MIN_GROUP <= size <= MAX_GROUP:
        raise ValueError(f"group size must be from {MIN_GROUP} to {MAX_GROUP}")
    members = list(ids)
    if len(members) < MIN_GROUP:
        return []
    (rng or random.SystemRandom()).shuffle(members)
    count = max(len(members) // size, math.ceil(len(members) / MAX_GROUP), 1)
    groups: list[list[str]] = [[] for _ in range(count)]
    for index, member in enumerate(members):
        groups[index % count].append(member)
    return groups


@dataclass
class Group:
    id: str
    members: list[str]
    prompt: str

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "members": list(self.members),
            "prompt": self.prompt,
        }


class CoffeeBreaks:
    """Opt-ins of a room and the coffee groups of the current break."""

    def __init__(self, room_id: str = "", size: int = DEFAULT_GROUP_SIZE) -> None:
        self.room_id = room_id
        self.size = size
        self.opted_in: set[str] = set()
        self.groups: dict[str, Group] = {}
        self._group_of: dict[str, str] = {}

    def group_of(self, participant_id: str) -> str | None:
        """Return the id of the participant's group, or None for the main room."""
        return self._group_of.get(participant_id)

    def assignment(self) -> dict[str, str]:
        """Return the group id of every participant in a group."""
        return dict(self._group_of)

    def set_opt_in(self, participant_id: str, join: bool) -> bool:
        """Record a participant's choice; return whether groups changed.

        Opting out leaves the current group at once. A group left with one
        member is dissolved, so nobody stays alone in one.
        """
        if join:
            self.opted_in.add(participant_id)
            return False
        self.opted_in.discard(participant_id)
        return self._leave(participant_id)

    def remove(self, participant_id: str) -> bool:
        """Forget a participant that left the room; return whether groups changed."""
        self.opted_in.discard(participant_id)
        return self._leave(participant_id)

    def form(self, present: Iterable[str]) -> list[Group]:
        """Split the opted-in participants among ``present`` into new groups."""
        self.dissolve()
        candidates = sorted(p for p in present if p in self.opted_in)
        prompts = list(PROMPTS)
        random.SystemRandom().shuffle(prompts)
        for index, members in enumerate(split_groups(candidates, self.size)):
            group = Group(
                "g" + secrets.token_hex(4),
                members,
                prompts[index % len(prompts)],
            )
            self.groups[group.id] = group
            for member in members:
                self._group_of[member] = group.id
        logger.info(
            "room %s: coffee groups %s from %d opted in",
            self.room_id,
            [len(g.members) for g in self.groups.values()],
            len(candidates),
        )
        return list(self.groups.values())

    def dissolve(self) -> bool:
        """End every group; return whether there were any."""
        had_groups = bool(self.groups)
        self.groups.clear()
        self._group_of.clear()
        return had_groups

    def message_for(self, participant_id: str) -> dict[str, Any]:
        """Return the ``coffee`` message that ``participant_id`` should see."""
        group_id = self._group_of.get(participant_id)
        group = self.groups[group_id].describe() if group_id else None
        return {
            "type": "coffee",
            "opted_in": sorted(self.opted_in),
            "in_groups": sorted(self._group_of),
            "group": group,
        }

    def _leave(self, participant_id: str) -> bool:
        group_id = self._group_of.pop(participant_id, None)
        if group_id is None:
            return False
        group = self.groups[group_id]
        group.members.remove(participant_id)
        if len(group.members) < MIN_GROUP:
            for member in group.members:
                self._group_of.pop(member, None)
            del self.groups[group_id]
        return True

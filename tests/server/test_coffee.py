"""Coffee groups: sizes, opt-in and leaving."""

from __future__ import annotations

import random

import pytest

from server.coffee import MAX_GROUP, MIN_GROUP, PROMPTS, CoffeeBreaks, split_groups


@pytest.mark.parametrize("size", [2, 3, 4])
@pytest.mark.parametrize("count", range(2, 14))
def test_split_groups_sizes(size: int, count: int) -> None:
    ids = [f"p{i}" for i in range(count)]
    for seed in range(20):
        groups = split_groups(ids, size, random.Random(seed))
        sizes = [len(group) for group in groups]
        assert all(MIN_GROUP <= s <= MAX_GROUP for s in sizes), sizes
        assert max(sizes) - min(sizes) <= 1, sizes
        assert sorted(m for group in groups for m in group) == sorted(ids)


def test_split_groups_four_makes_pairs() -> None:
    groups = split_groups(["a", "b", "c", "d"])
    assert sorted(len(group) for group in groups) == [2, 2]


@pytest.mark.parametrize("count", [0, 1])
def test_split_groups_nobody_alone(count: int) -> None:
    assert split_groups([f"p{i}" for i in range(count)]) == []


def test_split_groups_is_random() -> None:
    ids = [f"p{i}" for i in range(8)]
    seen = {
        tuple(sorted(tuple(sorted(g)) for g in split_groups(ids, 2, random.Random(s))))
        for s in range(10)
    }
    assert len(seen) > 1


def test_split_groups_rejects_size() -> None:
    with pytest.raises(ValueError):
        split_groups(["a", "b"], 5)


def test_form_only_opted_in_present() -> None:
    breaks = CoffeeBreaks()
    for pid in ("a", "b", "c", "gone"):
        breaks.set_opt_in(pid, True)
    groups = breaks.form(["a", "b", "c", "x"])
    assert len(groups) == 1
    assert sorted(groups[0].members) == ["a", "b", "c"]
    assert groups[0].prompt in PROMPTS
    assert breaks.group_of("a") == groups[0].id
    assert breaks.group_of("x") is None


def test_form_single_opted_in_stays() -> None:
    breaks = CoffeeBreaks()
    breaks.set_opt_in("a", True)
    assert breaks.form(["a", "b"]) == []
    assert breaks.group_of("a") is None


def test_leaving_pair_dissolves_group() -> None:
    breaks = CoffeeBreaks()
    for pid in ("a", "b"):
        breaks.set_opt_in(pid, True)
    breaks.form(["a", "b"])
    assert breaks.remove("a") is True
    assert breaks.group_of("b") is None
    assert breaks.groups == {}


def test_opt_out_leaves_trio() -> None:
    breaks = CoffeeBreaks()
    for pid in ("a", "b", "c"):
        breaks.set_opt_in(pid, True)
    (group,) = breaks.form(["a", "b", "c"])
    assert breaks.set_opt_in("a", False) is True
    assert breaks.group_of("a") is None
    assert breaks.group_of("b") == group.id
    assert sorted(group.members) == ["b", "c"]


def test_message_for_member_and_main_room() -> None:
    breaks = CoffeeBreaks()
    for pid in ("a", "b"):
        breaks.set_opt_in(pid, True)
    (group,) = breaks.form(["a", "b", "c"])
    member = breaks.message_for("a")
    assert member["type"] == "coffee"
    assert member["group"]["id"] == group.id
    assert sorted(member["group"]["members"]) == ["a", "b"]
    assert member["opted_in"] == ["a", "b"]
    main = breaks.message_for("c")
    assert main["group"] is None
    assert main["in_groups"] == ["a", "b"]
    assert breaks.dissolve() is True
    assert breaks.message_for("a")["group"] is None

"""The retention planner over simulated years: nothing leaves early, nothing stays late, holds win."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pytest

from retention.layout import segment_days, segment_start
from retention.policy import (
    Compact,
    Delete,
    Inventory,
    Keep,
    PartitionState,
    Policy,
    Shred,
    has_expired,
    is_due,
    month_last_day,
    plan_retention,
)
from retention.tiers import ARCHIVE, ONLINE, month_of

POLICY = Policy(online_days=90, archive_days=365)
START = dt.date(2020, 1, 1)
DATASETS = ("events", "dead_letters")


def test_segments_are_iso_weeks_cut_at_month_ends():
    assert segment_start(dt.date(2021, 3, 3)) == dt.date(2021, 3, 1)  # Wednesday; Monday is in February
    assert segment_days(dt.date(2021, 3, 1)) == tuple(dt.date(2021, 3, d) for d in range(1, 8))
    assert segment_days(dt.date(2021, 3, 29)) == (dt.date(2021, 3, 29), dt.date(2021, 3, 30), dt.date(2021, 3, 31))
    assert segment_days(dt.date(2021, 4, 1)) == tuple(dt.date(2021, 4, d) for d in range(1, 5))  # Thu..Sun
    every_day = [START + dt.timedelta(days=n) for n in range(800)]
    for day in every_day:
        days = segment_days(segment_start(day))
        assert day in days and len({month_of(d) for d in days}) == 1 and 1 <= len(days) <= 7
    with pytest.raises(ValueError):
        segment_days(dt.date(2021, 3, 3))


class Simulation:
    """The archive as the planner sees it, changed by applying each plan the way ``retention apply`` does."""

    def __init__(self, holds: dict[dt.date, tuple[str, ...]] | None = None):
        self.online: set[tuple[str, dt.date]] = set()
        self.archived: dict[tuple[str, dt.date], set[dt.date]] = {}  # segment -> days it holds
        self.keys: set[str] = set()
        self.destroyed: set[str] = set()
        self.holds = holds or {}
        self.moved_at: dict[tuple[str, dt.date], dt.date] = {}
        self.gone_at: dict[tuple[str, dt.date], dt.date] = {}
        self.shredded_at: dict[str, dt.date] = {}

    def ingest_until(self, now: dt.date) -> None:
        """Each day's logs arrive the day after (a batch run each night)."""
        day = max([d for _, d in self.online] + [max(s) for s in self.archived.values()] + [START - dt.timedelta(1)])
        day += dt.timedelta(days=1)
        while day < now:
            for dataset in DATASETS:
                if (dataset, day) not in self.gone_at:
                    self.online.add((dataset, day))
            if month_of(day) not in self.destroyed:
                self.keys.add(month_of(day))
            day += dt.timedelta(days=1)

    def inventory(self) -> Inventory:
        parts = [PartitionState(ONLINE, ds, day, files=1, rows=10) for ds, day in self.online]
        parts += [
            PartitionState(ARCHIVE, ds, start, files=1, rows=10 * len(d)) for (ds, start), d in self.archived.items()
        ]
        return Inventory(tuple(parts), frozenset(self.keys), frozenset(self.destroyed))

    def run(self, now: dt.date) -> list:
        self.ingest_until(now)
        plan = plan_retention(self.inventory(), now, POLICY, self.holds)
        seen_delete_months = set()
        for step in plan.actions:
            if isinstance(step, Shred):
                assert step.month not in seen_delete_months, "keys are destroyed before files are deleted"
                assert has_expired(step.month, now, POLICY)
                self.keys.discard(step.month)
                self.destroyed.add(step.month)
                self.shredded_at[step.month] = now
            elif isinstance(step, Delete):
                p = step.partition
                seen_delete_months.add(p.month)
                assert has_expired(p.month, now, POLICY), f"{p.label()} deleted at {now}, before its minimum"
                if p.tier == ONLINE:
                    self.online.remove((p.dataset, p.day))
                    self.gone_at[(p.dataset, p.day)] = now
                else:
                    for day in self.archived.pop((p.dataset, p.day)):
                        self.gone_at[(p.dataset, day)] = now
            elif isinstance(step, Compact):
                segment = self.archived.setdefault((step.dataset, step.segment), set())
                for p in step.online:
                    assert is_due(p.day, now, POLICY), f"{p.label()} moved at {now}, before online_days"
                    assert not self.holds.get(p.day), f"held {p.label()} moved"
                    self.online.remove((p.dataset, p.day))
                    segment.add(p.day)
                    self.moved_at[(p.dataset, p.day)] = now
        again = plan_retention(self.inventory(), now, POLICY, self.holds)
        assert again.actions == (), f"a second run at {now} still has work: {again.describe()}"
        return plan.steps

    def check_nothing_late(self, now: dt.date, previous: dt.date) -> None:
        """After a run at ``now``: everything that was due or expired at the previous run has been dealt with."""
        for dataset, day in self.online:
            held = bool(self.holds.get(day)) or any(self.holds.get(d) for d in segment_days(segment_start(day)))
            if not held and month_of(day) not in self.destroyed:
                assert not is_due(segment_days(segment_start(day))[-1], now, POLICY), f"{dataset} {day} still online"
        for dataset, start in self.archived:
            if not any(self.holds.get(d) for d in segment_days(start)):
                assert not has_expired(month_of(start), now, POLICY), f"{dataset} segment {start} kept at {now}"
        for month in self.keys:
            held = any(d for d in self.holds if month_of(d) == month)
            assert held or not has_expired(month, now, POLICY), f"keys of {month} alive at {now}"


def simulate(days: list[dt.date], holds=None) -> Simulation:
    sim = Simulation(holds)
    previous = days[0]
    for now in days:
        sim.run(now)
        sim.check_nothing_late(now, previous)
        previous = now
    return sim


def test_two_years_day_by_day():
    days = [START + dt.timedelta(days=n) for n in range(1, 2 * 366 + 120)]
    sim = simulate(days)
    for (dataset, day), moved in sim.moved_at.items():
        age = (moved - day).days
        assert POLICY.online_days < age <= POLICY.online_days + 7, (dataset, day, moved)
    for (dataset, day), gone in sim.gone_at.items():
        age = (gone - day).days
        assert POLICY.archive_days < age <= POLICY.archive_days + 31, (dataset, day, gone)
        assert gone == sim.shredded_at[month_of(day)]
        assert (gone - month_last_day(month_of(day))).days == POLICY.archive_days + 1  # the first run allowed
    assert len(sim.shredded_at) >= 12 and "2020-01" in sim.shredded_at
    # 2020-01-01 is a Wednesday: its segment ends on Sunday the 5th, which is due 91 days later
    assert sim.moved_at[("events", dt.date(2020, 1, 1))] == dt.date(2020, 1, 5) + dt.timedelta(days=91)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_years_in_random_jumps(seed):
    rng = random.Random(seed)
    days, now = [], START + dt.timedelta(days=1)
    while now < START + dt.timedelta(days=2 * 366 + 120):
        days.append(now)
        now += dt.timedelta(days=rng.choice([1, 1, 2, 7, 13, 30, 45, 100]))
    sim = simulate(days)
    for (_dataset, day), gone in sim.gone_at.items():
        assert (gone - day).days > POLICY.archive_days
        earlier_runs = [d for d in days if d < gone]
        assert not earlier_runs or not has_expired(month_of(day), earlier_runs[-1], POLICY)  # gone on the first run


def test_holds_keep_days_segments_and_keys_until_released():
    held_day = dt.date(2020, 2, 12)  # a Wednesday: its segment is 2020-02-10..16
    holds = {held_day: ("H1",), dt.date(2020, 2, 13): ("H1", "H2")}
    sim = Simulation(holds)
    now = START + dt.timedelta(days=1)
    while now < dt.date(2020, 12, 1):
        sim.run(now)
        now += dt.timedelta(days=1)
    # the held days' whole segment stays online (it cannot be compacted without them)
    assert all(("events", dt.date(2020, 2, d)) in sim.online for d in range(10, 17))
    assert ("events", dt.date(2020, 2, 9)) not in sim.online
    while now < dt.date(2021, 6, 1):
        steps = sim.run(now)
        now += dt.timedelta(days=1)
    # once February expires, only the held days themselves are kept
    assert {d for ds, d in sim.online if ds == "events" and d.year == 2020} == {held_day, dt.date(2020, 2, 13)}
    assert "2020-02" in sim.keys
    assert sim.shredded_at["2020-01"] and "2020-02" not in sim.shredded_at
    assert ("events", dt.date(2020, 2, 3)) in sim.gone_at  # other days of the held month still go
    keeps = [s.describe() for s in steps if isinstance(s, Keep)]
    assert "keep    keys of 2020-02: held by H1, H2" in keeps
    assert "keep    online events 2020-02-13: held by H1, H2" in keeps

    sim.holds = {}  # released
    steps = sim.run(now)
    assert ("events", held_day) not in sim.online and "2020-02" in sim.destroyed
    assert any(isinstance(s, Shred) and s.month == "2020-02" for s in steps)


def test_a_hold_on_an_archived_day_keeps_its_segment_past_expiry():
    holds = {dt.date(2020, 3, 4): ("H7",)}
    sim = Simulation()
    now = START + dt.timedelta(days=1)
    while now < dt.date(2020, 9, 1):  # March is archived by now
        sim.run(now)
        now += dt.timedelta(days=1)
    assert ("events", dt.date(2020, 3, 2)) in sim.archived
    sim.holds = holds
    while now < dt.date(2021, 6, 1):
        sim.run(now)
        now += dt.timedelta(days=1)
    assert ("events", dt.date(2020, 3, 2)) in sim.archived and ("events", dt.date(2020, 3, 9)) not in sim.archived
    assert "2020-03" in sim.keys


def test_late_data_for_an_archived_segment_is_merged_into_it():
    state = Inventory(
        (
            PartitionState(ARCHIVE, "events", dt.date(2020, 1, 6), files=1, rows=70),
            PartitionState(ONLINE, "events", dt.date(2020, 1, 8), files=1, rows=5),
        ),
        frozenset({"2020-01"}),
    )
    [step] = plan_retention(state, dt.date(2020, 6, 1), POLICY).steps
    assert (
        isinstance(step, Compact) and step.archived.rows == 70 and [p.day for p in step.online] == [dt.date(2020, 1, 8)]
    )
    assert "1 online files, 5 rows + 70 rows already archived" in step.describe()


def test_nothing_is_touched_before_its_minimum_whatever_the_archive_holds():
    rng = random.Random(7)
    for _ in range(300):
        now = START + dt.timedelta(days=rng.randrange(0, 900))
        parts = []
        for _ in range(20):
            day = now - dt.timedelta(days=rng.randrange(-10, 600))
            tier = rng.choice([ONLINE, ARCHIVE])
            parts.append(PartitionState(tier, "events", day if tier == ONLINE else segment_start(day), 1, 1))
        months = frozenset(p.month for p in parts)
        plan = plan_retention(Inventory(tuple(parts), months), now, POLICY)
        for step in plan.actions:
            if isinstance(step, Compact):
                assert all((now - p.day).days > POLICY.online_days for p in step.online)
            else:
                month = step.month if isinstance(step, Shred) else step.partition.month
                assert (now - month_last_day(month)).days > POLICY.archive_days


def test_destroyed_months_are_not_compacted_but_still_deleted_on_expiry():
    part = PartitionState(ONLINE, "events", dt.date(2020, 1, 8), files=1, rows=5)
    state = Inventory((part,), frozenset(), frozenset({"2020-01"}))
    [keep] = plan_retention(state, dt.date(2020, 6, 1), POLICY).steps
    assert isinstance(keep, Keep) and "keys were destroyed" in keep.why
    assert plan_retention(state, dt.date(2021, 2, 2), POLICY).actions == (Delete(part),)


def test_policy_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        POLICY.online_days = 1

"""The stateful half of detection: hits folded per rule and key in event-time order.

``Detector`` buffers ``Hits`` as they arrive (in any order) and, when told
that event time has reached ``T`` (a watermark in Beam, the end of the input
in a replay), folds every buffered row with ``ts <= T`` into its key's state in
``(ts, file, offset)`` order.  The fold is the same whether the rows come in
one flush or in many, so a replay and the live stream produce the same alerts
with the same ids and timestamps.

Per key, a rule keeps either a leaky bucket (``level`` drains one event per
``leak`` seconds; more than ``capacity`` events overflow) or a sliding window
(``count`` events, or distinct values, within ``period``).  A signature is a
window of one.  After an alert the key cools down: its events are absorbed
until ``cooldown`` has passed, so one attacker makes one alert per period.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import heapq
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from alerts.alert import build_alert
from alerts.observe import Hits
from alerts.rules import Bucket, Rule, RuleSet

US = 1_000_000
#: Distinct values an alert lists as a sample.
SAMPLE_SIZE = 10


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclasses.dataclass
class KeyState:
    """What one rule remembers about one key between rows."""

    fields: dict[str, str | None]
    cooldown_until: int = -(2**62)
    last_ts: int = -(2**62)
    level: float = 0.0  # leaky bucket
    recent: collections.deque = dataclasses.field(default_factory=collections.deque)  # window: (ts, value)
    seen: dict = dataclasses.field(default_factory=dict)  # distinct value -> last ts in the episode
    episode_start: int | None = None
    episode_count: int = 0
    evidence: list = dataclasses.field(default_factory=list)  # (ts, path, offset, line)

    def reset(self) -> None:
        self.level = 0.0
        self.recent.clear()
        self.seen.clear()
        self.episode_start = None
        self.episode_count = 0
        self.evidence = []


class RuleFold:
    """The per-row decision of one rule; stateless itself, it updates a ``KeyState``."""

    def __init__(self, rule: Rule):
        self.rule = rule
        self.cooldown_us = int(rule.cooldown * US)
        threshold = rule.threshold
        self.is_bucket = isinstance(threshold, Bucket)
        if self.is_bucket:
            self.capacity = threshold.capacity
            self.leak_us = threshold.leak * US
            self.horizon_us = int(threshold.capacity * threshold.leak * US) + 1
        else:
            self.count = threshold.count
            self.period_us = int(threshold.period * US)
            self.horizon_us = self.period_us
        self.horizon_us = max(self.horizon_us, self.cooldown_us)

    def add(self, state: KeyState, ts: int, path: str, offset: int, value, line: str | None) -> tuple | None:
        """Fold one row; returns ``(first_seen, last_seen, count, sample, evidence)`` when the rule fires."""
        if ts < state.cooldown_until:
            state.last_ts = ts
            return None
        distinct = self.rule.distinct is not None
        if self.is_bucket:
            if state.episode_start is not None:
                state.level = max(0.0, state.level - (ts - state.last_ts) / self.leak_us)
                if state.level <= 0.0:
                    state.reset()
            state.last_ts = ts
            if distinct and value in state.seen:
                return None
            state.level += 1.0
            fire = state.level > self.capacity
        else:
            state.last_ts = ts
            start = ts - self.period_us
            recent = state.recent
            while recent and recent[0][0] <= start:
                _, old = recent.popleft()
                if distinct and state.seen.get(old, ts) <= start:
                    del state.seen[old]
            if not recent:
                state.reset()
            if distinct and value in state.seen:
                state.seen[value] = ts
                recent.append((ts, value))
                return None
            recent.append((ts, value))
            fire = (len(state.seen) + 1 if distinct else len(recent)) >= self.count
        if state.episode_start is None:
            state.episode_start = ts
        if distinct:
            state.seen[value] = ts
        state.episode_count += 1
        if len(state.evidence) < self.rule.evidence:
            state.evidence.append((ts, path, offset, line))
        if not fire:
            return None
        first_seen = state.episode_start
        sample = [v for v in state.seen if v is not None][:SAMPLE_SIZE] if distinct else []
        result = (first_seen, ts, state.episode_count, sample, list(state.evidence))
        state.reset()
        state.cooldown_until = ts + self.cooldown_us
        return result


def _merge_rows(pieces: list[Hits]) -> Iterable[tuple[int, str, int, Any, str | None]]:
    """Rows of several hit groups of one key, in ``(ts, path, offset)`` order."""

    def rows(h: Hits):
        values = h.values if h.values is not None else [None] * len(h)
        for ts, offset, value in zip(h.ts.tolist(), h.offsets.tolist(), values):
            yield ts, h.path, offset, value, h.lines.get(offset)

    if len(pieces) == 1:
        return rows(pieces[0])
    return heapq.merge(*(rows(p) for p in pieces), key=lambda r: (r[0], r[1], r[2]))


class Detector:
    """Buffered hits plus per-(rule, key) state; ``flush(T)`` folds everything up to event time ``T``.

    Plain data, so the Beam shell can keep it in state (pickled) and a replay
    can use it directly.
    """

    def __init__(self, rules: RuleSet, clock: Callable[[], dt.datetime] = utc_now):
        self._folds = {r.id: RuleFold(r) for r in rules.rules}
        self._clock = clock
        self.pending: list[Hits] = []
        self.states: dict[tuple[str, str], KeyState] = {}
        self.folded_up_to = -(2**62)
        self.late_rows = 0

    def add(self, hits: Iterable[Hits]) -> None:
        for h in hits:
            if h.rule_id not in self._folds:
                continue  # a rule removed since the hits were produced
            if len(h) and int(h.ts[0]) <= self.folded_up_to:
                self.late_rows += int(np.count_nonzero(h.ts <= self.folded_up_to))
            self.pending.append(h)

    @property
    def pending_max_us(self) -> int | None:
        return max((int(h.ts[-1]) for h in self.pending), default=None)

    def flush(self, upto_us: int | None = None) -> list[dict[str, Any]]:
        """Fold buffered rows with ``ts <= upto_us`` (all of them when None); return the alerts they raise."""
        ready: dict[tuple[str, str], list[Hits]] = collections.defaultdict(list)
        keep: list[Hits] = []
        for h in self.pending:
            now, later = (h, None) if upto_us is None else h.split(upto_us)
            if now is not None:
                ready[(h.rule_id, h.key)].append(now)
            if later is not None:
                keep.append(later)
        self.pending = keep
        alerts = []
        for (rule_id, key), pieces in sorted(ready.items()):
            fold = self._folds[rule_id]
            state = self.states.get((rule_id, key))
            if state is None:
                state = self.states[(rule_id, key)] = KeyState(fields=dict(pieces[0].fields))
            for ts, path, offset, value, line in _merge_rows(pieces):
                fired = fold.add(state, ts, path, offset, value, line)
                if fired is not None:
                    first, last, count, sample, evidence = fired
                    alerts.append(
                        build_alert(fold.rule, key, state.fields, first, last, count, sample, evidence, self._clock())
                    )
        if ready:
            latest = max(int(p.ts[-1]) for pieces in ready.values() for p in pieces)
            self.folded_up_to = max(self.folded_up_to, latest if upto_us is None else upto_us)
            self._expire()
        return alerts

    def _expire(self) -> None:
        """Forget keys idle for longer than anything they remember can matter (window, bucket, cool-down)."""
        now = self.folded_up_to
        stale = [
            k
            for k, s in self.states.items()
            if now - s.last_ts > self._folds[k[0]].horizon_us and now >= s.cooldown_until
        ]
        for k in stale:
            del self.states[k]


def replay(rules: RuleSet, hits: Iterable[Hits], clock: Callable[[], dt.datetime] = utc_now) -> list[dict[str, Any]]:
    """All alerts of a finished input: buffer everything, fold once."""
    detector = Detector(rules, clock)
    detector.add(hits)
    return detector.flush(None)

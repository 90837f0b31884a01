"""Ordered sequences: a key's rows, in event-time order, walked through a rule's steps.

A sequence rule (``kind: sequence``) alerts when one key does step 1, then step 2 within ``within`` of it, and so
on (a form fetched, then posted within 3 s).  Each row carries the steps it matches (bits) and, with ``same``,
the value the steps must share (the form's path).  Partial sequences live in the key's state between flushes, so
the answer depends only on the rows' order, never on where a flush or a watermark cut them: a replay and a live
stream raise the same alerts.  A row advances the oldest partial sequence waiting for one of its steps; a row
matching the first step also starts a new one.  A completed sequence is counted; ``count`` of them within
``period`` alert, then the key cools down.
"""

from __future__ import annotations

import collections
import dataclasses

US = 1_000_000
#: Partial sequences kept per key: a bot opening forms it never posts must not grow state without bound.
MAX_PARTIALS = 64


@dataclasses.dataclass(slots=True)
class Partial:
    """A sequence under way: the next step it waits for, when its last step came, and its rows as evidence."""

    next_step: int
    started: int
    last: int
    shared: object
    evidence: list


@dataclasses.dataclass(slots=True)
class SequenceState:
    """What a sequence rule remembers about one key: partial sequences and recent completions."""

    partials: list = dataclasses.field(default_factory=list)
    completed: collections.deque = dataclasses.field(default_factory=collections.deque)  # (done ts, started ts)
    evidence: list = dataclasses.field(default_factory=list)


class SequenceMatcher:
    """One sequence rule's steps and thresholds, in microseconds."""

    def __init__(self, rule):
        self.rule = rule
        self.within_us = [int(step.within * US) for step in rule.steps]
        self.length = len(rule.steps)
        self.count = rule.threshold.count
        self.period_us = int(rule.threshold.period * US)
        #: How long an idle key's partial sequences and completions still matter.
        self.horizon_us = sum(self.within_us) + (self.period_us if self.count > 1 else 0) + 1
        #: Rows a key with no history needs before it can fire (rows may serve two sequences at once).
        self.min_rows = self.length + self.count - 1

    def fold(self, state, rows) -> list[tuple]:
        """Walk ``rows`` (one key's, in fold order) through the steps; return what fired, like ``RuleFold.fold``.

        ``state`` is the key's ``KeyState``; its ``sequence`` slot holds the partial sequences."""
        memory: SequenceState = state.sequence if state.sequence is not None else SequenceState()
        state.sequence = memory
        fired = []
        ts_all = rows.ts.tolist()
        keep_evidence = self.rule.evidence
        for i, ts in enumerate(ts_all):
            state.last_ts = ts
            if ts < state.cooldown_until:
                continue
            bits, shared = rows.values[i]
            memory.partials = [p for p in memory.partials if ts - p.last <= self.within_us[p.next_step]]
            done = None
            for partial in memory.partials:
                if bits >> partial.next_step & 1 and (self.rule.same is None or partial.shared == shared):
                    partial.next_step += 1
                    partial.last = ts
                    if len(partial.evidence) < keep_evidence:
                        partial.evidence.append(rows.evidence(i))
                    if partial.next_step == self.length:
                        done = partial
                    break
            if done is not None:
                memory.partials.remove(done)
                memory.completed.append((ts, done.started))
                room = keep_evidence - len(memory.evidence)
                memory.evidence.extend(done.evidence[: max(room, 0)])
                while memory.completed and memory.completed[0][0] <= ts - self.period_us and self.count > 1:
                    memory.completed.popleft()
                if len(memory.completed) >= self.count:
                    first = min(started for _, started in memory.completed)
                    fired.append((first, ts, len(memory.completed), [], list(memory.evidence)))
                    state.sequence = memory = SequenceState()
                    state.cooldown_until = ts + int(self.rule.cooldown * US)
                    continue
            if bits & 1:
                memory.partials.append(Partial(1, ts, ts, shared, [rows.evidence(i)]))
                if len(memory.partials) > MAX_PARTIALS:
                    memory.partials.pop(0)
        return fired

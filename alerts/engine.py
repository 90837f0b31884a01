"""The stateful half of detection: rule hits folded per key in event-time order.

``Detector`` buffers ``Hits`` as they arrive (in any order) and, when told
that event time has reached ``T`` (a watermark in Beam, the end of the input
in a replay), folds every buffered row with ``ts <= T`` into its key's state in
``(ts, file, offset)`` order.  The fold gives the same result whether the rows
come in one flush or in many, so a replay and the live stream produce the same
alerts with the same ids and timestamps.

What an alert says, per kind of rule (rows absorbed by a cool-down never count):

- A sliding **window** (``count`` rows, or ``count`` distinct values, within
  ``period`` seconds) is, at each row, the key's rows in ``(ts - period, ts]``.
  It fires at the first row where it holds ``count`` of them; ``first_seen`` is
  the oldest row in the window then, ``last_seen`` the row that filled it,
  ``count`` the rows (or, with ``distinct``, the distinct values) in it, and the
  evidence its first rows.  A signature is a window of one.
- A leaky **bucket** fills by one per row (per new distinct value) and drains
  one per ``leak`` seconds; it fires when the level passes ``capacity``.  Its
  episode starts at the first row into an empty bucket: ``first_seen`` is that
  row, ``count`` the rows of the episode.

After an alert the key cools down: its rows are absorbed until ``cooldown`` has
passed, so one attacker makes one alert per period.

Four folds, one meaning (``tests/alerts/test_fold_equivalence.py`` checks the
first three): signatures jump from cool-down to cool-down with ``searchsorted``;
plain sliding counts (request floods) are vectorised over all keys at once;
distinct-value and bucket rules, whose filters are narrow, walk their rows in
Python, and so do ordered sequences (``alerts.sequence``).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alerts.alert import build_alert
from alerts.health_fold import HealthMonitor
from alerts.observe import Hits
from alerts.rules import Bucket, Rule, RuleSet
from alerts.sequence import SequenceMatcher, SequenceState

US = 1_000_000
NEVER = -(2**62)
#: Distinct values an alert lists as a sample.
SAMPLE_SIZE = 10


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclasses.dataclass(slots=True)
class KeyState:
    """What one rule remembers about one key between flushes."""

    fields: dict[str, str | None]
    cooldown_until: int = NEVER
    last_ts: int = NEVER
    level: float = 0.0  # leaky bucket
    recent: collections.deque = dataclasses.field(default_factory=collections.deque)  # window: (ts, value, evidence)
    seen: dict = dataclasses.field(default_factory=dict)  # distinct value -> last ts, this episode
    episode_start: int | None = None
    episode_count: int = 0
    evidence: list = dataclasses.field(default_factory=list)  # (ts, path, offset, line)
    sequence: SequenceState | None = None  # sequence rules: partial sequences and completions

    def reset(self) -> None:
        self.level = 0.0
        self.recent.clear()
        self.seen.clear()
        self.episode_start = None
        self.episode_count = 0
        self.evidence = []
        self.sequence = None


@dataclasses.dataclass
class Rows:
    """One key's rows for one flush, in fold order."""

    ts: np.ndarray
    offsets: np.ndarray
    paths: list[str]
    values: list | None
    lines: dict[tuple[str, int], str]

    def evidence(self, i: int) -> tuple[int, str, int, str | None]:
        path, offset = self.paths[i if len(self.paths) > 1 else 0], int(self.offsets[i])
        return int(self.ts[i]), path, offset, self.lines.get((path, offset))


Fired = tuple[int, int, int, list, list]  # first_seen, last_seen, count, distinct sample, evidence


class RuleFold:
    """How one rule turns a key's ordered rows into alerts; it updates a ``KeyState``."""

    def __init__(self, rule: Rule):
        self.rule = rule
        self.cooldown_us = int(rule.cooldown * US)
        self.distinct = rule.distinct is not None
        threshold = rule.threshold
        self.is_bucket = isinstance(threshold, Bucket)
        if self.is_bucket:
            self.capacity = threshold.capacity
            self.leak_us = threshold.leak * US
            horizon = int(threshold.capacity * threshold.leak * US) + 1
        else:
            self.count = threshold.count
            self.period_us = int(threshold.period * US)
            horizon = self.period_us
        #: How long an idle key's state still matters (its cool-down is checked separately).
        self.horizon_us = horizon
        self.is_signature = not self.is_bucket and self.count == 1 and not rule.is_sequence and not rule.is_health
        self.is_plain_window = rule.counts_plainly
        #: Rows a key with no history needs before it can fire: a bucket's level and a window's count
        #: grow by at most one per row.
        self.min_rows = self.capacity + 1 if self.is_bucket else self.count
        self.sequence = SequenceMatcher(rule) if rule.is_sequence else None
        if self.sequence is not None:
            self.horizon_us, self.min_rows = self.sequence.horizon_us, self.sequence.min_rows

    # ------------------------------------------------------------ folds

    def fold(self, state: KeyState, rows: Rows) -> list[Fired]:
        if self.sequence is not None:
            return self.sequence.fold(state, rows)
        if self.is_signature:
            return self._fold_signature(state, rows)
        return self._fold_rows(state, rows, 0, len(rows.ts))

    def _fire(self, state: KeyState, ts: int) -> Fired:
        sample = [v for v in state.seen if v is not None][:SAMPLE_SIZE] if self.distinct else []
        if self.is_bucket:
            fired = (state.episode_start, ts, state.episode_count, sample, list(state.evidence))
        else:  # the window as it is now
            count = len(state.seen) if self.distinct else len(state.recent)
            evidence = [e for _, _, e in itertools.islice(state.recent, self.rule.evidence)]
            fired = (state.recent[0][0], ts, count, sample, evidence)
        state.reset()
        state.cooldown_until = ts + self.cooldown_us
        return fired

    def _fold_signature(self, state: KeyState, rows: Rows) -> list[Fired]:
        fired = []
        ts = rows.ts
        i = int(np.searchsorted(ts, state.cooldown_until, side="left"))
        while i < len(ts):
            state.recent.append((int(ts[i]), None, rows.evidence(i)))
            fired.append(self._fire(state, int(ts[i])))
            i = max(i + 1, int(np.searchsorted(ts, state.cooldown_until, side="left")))  # a zero cool-down too
        state.last_ts = int(ts[-1])
        return fired

    def _fold_rows(self, state: KeyState, rows: Rows, begin: int, end: int) -> list[Fired]:
        fired = []
        ts_all = rows.ts.tolist()
        values = rows.values
        distinct = self.distinct
        keep_evidence = self.rule.evidence
        for i in range(begin, end):
            ts = ts_all[i]
            if ts < state.cooldown_until:
                state.last_ts = ts
                continue
            value = values[i] if distinct else None
            if self.is_bucket:
                if state.episode_start is not None:
                    state.level = max(0.0, state.level - (ts - state.last_ts) / self.leak_us)
                    if state.level <= 0.0:
                        state.reset()
                state.last_ts = ts
                if distinct and value in state.seen:
                    continue
                state.level += 1.0
                fire = state.level > self.capacity
            else:
                state.last_ts = ts
                start = ts - self.period_us
                recent = state.recent
                while recent and recent[0][0] <= start:
                    _, old, _ = recent.popleft()
                    if distinct and state.seen.get(old, ts) <= start:
                        del state.seen[old]
                if not recent:
                    state.reset()
                recent.append((ts, value, rows.evidence(i) if keep_evidence else None))
                if distinct:
                    state.seen[value] = ts
                if (len(state.seen) if distinct else len(recent)) >= self.count:
                    fired.append(self._fire(state, ts))
                continue
            if state.episode_start is None:
                state.episode_start = ts
            if distinct:
                state.seen[value] = ts
            state.episode_count += 1
            if len(state.evidence) < keep_evidence:
                state.evidence.append(rows.evidence(i))
            if fire:
                fired.append(self._fire(state, ts))
        return fired


def _concat(parts: list[Hits]):
    """One rule's ready rows from several groups: global key ids, times, offsets, file ids, values."""
    names = pa.concat_arrays([p.key_names for p in parts]) if len(parts) > 1 else parts[0].key_names
    encoded = pc.dictionary_encode(names)
    global_ids = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    fields_table = pa.Table.from_batches([p.key_fields for p in parts])
    # dictionary_encode numbers the keys in order of first appearance: a key's first row is where the running
    # maximum of the ids grows (np.unique's return_index, without its sort).
    running = np.maximum.accumulate(global_ids) if len(global_ids) else global_ids
    first = np.flatnonzero(np.r_[True, running[1:] > running[:-1]]) if len(global_ids) else global_ids
    key_ids, at = [], 0
    for p in parts:
        key_ids.append(global_ids[at : at + len(p.key_names)][p.key_index])
        at += len(p.key_names)
    path_names = sorted({p.path for p in parts})
    rank = {name: i for i, name in enumerate(path_names)}
    joined = {
        "keys": np.concatenate(key_ids),
        "ts": np.concatenate([p.ts for p in parts]),
        "offsets": np.concatenate([p.offsets for p in parts]),
        "paths": np.concatenate([np.full(len(p), rank[p.path], np.int64) for p in parts]),
        "values": np.concatenate([p.values for p in parts]) if parts[0].values is not None else None,
    }
    lines: dict[tuple[str, int], str] = {}
    for p in parts:
        lines.update(((p.path, o), t) for o, t in p.lines.items())
    return encoded.dictionary, fields_table.take(pa.array(first)), path_names, joined, lines


@dataclasses.dataclass
class WindowTails:
    """A plain sliding window's memory for all its keys at once: the rows still inside some key's window."""

    keys: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, object))
    ts: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    offsets: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    paths: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, object))
    lines: dict = dataclasses.field(default_factory=dict)  # (path, offset) -> evidence line
    cooldown_until: dict = dataclasses.field(default_factory=dict)  # key -> ts
    fields: dict = dataclasses.field(default_factory=dict)  # key -> alert fields, for keys with a tail


def _window_counts(keys: np.ndarray, ts: np.ndarray, period_us: int) -> np.ndarray:
    """Rows sorted by (key, ts): for each row, how many rows of its key lie in ``(ts - period, ts]``."""
    if not len(ts):
        return np.zeros(0, np.int64)
    tmin = int(ts.min())
    span = int(ts.max()) - tmin + period_us + 1
    if (int(keys.max()) + 1) * span < 2**62:
        combined = keys * span + (ts - tmin)
        low = np.searchsorted(combined, combined - period_us, side="right")
        return np.arange(len(ts)) - low + 1
    counts = np.empty(len(ts), np.int64)  # a span too long to combine with the key: key by key
    bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
    for a, b in itertools.pairwise(bounds):
        segment = ts[a:b]
        counts[a:b] = np.arange(b - a) - np.searchsorted(segment, segment - period_us, side="right") + 1
    return counts


class Detector:
    """Buffered hits plus per-(rule, key) state; ``flush(T)`` folds everything up to event time ``T``.

    Plain data, so the Beam shell can keep it in state (pickled) and a replay can use it directly.
    """

    def __init__(self, rules: RuleSet, clock: Callable[[], dt.datetime] = utc_now):
        self._folds = {r.id: RuleFold(r) for r in rules.rules if not r.is_health}
        self._health = HealthMonitor(rules, clock)  # health rules (alerts.health_fold) fold their own cells
        self._clock = clock
        self.pending: list[Hits] = []
        self.states: dict[tuple[str, str], KeyState] = {}
        self.tails: dict[str, WindowTails] = {}
        self.folded_up_to = NEVER
        self.late_rows = 0

    def snapshot(self) -> tuple:
        """What must survive between flushes (pending hits are kept by the caller)."""
        return self.states, self.tails, self.folded_up_to, self.late_rows, self._health.states

    def restore(self, snapshot: tuple | None) -> None:
        if snapshot is not None:
            self.states, self.tails, self.folded_up_to, self.late_rows, *health = snapshot
            self._health.restore(health[0] if health else None)
            self.tails = {k: v for k, v in self.tails.items() if k in self._folds}
            self.states = {k: v for k, v in self.states.items() if k[0] in self._folds}

    def add(self, hits: Iterable[Hits]) -> None:
        for h in hits:
            if (h.rule_id not in self._folds and not self._health.watches(h.rule_id)) or not len(h):
                continue  # a rule removed since the hits were produced
            if self.folded_up_to > NEVER:
                self.late_rows += int(np.count_nonzero(h.ts <= self.folded_up_to))
            self.pending.append(h)

    @property
    def pending_max_us(self) -> int | None:
        return max((int(h.ts.max()) for h in self.pending), default=None)

    def finish(self) -> list[dict[str, Any]]:
        """The input is complete: fold everything buffered and return the alerts it raises.

        Nothing may be added afterwards, so keys without history and with too few rows to fire are skipped
        (their state would never be read).
        """
        return self.flush(None)

    def flush(self, upto_us: int | None) -> list[dict[str, Any]]:
        """Event time has reached ``upto_us`` (a watermark): fold buffered rows with ``ts <= upto_us``.

        Returns the alerts they raise.  ``None`` is what ``finish`` passes: the input is complete.
        """
        ready: dict[str, list[Hits]] = collections.defaultdict(list)
        keep: list[Hits] = []
        for h in self.pending:
            now, later = (h, None) if upto_us is None else h.split(upto_us)
            if now is not None:
                ready[h.rule_id].append(now)
            if later is not None:
                keep.append(later)
        self.pending = keep
        alerts = []
        latest = NEVER
        for rule_id in sorted(ready):
            latest = max(latest, max(int(p.ts.max()) for p in ready[rule_id]))
        horizon = latest if upto_us is None else upto_us
        for rule_id in sorted(ready):
            if self._health.watches(rule_id):
                alerts.extend(self._health.fold(rule_id, ready[rule_id]))
                continue
            fold = self._folds[rule_id]
            if fold.is_plain_window:
                alerts.extend(self._fold_plain_window(fold, ready[rule_id], horizon, final=upto_us is None))
            else:
                alerts.extend(self._fold_rule(fold, ready[rule_id], final=upto_us is None))
        if ready:
            self.folded_up_to = max(self.folded_up_to, latest if upto_us is None else upto_us)
            self._expire()
        return alerts

    def _fold_rule(self, fold: RuleFold, parts: list[Hits], final: bool = False) -> list[dict[str, Any]]:
        key_names, key_fields, path_names, rows_of, lines = _concat(parts)
        keys, ts, offsets, paths, values = (rows_of[n] for n in ("keys", "ts", "offsets", "paths", "values"))
        order = np.lexsort((offsets, paths, ts, keys))
        sorted_keys = keys[order]
        bounds = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1], True])
        names = key_names.to_pylist()
        fields = key_fields.to_pylist()
        alerts = []
        rule_id = fold.rule.id
        for a, b in itertools.pairwise(bounds):
            key_id = int(sorted_keys[a])
            key = names[key_id]
            state = self.states.get((rule_id, key))
            if final and state is None and b - a < fold.min_rows:
                continue  # cannot fire, and nothing follows
            segment = order[a:b]
            if state is None:
                state = self.states[(rule_id, key)] = KeyState(fields=fields[key_id])
            rows = Rows(
                ts=ts[segment],
                offsets=offsets[segment],
                paths=path_names if len(path_names) == 1 else [path_names[i] for i in paths[segment].tolist()],
                values=values[segment].tolist() if values is not None else None,
                lines=lines,
            )
            for first, last, count, sample, evidence in fold.fold(state, rows):
                alerts.append(
                    build_alert(fold.rule, key, state.fields, first, last, count, sample, evidence, self._clock())
                )
        return alerts

    def _fold_plain_window(
        self, fold: RuleFold, parts: list[Hits], horizon_us: int, final: bool = False
    ) -> list[dict[str, Any]]:
        """A sliding count over every key at once; only keys that reach the count (or cool down) walk their rows.

        The alert's window is the ``count`` rows that filled it: ``first_seen`` is the oldest of them.
        """
        key_names, key_fields, path_names, rows_of, lines = _concat(parts)
        tails = self.tails.setdefault(fold.rule.id, WindowTails())
        names = np.asarray(key_names.to_pylist(), dtype=object)
        keys, ts, offsets = rows_of["keys"], rows_of["ts"], rows_of["offsets"]
        # Files as ranks in name order (sorting the names of 600k rows as objects cost more than the fold).
        tail_paths = tails.paths.tolist()
        file_names = sorted(set(path_names).union(tail_paths))
        rank = {name: i for i, name in enumerate(file_names)}
        path_ids = np.asarray([rank[name] for name in path_names], np.int64)[rows_of["paths"]]
        fresh = np.ones(len(ts), bool)
        if len(tails.ts):  # rows from earlier flushes still inside a window: put them back in front
            found = pc.index_in(pa.array(tails.keys.tolist(), pa.string()), value_set=key_names)
            tail_ids = found.to_numpy(zero_copy_only=False)
            absent = found.is_null().to_numpy(zero_copy_only=False)
            if absent.any():
                extra, extra_ids = np.unique(tails.keys[absent], return_inverse=True)
                tail_ids = tail_ids.astype(np.float64)
                tail_ids[absent] = len(names) + extra_ids
                names = np.concatenate([names, extra])
            keys = np.concatenate([tail_ids.astype(np.int64), keys])
            ts = np.concatenate([tails.ts, ts])
            offsets = np.concatenate([tails.offsets, offsets])
            path_ids = np.concatenate([np.asarray([rank[name] for name in tail_paths], np.int64), path_ids])
            fresh = np.concatenate([np.zeros(len(tails.ts), bool), fresh])
        if final:  # nothing follows: only keys with ``count`` rows can fill a window (most keys of a flood rule)
            enough = np.bincount(keys, minlength=len(names))[keys] >= fold.count
            keys, ts, offsets, path_ids, fresh = (a[enough] for a in (keys, ts, offsets, path_ids, fresh))
            lines = {**tails.lines, **lines}
        order = np.lexsort((offsets, path_ids, ts, keys))
        keys, ts, offsets, path_ids, fresh = keys[order], ts[order], offsets[order], path_ids[order], fresh[order]
        counts = _window_counts(keys, ts, fold.period_us)
        cooling = dict(tails.cooldown_until)  # kept while any later row could still fall inside one
        slow = set(keys[fresh & (counts >= fold.count)].tolist())
        if cooling:
            cooling_ids = {i for i, n in enumerate(names.tolist()) if n in cooling}
            slow |= cooling_ids & set(keys[fresh].tolist())
        keep = ts > horizon_us - fold.period_us
        alerts = []
        if slow:
            bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
            for a, b in itertools.pairwise(bounds):
                key_id = int(keys[a])
                if key_id not in slow:
                    continue
                key = names[key_id]
                window: collections.deque = collections.deque()
                until = cooling.get(key, NEVER)
                key_ts = ts[a:b].tolist()  # Python ints: this loop walks every row of a flooding key
                for i, t, is_fresh in zip(range(a, b), key_ts, fresh[a:b].tolist()):
                    if is_fresh and t < until:
                        continue  # absorbed by the cool-down
                    while window and key_ts[window[0] - a] <= t - fold.period_us:
                        window.popleft()
                    window.append(i)
                    if is_fresh and len(window) >= fold.count:
                        evidence = [
                            (
                                int(ts[j]),
                                file_names[path_ids[j]],
                                int(offsets[j]),
                                lines.get((file_names[path_ids[j]], int(offsets[j]))),
                            )
                            for j in list(window)[: fold.rule.evidence]
                        ]
                        field_values = (  # only alerting keys' fields are read: a flood rule has thousands of keys
                            key_fields.slice(key_id, 1).to_pylist()[0]
                            if key_id < len(key_fields)
                            else tails.fields.get(key, {})
                        )
                        alerts.append(
                            build_alert(fold.rule, key, field_values, key_ts[window[0] - a], t, len(window), [],
                                        evidence, self._clock())
                        )  # fmt: skip
                        until = t + fold.cooldown_us
                        window.clear()
                keep[a:b] = False
                keep[list(window)] = ts[list(window)] > horizon_us - fold.period_us
                if until > NEVER:
                    cooling[key] = until
        tails.keys, tails.ts, tails.offsets = names[keys[keep]], ts[keep], offsets[keep]
        tails.paths = np.asarray(file_names, dtype=object)[path_ids[keep]]
        kept = set(zip(tails.paths.tolist(), tails.offsets.tolist()))
        tails.lines = {k: v for k, v in lines.items() if k in kept}
        tails.cooldown_until = {k: u for k, u in cooling.items() if u > horizon_us}
        kept_ids = np.unique(keys[keep])
        tail_fields = key_fields.take(pa.array(kept_ids[kept_ids < len(key_fields)])).to_pylist()
        tail_names = names[kept_ids[kept_ids < len(key_fields)]].tolist()
        tails.fields = {**{k: tails.fields[k] for k in set(tails.keys.tolist()) if k in tails.fields},
                        **dict(zip(tail_names, tail_fields))}  # fmt: skip
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
    return detector.finish()

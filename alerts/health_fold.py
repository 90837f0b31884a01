"""The stateful half of health rules: per key, cells folded into windows and judged every ``every`` of event time.

Event time, not arrival, decides everything.  A rule's clock is the event time
its batches have shown (``HealthCells.seen_us``, up to the stream's watermark):
the newest line's time, unless that line is more than ``LONE_LINE_GAP`` ahead
of the second-newest (then the second-newest's), and never more than
``FUTURE_TOLERANCE`` past the wall clock.  One line from the far future (a
mistyped year, a garbled stamp) would otherwise move the clock past every
host's traffic, so that every host looks silent and the lines after it come
too late to count; instead its cell waits until other lines come near its
time.  (Two such lines together do move it.)  Bucket ``b`` is
judged once that clock passes the bucket's end ``E``, over the window
``(E - window, E]`` and the baseline period just before it.  Cells of a bucket
all arrive before its end is passed (the stream holds back what is newer than
its watermark), so a replay folding a day at once and the stream folding it
minute by minute judge the same windows and raise the same alerts.

Per key and rule, an episode: the condition true (for ``for``) fires an alert,
with the window, the value, the baseline and the threshold; while it is open the
value is compared with the baseline *as it was when the episode began* (a long
outage would otherwise become its own baseline); once the condition has been
false for a whole window, a "resolved" record closes it and ``cooldown`` starts.
A judgement needs enough evidence (``min_events``; for a baseline, the key seen
for the whole baseline period, and ``min_baseline``); without it nothing changes.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import datetime as dt
import functools
import time
from collections.abc import Callable
from typing import Any

from alerts import health_sketch
from alerts.alert import alert_id, build_alert, from_us
from alerts.health_observe import NO_TIME, HealthCells
from alerts.rules import Rule, RuleSet

US = 1_000_000
NEVER = -(2**62)
#: How far past the wall clock event time may move a rule's clock (clock skew, a log in the wrong time zone).
FUTURE_TOLERANCE = 3600.0
#: How far ahead of every other line one line may move a rule's clock by itself (a sparse error log's next line
#: comes hours later; a stamp from the far future years).
LONE_LINE_GAP = 86400 * US
FIRING, RESOLVED = "firing", "resolved"


@dataclasses.dataclass(slots=True)
class Cell:
    """One key's aggregate of one bucket, merged from every batch that had rows in it."""

    events: int = 0
    hits: int = 0
    first_ts: int = NO_TIME
    sketch: list = dataclasses.field(default_factory=list)  # (buckets, counts) parts
    evidence: list = dataclasses.field(default_factory=list)  # (rank, ts, path, offset, line), best first
    clients: collections.Counter | None = None  # counted events per client address (``max_client_share``)


@dataclasses.dataclass
class KeyHealth:
    """What one rule remembers about one key: recent cells, where judging stands, the open episode."""

    fields: dict
    first_bucket: int
    next_bucket: int
    cells: dict = dataclasses.field(default_factory=dict)  # bucket -> Cell
    firing: dict | None = None  # the open episode: first_seen, baseline
    true_since: int | None = None
    false_since: int | None = None
    quiet_until: int = NEVER


@dataclasses.dataclass
class RuleHealth:
    seen_us: int = NEVER  # the clock
    newest_us: int = NEVER  # the two newest event times shown (``merge``)
    second_us: int = NEVER
    keys: dict = dataclasses.field(default_factory=dict)  # key -> KeyHealth


class _Sums:
    """Rolling totals of a run of cells: events, hits and (percentiles) the sketch's counts."""

    __slots__ = ("counts", "events", "hits")

    def __init__(self, sketched: bool):
        self.events = 0
        self.hits = 0
        self.counts = health_sketch.dense() if sketched else None

    def add(self, cell: Cell | None, sign: int = 1) -> None:
        if cell is None:
            return
        self.events += sign * cell.events
        self.hits += sign * cell.hits
        if self.counts is not None:
            for part in cell.sketch:
                health_sketch.add(self.counts, part, sign)


class HealthFold:
    """How one health rule judges a key's windows; pure functions of a ``KeyHealth``."""

    def __init__(self, rule: Rule, clock: Callable[[], dt.datetime], wall: Callable[[], float] = time.time):
        self.rule = rule
        self.spec = spec = rule.health
        self.step_us = int(spec.every * US)
        self.window = round(spec.window / spec.every)  # buckets
        self.baseline = round(spec.baseline / spec.every)  # buckets
        self.window_us = int(spec.window * US)
        self.hold_us = int(spec.hold * US)
        self.cooldown_us = int(rule.cooldown * US)
        self.quantile = spec.quantile
        self.threshold = spec.threshold_text()
        #: A shortage (traffic drop, silence) starts with its window; a surge with its first counted event.
        self.is_shortage = spec.above is None and spec.above_baseline is None
        self._clock = clock
        self._wall = wall

    # -------------------------------------------------------------- merging

    def merge(self, state: RuleHealth, parts: list[HealthCells]) -> None:
        plausible = int((self._wall() + FUTURE_TOLERANCE) * US)
        for part in parts:
            for shown in (min(part.seen_us, plausible), min(part.next_us, plausible)):
                if shown > state.newest_us:
                    state.second_us, state.newest_us = state.newest_us, shown
                elif shown > state.second_us:
                    state.second_us = shown
            alone = state.newest_us - state.second_us > LONE_LINE_GAP
            state.seen_us = max(state.seen_us, state.second_us if alone else state.newest_us)
            none = [None] * len(part.cell_ts)
            sketches = part.sketches if part.sketches is not None else none
            rows = zip(
                part.key.tolist(), part.bucket.tolist(), part.events.tolist(), part.hits.tolist(),
                part.first_ts.tolist(), sketches, part.evidence, part.clients if part.clients is not None else none,
            )  # fmt: skip
            for k, bucket, events, hits, first_ts, sketch, evidence, clients in rows:
                name = part.key_names[k]
                key = state.keys.get(name)
                if key is None:
                    key = state.keys[name] = KeyHealth(part.key_fields[k], bucket, bucket)
                elif bucket < key.next_bucket - self.window - self.baseline:
                    continue  # too late to matter to any window still to be judged
                elif bucket < key.first_bucket:
                    key.first_bucket = bucket
                cell = key.cells.get(bucket)
                if cell is None:
                    cell = key.cells[bucket] = Cell()
                cell.events += events
                cell.hits += hits
                if first_ts < cell.first_ts:
                    cell.first_ts = first_ts
                if sketch is not None:
                    cell.sketch.append(sketch)
                if evidence:
                    cell.evidence = (
                        sorted(cell.evidence + evidence)[: self.rule.evidence] if cell.evidence else evidence
                    )
                if clients:
                    cell.clients = clients + cell.clients if cell.clients else collections.Counter(clients)

    # -------------------------------------------------------------- judging

    def judge_all(self, state: RuleHealth) -> list[dict[str, Any]]:
        """Every bucket whose end the rule's clock has passed, for every key; returns the alerts raised."""
        last = state.seen_us // self.step_us - 1
        alerts = []
        for name in sorted(state.keys):
            key = state.keys[name]
            if key.next_bucket <= last:
                alerts += self._judge_key(name, key, last)
            oldest = last + 1 - self.window - self.baseline
            key.cells = {b: c for b, c in key.cells.items() if b > oldest}
            for b, cell in key.cells.items():
                if b <= last + 1 - self.window:
                    cell.evidence, cell.clients = [], None  # no later window quotes or counts them
            if not key.cells and key.firing is None:
                del state.keys[name]
        return alerts

    def _value(self, sums: _Sums) -> float | None:
        if self.spec.measure == "count":
            return float(sums.events)
        if self.spec.measure == "ratio":
            return sums.hits / sums.events if sums.events else None
        return health_sketch.quantile(sums.counts, self.quantile)

    def _baseline(self, sums: _Sums) -> float | None:
        if self.spec.measure == "count":
            return sums.events * self.window / self.baseline
        return self._value(sums)

    def _below_the_bar(self, value: float | None) -> bool:
        """The absolute bound already says no (a p95 under ``above``): the baseline's sketch need not be read."""
        return value is None or (self.spec.above is not None and value <= self.spec.above)

    def _verdict(self, value, baseline, events: int, opening: bool, clients=None) -> bool | None:
        """True or False, or None when there is not enough to judge (``opening``: no episode yet)."""
        spec = self.spec
        if value is None or events < spec.min_events:
            return None
        if spec.uses_baseline and (baseline is None or (opening and baseline < spec.min_baseline)):
            return None
        checks = (
            spec.above is None or value > spec.above,
            spec.below is None or value < spec.below,
            spec.above_baseline is None or value > spec.above_baseline * baseline,
            spec.below_baseline is None or value < spec.below_baseline * baseline,
        )
        if not all(checks):
            return False
        if spec.max_client_share is not None and opening:
            by_client = sum((c.clients for c in clients() if c.clients), collections.Counter())
            total = sum(by_client.values())
            if total and max(by_client.values()) > spec.max_client_share * total:
                return None  # one client's surge (a scanner) says nothing about the service
        return True

    def _sums_at(self, cells: dict, b: int) -> tuple[_Sums, _Sums]:
        """The window ``(b - w, b]`` and the baseline period ``(b - w - base, b - w]`` totalled from the cells."""
        w, base = self.window, self.baseline
        window, trailing = _Sums(self.quantile is not None), _Sums(self.quantile is not None)
        for bucket, cell in cells.items():
            if b - w < bucket <= b:
                window.add(cell)
            elif b - w - base < bucket <= b - w:
                trailing.add(cell)
        return window, trailing

    def _hopeless(self, key: KeyHealth, last: int) -> bool:
        """No episode open and too few events in reach for one to open by ``last``: judging can be skipped."""
        if key.firing is not None:
            return False
        spec = self.spec
        if self.is_shortage:
            if spec.min_baseline <= 0:
                return False
            reach = sum(c.events for b, c in key.cells.items() if b > key.next_bucket - self.window - self.baseline)
            return reach * self.window / self.baseline < spec.min_baseline
        reach = sum(c.events for b, c in key.cells.items() if b > key.next_bucket - self.window)
        return reach < max(spec.min_events, 1)

    def _idle(self, key: KeyHealth, window: _Sums, trailing: _Sums) -> bool:
        """Nothing can happen until the key's next cell: no episode, an empty window (and, for a shortage with a
        minimum baseline, an empty baseline too)."""
        if key.firing is not None or window.events:
            return False
        return not self.is_shortage or (self.spec.min_baseline > 0 and not trailing.events)

    def _judge_key(self, name: str, key: KeyHealth, last: int) -> list[dict[str, Any]]:
        if self._hopeless(key, last):
            key.next_bucket, key.true_since = last + 1, None
            return []
        w, base = self.window, self.baseline
        cells = key.cells
        ahead = sorted(cells)
        b = key.next_bucket
        window, trailing = self._sums_at(cells, b)
        alerts = []
        uses_baseline = self.spec.uses_baseline
        while b <= last:
            end = (b + 1) * self.step_us
            if self._idle(key, window, trailing):
                key.true_since = None
                at = bisect.bisect_right(ahead, b)
                if at == len(ahead) or ahead[at] > last:
                    break
                b = ahead[at]  # jump to the key's next cell
                window, trailing = self._sums_at(cells, b)
                continue
            value = self._value(window)
            warm = key.first_bucket <= b - w - base + 1
            if key.firing is not None:
                baseline = key.firing["baseline"]
            elif uses_baseline and warm and not self._below_the_bar(value):
                baseline = self._baseline(trailing)
            else:
                baseline = None
            verdict = self._verdict(
                value, baseline, window.events, key.firing is None, functools.partial(self._window_cells, key, b)
            )
            if key.firing is None:
                if verdict and end >= key.quiet_until:
                    key.true_since = end if key.true_since is None else key.true_since
                    if end - key.true_since >= self.hold_us:
                        alerts.append(self._open(name, key, b, end, value, baseline, window))
                else:
                    key.true_since = None
            elif verdict is False:
                key.false_since = end if key.false_since is None else key.false_since
                if end - key.false_since >= self.window_us:
                    alerts.append(self._close(name, key, end, value, window))
            elif verdict:
                key.false_since = None
            b += 1
            window.add(cells.get(b))
            leaving = cells.get(b - w)
            window.add(leaving, -1)
            if uses_baseline:
                trailing.add(leaving)
                trailing.add(cells.get(b - w - base), -1)
        key.next_bucket = last + 1
        return alerts

    # -------------------------------------------------------------- alerts

    def _window_cells(self, key: KeyHealth, b: int) -> list[Cell]:
        return [c for bucket, c in sorted(key.cells.items()) if b - self.window < bucket <= b]

    def _record(self, name, key, first, end, value, baseline, sums, status, evidence) -> dict[str, Any]:
        count = sums.hits if self.spec.measure == "ratio" else sums.events
        alert = build_alert(self.rule, name, key.fields, first, end, count, [], evidence, self._clock())
        if status == RESOLVED:
            alert["alert_id"] = alert_id(self.rule.id, f"{name}\x1f{RESOLVED}", first)
        alert["health"] = {
            "status": status,
            "measure": self.spec.measure,
            "window_start": from_us(end - self.window_us),
            "window_end": from_us(end),
            "value": value,
            "baseline": baseline,
            "threshold": self.threshold,
            "events": sums.events,
        }
        return alert

    def _open(self, name, key, b, end, value, baseline, sums) -> dict[str, Any]:
        cells = self._window_cells(key, b)
        first = self._started(cells, baseline, end - self.window_us)
        quotes = sorted(q for c in cells for q in c.evidence)[: self.rule.evidence]
        evidence = sorted((ts, path, offset, line) for _, ts, path, offset, line in quotes)
        key.firing = {"first_seen": first, "baseline": baseline}
        key.true_since = key.false_since = None
        return self._record(name, key, first, end, value, baseline, sums, FIRING, evidence)

    def _started(self, cells: list[Cell], baseline: float | None, window_start: int) -> int:
        """When the surge began: the earliest counted event of the first bucket that passes the bar on its own
        (a percentile or a share), else of the window (a count); a shortage began with its window."""
        if self.is_shortage:
            return window_start
        times = [c.first_ts for c in cells if c.first_ts < NO_TIME]
        spec = self.spec
        bars = [spec.above] if spec.above is not None else []
        if spec.above_baseline is not None and baseline is not None:
            bars.append(spec.above_baseline * baseline)
        if spec.measure != "count" and bars:
            bar = max(bars)
            for cell in cells:
                sums = _Sums(self.quantile is not None)
                sums.add(cell)
                value = self._value(sums)
                if cell.first_ts < NO_TIME and value is not None and value > bar:
                    return cell.first_ts
        return min(times, default=window_start)

    def _close(self, name, key, end, value, sums) -> dict[str, Any]:
        episode = key.firing
        key.firing = None
        key.true_since = key.false_since = None
        key.quiet_until = end + self.cooldown_us
        return self._record(name, key, episode["first_seen"], end, value, episode["baseline"], sums, RESOLVED, [])


class HealthMonitor:
    """The health rules of a rule set, with their state; ``alerts.engine.Detector`` hands their cells here."""

    def __init__(self, rules: RuleSet, clock: Callable[[], dt.datetime]):
        self.folds = {r.id: HealthFold(r, clock) for r in rules.rules if r.is_health}
        self.states: dict[str, RuleHealth] = {}

    def watches(self, rule_id: str) -> bool:
        return rule_id in self.folds

    def fold(self, rule_id: str, parts: list[HealthCells]) -> list[dict[str, Any]]:
        """Merge ``parts`` (cells up to the watermark) and judge every bucket the rule's clock has passed."""
        fold = self.folds[rule_id]
        state = self.states.setdefault(rule_id, RuleHealth())
        fold.merge(state, parts)
        return fold.judge_all(state)

    def restore(self, states: dict[str, RuleHealth] | None) -> None:
        self.states = {k: v for k, v in (states or {}).items() if k in self.folds}

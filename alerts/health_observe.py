"""The stateless half of health rules: one batch of events in, per (key, minute) aggregates out.

A health rule typically selects every request, so it must not send every row
on to the stateful step the way an attack rule's rare matches go: per key and
``every``-long bucket of event time, a batch is reduced to a *cell* — events,
the events meeting the ratio's ``of``, a percentile sketch of the measured field,
the earliest time and a few evidence lines.  A day of one busy host is 1,440
cells whatever its traffic.  Each batch also carries its newest event time
(the *heartbeat*): a silent host has no rows, and only the other events' time
tells ``alerts.health_fold`` that its window has passed.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alerts import health_sketch
from alerts.conditions import BatchView, CompiledRule
from alerts.evidence import evidence_lines
from alerts.rules import Rule

US = 1_000_000
#: A cell's earliest counted time when it counted nothing (a ratio's window with no 5xx yet).
NO_TIME = 2**62
#: Above this many (key, bucket) slots a batch groups its rows by sorting instead of counting into slots.
DENSE_SLOTS = 4_000_000


@dataclasses.dataclass
class HealthCells:
    """One rule's cells from one batch; quacks like ``alerts.observe.Hits`` where the engine buffers and splits."""

    rule_id: str
    key_names: list[str]
    key_fields: list[dict]  # per key: the alert's source_ip, user_name, url_domain
    key: np.ndarray  # int64 per cell: index into key_names
    bucket: np.ndarray  # int64 per cell: event time // every
    events: np.ndarray  # int64 per cell: events counted
    hits: np.ndarray  # int64 per cell: events meeting ``of`` (ratios; else = events)
    first_ts: np.ndarray  # int64 per cell: earliest counted hit (NO_TIME when none)
    cell_ts: np.ndarray  # int64 per cell: newest event in it
    sketches: list | None  # per cell: (buckets, counts) of the measured field (percentiles)
    evidence: list[list]  # per cell: [(rank, ts, path, offset, line)], smallest rank (best quote) first
    seen_us: int  # newest event time of the batch: event time has reached it
    clients: list | None = None  # per cell: Counter of the counted events' client addresses (``max_client_share``)
    #: The batch's second-newest event time (-NO_TIME for a one-line batch): with ``seen_us``, what the fold's
    #: clock is made of, so that no single line moves it (``alerts.health_fold``).
    next_us: int = -NO_TIME

    @classmethod
    def heartbeat(cls, rule_id: str, seen_us: int) -> HealthCells:
        empty = np.zeros(0, np.int64)
        return cls(rule_id, [], [], empty, empty, empty, empty, empty, empty, None, [], seen_us)

    @property
    def ts(self) -> np.ndarray:
        """Times the engine orders and splits by: each cell's newest event, then the heartbeat."""
        return np.append(self.cell_ts, np.int64(self.seen_us))

    def __len__(self) -> int:
        return len(self.cell_ts) + 1

    def _take(self, rows: np.ndarray, seen_us: int) -> HealthCells:
        return dataclasses.replace(
            self,
            key=self.key[rows],
            bucket=self.bucket[rows],
            events=self.events[rows],
            hits=self.hits[rows],
            first_ts=self.first_ts[rows],
            cell_ts=self.cell_ts[rows],
            sketches=[self.sketches[i] for i in rows.tolist()] if self.sketches is not None else None,
            evidence=[self.evidence[i] for i in rows.tolist()],
            seen_us=seen_us,
            clients=[self.clients[i] for i in rows.tolist()] if self.clients is not None else None,
        )

    def split(self, upto_us: int) -> tuple[HealthCells | None, HealthCells | None]:
        """``(cells up to the watermark, the rest)``; the first part's heartbeat is the watermark itself."""
        if self.seen_us <= upto_us:
            return self, None
        early = self.cell_ts <= upto_us
        now = dataclasses.replace(self._take(np.flatnonzero(early), upto_us), next_us=min(self.next_us, upto_us))
        return now, self._take(np.flatnonzero(~early), self.seen_us)

    def by_shard(self, shards: int, whole: bool = False) -> dict[int, HealthCells]:
        """Always whole, on the rule's one shard: its heartbeat and its absent keys concern every key at once."""
        from alerts.observe import rule_shard

        return {rule_shard(self.rule_id, shards): self}


def _group(codes: np.ndarray, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """``(slot of each group, group of each row)`` for rows labelled by ``codes`` in ``[0, slots)``."""
    if slots <= DENSE_SLOTS:
        present = np.bincount(codes, minlength=slots) > 0
        used = np.flatnonzero(present)
        index = np.cumsum(present) - 1
        return used, index[codes]
    used, inverse = np.unique(codes, return_inverse=True)
    return used, inverse


def _path_prefix(paths: pa.Array, segments: int) -> pa.Array:
    """The first ``segments`` segments of each path (``/api/v1/users`` -> ``/api``), worked out per distinct path."""
    encoded = pc.dictionary_encode(paths)
    pattern = rf"^((?:/[^/?]*){{1,{segments}}}).*$"
    prefixes = pc.replace_substring_regex(encoded.dictionary, pattern=pattern, replacement=r"\1")
    return prefixes.take(encoded.indices).fill_null("-")


@dataclasses.dataclass
class _Grouping:
    """A batch's selected rows by (key, bucket): shared by the rules that select and key alike."""

    rows: np.ndarray  # batch rows selected
    row_ts: np.ndarray
    cell_of: np.ndarray  # per selected row: its cell
    cells: int
    key_index: np.ndarray  # per cell
    bucket: np.ndarray  # per cell
    key_names: list[str]
    key_fields: list[dict]
    values: np.ndarray | None  # the measured field per selected row (percentiles)


class HealthObserver:
    """Every health rule of one dataset, evaluated on batches (its ``BatchView`` is the attack rules' one)."""

    def __init__(self, rules: list[Rule], dataset: str):
        self.dataset = dataset
        #: Per rule: its filter, and the ratio's ``of`` as a rule of its own (None for other measures).
        self.rules = [
            (CompiledRule(r), CompiledRule(dataclasses.replace(r, conditions=r.health.of)) if r.health.of else None)
            for r in rules
        ]

    @property
    def compiled(self) -> list[CompiledRule]:
        """Every compiled condition set, for the batch view's shared pre-filters (they must know all patterns)."""
        return [c for pair in self.rules for c in pair if c is not None]

    def observe(self, view: BatchView, ts: np.ndarray, offsets: np.ndarray) -> list[HealthCells]:
        if not self.rules or not view.num_rows:
            return []
        seen = int(ts.max())
        second = int(np.partition(ts, -2)[-2]) if len(ts) > 1 else -NO_TIME
        found, quoted = [], []
        groupings: dict[tuple, _Grouping | None] = {}
        for compiled, numerator in self.rules:
            spec = compiled.rule.health
            alike = (compiled.rule.conditions, compiled.rule.groupby, spec.path_segments, spec.every, spec.field)
            if alike not in groupings:
                groupings[alike] = self._grouping(compiled, view, ts)
            grouping = groupings[alike]
            if grouping is None:
                found.append(HealthCells.heartbeat(compiled.rule.id, seen))
                continue
            cells, rows = self._cells(compiled.rule, numerator, view, grouping, offsets, seen)
            found.append(cells)
            quoted.append(rows)
        for cells in found:
            cells.next_us = second
        wanted = np.unique(np.concatenate(quoted)) if quoted else np.zeros(0, np.int64)
        if len(wanted):
            lines = dict(zip(wanted.tolist(), evidence_lines(view.batch, wanted, self.dataset)))
            # One string per file, not per quote: the cells are pickled into the spill, which writes a repeated
            # object once.
            names: dict[str, str] = {}
            taken = view.batch.column("log_file_path").take(pa.array(wanted)).to_pylist()
            paths = {row: names.setdefault(path, path) for row, path in zip(wanted.tolist(), taken)}
            for cells in found:
                cells.evidence = [
                    [(rank, t, paths[row], o, lines[row]) for rank, t, row, o in cell] for cell in cells.evidence
                ]
        return found

    def _grouping(self, compiled: CompiledRule, view: BatchView, ts: np.ndarray) -> _Grouping | None:
        """The rows a rule selects, grouped by its key and bucket of event time; None when it selects none."""
        from alerts.observe import KEY_FIELDS, _key_column

        rule, batch = compiled.rule, view.batch
        spec = rule.health
        mask = compiled.mask(view)
        values = None
        if spec.field:
            values = batch.column(spec.field).cast(pa.float64()).to_numpy(zero_copy_only=False)
            mask &= ~np.isnan(values)
        rows = np.flatnonzero(mask)
        if not len(rows):
            return None
        taken = pa.array(rows)
        keys = _key_column(batch, taken, rule.groupby)
        if spec.path_segments:
            keys = pc.binary_join_element_wise(
                keys, _path_prefix(batch.column("url_path").take(taken), spec.path_segments), "|"
            )
        encoded = pc.dictionary_encode(keys)
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        row_ts = ts[rows]
        bucket = row_ts // int(spec.every * US)
        low = int(bucket.min())
        span = int(bucket.max()) - low + 1
        slots, cell_of = _group(codes * span + (bucket - low), len(encoded.dictionary) * span)
        first_rows = pa.array(_first_rows(codes, rows))
        key_fields = pa.Table.from_arrays(
            [
                batch.column(name).take(first_rows).cast(pa.string())
                if name in rule.groupby
                else pa.nulls(len(first_rows), pa.string())
                for name in KEY_FIELDS
            ],
            names=list(KEY_FIELDS),
        ).to_pylist()
        return _Grouping(
            rows=rows,
            row_ts=row_ts,
            cell_of=cell_of,
            cells=len(slots),
            key_index=(slots // span).astype(np.int64),
            bucket=(slots % span + low).astype(np.int64),
            key_names=encoded.dictionary.to_pylist(),
            key_fields=key_fields,
            values=values[rows] if values is not None else None,
        )

    def _cells(self, rule: Rule, numerator, view: BatchView, g: _Grouping, offsets, seen: int):
        """The rule's cells of this batch, and the batch rows their evidence quotes (lines are filled in later)."""
        rows, row_ts, cell_of, n, values = g.rows, g.row_ts, g.cell_of, g.cells, g.values
        hit = None
        if numerator is not None:
            whole = len(rows) == view.num_rows
            hit = numerator.mask(view if whole else view.subset(rows))
            hit = hit[rows] if whole else hit
        events = np.bincount(cell_of, minlength=n).astype(np.int64)
        hits = np.bincount(cell_of, weights=hit, minlength=n).astype(np.int64) if hit is not None else events
        cell_ts = np.full(n, -NO_TIME, np.int64)
        np.maximum.at(cell_ts, cell_of, row_ts)
        first_ts = np.full(n, NO_TIME, np.int64)
        counted = hit if hit is not None else np.ones(len(rows), bool)
        np.minimum.at(first_ts, cell_of[counted], row_ts[counted])
        sketches = None
        if values is not None:
            sketch_bucket = health_sketch.bucket_of(values)
            combined = cell_of * health_sketch.BUCKETS + sketch_bucket
            sub_slots, _ = _group(combined, n * health_sketch.BUCKETS)
            sub_counts = np.bincount(combined)[sub_slots]
            owner = sub_slots // health_sketch.BUCKETS
            bounds = np.searchsorted(owner, np.arange(n + 1))
            buckets_of = (sub_slots % health_sketch.BUCKETS).astype(np.int32)
            sketches = [(buckets_of[a:b], sub_counts[a:b].astype(np.int64)) for a, b in itertools.pairwise(bounds)]
        # Evidence: a ratio quotes its counted share (the 5xx), a percentile its slowest events, a count its first;
        # a shortage (silence) has nothing worth quoting.
        rank = -values if values is not None else row_ts.astype(np.float64)  # smaller quotes first
        candidates = np.flatnonzero(counted) if not _is_shortage(rule) else np.zeros(0, np.int64)
        chosen = _best_per_cell(candidates, rank, offsets[rows], cell_of, n, rule.evidence)
        evidence: list[list] = [[] for _ in range(n)]
        for i, r, t, o, row in zip(
            cell_of[chosen].tolist(),
            rank[chosen].tolist(),
            row_ts[chosen].tolist(),
            offsets[rows][chosen].tolist(),
            rows[chosen].tolist(),
        ):
            evidence[i].append((r, t, row, o))
        clients = None
        if rule.health.max_client_share is not None:  # the counted events are the few (404s): cheap per cell
            clients = [collections.Counter() for _ in range(n)]
            counted_rows = np.flatnonzero(counted)
            addresses = view.batch.column("source_ip").take(pa.array(rows[counted_rows])).to_pylist()
            for i, address in zip(cell_of[counted_rows].tolist(), addresses, strict=True):
                clients[i][address] += 1
        cells = HealthCells(
            rule_id=rule.id,
            key_names=g.key_names,
            key_fields=g.key_fields,
            key=g.key_index,
            bucket=g.bucket,
            events=events,
            hits=hits,
            first_ts=first_ts,
            cell_ts=cell_ts,
            sketches=sketches,
            evidence=evidence,
            seen_us=seen,
            clients=clients,
        )
        return cells, rows[chosen]


def _is_shortage(rule: Rule) -> bool:
    return rule.health.above is None and rule.health.above_baseline is None


def _best_per_cell(candidates, rank, offsets, cell_of, cells: int, keep: int) -> np.ndarray:
    """Of ``candidates`` (ascending rows, so ascending offsets), the ``keep`` best of each cell in (rank, offset)
    order, the order the fold merges by: a stable sort by rank, then a stable (radix, for small ints) sort by cell."""
    if not len(candidates):
        return candidates
    by_rank = candidates[np.argsort(rank[candidates], kind="stable")]
    owners = cell_of[by_rank]
    small = owners.astype(np.int16) if cells < 2**15 else owners
    order = by_rank[np.argsort(small, kind="stable")]
    owners = cell_of[order]
    return order[np.arange(len(order)) - np.searchsorted(owners, owners, side="left") < keep]


def _first_rows(codes: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The batch row where each key (``codes`` numbers them by first appearance) first occurs."""
    first = np.full(int(codes.max()) + 1, len(codes), np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    return rows[first]

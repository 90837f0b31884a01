"""The stateless half of detection: one batch of events in, the rule hits it contains out, grouped per rule and key.

Only rows that pass a rule's conditions leave this step, already grouped by
the rule's ``groupby`` key, as compact numpy arrays (timestamps, offsets, the
``distinct`` values) plus readable evidence lines for the first few rows of
each group.  Time-based decisions are left to ``alerts.engine``, which sees
these groups in event-time order.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alerts.conditions import BatchView, CompiledRule
from alerts.evidence import EVIDENCE_COLUMNS, LINE_BUILDERS
from alerts.normalize import NormalizeCache
from alerts.rules import RuleSet

#: Alert fields filled from the group key when the rule groups by them.
KEY_FIELDS = ("source_ip", "user_name", "url_domain")
#: Text of a null key part.
MISSING = "-"


@dataclasses.dataclass
class Hits:
    """Rows of one file that matched one rule for one key, in event-time order."""

    rule_id: str
    key: str
    fields: dict[str, str | None]
    path: str
    ts: np.ndarray  # int64 microseconds since the epoch, UTC
    offsets: np.ndarray  # int64 byte offsets in ``path``
    values: list[str | None] | None  # the rule's ``distinct`` field per row, when it has one
    lines: dict[int, str]  # evidence line by offset, for the first rows

    def __len__(self) -> int:
        return len(self.ts)

    def split(self, upto_us: int) -> tuple[Hits | None, Hits | None]:
        """``(rows with ts <= upto, rows after)``; either side is None when empty."""
        cut = int(np.searchsorted(self.ts, upto_us, side="right"))
        if cut == len(self.ts):
            return self, None
        if cut == 0:
            return None, self

        def part(sl: slice) -> Hits:
            offsets = self.offsets[sl]
            keep = set(offsets.tolist()) if self.lines else set()
            return dataclasses.replace(
                self,
                ts=self.ts[sl],
                offsets=offsets,
                values=self.values[sl] if self.values is not None else None,
                lines={o: t for o, t in self.lines.items() if o in keep},
            )

        return part(slice(0, cut)), part(slice(cut, None))


def shard_of(rule_id: str, key: str, shards: int) -> int:
    """Stable across processes and runs (unlike ``hash``), so a key always meets its own state."""
    return zlib.crc32(f"{rule_id}\x1f{key}".encode()) % shards


def _key_strings(batch: pa.RecordBatch, rows: np.ndarray, fields: tuple[str, ...]) -> list[str]:
    parts = []
    for name in fields:
        column = batch.column(name).take(pa.array(rows))
        if not pa.types.is_string(column.type):
            column = column.cast(pa.string())
        parts.append(column.fill_null(MISSING).to_pylist())
    if len(parts) == 1:
        return parts[0]
    return ["|".join(values) for values in zip(*parts)]


def _timestamps_us(batch: pa.RecordBatch) -> np.ndarray:
    ts = batch.column("timestamp")
    return pc.cast(ts, pa.int64()).to_numpy(zero_copy_only=False)


class Observer:
    """Evaluates every rule of one dataset on batches; holds the compiled rules and the normalisation cache."""

    def __init__(self, rules: RuleSet, dataset: str, normalizer: NormalizeCache | None = None):
        self.dataset = dataset
        self.rules = [CompiledRule(r) for r in rules.for_dataset(dataset)]
        self.normalizer = normalizer or NormalizeCache()
        self._line = LINE_BUILDERS[dataset]
        self._evidence_columns = EVIDENCE_COLUMNS[dataset]

    def observe(self, batch: pa.RecordBatch) -> list[Hits]:
        if not batch.num_rows or not self.rules:
            return []
        view = BatchView(batch, self.normalizer)
        ts = _timestamps_us(batch)
        offsets = batch.column("log_offset").to_numpy(zero_copy_only=False)
        paths = batch.column("log_file_path")
        single_path = paths.null_count == 0 and pc.min_max(paths)["min"] == pc.min_max(paths)["max"]
        hits: list[Hits] = []
        for compiled in self.rules:
            rows = np.flatnonzero(compiled.mask(view))
            if len(rows):
                hits.extend(self._group(compiled.rule, batch, rows, ts, offsets, paths, single_path))
        return hits

    def _group(self, rule, batch, rows, ts, offsets, paths, single_path) -> list[Hits]:
        keys = _key_strings(batch, rows, rule.groupby)
        if not single_path:
            row_paths = paths.take(pa.array(rows)).to_pylist()
            keys_with_path = [f"{k}\x00{p}" for k, p in zip(keys, row_paths)]
        else:
            keys_with_path = keys
        encoded = pc.dictionary_encode(pa.array(keys_with_path, pa.string()))
        group_index = encoded.indices.to_numpy(zero_copy_only=False)
        order = np.lexsort((offsets[rows], ts[rows], group_index))
        sorted_groups = group_index[order]
        bounds = np.flatnonzero(np.diff(sorted_groups)) + 1
        distinct_values = None
        if rule.distinct:
            column = batch.column(rule.distinct).take(pa.array(rows))
            distinct_values = column.cast(pa.string()).to_pylist() if not pa.types.is_string(column.type) else None
            distinct_values = distinct_values if distinct_values is not None else column.to_pylist()
        group_keys = encoded.dictionary.to_pylist()
        result = []
        for members in np.split(order, bounds):
            first = int(members[0])
            key = keys[first]
            group_rows = rows[members]
            path = paths[int(group_rows[0])].as_py()
            evidence_rows = group_rows[: rule.evidence]
            evidence = batch.select(list(self._evidence_columns)).take(pa.array(evidence_rows)).to_pylist()
            lines = {int(offsets[r]): self._line(row) for r, row in zip(evidence_rows, evidence)}
            fields = {name: None for name in KEY_FIELDS}
            first_row = {name: batch.column(name)[int(group_rows[0])].as_py() for name in KEY_FIELDS}
            for name in KEY_FIELDS:
                if name in rule.groupby or rule.is_signature:
                    fields[name] = first_row[name]
            result.append(
                Hits(
                    rule_id=rule.id,
                    key=key,
                    fields=fields,
                    path=path,
                    ts=ts[group_rows],
                    offsets=offsets[group_rows],
                    values=[distinct_values[m] for m in members] if distinct_values is not None else None,
                    lines=lines,
                )
            )
        del group_keys
        return result

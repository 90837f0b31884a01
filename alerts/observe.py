"""The stateless half of detection: one batch of events in, each rule's matching rows out.

Only rows that pass a rule's conditions leave this step, as columns (group
key, timestamp, offset, the ``distinct`` value) sorted by key and time, plus
readable evidence lines for the first few rows of each key.  Time-based
decisions are left to ``alerts.engine``, which folds these rows per key in
event-time order.
"""

from __future__ import annotations

import collections
import dataclasses
import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alerts.conditions import BatchView, CompiledRule, prefilters, shared_fields
from alerts.evidence import EVIDENCE_COLUMNS, evidence_lines
from alerts.health_observe import HealthObserver
from alerts.normalize import NormalizeCache
from alerts.rules import RuleSet
from alerts.value_memo import ValueMemo

#: Alert fields filled from the group key when the rule groups by them (every one, for signatures).
KEY_FIELDS = ("source_ip", "user_name", "url_domain")
#: Text of a null key part.
MISSING = "-"
#: Signature hits keep an evidence line for every row of a key up to this many (they are rare).
SIGNATURE_EVIDENCE_ROWS = 100
#: A rule matching more than this share (and number) of a batch's rows is "wide" (request floods)...
WIDE_RULE_SHARE = 0.25
WIDE_RULE_MIN_ROWS = 1000
#: ...and quotes evidence lines only for keys with at least this many rows in the batch (or a quarter of its count).
BUSY_KEY_ROWS = 10


@dataclasses.dataclass
class Hits:
    """Rows of one file that matched one rule, sorted by ``(key, ts, offset)``.

    Keys are stored once (``key_names``) and referenced per row (``key_index``), so
    a rule that matches every request does not carry a million strings around.
    """

    rule_id: str
    path: str
    key_names: pa.Array  # strings, one per key
    key_fields: pa.RecordBatch  # per key: the alert's source_ip, user_name, url_domain (KEY_FIELDS)
    key_index: np.ndarray  # int64, per row
    ts: np.ndarray  # int64 microseconds since the epoch, UTC
    offsets: np.ndarray  # int64 byte offsets in ``path``
    values: np.ndarray | None  # object array: the rule's ``distinct`` field per row
    lines: dict[int, str]  # evidence line by offset, for the first rows of each key

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, rows: np.ndarray, lines: dict[int, str] | None = None) -> Hits:
        """The hits of ``rows`` (``lines``: their evidence lines, when the caller has already picked them)."""
        kept = self.key_index[rows]
        # The keys still used, in their order, and each row's index among them (np.unique without its sort).
        used = np.flatnonzero(np.bincount(kept, minlength=len(self.key_names)))
        renumber = np.zeros(len(self.key_names), dtype=np.int64)
        renumber[used] = np.arange(len(used), dtype=np.int64)
        index = renumber[kept]
        offsets = self.offsets[rows]
        if lines is None:
            wanted = set(offsets.tolist()) if self.lines else ()
            lines = {o: t for o, t in self.lines.items() if o in wanted}
        return dataclasses.replace(
            self,
            key_names=self.key_names.take(pa.array(used)),
            key_fields=self.key_fields.take(pa.array(used)),
            key_index=index,
            ts=self.ts[rows],
            offsets=offsets,
            values=self.values[rows] if self.values is not None else None,
            lines=lines,
        )

    def split(self, upto_us: int) -> tuple[Hits | None, Hits | None]:
        """``(rows with ts <= upto, rows after)``; either side is None when empty."""
        early = self.ts <= upto_us
        count = int(np.count_nonzero(early))
        if count == len(self.ts):
            return self, None
        if count == 0:
            return None, self
        return self.take(np.flatnonzero(early)), self.take(np.flatnonzero(~early))

    def by_shard(self, shards: int, whole: bool = False) -> dict[int, Hits]:
        """This group split by ``shards_of`` its keys, or kept ``whole`` on its rule's one shard."""
        if whole:
            return {rule_shard(self.rule_id, shards): self}
        shard_per_key = shards_of(self.rule_id, self.key_names, shards)
        if (shard_per_key == shard_per_key[0]).all():
            return {int(shard_per_key[0]): self}
        shard = shard_per_key[self.key_index]
        lines: dict[int, dict[int, str]] = collections.defaultdict(dict)
        if self.lines:  # each evidence line to its row's shard, in one pass (offsets are unique within a file)
            quoted = np.fromiter(self.lines, np.int64, len(self.lines))
            order = np.argsort(self.offsets, kind="stable")
            line_shards = shard[order[np.searchsorted(self.offsets, quoted, sorter=order)]]
            for (offset, text), s in zip(self.lines.items(), line_shards.tolist()):
                lines[s][offset] = text
        return {int(s): self.take(np.flatnonzero(shard == s), lines[int(s)]) for s in np.unique(shard)}

    @classmethod
    def concat(cls, parts: list[Hits]) -> Hits:
        """Several groups of one rule and one file as one, rows in the order given.

        Keys are not deduplicated: a key in two parts is listed twice (``key_index`` points at either), which
        the fold treats exactly as it treats the parts apart (``alerts.engine._concat`` numbers the listed keys by
        first appearance).  So folding the concatenation raises what folding the parts raises.
        """
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        starts = np.cumsum([0] + [len(p.key_names) for p in parts[:-1]])
        lines: dict[int, str] = {}
        for p in parts:
            lines.update(p.lines)
        return cls(
            rule_id=first.rule_id,
            path=first.path,
            key_names=pa.concat_arrays([p.key_names for p in parts]),
            key_fields=pa.concat_batches([p.key_fields for p in parts]),
            key_index=np.concatenate([p.key_index + start for p, start in zip(parts, starts.tolist())]),
            ts=np.concatenate([p.ts for p in parts]),
            offsets=np.concatenate([p.offsets for p in parts]),
            values=np.concatenate([p.values for p in parts]) if first.values is not None else None,
            lines=lines,
        )


def merge_hits(found: list) -> list:
    """Many batches' hits as one group per rule and file (first-seen order); health cells are passed on as they are.

    What crosses to the stateful step is then a few large groups instead of one small group per rule, batch and
    shard: pickling, Beam's state and the fold each cost per group far more than per row.
    """
    groups: dict[tuple[str, str], list[Hits]] = {}
    others = []
    for hits in found:
        if isinstance(hits, Hits):
            groups.setdefault((hits.rule_id, hits.path), []).append(hits)
        else:
            others.append(hits)
    return [Hits.concat(parts) for parts in groups.values()] + others


_PRIME = np.uint64(0x100000001B3)  # FNV's 64-bit prime: odd, so invertible modulo 2**64
_PRIME_INVERSE = np.uint64(pow(0x100000001B3, -1, 2**64))


def stable_hash(strings: pa.Array) -> np.ndarray:
    """A 64-bit polynomial hash of each string, computed over the Arrow buffers at once.

    Stable across processes, runs and array layouts (unlike ``hash``), so a key is
    always sent to the same shard and meets its own state.
    """
    strings = pc.fill_null(strings.cast(pa.large_string()), "")
    if len(strings) == 0:
        return np.zeros(0, np.uint64)
    offsets = np.frombuffer(strings.buffers()[1], np.int64)[strings.offset : strings.offset + len(strings) + 1]
    data_buffer = strings.buffers()[2]
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    first, last = int(offsets[0]), int(offsets[-1])
    chars = data[first:last].astype(np.uint64) + np.uint64(1)
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(len(chars), _PRIME, np.uint64))
        inverse = np.concatenate([[np.uint64(1)], np.cumprod(np.full(len(chars), _PRIME_INVERSE, np.uint64))])
        prefix = np.concatenate([[np.uint64(0)], np.cumsum(chars * powers, dtype=np.uint64)])
        starts, ends = offsets[:-1] - first, offsets[1:] - first
        h = (prefix[ends] - prefix[starts]) * inverse[starts] + (ends - starts).astype(np.uint64)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
    return h


@functools.lru_cache(maxsize=1024)
def _salt(rule_id: str) -> np.uint64:
    return stable_hash(pa.array([rule_id]))[0]


def shards_of(rule_id: str, keys: pa.Array, shards: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return ((stable_hash(keys) ^ _salt(rule_id)) % np.uint64(shards)).astype(np.int64)


def rule_shard(rule_id: str, shards: int) -> int:
    """The one shard of a rule folded for all keys at once: splitting its (many) rows by key would cost more."""
    return int(_salt(rule_id) % np.uint64(shards))


def _quoted(rule, sizes: np.ndarray, starts: np.ndarray, rows: int, batch_rows: int) -> np.ndarray:
    """Which of a batch's hits of ``rule`` quote their line: keys' rows in order, ``sizes`` per key from ``starts``.

    The first rows of each key (every row of a key, for rare signature hits).  A rule matching most of the batch
    (a flood rule sees every request) quotes lines only for keys busy enough to matter here; other keys' evidence
    still names file and offset."""
    limit = SIGNATURE_EVIDENCE_ROWS if rule.is_signature else rule.evidence
    position = np.arange(rows) - np.repeat(starts, sizes)
    wanted = position < limit
    if not rule.is_signature and rows > max(WIDE_RULE_MIN_ROWS, WIDE_RULE_SHARE * batch_rows):
        busy = max(BUSY_KEY_ROWS, getattr(rule.threshold, "count", 0) // 4)
        wanted &= np.repeat(sizes >= busy, sizes)
    return wanted


def observe_many(observer: Observer, batches: list[pa.RecordBatch]) -> list:
    """``observer.observe`` over several batches of one file read in a row, joined into one: the same hits and
    evidence as batch by batch (``Observer.observe``'s ``segments``), for a fraction of the per-batch cost of
    evaluating every rule."""
    return observer.observe(*join_batches([observer.trim(b) for b in batches]))


def join_batches(batches: list[pa.RecordBatch]) -> tuple[pa.RecordBatch, np.ndarray | None]:
    """Batches of one file read in a row as one batch and, per row, the index of the batch it came from.

    ``batches`` is emptied: the join goes column by column, and each column's pieces are let go once joined, so
    the batches are not held twice over while they are copied (at 64k rows the copy had doubled the ~27 MiB the
    observed columns hold, and that moment was the batch job's peak of Arrow memory)."""
    if len(batches) == 1:
        return batches.pop(), None
    schema = batches[0].schema
    segments = np.repeat(np.arange(len(batches)), [b.num_rows for b in batches])
    pieces = [[b.column(i) for b in batches] for i in range(len(schema))]
    batches.clear()
    joined = []
    for i in range(len(pieces)):
        joined.append(pa.concat_arrays(pieces[i]))
        pieces[i] = None  # this column's pieces go now, not with the last column
    return pa.RecordBatch.from_arrays(joined, schema=schema), segments


def kept_whole(rules: RuleSet, dataset: str) -> frozenset[str]:
    """Ids of the rules whose hits go to one shard whole, each rule to its own: plain sliding counts (many rows,
    folded for all keys at once) and signatures (rare rows, folded with a binary search per key).  Splitting
    their few or vectorised rows by key into every shard cost more than folding them in one place."""
    return frozenset(r.id for r in rules.for_dataset(dataset) if r.counts_plainly or r.is_signature)


def _one_path(paths: pa.Array) -> str | None:
    """The file every row comes from, when there is one (a batch is one file's lines in practice), else None."""
    if not len(paths) or paths.null_count:
        return None
    unique = pc.unique(paths)
    return unique[0].as_py() if len(unique) == 1 else None


def _as_text(column: pa.Array) -> pa.Array:
    return column if pa.types.is_string(column.type) else column.cast(pa.string())


def _key_column(batch: pa.RecordBatch, rows: pa.Array, fields: tuple[str, ...]) -> pa.Array:
    parts = [_as_text(batch.column(name).take(rows)).fill_null(MISSING) for name in fields]
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, "|")


#: Columns observing reads whatever the rules: time and place of each row, the alert's key fields.
BASE_COLUMNS = ("timestamp", "log_offset", "log_file_path", "source_ip", *KEY_FIELDS)


def observed_columns(rules: RuleSet, dataset: str) -> frozenset[str]:
    """Every column observing ``dataset`` with ``rules`` reads: their fields, the evidence lines', ``BASE_COLUMNS``."""
    names = set(BASE_COLUMNS) | set(EVIDENCE_COLUMNS[dataset])
    for rule in rules.for_dataset(dataset):
        names |= rule.fields()
    return frozenset(names)


class Observer:
    """Evaluates every rule of one dataset on batches; holds the compiled rules and the normalisation cache."""

    def __init__(self, rules: RuleSet, dataset: str, normalizer: NormalizeCache | None = None):
        self.dataset = dataset
        self.columns = observed_columns(rules, dataset)
        self.rules = [CompiledRule(r) for r in rules.for_dataset(dataset) if not r.is_health]
        self.health = HealthObserver([r for r in rules.for_dataset(dataset) if r.is_health], dataset)
        self.prefilters = prefilters(self.rules + self.health.compiled)
        self.shared = shared_fields(self.rules + self.health.compiled)
        self.normalizer = normalizer or NormalizeCache()
        self.memos: dict[str, ValueMemo] = {}  # per text field, kept across batches
        self._segments: np.ndarray | None = None  # see ``observe``
        self._segment_rows: np.ndarray | None = None

    def trim(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch's columns that observing reads (no copy): all a batch held or joined for observing needs to
        keep (two thirds of an access batch's bytes; joining had copied every column)."""
        return batch.select([name for name in batch.schema.names if name in self.columns])

    def observe(self, batch: pa.RecordBatch, segments: np.ndarray | None = None) -> list[Hits]:
        """Each rule's hits in ``batch``.

        ``segments`` (per row, the index of the batch it came from, ascending) marks a batch made of several
        batches of one file read in a row (``observe_many``): rows and evidence are then exactly those of observing
        each batch on its own, which quotes the first rows of each key per batch.
        """
        if not batch.num_rows or not (self.rules or self.health.rules):
            return []
        self._segments = segments
        self._segment_rows = np.bincount(segments) if segments is not None else None  # rows per batch joined
        view = BatchView(batch, self.normalizer, self.prefilters, self.memos, self.shared)
        ts = pc.cast(batch.column("timestamp"), pa.int64()).to_numpy(zero_copy_only=False)
        offsets = batch.column("log_offset").to_numpy(zero_copy_only=False)
        paths = batch.column("log_file_path")
        one_path = _one_path(paths)
        health = self.health.observe(view, ts, offsets)  # per-minute cells of the service-health rules
        hits: list[Hits] = []
        quoted: list[np.ndarray] = []  # per hits, the rows whose evidence line it keeps
        for compiled in self.rules:
            rows = np.flatnonzero(compiled.mask(view))
            if not len(rows):
                continue
            if one_path is not None:
                row_paths, unique_paths = None, [one_path]
            else:
                row_paths = paths.take(pa.array(rows))
                unique_paths = pc.unique(row_paths).to_pylist()
            for path in unique_paths:  # one file per batch in practice; kept apart if not
                on_path = rows
                if len(unique_paths) > 1:
                    on_path = rows[pc.equal(row_paths, path).fill_null(False).to_numpy(zero_copy_only=False)]
                found, evidence_rows = self._hits(compiled, view, on_path, path, ts, offsets)
                hits.append(found)
                quoted.append(evidence_rows)
        self._quote(batch, hits, quoted, offsets)
        return hits + health

    def _quote(self, batch: pa.RecordBatch, hits: list[Hits], quoted: list[np.ndarray], offsets: np.ndarray) -> None:
        """Evidence lines for every rule's quoted rows, built in one go (rules often quote the same rows)."""
        if not hits:
            return
        rows = np.unique(np.concatenate(quoted))
        lines = evidence_lines(batch, rows, self.dataset)
        for found, wanted in zip(hits, quoted):
            at = np.searchsorted(rows, wanted).tolist()
            found.lines = dict(zip(offsets[wanted].tolist(), (lines[i] for i in at)))

    def _hits(
        self, compiled: CompiledRule, view: BatchView, rows: np.ndarray, path: str, ts, offsets
    ) -> tuple[Hits, np.ndarray]:
        """The rule's rows as ``Hits`` (evidence lines still to fill in) and the rows it quotes."""
        rule, batch = compiled.rule, view.batch
        taken = pa.array(rows)
        encoded = pc.dictionary_encode(_key_column(batch, taken, rule.groupby))
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        order = np.lexsort((offsets[rows], ts[rows], codes))
        rows, codes = rows[order], codes[order]
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        # Evidence (``_quoted``): the first rows of each key, per batch read.
        sizes = np.diff(np.r_[starts, len(rows)])
        if self._segments is None:
            wanted = _quoted(rule, sizes, starts, len(rows), batch.num_rows)
        else:  # per batch of the ones joined: each key's first rows in each (rows stay in (ts, offset) order)
            segment = self._segments[rows]
            regroup = np.lexsort((segment, codes))  # stable: by key, then batch, then as sorted before
            in_order = segment[regroup]
            cut = np.flatnonzero(
                np.r_[True, (codes[regroup][1:] != codes[regroup][:-1]) | (in_order[1:] != in_order[:-1])]
            )
            cut_sizes = np.diff(np.r_[cut, len(rows)])
            batch_rows = self._segment_rows
            wanted = np.zeros(len(rows), dtype=bool)
            for s in np.unique(segment).tolist():
                positions = np.flatnonzero(in_order == s)  # the groups of batch s, one after the other
                group_sizes = cut_sizes[in_order[cut] == s]
                group_starts = np.r_[0, np.cumsum(group_sizes)[:-1]]
                wanted[regroup[positions]] = _quoted(
                    rule, group_sizes, group_starts, len(positions), int(batch_rows[s])
                )
        evidence_rows = rows[wanted]
        # Keys in first-row order; each key's alert fields come from its first row.
        first_rows = pa.array(rows[starts])
        key_names = encoded.dictionary.take(pa.array(codes[starts]))
        key_fields = pa.RecordBatch.from_arrays(
            [
                _as_text(batch.column(name).take(first_rows))
                if name in rule.groupby or rule.is_signature
                else pa.nulls(len(starts), pa.string())
                for name in KEY_FIELDS
            ],
            names=list(KEY_FIELDS),
        )
        key_index = np.repeat(np.arange(len(starts), dtype=np.int64), sizes)
        values = None
        if rule.distinct:
            values = np.asarray(_as_text(batch.column(rule.distinct).take(pa.array(rows))).to_pylist(), dtype=object)
        elif rule.is_sequence:  # per row: (the steps it matches as bits, the value the steps must share)
            bits = compiled.step_bits(view, rows).tolist()
            shared = (
                _as_text(batch.column(rule.same).take(pa.array(rows))).to_pylist() if rule.same else [None] * len(rows)
            )
            values = np.empty(len(rows), dtype=object)
            values[:] = list(zip(bits, shared))
        found = Hits(rule.id, path, key_names, key_fields, key_index, ts[rows], offsets[rows], values, {})
        return found, evidence_rows

"""Rule conditions evaluated over a whole Arrow batch at once.

Text conditions run on the *distinct* values of a column, in normalised form
where the field carries a request, with RE2 through ``pyarrow.compute``; the
per-value answer is remembered across batches (``alerts.value_memo``) and
spread back to the rows.  Log columns repeat heavily (paths, agents, methods),
so a rule mostly costs one numpy index per batch.

Most requests match no attack pattern at all, so the patterns of every rule on
one field are also joined into a single pre-filter: one RE2 pass over the
distinct values finds the few candidates, and each rule's own patterns then
run on those alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alerts.grammars import GRAMMARS, Grammar
from alerts.normalize import NormalizeCache, normalize_request
from alerts.regex import Regex
from alerts.rules import LIST_OPS, NUMBER_OPS, Condition, Group, Rule
from alerts.value_memo import ValueMemo

FieldKey = tuple[str, bool]  # (field, normalised)
#: Ops whose patterns join a field's pre-filter.  Word lists (``contains_any`` & co., hundreds of literals each)
#: stay out: joined with the rest they made RE2 slower than running them on their own.
JOINED_OPS = frozenset({"regex", "regex_any", "contains", "grammar"})
#: Once a rule's conditions so far leave at most this share of a batch's rows, the next ones run on those rows alone.
SUBSET_SHARE = 0.25


class BatchView:
    """A record batch plus, per text field, each row's position among the field's remembered values (``ValueMemo``)."""

    def __init__(
        self,
        batch: pa.RecordBatch,
        normalizer: NormalizeCache,
        prefilters: dict[FieldKey, str] | None = None,
        memos: dict[str, ValueMemo] | None = None,
        shared: frozenset[str] = frozenset(),
    ):
        self.batch = batch
        self.num_rows = batch.num_rows
        self._normalizer = normalizer
        self._prefilters = prefilters or {}
        self._memos = memos if memos is not None else {}
        #: Fields several rules test: a subset view takes their positions from the whole batch's.
        self._shared = shared
        self._positions: dict[str, np.ndarray] = {}
        self._present: dict[str, np.ndarray] = {}
        self._numbers: dict[str, tuple[pa.Array, np.ndarray]] = {}

    def column(self, name: str) -> pa.Array:
        return self.batch.column(name)

    def subset(self, rows: np.ndarray) -> BatchView:
        """The same batch restricted to ``rows``, for a rule's later conditions once its first ones left few rows:
        their columns are taken (and hashed) for those rows alone; positions already known here are reused."""
        return _SubsetView(self, rows)

    def positions(self, name: str) -> np.ndarray:
        """Per row, the position of its value among the field's known values (-1 for null)."""
        if name not in self._positions:
            column = self.column(name)
            if column.type != pa.string():
                column = column.cast(pa.string())
            memo = self._memos.get(name)
            if memo is None:
                memo = self._memos[name] = ValueMemo()
            self._positions[name], self._present[name] = memo.positions_and_present(column)
        return self._positions[name]

    def present(self, name: str) -> np.ndarray:
        """The positions (among the field's known values) of the values the batch holds, each once: a test none of
        them passes is False on every row, known without touching the rows."""
        self.positions(name)
        return self._present[name]

    def distinct(self, name: str, normalized: bool) -> tuple[pa.Array, np.ndarray]:
        """``(values, indices)``: the field's known values (raw or normalised) and, per row, its position in them."""
        indices = self.positions(name)
        memo = self._memos[name]
        return (memo.normalized(self._normalizer) if normalized else memo.keys), indices

    def answers(self, test, name: str, normalized: bool, run: Callable[[pa.Array], pa.Array], prefiltered: bool):
        """``run``'s answer per known value of the field, then False (null rows); values that fail the field's
        pre-filter (when ``prefiltered``) are answered False without running ``run``."""
        values, _ = self.distinct(name, normalized)
        memo = self._memos[name]
        pattern = self._prefilters.get((name, normalized)) if prefiltered else None
        if pattern is None:
            return memo.answers(test, values, lambda known, start: _to_numpy(run(known.slice(start))))
        passed = self._passed(name, normalized)

        def among_candidates(known: pa.Array, start: int) -> np.ndarray:
            found = np.zeros(len(known) - start, dtype=bool)
            candidates = np.flatnonzero(passed[start : len(known)])
            if len(candidates):
                found[candidates] = _to_numpy(run(known.take(pa.array(candidates + start))))
            return found

        return memo.answers(test, values, among_candidates)

    def _passed(self, name: str, normalized: bool) -> np.ndarray:
        values, _ = self.distinct(name, normalized)
        prefilter = self._prefilters[(name, normalized)]
        return self._memos[name].answers(
            ("prefilter", normalized), values, lambda known, start: prefilter.search(known.slice(start))
        )

    def distinct_numbers(self, name: str) -> tuple[pa.Array, np.ndarray]:
        """``(values, indices)`` of a numeric column, like ``distinct`` (-1 for null)."""
        if name not in self._numbers:
            encoded = pc.dictionary_encode(self.column(name))
            indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
            self._numbers[name] = (encoded.dictionary, indices)
        return self._numbers[name]

    def candidates(self, name: str, normalized: bool) -> np.ndarray | None:
        """Positions of the known values that pass the field's pre-filter (None: the field has none)."""
        if (name, normalized) not in self._prefilters:
            return None
        return np.flatnonzero(self._passed(name, normalized)[:-1])


class _SubsetView(BatchView):
    """Some rows of a ``BatchView``: columns taken on first use, sharing the parent's memos and pre-filters."""

    def __init__(self, parent: BatchView, rows: np.ndarray):
        self.batch = parent.batch
        self.num_rows = len(rows)
        self._normalizer, self._prefilters, self._memos = parent._normalizer, parent._prefilters, parent._memos
        self._parent, self._rows, self._taken = parent, rows, pa.array(rows)
        self._columns: dict[str, pa.Array] = {}
        self._positions: dict[str, np.ndarray] = {}
        self._present: dict[str, np.ndarray] = {}
        self._numbers = {}
        self._shared = parent._shared

    def column(self, name: str) -> pa.Array:
        if name not in self._columns:
            self._columns[name] = self._parent.column(name).take(self._taken)
        return self._columns[name]

    def positions(self, name: str) -> np.ndarray:
        """The parent's positions for these rows when the parent knows them or several rules want them (hashed once
        over the batch for all); otherwise hashed over these rows alone."""
        if name not in self._positions and (name in self._parent._positions or name in self._shared):
            self._positions[name] = self._parent.positions(name)[self._rows]
            self._present[name] = self._parent.present(name)  # the whole batch's values: enough to rule out
        return super().positions(name)

    def distinct_numbers(self, name: str) -> tuple[pa.Array, np.ndarray]:
        if name not in self._numbers:  # status codes and sizes: encoded once over the batch, for every rule
            values, indices = self._parent.distinct_numbers(name)
            self._numbers[name] = (values, indices[self._rows])
        return self._numbers[name]


def _alternation(words, prefix: str = "", suffix: str = "") -> str:
    return prefix + "(?:" + "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True)) + ")" + suffix


def _text_test(condition: Condition) -> tuple[Callable[[pa.Array], pa.Array], str | None]:
    """A vectorised test over an array of (possibly normalised) strings, and the RE2 pattern it amounts to.

    The pattern (None for the hash-based ``equals`` and ``in``) matches exactly the values the test accepts;
    pre-filters are built from it.
    """
    op, values = condition.op, condition.values
    if condition.normalize:  # compare like with like: the operands are normalised the way the requests are
        if op in LIST_OPS and op != "regex_any":
            values = tuple(normalize_request(v) for v in values)
        elif op in ("equals", "contains"):
            values = normalize_request(str(values))
    if op == "equals":
        return (lambda a: pc.equal(a, str(values))), None
    if op == "in":
        value_set = pa.array(sorted(set(values)), pa.string())
        return (lambda a: pc.is_in(a, value_set=value_set)), None
    if op == "contains":
        return (lambda a: pc.match_substring(a, str(values))), re.escape(str(values))
    if op == "regex":
        return Regex(values).search, values
    if op == "grammar":
        return _grammar_test(GRAMMARS[values], condition.field)
    if op == "contains_any":
        pattern = _alternation(values)
    elif op == "words_any":
        pattern = _alternation(values, prefix="(?:^|[^a-z0-9])", suffix="(?:[^a-z0-9]|$)")
    elif op == "startswith_any":
        pattern = _alternation(values, prefix="^")
    elif op == "endswith_any":
        pattern = _alternation(values, suffix="$")
    else:  # regex_any
        pattern = "|".join(f"(?:{p})" for p in values)
    return Regex(pattern).search, pattern


def _grammar_test(grammar: Grammar, field: str) -> tuple[Callable[[pa.Array], pa.Array], str]:
    """The grammar on the values its RE2 candidate pattern passes; the rest are answered False at RE2 speed."""
    candidates, read = Regex(grammar.candidates(field)), grammar.reader(field)

    def run(values: pa.Array) -> np.ndarray:
        found = np.zeros(len(values), dtype=bool)
        passed = np.flatnonzero(candidates.search(values))
        if len(passed):
            texts = values.take(pa.array(passed)).to_pylist()
            found[passed] = [text is not None and read(text) for text in texts]
        return found

    return run, candidates.pattern


def _to_numpy(mask: pa.Array | np.ndarray) -> np.ndarray:
    if isinstance(mask, np.ndarray):
        return mask
    return mask.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)


class CompiledCondition:
    """One condition, ready to run on any ``BatchView``."""

    def __init__(self, condition: Condition):
        self.condition = condition
        self._text, pattern = _text_test(condition) if self._is_text() else (None, None)
        #: The pattern this condition adds to its field's pre-filter (None: it runs on every value).
        self.pattern = pattern if condition.op in JOINED_OPS else None

    def _is_text(self) -> bool:
        c = self.condition
        if c.op in NUMBER_OPS or c.op in ("class", "exists"):
            return False
        if c.op in ("in", "equals"):
            return not all(isinstance(v, (int, float)) for v in (c.values if c.op == "in" else [c.values]))
        return True

    def mask(self, view: BatchView) -> np.ndarray:
        c = self.condition
        if self._text is not None:
            column_type = view.column(c.field).type
            if pa.types.is_integer(column_type) and c.op in ("in", "equals"):
                result = self._numeric(view)
            else:
                per_value = view.answers(self, c.field, c.normalize, self._text, self.pattern is not None)
                if per_value[view.present(c.field)].any():
                    result = per_value[view.positions(c.field)]
                else:  # no value of the batch passes: most rules on most batches
                    result = np.zeros(view.num_rows, dtype=bool)
        else:
            result = self._numeric(view)
        return ~result if c.negate else result

    def _numeric(self, view: BatchView) -> np.ndarray:
        c = self.condition
        column = view.column(c.field)
        if c.op == "exists":
            present = pc.is_valid(column)
            if pa.types.is_string(column.type):
                present = pc.and_(present, pc.invert(pc.is_in(column, value_set=pa.array(["", "-"]))))
            result = _to_numpy(present)
            return result if c.values else ~result
        if pa.types.is_integer(column.type):  # status codes, sizes: few distinct values, tested once each
            values, indices = view.distinct_numbers(c.field)
            return np.append(_to_numpy(self._number_test(values)), False)[indices]
        return _to_numpy(self._number_test(column))

    def _number_test(self, column: pa.Array) -> pa.Array:
        c = self.condition
        if c.op == "class":
            classes = pa.array(list(c.values), pa.int32())
            return pc.is_in(pc.divide(column.cast(pa.int32()), 100), value_set=classes)
        if c.op == "in":
            return pc.is_in(column, value_set=pa.array([int(v) for v in c.values], column.type))
        if c.op == "equals":
            return pc.equal(column, pa.scalar(c.values).cast(column.type))
        compare = {"gt": pc.greater, "gte": pc.greater_equal, "lt": pc.less, "lte": pc.less_equal}[c.op]
        return compare(column, c.values)


def _joined_alternatives(conditions: tuple) -> list:
    """An ``any``/``none`` group's regexes on one field as one regex: one RE2 pass instead of one per pattern."""
    kept, by_field = [], {}
    for item in conditions:
        if isinstance(item, Condition) and not item.negate and item.op in ("regex", "regex_any"):
            by_field.setdefault((item.field, item.normalize), []).append(item)
        else:
            kept.append(item)
    for (field, normalize), items in by_field.items():
        if len(items) == 1:
            kept += items
        else:
            pattern = "|".join(f"(?:{_text_test(item)[1]})" for item in items)
            kept.append(Condition(field, "regex", pattern, normalize))
    return kept


class CompiledGroup:
    def __init__(self, group: Group):
        self.mode = group.mode
        items = group.conditions if group.mode == "all" else _joined_alternatives(group.conditions)
        self.parts = [compile_condition(c) for c in items]

    def mask(self, view: BatchView) -> np.ndarray:
        if self.mode == "all":
            result = np.ones(view.num_rows, dtype=bool)
            for part in self.parts:
                result &= part.mask(view)
            return result
        result = np.zeros(view.num_rows, dtype=bool)
        for part in self.parts:
            result |= part.mask(view)
        return ~result if self.mode == "none" else result


def compile_condition(item) -> CompiledCondition | CompiledGroup:
    return CompiledGroup(item) if isinstance(item, Group) else CompiledCondition(item)


def _conditions(parts) -> list[CompiledCondition]:
    found = []
    for part in parts:
        found += _conditions(part.parts) if isinstance(part, CompiledGroup) else [part]
    return found


class CompiledRule:
    """A rule's conditions compiled once per worker; ``mask`` says which rows of a batch match (all conditions)."""

    def __init__(self, rule: Rule):
        self.rule = rule
        self.parts = [compile_condition(c) for c in rule.conditions]
        #: A sequence rule's steps, each compiled on its own (``conditions`` is "any step", its pre-filter).
        self.steps = [CompiledGroup(Group("all", step.conditions)) for step in rule.steps]

    def step_bits(self, view: BatchView, rows: np.ndarray) -> np.ndarray:
        """For a sequence rule, per row of ``rows``: bit ``i`` set when the row matches step ``i``."""
        bits = np.zeros(len(rows), dtype=np.int64)
        subset = view.subset(rows)
        for i, step in enumerate(self.steps):
            bits |= step.mask(subset).astype(np.int64) << i
        return bits

    def mask(self, view: BatchView) -> np.ndarray:
        result = np.ones(view.num_rows, dtype=bool)
        for part in self.parts:
            rows = np.flatnonzero(result)
            if not len(rows):
                break
            if len(rows) <= view.num_rows * SUBSET_SHARE:  # the rest only needs testing on the rows still in
                result[rows] = part.mask(view.subset(rows))
            else:
                result &= part.mask(view)
        return result


def prefilters(rules: list[CompiledRule]) -> dict[FieldKey, Regex]:
    """Per text field that several patterns test, one RE2 alternation of them all: its matches are the candidates."""
    patterns: dict[FieldKey, list[str]] = {}
    for rule in rules:
        for condition in _conditions(rule.parts):
            if condition.pattern is not None:
                key = (condition.condition.field, condition.condition.normalize)
                patterns.setdefault(key, []).append(condition.pattern)
    joined = {}
    for key, found in patterns.items():
        if len(set(found)) < 2:
            continue  # a pre-filter would only repeat the one pattern
        pattern = "|".join(f"(?:{p})" for p in dict.fromkeys(found))
        try:
            pc.match_substring_regex(pa.array([""]), pattern)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # too large for RE2: each condition runs on every value instead
        joined[key] = Regex(pattern)
    return joined


def shared_fields(rules: list[CompiledRule]) -> frozenset[str]:
    """Text fields that more than one rule tests."""
    users: dict[str, set[str]] = {}
    for rule in rules:
        for condition in _conditions(rule.parts):
            users.setdefault(condition.condition.field, set()).add(rule.rule.id)
    return frozenset(field for field, ids in users.items() if len(ids) > 1)

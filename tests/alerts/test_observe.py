"""Observed hits split across shards: every row and its evidence line land on its key's shard, none twice."""

from __future__ import annotations

import pyarrow as pa

from alerts.observe import Observer, shards_of
from tests.alerts.events import access, batch


def test_hits_split_by_shard_keep_each_rows_evidence_line(default_rules):
    rows = [access(i, ip=f"203.0.113.{i % 40}", url="/nothing-here", status=404) for i in range(400)]
    hits = [h for h in Observer(default_rules, "access").observe(batch(rows)) if h.rule_id == "http-probing"]
    assert hits and len(hits[0]) == 400 and hits[0].lines
    whole = hits[0]
    parts = whole.by_shard(8)
    assert len(parts) > 1
    assert sum(len(p) for p in parts.values()) == len(whole)
    assert sorted(o for p in parts.values() for o in p.offsets.tolist()) == sorted(whole.offsets.tolist())
    merged = {o: t for p in parts.values() for o, t in p.lines.items()}
    assert merged == whole.lines and sum(len(p.lines) for p in parts.values()) == len(whole.lines)
    for shard, part in parts.items():
        assert set(shards_of(whole.rule_id, part.key_names, 8).tolist()) == {shard}
        assert set(part.lines) <= set(part.offsets.tolist())


def _comparable(alerts) -> list[str]:
    return sorted(repr(sorted((k, v) for k, v in a.items() if k != "detected_at")) for a in alerts)


def test_hits_merged_across_batches_fold_to_the_alerts_of_the_batches_apart(default_rules):
    """A bounded replay sends one group per rule and file (``merge_hits``); its keys repeat across the batches
    merged, and the folds must not notice: same alerts, same evidence, same fields."""
    from alerts.engine import replay
    from alerts.observe import Hits, merge_hits

    rows = []
    for i in range(900):
        rows.append(access(i, ip=f"198.51.100.{i % 30}", url=f"/page/{i % 13}"))
        if i % 3 == 0:
            rows.append(access(i, ip="203.0.113.5", url=f"/missing/{i}.php", status=404))  # a slow 404 scan
        if i % 50 == 0:
            rows.append(access(i, ip="192.0.2.66", url=f"/item?id={i}%27%20UNION%20SELECT%20pw%20FROM%20t--"))
        if 400 <= i < 420:
            rows.append(access(i, ip="192.0.2.77", url="/wp-login.php", method="POST"))
    observer = Observer(default_rules, "access")
    found = []
    for start in range(0, len(rows), 150):
        piece = batch(rows[start : start + 150])
        offsets = [100 * (start + i) for i in range(piece.num_rows)]
        found += observer.observe(piece.set_column(piece.schema.get_field_index("log_offset"), "log_offset",
                                                   pa.array(offsets, pa.int64())))  # fmt: skip
    merged = merge_hits(found)
    assert len(merged) < len(found)
    assert sum(len(h) for h in merged) == sum(len(h) for h in found)
    repeated = [h for h in merged if isinstance(h, Hits) and len(set(h.key_names.to_pylist())) < len(h.key_names)]
    assert repeated, "some key must appear in several merged batches"
    apart, together = replay(default_rules, found), replay(default_rules, merged)
    assert {a["source_ip"] for a in apart} >= {"203.0.113.5", "192.0.2.66", "192.0.2.77"}
    assert _comparable(together) == _comparable(apart)
    # ...and split by shard after merging, as the bounded pipeline does
    sharded = [part for h in merged for part in h.by_shard(4).values()]
    assert _comparable(replay(default_rules, sharded)) == _comparable(apart)


def test_batches_observed_joined_give_the_hits_and_evidence_of_each_batch_observed_alone(default_rules):
    """``observe_many`` joins consecutive batches to spread the per-batch cost; which rows quote their line stays
    per batch (each key's first rows in each batch, busy keys only for a flood rule), so the alerts' evidence
    lines are those of reading the batches one by one."""
    from alerts.engine import replay
    from alerts.observe import merge_hits, observe_many

    rows = []
    for i in range(4000):
        t = i * 0.05
        rows.append(access(t, ip="192.0.2.50", url=f"/page/{i % 40}"))  # a flood: a wide rule's busy key
        if i % 2:
            rows.append(access(t, ip=f"198.51.100.{i % 60}", url=f"/gone/{i % 25}", status=404))  # many probers
        if i % 97 == 0:
            rows.append(access(t, ip="192.0.2.66", url=f"/item?id={i}%27%20UNION%20SELECT%20pw%20FROM%20t--"))
    pieces, start = [], 0
    for size in (1500, 2200, 900, 1400):
        piece = batch(rows[start : start + size])
        offsets = pa.array([100 * (start + i) for i in range(piece.num_rows)], pa.int64())
        pieces.append(piece.set_column(piece.schema.get_field_index("log_offset"), "log_offset", offsets))
        start += size
    one_by_one = [h for p in pieces for h in Observer(default_rules, "access").observe(p)]
    apart = []
    observer = Observer(default_rules, "access")
    for p in pieces:
        apart += observer.observe(p)
    joined = observe_many(Observer(default_rules, "access"), pieces)

    def quoted(found):
        return {(h.rule_id, o, t) for h in found if hasattr(h, "lines") for o, t in h.lines.items()}

    def hit_rows(found):
        return sorted((h.rule_id, int(o)) for h in found if hasattr(h, "offsets") for o in h.offsets)

    assert quoted(joined) == quoted(apart) and hit_rows(joined) == hit_rows(apart)
    assert {h.rule_id for h in apart} >= {"http-request-flood", "http-probing", "http-sqli"}
    assert len(quoted([h for h in apart if h.rule_id == "http-request-flood"])) < 4 * 3 * 10  # busy keys only
    alerts = replay(default_rules, joined)
    assert _comparable(alerts) == _comparable(replay(default_rules, merge_hits(apart)))
    assert _comparable(alerts) == _comparable(replay(default_rules, one_by_one))
    assert any(e["line"] for a in alerts for e in a["evidence"])


def test_joining_a_files_held_batches_never_holds_them_twice(monkeypatch):
    """A bounded run joins up to 64k held rows of a file before observing them; the join lets each column's pieces
    go once that column is joined, so the Arrow memory it holds stays about one copy of the batches (the old
    ``concat_batches`` of batches still held made two, the main stage's peak of Arrow memory)."""
    import numpy as np

    from alerts import observe

    def owned_batch(seed: int) -> pa.RecordBatch:  # buffers of its own, as each parsed batch has
        rng = np.random.default_rng(seed)
        names = ["ua", "path", "line"]
        return pa.RecordBatch.from_arrays(
            [pa.array([f"{n}-{v:012d}" * 4 for v in rng.integers(0, 10**12, 20_000)]) for n in names], names=names
        )

    held = [owned_batch(s) for s in range(4)]
    expected = pa.concat_batches(held)
    one_copy = expected.nbytes
    del expected
    before = pa.total_allocated_bytes()
    during: list[int] = []
    concat = pa.concat_arrays

    def watched(arrays, *args, **kwargs):
        during.append(pa.total_allocated_bytes() - before)
        return concat(arrays, *args, **kwargs)

    monkeypatch.setattr(pa, "concat_arrays", watched)
    joined, segments = observe.join_batches(held)
    assert held == []  # the caller's list no longer holds the batches
    assert pa.total_allocated_bytes() - before <= 0.05 * one_copy  # only the joined copy is left
    assert during and max(during) <= 0.45 * one_copy  # each column's pieces went before the next was joined
    assert joined.num_rows == 80_000 and np.bincount(segments).tolist() == [20_000] * 4
    assert joined.equals(pa.concat_batches([owned_batch(s) for s in range(4)]))

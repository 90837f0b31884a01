"""Observed hits split across shards: every row and its evidence line land on its key's shard, none twice."""

from __future__ import annotations

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

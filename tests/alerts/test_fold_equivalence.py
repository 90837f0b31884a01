"""One meaning per rule: every way the engine can fold a rule gives the same alerts on generated traffic.

The folds: the signature fast path, the vectorised plain-window fold and the row-by-row fold (which every
window and signature rule can also be forced through), each run in one flush at the end of the input or in
many flushes at random watermarks.  Rule shapes: signature, plain window, distinct window, bucket, distinct
bucket, with random thresholds and cool-downs.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.engine import Detector
from alerts.observe import Observer
from alerts.rules import Bucket, Condition, Rule, RuleSet, Window
from tests.alerts.events import T0, access, batch

US = 1_000_000
STEPS_MS = (0, 10, 200, 1000, 4000, 30000)


def _rule(rule_id: str, threshold, distinct: str | None, cooldown: float) -> Rule:
    return Rule(
        id=rule_id,
        kind="behaviour",
        title=rule_id,
        severity="low",
        category="test",
        technique="T1595",
        description="",
        false_positives="",
        dataset="access",
        conditions=(Condition("http_response_status_code", "in", (200, 404), False, False),),
        groupby=("source_ip",),
        cooldown=cooldown,
        distinct=distinct,
        threshold=threshold,
        evidence=3,
    )


def _rule_set(sig_cd, plain, distinct, bucket, dbucket) -> RuleSet:
    return RuleSet(
        (
            _rule("signature", Window(1, 1.0), None, sig_cd),
            _rule("plain-window", Window(plain[0], plain[1]), None, plain[2]),
            _rule("distinct-window", Window(distinct[0], distinct[1]), "url_path", distinct[2]),
            _rule("bucket", Bucket(bucket[0], bucket[1]), None, bucket[2]),
            _rule("distinct-bucket", Bucket(dbucket[0], dbucket[1]), "url_path", dbucket[2]),
        )
    )


rule_sets = st.builds(
    _rule_set,
    st.sampled_from([0.0, 1.0, 30.0]),
    st.tuples(st.integers(2, 8), st.sampled_from([1.0, 5.0, 30.0]), st.sampled_from([0.0, 2.0, 60.0])),
    st.tuples(st.integers(2, 4), st.sampled_from([5.0, 30.0]), st.sampled_from([0.0, 60.0])),
    st.tuples(st.integers(1, 5), st.sampled_from([1.0, 4.0]), st.sampled_from([0.0, 60.0])),
    st.tuples(st.integers(1, 3), st.sampled_from([2.0, 10.0]), st.sampled_from([0.0, 60.0])),
)
traffic = st.lists(
    st.tuples(st.sampled_from(STEPS_MS), st.integers(0, 3), st.integers(0, 5), st.booleans()), min_size=1, max_size=160
)


def _rows(spec) -> list[dict]:
    rows, t = [], 0.0
    for step_ms, ip, path, missing in spec:
        t += step_ms / 1000
        rows.append(access(t, ip=f"192.0.2.{ip}", url=f"/p/{path}", status=404 if missing else 200))
    return rows


def _detector(rules: RuleSet, row_by_row: bool) -> Detector:
    detector = Detector(rules, clock=lambda: T0)
    if row_by_row:
        for fold in detector._folds.values():
            fold.is_plain_window = False
            fold.is_signature = False
    return detector


def _alerts(rules: RuleSet, rows: list[dict], row_by_row: bool, cuts: list[int]) -> list[tuple]:
    observer = Observer(rules, "access")
    detector = _detector(rules, row_by_row)
    whole = batch(rows)
    alerts = []
    bounds = sorted({0, *[c for c in cuts if 0 < c < len(rows)], len(rows)})
    for a, b in itertools.pairwise(bounds):
        detector.add(observer.observe(whole.slice(a, b - a)))
        if b < len(rows):  # the watermark: everything before the next row's time is complete
            alerts += detector.flush(int(rows[b]["timestamp"].timestamp() * US) - 1)
    alerts += detector.flush(None)
    return sorted(
        (
            a["rule_id"],
            a["group_key"],
            a["alert_id"],
            a["first_seen"],
            a["last_seen"],
            a["count"],
            tuple(sorted(a["distinct_sample"] or ())),
            tuple(e["log_offset"] for e in a["evidence"]),
        )
        for a in alerts
    )


@settings(max_examples=60, deadline=None)
@given(rules=rule_sets, spec=traffic, cuts=st.lists(st.integers(1, 159), max_size=5))
def test_every_fold_of_every_rule_shape_gives_the_same_alerts(rules, spec, cuts):
    rows = _rows(spec)
    reference = _alerts(rules, rows, row_by_row=True, cuts=[])
    assert _alerts(rules, rows, row_by_row=False, cuts=[]) == reference
    assert _alerts(rules, rows, row_by_row=False, cuts=cuts) == reference
    assert _alerts(rules, rows, row_by_row=True, cuts=cuts) == reference


def test_a_window_alert_reports_the_rows_inside_the_window():
    """``first_seen`` is the oldest row in the window when it fired, ``count`` the rows in it (both folds)."""
    rules = RuleSet((_rule("plain-window", Window(3, 5.0), None, 60.0),))
    rows = [access(t, url="/p/1") for t in (0, 4, 6, 7)]  # the row at 0 has left the window by 6
    for row_by_row in (False, True):
        [(_, _, _, first, last, count, _, evidence)] = _alerts(rules, rows, row_by_row, cuts=[])
        assert (first, last, count, evidence) == (T0.replace(second=4), T0.replace(second=7), 3, (100, 200, 300))


def test_rule_shapes_cover_every_fold():
    from alerts.engine import RuleFold

    folds = [RuleFold(r) for r in _rule_set(0.0, (3, 5.0, 0.0), (2, 5.0, 0.0), (2, 1.0, 0.0), (1, 2.0, 0.0)).rules]
    assert any(f.is_signature for f in folds) and any(f.is_plain_window for f in folds)
    assert any(f.is_bucket for f in folds) and any(f.distinct and not f.is_bucket for f in folds)

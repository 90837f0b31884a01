"""Sequence rules: ordered steps with time limits, folded in event-time order whatever the batch boundaries."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from alerts.engine import Detector
from alerts.observe import Observer
from alerts.rules import RuleError, load_rule_file, load_rules
from tests.alerts.events import access, batch

FORMS = Path(__file__).resolve().parents[2] / "alerts/rules/forms.yaml"
BOT, PERSON, HALF = "203.0.113.50", "198.51.100.20", "198.51.100.21"
OLD_AGENT = "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2228.0 Safari/537.36"


def visits() -> list[dict]:
    rows = []
    for start in (0, 190, 420):  # a spam bot: form, post 1 s later, another form, post
        for offset, form in ((0, "/register"), (40, "/contact")):
            t = start + offset
            rows.append(access(t, ip=BOT, url=form, agent=OLD_AGENT))
            rows.append(access(t + 1.2, ip=BOT, url=form, method="POST", status=302, agent=OLD_AGENT))
    for start in (0, 300):  # a person: page with its assets, then types for half a minute
        rows.append(access(start, ip=PERSON, url="/register"))
        rows += [access(start + 0.2, ip=PERSON, url=f"/static/app.{n}.js") for n in range(3)]
        rows.append(access(start + 35, ip=PERSON, url="/register", method="POST", status=302))
    # fast once, but then posts somewhere else than the form it fetched: not the same form
    rows.append(access(10, ip=HALF, url="/login"))
    rows.append(access(11, ip=HALF, url="/login", method="POST"))
    rows.append(access(50, ip=HALF, url="/signup"))
    rows.append(access(51, ip=HALF, url="/search", method="POST"))
    return sorted(rows, key=lambda r: r["timestamp"])


def run(rules, rows, cuts=()):
    """Observe in batches cut at ``cuts`` (row indexes) and fold after each batch up to its last event time."""
    observer, detector = Observer(rules, "access"), Detector(rules)
    alerts, bounds = [], [0, *cuts, len(rows)]
    for a, b in itertools.pairwise(bounds):
        if a == b:
            continue
        detector.add(observer.observe(batch(rows[a:b])))
        alerts += detector.flush(int(rows[b - 1]["timestamp"].timestamp() * 1_000_000) - 1)
    return alerts + detector.flush(None)


def test_bot_posting_forms_at_machine_speed_is_caught_and_people_are_not():
    rules = load_rules()
    alerts = [a for a in run(rules, visits()) if a["rule_id"] == "http-form-posted-at-machine-speed"]
    assert [a["source_ip"] for a in alerts] == [BOT]
    assert alerts[0]["count"] == 2  # two forms posted at machine speed in the first visit
    assert len(alerts[0]["evidence"]) == 4  # the two GET/POST pairs


def test_form_post_rate_counts_posts_per_client():
    alerts = run(load_rules(), visits())
    assert {a["source_ip"] for a in alerts if a["rule_id"] == "http-form-post-rate"} == {BOT}


@pytest.mark.parametrize("seed", range(5))
def test_same_alerts_whatever_the_batches_and_flushes(seed):
    rules = load_rules()
    rows = visits()
    cuts = sorted(random.Random(seed).sample(range(1, len(rows)), 4))
    key = lambda alerts: sorted((a["rule_id"], a["source_ip"], a["first_seen"], a["last_seen"]) for a in alerts)  # noqa: E731
    assert key(run(rules, rows, cuts)) == key(run(rules, rows))


def test_steps_out_of_order_or_too_slow_do_not_count():
    rules = load_rules()
    rows = [access(0, ip=BOT, url="/login", method="POST"), access(0.5, ip=BOT, url="/login")]  # post before fetch
    rows += [access(60 + 10 * n, ip=BOT, url="/login", method=m) for n, m in enumerate(["GET", "POST"] * 3)]  # slow
    assert not [a for a in run(rules, rows) if a["rule_id"] == "http-form-posted-at-machine-speed"]


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ("steps: [{match: {field: url_path, equals: /a}}]", "at least two steps"),
        ("steps: [{match: {field: url_path, equals: /a}}, {match: {field: url_path, equals: /b}}]",
         r"steps\[1\]\.within: is required"),
        ("steps: [{match: {field: url_path, equals: /a}, within: 2s},"
         " {match: {field: url_path, equals: /b}, within: 1s}]",
         r"steps\[0\]\.within: the first step"),
        ("steps: [{match: {field: url_pth, equals: /a}}, {match: {field: url_path, equals: /b}, within: 1s}]",
         r"steps\[0\]\.match\[0\]\.field: unknown field 'url_pth'"),
    ],
)  # fmt: skip
def test_bad_sequences_are_named(tmp_path, steps, problem):
    path = tmp_path / "seq.yaml"
    path.write_text(
        "- {id: s, kind: sequence, title: t, severity: low, category: c, technique: T1078, description: d,\n"
        f"   false_positives: f, {steps}}}\n"
    )
    with pytest.raises(RuleError, match=problem):
        load_rule_file(path)


def test_shipped_form_rules_load():
    ids = {r.id for r in load_rule_file(FORMS)}
    assert ids == {"http-form-posted-at-machine-speed", "http-form-post-rate"}

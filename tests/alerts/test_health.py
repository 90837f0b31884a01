"""Service-health rules, pure core: the rule language, the sketch, and episodes judged on event time."""

from __future__ import annotations

import datetime as dt
import pickle
import random
import textwrap
from pathlib import Path

import numpy as np
import pytest

from alerts import health_sketch
from alerts.engine import Detector
from alerts.observe import Observer
from alerts.rules import RuleError, RuleSet, load_rule_file, load_rules
from tests.alerts.events import T0, access, batch, error, error_batch

RATIO = """
- id: t-5xx
  title: 5xx surge
  severity: high
  category: availability
  groupby: [url_domain]
  health: {measure: ratio, of: [{field: http_response_status_code, class: 5xx}], window: 5m, above: 0.1,
           min_events: 20}
"""
SILENT = """
- id: t-silent
  title: host silent
  severity: high
  category: availability
  groupby: [url_domain]
  health: {measure: count, window: 10m, below: 1, baseline: 1h, min_baseline: 20}
"""
LATENCY = """
- id: t-p95
  title: latency
  severity: medium
  category: performance
  groupby: [url_domain]
  health: {measure: p95, field: event_duration_us, window: 5m, baseline: 1h, above_baseline: 2, above: 100000,
           min_events: 20}
"""


def rules_of(tmp_path, *texts):
    path = tmp_path / "rules.yaml"
    path.write_text("".join(textwrap.dedent(t) for t in texts))
    return load_rules([path], default_rules=False)


def traffic(hours=3.0, wave=None, slow=None, silent=None, every=2, seed=1, waves=()):
    """Requests to three hosts every ``every`` seconds; ``wave``/``slow``/``silent``: (host, from s, to s)."""
    rng = random.Random(seed)
    rows = []
    waves = [wave, *waves] if wave else list(waves)
    for s in range(0, int(hours * 3600), every):
        for host in ("a.example", "b.example", "c.example"):
            if silent and host == silent[0] and silent[1] <= s < silent[2]:
                continue
            status = 502 if any(host == w[0] and w[1] <= s < w[2] for w in waves) else 200
            took = rng.randint(20_000, 60_000) * (5 if slow and host == slow[0] and slow[1] <= s < slow[2] else 1)
            rows.append(access(s, ip=f"10.0.0.{s % 50}", status=status, url_domain=host, event_duration_us=took))
    return rows


def run(rules, rows, size=5000, dataset="access"):
    observer, detector = Observer(rules, dataset), Detector(rules)
    make = batch if dataset == "access" else error_batch
    for k in range(0, len(rows), size):
        detector.add(observer.observe(make(rows[k : k + size])))
    return detector.flush(None)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def summary(alerts):
    return sorted(
        (a["rule_id"], a["group_key"], a["health"]["status"], a["first_seen"], a["health"]["window_end"])
        for a in alerts
    )


# ------------------------------------------------------------------ the language


@pytest.mark.parametrize(
    ("health", "problem"),
    [
        ("{measure: ratio, window: 5m, above: 0.1}", "a ratio needs 'of'"),
        ("{measure: count, window: 5m}", "needs a threshold"),
        ("{measure: p95, field: url_path, window: 5m, above: 1}", "needs a numeric field"),
        ("{measure: mean, window: 5m, above: 1}", "expected one of count, ratio"),
        ("{measure: count, window: 90s, above: 1}", "whole number of 'every'"),
        ("{measure: count, window: 5m, below_baseline: 0.1}", "baseline: is required"),
        ("{measure: count, window: 5m, above: 1, windw: 3}", "health.windw: unknown key"),
    ],
)
def test_a_wrong_health_block_is_refused_naming_the_rule_and_key(tmp_path, health, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(f"- id: t-bad\n  title: t\n  severity: low\n  health: {health}\n")
    with pytest.raises(RuleError) as raised:
        load_rule_file(path)
    assert "rule t-bad" in str(raised.value)
    assert problem in str(raised.value)


def test_shipped_health_rules_are_their_own_categories_not_security():
    health = [r for r in load_rules().rules if r.is_health]
    assert {r.category for r in health} == {"availability", "performance"}
    assert {"health-5xx-surge", "health-latency-regression", "health-host-silent", "health-upstream-errors"} <= {
        r.id for r in health
    }
    assert all(r.kind == "health" for r in health)


# ------------------------------------------------------------------ the sketch


def test_sketch_percentiles_are_within_one_percent_and_merge_in_any_order():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.lognormal(10, 1, 50_000), rng.integers(0, 3, 100)])
    counts = health_sketch.dense()
    for part in np.array_split(rng.permutation(values), 7):
        health_sketch.add(counts, health_sketch.sparse_counts(health_sketch.bucket_of(part)))
    for q in (0.5, 0.95, 0.99):
        exact = float(np.quantile(values, q, method="inverted_cdf"))
        assert abs(health_sketch.quantile(counts, q) - exact) <= 0.0101 * exact
    whole = health_sketch.dense()
    health_sketch.add(whole, health_sketch.sparse_counts(health_sketch.bucket_of(values)))
    assert (whole == counts).all()  # plain addition: the same counts whatever the pieces
    assert health_sketch.quantile(health_sketch.dense(), 0.95) is None


# ------------------------------------------------------------------ episodes on event time


def test_a_502_wave_on_one_host_fires_once_with_its_window_and_value_then_resolves_once(tmp_path):
    rules = rules_of(tmp_path, RATIO)
    alerts = run(rules, traffic(wave=("b.example", 5400, 6000)))  # 13:30 - 13:40
    assert summary(alerts) == [
        ("t-5xx", "b.example", "firing", at(5400), at(5460)),
        ("t-5xx", "b.example", "resolved", at(5400), at(6600)),  # false from 13:45, for a whole window
    ]
    fired = next(a for a in alerts if a["health"]["status"] == "firing")
    assert fired["health"]["window_start"] == at(5160)
    assert fired["health"]["value"] == pytest.approx(0.2)  # one 502 minute of five
    assert fired["count"] == 30 and fired["health"]["events"] == 150
    assert fired["url_domain"] == "b.example" and fired["category"] == "availability"
    assert fired["evidence"] and all(" 502 " in e["line"] for e in fired["evidence"])
    assert "ratio > 0.1" in fired["health"]["threshold"]
    resolved = next(a for a in alerts if a["health"]["status"] == "resolved")
    assert resolved["alert_id"] != fired["alert_id"] and resolved["health"]["value"] == 0.0
    assert run(rules, traffic()) == []  # the same traffic without the wave: nothing


def test_a_silent_host_fires_against_its_baseline_and_resolves_when_it_is_back(tmp_path):
    rules = rules_of(tmp_path, SILENT)
    alerts = run(rules, traffic(silent=("a.example", 7200, 8100)))  # 14:00 - 14:15
    assert summary(alerts) == [
        ("t-silent", "a.example", "firing", at(7200), at(7800)),
        ("t-silent", "a.example", "resolved", at(7200), at(8160 + 600)),
    ]
    fired = alerts[0]
    assert fired["health"]["value"] == 0 and fired["health"]["baseline"] == 300  # 30 a minute, per 10 minutes
    # Silence within the first hour has no baseline to be judged by: nothing.
    assert run(rules, traffic(silent=("a.example", 1200, 2400))) == []


def test_a_latency_step_fires_against_the_trailing_p95_and_keeps_that_baseline_until_it_resolves(tmp_path):
    rules = rules_of(tmp_path, LATENCY)
    alerts = run(rules, traffic(hours=4, slow=("c.example", 9000, 10800)))  # 14:30 - 15:00
    assert summary(alerts) == [
        ("t-p95", "c.example", "firing", at(9000), at(9060)),
        ("t-p95", "c.example", "resolved", at(9000), at(10800 + 300 + 300)),
    ]
    fired, resolved = alerts if alerts[0]["health"]["status"] == "firing" else alerts[::-1]
    assert 55_000 < fired["health"]["baseline"] < 62_000  # p95 of 20-60 ms
    assert fired["health"]["value"] > 2 * fired["health"]["baseline"]
    assert resolved["health"]["baseline"] == fired["health"]["baseline"]  # judged against the pre-incident p95
    assert run(rules, traffic(hours=4)) == []


def test_an_error_log_burst_fires_once(tmp_path):
    rules = rules_of(
        tmp_path,
        """
        - id: t-upstream
          title: upstream errors
          severity: high
          category: availability
          dataset: error
          groupby: [url_domain]
          filter: [{field: message, regex: "upstream timed out"}]
          health: {measure: count, window: 5m, above: 9}
        """,
    )
    rows = [error(60 * m, "upstream timed out (110)", url_domain="shop") for m in range(0, 120, 20)]
    rows += [error(3600 + 10 * k, "upstream timed out (110)", url_domain="shop") for k in range(20)]
    rows += [error(3600 + 10 * k, "file not found", url_domain="shop") for k in range(50)]
    rows.sort(key=lambda r: r["timestamp"])
    alerts = run(rules, rows, dataset="error")
    assert summary(alerts) == [
        ("t-upstream", "shop", "firing", at(3600), at(3720)),  # judged at the end of 13:01: 13 errors
        ("t-upstream", "shop", "resolved", at(3600), at(4020 + 300)),
    ]
    assert alerts[0]["count"] == 13  # 7 in 13:00 (one of them the half-hourly one), 6 in 13:01


def test_for_holds_the_alert_until_the_condition_lasted_and_cooldown_keeps_a_key_quiet(tmp_path):
    held = RATIO.replace("min_events: 20}", "min_events: 20, for: 5m}")
    rules = rules_of(tmp_path, held.replace("t-5xx", "t-held"))
    alerts = run(rules, traffic(wave=("b.example", 5400, 6000)))
    assert summary(alerts)[0][-1] == at(5460 + 300)
    short = run(rules, traffic(wave=("b.example", 5400, 5460)))  # a one-minute blip stays in 5 windows: 4m < 5m
    assert summary(short) == []
    cooled = rules_of(tmp_path, RATIO.replace("severity: high", "severity: high\n  cooldown: 2h"))
    twice = traffic(hours=4, waves=[("b.example", 5400, 6000), ("b.example", 8400, 9000)])
    assert len(run(rules_of(tmp_path, RATIO), twice)) == 4  # two episodes, each fired and resolved
    assert [s[2] for s in summary(run(cooled, twice))] == ["firing", "resolved"]  # the second inside the cool-down


def test_piecewise_flushes_on_a_watermark_raise_exactly_what_one_flush_at_the_end_raises(tmp_path):
    rules = rules_of(tmp_path, RATIO, SILENT, LATENCY)
    rows = traffic(
        hours=4, wave=("b.example", 5400, 6000), slow=("c.example", 9000, 10800), silent=("a.example", 7200, 8100)
    )
    whole = run(rules, rows)
    observer, detector = Observer(rules, "access"), Detector(rules)
    streamed = []
    for k in range(0, len(rows), 700):
        b = batch(rows[k : k + 700])
        detector.add(observer.observe(b))
        watermark = b.column("timestamp").cast("int64")[-1].as_py() - 30_000_000
        streamed += detector.flush(watermark)
        restored = Detector(rules)  # what a stream keeps between flushes survives pickling
        restored.restore(pickle.loads(pickle.dumps(detector.snapshot())))
        restored.add(pickle.loads(pickle.dumps(detector.pending)))
        detector = restored
    streamed += detector.flush(None)

    def comparable(alerts):
        return sorted((a["alert_id"], a["first_seen"], a["last_seen"], a["count"], str(a["health"])) for a in alerts)

    assert len(whole) == 6
    assert comparable(streamed) == comparable(whole)


def test_one_line_from_the_far_future_does_not_make_every_host_look_silent(tmp_path):
    """A mistyped year moved every rule's clock past all traffic: each host "silent", later lines too late."""
    rules = rules_of(tmp_path, RATIO, SILENT)
    rows = traffic(hours=3, wave=("b.example", 7200, 7800))
    stray = access(0, url_domain="a.example")
    stray["timestamp"] = dt.datetime(2099, 11, 1, 12, 0, tzinfo=dt.timezone.utc)
    third = len(rows) // 3
    mixed = [*rows[:third], stray, *rows[third:]]  # early in the log: later lines still count
    assert (
        summary(run(rules, mixed))
        == summary(run(rules, rows))
        == [
            ("t-5xx", "b.example", "firing", at(7200), at(7260)),
            ("t-5xx", "b.example", "resolved", at(7200), at(8400)),
        ]
    )
    # Streamed: flushed up to each batch's newest line, the stray one's included.
    observer, detector = Observer(rules, "access"), Detector(rules)
    streamed = []
    for k in range(0, len(mixed), 700):
        part = mixed[k : k + 700]
        detector.add(observer.observe(batch(part)))
        streamed += detector.flush(max(int(r["timestamp"].timestamp() * 1_000_000) for r in part))
    assert summary(streamed + detector.flush(None)) == summary(run(rules, rows))


def test_a_broken_link_after_a_deploy_fires_but_one_scanners_404s_do_not():
    from alerts.rules import RuleSet

    rules = RuleSet(tuple(r for r in load_rules().rules if r.id == "health-4xx-surge"))
    base = [r for r in traffic(hours=2.5, every=1) if r["url_domain"] == "a.example"]
    deploy = [
        dict(
            r,
            url_original="/static/new.css",
            url_path="/static/new.css",
            http_request_line="GET /static/new.css",
            http_response_status_code=404,
        )
        if 5400 <= (r["timestamp"] - T0).total_seconds() < 6600 and i % 3 == 0
        else r
        for i, r in enumerate(base)
    ]
    alerts = run(rules, deploy)
    assert [a["health"]["status"] for a in alerts] == ["firing", "resolved"]
    assert alerts[0]["first_seen"] >= at(5400) and alerts[0]["health"]["value"] > 0.1
    assert all("/static/new.css" in e["line"] for e in alerts[0]["evidence"])
    scan = base + [
        access(5400 + k, ip="192.0.2.66", url=f"/probe/{k}.php", status=404, url_domain="a.example")
        for k in range(0, 600, 2)
    ]
    assert run(rules, sorted(scan, key=lambda r: r["timestamp"])) == []


def test_ops_sinks_get_the_measure_and_a_resolved_notice_reads_as_one(tmp_path):
    from alerts.sinks import alert_json, alert_summary, shared_view

    alerts = run(rules_of(tmp_path, RATIO), traffic(wave=("b.example", 5400, 6000)))
    fired, resolved = sorted(alerts, key=lambda a: a["health"]["window_end"])
    assert alert_summary(fired).startswith("[high] 5xx surge on b.example: ratio 0.2 (ratio > 0.1 over 5m")
    assert alert_summary(resolved).startswith("RESOLVED [high] 5xx surge on b.example: ratio 0")
    shared = shared_view(fired, "k")  # what an external webhook or syslog gets
    assert shared["health"]["value"] == pytest.approx(0.2) and "url_domain" not in shared
    assert '"status":"firing"' in alert_json(shared)


def test_the_readme_tuning_example_loads_and_splits_the_hosts(tmp_path):
    """The README's per-host tuning example is a working rules file: the shop gets its own, stricter bar."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("# rules/site-health.yaml", 1)[1].split("```", 1)[0]
    path = tmp_path / "site-health.yaml"
    path.write_text(block.split("\n", 1)[1])
    rules = load_rules([path], disable=["health-5xx-surge"])
    ids = {r.id for r in rules.rules}
    assert {"shop-5xx-surge", "other-5xx-surge"} <= ids and "health-5xx-surge" not in ids
    mine = RuleSet(tuple(r for r in rules.rules if r.id in ("shop-5xx-surge", "other-5xx-surge")))
    rows = [
        access(s, ip=f"10.0.0.{s % 50}", status=500 if s % 20 == 0 else 200, url_domain=host)
        for s in range(0, 1800)
        for host in ("shop.example.com", "blog.example.com")
    ]  # 5 % errors on both hosts: over the shop's 2 %, under everyone else's 10 %
    fired = {(a["rule_id"], a["url_domain"]) for a in run(mine, rows) if a["health"]["status"] == "firing"}
    assert fired == {("shop-5xx-surge", "shop.example.com")}

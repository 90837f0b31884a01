"""The report page in a real browser (Debian's chromium, headless): figures, host selector, no console errors."""

import pytest

from pipelines.reports.build import NO_GEOIP
from pipelines.reports.publish import publish_period
from tests.reports.browser import Browser, chromium_binary
from tests.reports.support import small_log, store_run

pytestmark = pytest.mark.skipif(
    chromium_binary() is None, reason="needs chromium (apt-get install chromium; .ci/run installs it)"
)


@pytest.fixture
def page(tmp_path):
    store_run(
        tmp_path / "out", "20261102T120000Z-aaaaaa", {tmp_path / "logs" / "access.log": "\n".join(small_log()) + "\n"}
    )
    published = publish_period(str(tmp_path / "out"), str(tmp_path / "report"), "week45")
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(f"file://{published.page}")
        yield browser
    finally:
        browser.close()


def cards(browser) -> dict[str, str]:
    pairs = browser.evaluate(
        "[...document.querySelectorAll('#cards .card')].map(c => [c.querySelector('span').textContent,"
        " c.querySelector('b').textContent])"
    )
    return dict(pairs)


def select_host(browser, host: str) -> None:
    browser.evaluate(
        f"(() => {{ const s = document.getElementById('host'); s.value = {host!r};"
        f" s.dispatchEvent(new Event('change')); }})()"
    )


def test_the_page_shows_the_hand_computed_figures_and_the_host_selector_changes_them(page, tmp_path):
    assert page.evaluate("document.querySelectorAll('#charts canvas').length") >= 4  # uPlot drew every chart
    everyone = cards(page)
    assert everyone["requests"] == "55" and everyone["bandwidth"] == "70.4 KiB"
    assert everyone["distinct visitors ≈"] == "23"
    assert everyone["peak requests/s"] == "12.0" and everyone["p95 requests/s (5-min)"] == "0.04"
    assert everyone["peak bandwidth"] == "11.7 KiB/s" and everyone["p95 bandwidth (5-min)"] == "40 B/s"
    assert everyone["4xx responses"] == "12 (21.8 %)"
    assert everyone["response time p50 / p95 / p99"] == "10.0 ms / 10.0 ms / 10.0 ms"
    text = page.evaluate("document.body.innerText")
    assert "/users/:name/profile" in text and "/missing/page" in text and "curl 8" in text
    assert NO_GEOIP in text and "(other)" in text
    assert "2026-11-02 10:00 to 2026-11-02 12:00 UTC" in text

    select_host(page, "api.example.com")
    api = cards(page)
    assert api["requests"] == "30" and api["bandwidth"] == "58.6 KiB" and api["peak requests/s"] == "1.00"
    assert api["distinct visitors ≈"] == "10" and api["p95 requests/s (5-min)"] == "0.00"
    text = page.evaluate("document.body.innerText")
    assert "/users/:name/profile" not in text and "/v1/items" in text and "only api.example.com" in text

    select_host(page, "www.example.com")
    assert cards(page)["requests"] == "25"
    heat = page.evaluate("document.querySelector('#heatmap td[title^=\"Mon 10:00\"]').textContent")
    assert heat == "24"
    select_host(page, "")
    shot = page.screenshot(tmp_path / "report.png")
    assert shot.stat().st_size > 20_000
    assert page.errors == []


def test_the_time_axis_names_the_year_where_the_span_crosses_one(tmp_path):
    lines = [text.replace("02/Nov/2026", "31/Dec/2026") for text in small_log()[:27]]
    lines += [text.replace("02/Nov/2026", "01/Jan/2027").replace(":10:0", ":03:0") for text in small_log()[27:]]
    store_run(tmp_path / "out", "20270101T120000Z-aaaaaa", {tmp_path / "logs" / "a.log": "\n".join(lines) + "\n"})
    published = publish_period(str(tmp_path / "out"), str(tmp_path / "report"), "newyear")
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(f"file://{published.page}")
        ticks = browser.evaluate("window.reportCharts[0].axes[0]._values")  # uPlot draws labels on a canvas
        assert any("2026" in t for t in ticks) and any("2027" in t for t in ticks), ticks
        assert browser.errors == []
    finally:
        browser.close()

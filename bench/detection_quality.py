"""Detection quality on labelled requests: ``python -m bench detection-quality [--corpora DIR] [--misses N]``.

Per attack class, recall on OWASP CRS's regression cases and libinjection's payload collections (each request
written as an access-log line, one client per case, replayed through the default pack); false-positive rate on
CRS's negative cases (as labelled, and the benign ones: ``benign_negatives``), libinjection's ``false_positives.txt``
and our own look-alike set
(``tests/alerts/data/benign_lookalikes.txt``).  In the same invocation the same cases go through a baseline:
libinjection alone (``is_sql_injection`` / ``is_xss`` on the path, every decoded query value, the User-Agent
and the Referer), which is what a WAF's ``@detectSQLi``/``@detectXSS`` amounts to.  Plus the alerts on the
real ``elastic-examples/apache_logs``.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from alerts.replay import detect_files
from alerts.rules import load_rules
from bench._attack_corpora import (
    Case,
    benign_lookalikes,
    benign_negatives,
    crs_cases,
    libinjection_cases,
    load_review,
    source_ip,
    write_log,
)
from pipelines.read import open_raw

ROOT = Path(__file__).resolve().parent.parent
BENIGN = ROOT / "tests/alerts/data/benign_lookalikes.txt"
CLASSES = ("sqli", "xss", "traversal", "command", "code", "rfi")


def logwarden_detects(cases: list[Case], rules=None) -> list[bool]:
    """Per case: did the default pack raise any alert on its client."""
    rules = rules or load_rules()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "cases.log"
        write_log(cases, log)
        reports = []
        alerts = detect_files(rules, [str(log)], open_raw, "auto", reports)
    alerted = {a["source_ip"] for a in alerts}
    return [source_ip(i) in alerted for i in range(len(cases))]


def _inputs(case: Case) -> list[str]:
    path, _, query = case.uri.partition("?")
    values = [unquote(path)] + [v for _, v in parse_qsl(query, keep_blank_values=True)]
    if query and "=" not in query:
        values.append(unquote(query))
    return values + [case.user_agent] + ([case.referrer] if case.referrer else [])


def libinjection_detects(cases: list[Case]) -> list[bool] | None:
    try:
        import libinjection
    except ImportError:
        return None

    def hit(value: str) -> bool:
        return bool(libinjection.is_sql_injection(value)["is_sqli"] or libinjection.is_xss(value)["is_xss"])

    return [any(hit(v) for v in _inputs(case)) for case in cases]


def _rate(found: list[bool]) -> str:
    return f"{sum(found) / len(found):.3f}" if found else "-"


def quality_rows(sets: dict[str, list[Case]], answers: dict[str, dict[str, list[bool]]]) -> list[tuple]:
    """Rows ``(set, class, n, {detector: rate})``: recall per attack class, false-positive rate for benign."""
    rows = []
    for set_name, cases in sets.items():
        by_class = collections.defaultdict(list)
        for i, case in enumerate(cases):
            by_class[case.attack or "benign"].append(i)
        for cls in [*CLASSES, "benign"]:
            if cls not in by_class:
                continue
            idx = by_class[cls]
            rates = {name: _rate([found[set_name][i] for i in idx]) if found else "n/a" for name, found in
                     answers.items()}  # fmt: skip
            rows.append((set_name, cls, len(idx), rates))
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench detection-quality", description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default=str(ROOT.parent / "shared/corpora"))
    parser.add_argument("--misses", type=int, default=0, help="print up to N missed/false cases per set and class")
    args = parser.parse_args(argv)
    corpora = Path(args.corpora)
    crs, left_out = crs_cases(corpora)
    injection = libinjection_cases(corpora)
    sets = {"crs": crs, "libinjection": injection, "lookalikes": benign_lookalikes(BENIGN)}
    rules = load_rules()
    answers: dict[str, dict[str, list[bool]]] = {"logwarden": {}, "libinjection": {}}
    timing = {}
    for set_name, cases in list(sets.items()):
        started = time.perf_counter()
        answers["logwarden"][set_name] = logwarden_detects(cases, rules)
        timing[set_name] = time.perf_counter() - started
        baseline = libinjection_detects(cases)
        if baseline is None:
            answers["libinjection"] = {}
        else:
            answers["libinjection"][set_name] = baseline
    # CRS's default paranoia level alone: the cases of the rules a production CRS runs out of the box.  And the
    # negative cases that are benign requests (not attacks another CRS rule is for), at every level and at PL1.
    pl1 = [i for i, case in enumerate(crs) if case.paranoia == 1]
    benign, not_benign = benign_negatives(crs, load_review())
    derived = {"crs PL1": pl1, "crs benign": benign, "crs PL1 benign": [i for i in benign if crs[i].paranoia == 1]}
    for name, indices in derived.items():
        sets[name] = [crs[i] for i in indices]
        for found in answers.values():
            if found:
                found[name] = [found["crs"][i] for i in indices]
    print(f"== detection quality (CRS cases an access log shows: {len(crs)}; left out, payload in body or "
          f"another header: {left_out})")  # fmt: skip
    print("recall for attack classes, false-positive rate for 'benign'; baseline = libinjection alone")
    print("'crs benign' = CRS negatives without " + ", ".join(f"{n} {why}" for why, n in not_benign.items()))
    print(f"{'set':15} {'class':10} {'cases':>6} {'logwarden':>10} {'libinjection':>13}")
    for set_name, cls, n, rates in quality_rows(sets, answers):
        print(f"{set_name:15} {cls:10} {n:>6} {rates['logwarden']:>10} {rates.get('libinjection', 'n/a'):>13}")
    if args.misses:
        for set_name, cases in list(sets.items())[:3]:
            wrong = collections.defaultdict(list)
            for case, found in zip(cases, answers["logwarden"][set_name]):
                if found != bool(case.attack):
                    wrong[case.attack or "benign"].append(case)
            for cls, items in sorted(wrong.items()):
                print(f"\n-- {set_name} {cls}: {len(items)} wrong")
                for case in items[: args.misses]:
                    print(f"   {case.source:40} {case.uri[:150]!s}  UA={case.user_agent[:60]!r}")
    real = detect_files(rules, [str(corpora / "elastic-examples/apache_logs/apache_logs")], open_raw)
    print(f"\n== elastic apache_logs (10,000 real lines): {len(real)} alerts, each justified in "
          "tests/alerts/test_corpus_false_positives.py")  # fmt: skip
    print("\nreplay time: " + ", ".join(f"{k} {v:.1f} s" for k, v in timing.items()))
    return 0

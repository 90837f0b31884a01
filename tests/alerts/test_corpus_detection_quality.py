"""Detection quality on labelled corpora, as ``python -m bench detection-quality`` measures it.

libinjection's payload collections (17,000 SQLi and 1,600 XSS strings, each sent as a query parameter) must be
caught, and its collection of benign strings that naive detectors flag must stay (almost) silent.  The floors
are the figures measured when the grammars landed, so a change that loses coverage fails here.
"""

from __future__ import annotations

from bench.attack_corpora import libinjection_cases
from bench.detection_quality import logwarden_detects


def _rates(cases, found):
    by_class: dict[str, list[bool]] = {}
    for case, hit in zip(cases, found):
        by_class.setdefault(case.attack or "benign", []).append(hit)
    return {cls: sum(hits) / len(hits) for cls, hits in by_class.items()}


def test_libinjection_payloads_are_caught_and_its_false_positives_are_not(corpora, default_rules):
    cases = libinjection_cases(corpora)
    rates = _rates(cases, logwarden_detects(cases, default_rules))
    assert rates["sqli"] >= 0.975, rates
    assert rates["xss"] >= 0.95, rates
    assert rates["benign"] <= 0.005, rates


def test_grammar_candidates_never_drop_what_a_grammar_flags(corpora):
    """The RE2 candidate pattern is only a shortcut: on every labelled request (attacks and benign), each value a
    grammar flags must also pass the pattern, or detection would silently depend on it."""
    import re

    from alerts.grammars import GRAMMARS
    from bench.attack_corpora import crs_cases

    cases = crs_cases(corpora)[0] + libinjection_cases(corpora)
    for name, grammar in GRAMMARS.items():
        for field, values in (
            ("url_original", {c.uri for c in cases}),
            ("user_agent_original", {c.user_agent for c in cases}),
        ):
            candidates = re.compile(grammar.candidates(field))
            read = grammar.reader(field)
            dropped = [v for v in values if not candidates.search(v) and read(v)]
            assert not dropped, (name, field, dropped[:5])

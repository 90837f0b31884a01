"""Detection quality on labelled corpora, as ``python -m bench detection-quality`` measures it.

libinjection's payload collections (17,000 SQLi and 1,600 XSS strings, each sent as a query parameter) must be
caught, and its collection of benign strings that naive detectors flag must stay (almost) silent.  The floors
are the figures measured when the grammars landed, so a change that loses coverage fails here.
"""

from __future__ import annotations

from bench._attack_corpora import libinjection_cases
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
    from bench._attack_corpora import crs_cases

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


def test_crs_default_paranoia_attacks_an_access_log_shows_are_caught(corpora, default_rules):
    """OWASP CRS's regression requests for its paranoia-level-1 rules whose payload is in the URL, user agent or
    referrer: per attack class, the share that raises an alert (floors measured when the grammars landed)."""
    from bench._attack_corpora import crs_cases

    cases = [c for c in crs_cases(corpora)[0] if c.paranoia == 1 and c.attack]
    rates = _rates(cases, logwarden_detects(cases, default_rules))
    floors = {"sqli": 0.95, "xss": 0.95, "traversal": 0.95, "command": 0.95, "code": 0.95, "rfi": 0.95}
    assert {cls: rates[cls] for cls in floors if rates[cls] < floors[cls]} == {}, rates


def test_crs_negative_cases_that_are_benign_raise_no_alert(corpora, default_rules):
    """CRS's negative cases minus the attacks among them (the same request is a CRS positive elsewhere, or the
    review file says why it is an attack): at most 0.5 % may alert, at every paranoia level."""
    from bench._attack_corpora import benign_negatives, crs_cases, load_review

    cases = crs_cases(corpora)[0]
    kept, _ = benign_negatives(cases, load_review())
    benign = [cases[i] for i in kept]
    found = logwarden_detects(benign, default_rules)
    flagged = [c.source for c, hit in zip(benign, found) if hit]
    assert len(benign) > 250 and len(flagged) <= 0.005 * len(benign), flagged


def test_every_reviewed_crs_negative_is_one_with_a_reason(corpora):
    """The review file stays true to the corpus: each entry names a CRS negative case, and says why it attacks."""
    from bench._attack_corpora import crs_cases, load_review

    negatives = {c.source for c in crs_cases(corpora)[0] if c.attack is None}
    review = load_review()
    assert review and all(review.values()), review
    assert set(review) <= negatives, sorted(set(review) - negatives)

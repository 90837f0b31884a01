"""Rule files: the default pack loads, and mistakes are reported with file, rule id and key."""

from pathlib import Path

import pytest

from alerts.rules import DEFAULT_RULES_DIR, RuleError, load_rules, parse_duration
from alerts.wordlists import WordListError, load_word_list

VALID = """
- id: my-rule
  kind: signature
  title: t
  severity: high
  category: c
  technique: T1190
  description: d
  false_positives: f
  match:
    - field: url_original
      contains: evil
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_default_pack_covers_the_attacks_the_product_promises():
    ids = {r.id for r in load_rules().rules}
    for required in (
        "http-sqli", "http-xss", "http-path-traversal", "http-command-injection", "http-log4shell",
        "http-sensitive-file", "http-admin-probing", "http-web-shell", "http-scanner-user-agent", "http-bad-bot",
        "http-probing", "http-auth-bruteforce", "http-login-bruteforce", "http-credential-stuffing",
        "http-account-attacked", "http-request-flood", "http-form-bot", "error-auth-failure", "error-rate-limited",
        "error-invalid-uri",
    ):  # fmt: skip
        assert required in ids
    for rule in load_rules().rules:
        assert rule.description and rule.false_positives
        assert rule.technique.startswith("T") or rule.is_health  # service health is no attack technique


def test_every_shipped_word_list_names_its_source_and_license():
    for path in DEFAULT_RULES_DIR.glob("*.txt"):
        header = path.read_text().lower()
        assert "# source:" in header and "# license:" in header, path.name
        assert load_word_list(path.stem, [DEFAULT_RULES_DIR])


def test_a_user_rule_file_loads(tmp_path):
    (rule,) = load_rules([write(tmp_path, VALID)], default_rules=False).rules
    assert rule.id == "my-rule" and rule.is_signature and rule.cooldown == 600


def test_a_rule_file_read_again_is_not_parsed_again_but_an_edit_is_seen(tmp_path, monkeypatch):
    """A batch run loads its rules twice (config check, graph): the second read reuses the first's rules, unless
    the file changed in between, even to text of the same length."""
    import alerts.rules as rules_module

    path = write(tmp_path, VALID)
    (first,) = load_rules([path], default_rules=False).rules
    parsed = []
    monkeypatch.setattr(rules_module.yaml, "load", lambda *a, **k: parsed.append(1) or [])
    (again,) = load_rules([path], default_rules=False).rules
    assert again == first and not parsed
    monkeypatch.undo()
    path.write_text(VALID.replace("title: t", "title: u"))
    (edited,) = load_rules([path], default_rules=False).rules
    assert edited.title == "u"


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (("severity: high", "severity: urgent"), "severity", "expected one of"),
        (("technique: T1190", "technique: SQLi"), "technique", "ATT&CK"),
        (("field: url_original", "field: url_orignal"), "match[0].field", "did you mean 'url_original'"),
        (("contains: evil", "regex: '(unclosed'"), "match[0].regex", "invalid regular expression"),
        (("contains: evil", "contains_any: []\n      list: no_such_list"), "match[0].list", "no word list"),
        (("kind: signature", "kind: signature\n  window: {count: 3, period: 1m}"), "window", "first match"),
        (("title: t", "title: t\n  colldown: 5m"), "colldown", "did you mean 'cooldown'"),
    ],
)
def test_mistakes_name_file_rule_and_key(tmp_path, change, key, problem):
    path = write(tmp_path, VALID.replace(*change))
    with pytest.raises(RuleError) as raised:
        load_rules([path], default_rules=False)
    message = str(raised.value)
    assert str(path) in message and "rule my-rule" in message and key in message and problem in message


def test_behaviour_rule_needs_a_threshold(tmp_path):
    text = VALID.replace("kind: signature", "kind: behaviour").replace("match:", "filter:")
    with pytest.raises(RuleError, match=r"bucket.*exactly one of"):
        load_rules([write(tmp_path, text)], default_rules=False)


def test_durations():
    assert parse_duration("250ms") == 0.25 and parse_duration("5m") == 300 and parse_duration(10) == 10
    with pytest.raises(RuleError, match="duration"):
        parse_duration("soon")


def test_word_list_without_provenance_is_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("a\nb\n")
    with pytest.raises(WordListError, match="source"):
        load_word_list("mine", [tmp_path])

"""Issue 16 §6: rules documented, all errors at once, sensible defaults, disable by id, id clashes caught."""

from __future__ import annotations

import json
import re

import pytest

from alerts.rules import RuleError, load_configured_rules, load_rules
from schemas.config import AlertsConfig
from tests.operator.helpers import ROOT, logwarden

TUTORIAL = ROOT / "docs" / "rules-tutorial.md"


def tutorial_rule() -> str:
    return re.search(r"```yaml\n(- id: site-login-guessing.*?)```", TUTORIAL.read_text(), re.S).group(1)


def test_the_reference_and_tutorial_exist_and_help_points_to_them():
    reference = (ROOT / "docs" / "rules.md").read_text()
    for op in ("equals", "contains_any", "words_any", "regex_any", "class", "exists", "bucket", "window", "disable"):
        assert f"`{op}`" in reference
    assert "docs/rules.md" in logwarden("rules", "--help").stdout


def test_the_tutorial_rule_needs_only_what_it_says_and_fires_on_its_log(tmp_path):
    folder = tmp_path / "my-rules"
    folder.mkdir()
    (folder / "login.yaml").write_text(tutorial_rule())
    check = logwarden("rules", "check", folder)
    assert check.returncode == 0, check.stderr
    assert "1 rule(s) valid and no id clashes with the shipped pack" in check.stderr
    (rule,) = load_rules([folder], default_rules=False).rules
    assert rule.kind == "behaviour" and rule.technique == "T1110.001" and rule.false_positives
    log = tmp_path / "guessing.log"
    log.write_text(
        "".join(
            f'203.0.113.9 - - [01/Nov/2026:10:00:{i:02d} +0000] "POST /account/login HTTP/1.1" 401 120 "-" "curl/8"\n'
            for i in range(1, 26)
        )
    )
    done = logwarden("detect", log, "--rules", folder, "--no-default-rules")
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["rule_id"] for a in alerts] == ["site-login-guessing"]


def test_every_mistake_in_every_rule_is_reported_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        tutorial_rule().replace("url_path\n", "url_pth\n").replace("period: 1m", "period: a minute")
        + "- id: second\n  title: t\n  severity: urgent\n  match:\n    - field: url_path\n      contains: x\n"
    )
    done = logwarden("rules", "check", path)
    assert done.returncode == 2
    assert "3 problems" in done.stderr
    assert "filter[1].field: unknown field 'url_pth'" in done.stderr and "did you mean 'url_path'" in done.stderr
    assert "window.period: expected a duration" in done.stderr
    assert "rule second: severity: expected one of" in done.stderr


@pytest.mark.parametrize("technique", ["T1190", "t1190", "1190", " T1190 "])
def test_technique_shapes_people_write_are_accepted(tmp_path, technique):
    path = tmp_path / "r.yaml"
    path.write_text(
        f"- id: r\n  title: t\n  severity: low\n  technique: '{technique}'\n"
        "  match:\n    - field: url_path\n      contains: x\n"
    )
    assert load_rules([path], default_rules=False).rules[0].technique == "T1190"


def test_rules_check_catches_an_id_clash_with_the_shipped_pack(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "- id: http-sqli\n  title: mine\n  severity: low\n  match:\n    - field: url_path\n      contains: x\n"
    )
    done = logwarden("rules", "check", path)
    assert done.returncode == 2
    assert "rule http-sqli: id: duplicate rule id" in done.stderr and "shipped pack" in done.stderr


def test_a_shipped_rule_can_be_turned_off_by_id():
    ids = {r.id for r in load_configured_rules(AlertsConfig(disable=("http-form-bot",))).rules}
    assert "http-form-bot" not in ids and "http-sqli" in ids
    with pytest.raises(RuleError, match="did you mean 'http-form-bot'"):
        load_configured_rules(AlertsConfig(disable=("http-form-bto",)))

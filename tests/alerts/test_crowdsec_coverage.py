"""docs/crowdsec-coverage.md stays true: every CrowdSec hub scenario has a row, and the rules it names behave so.

A row maps a hub scenario to logwarden rules with how they compare (``same``: the scenario's grouping, distinct
key and threshold; ``differs:``/``disabled:`` with why) or says why it cannot apply (``n/a:``).  Where a row says
"same", the bucket capacity and leak speed, the window, the ``groupby`` and the ``distinct`` field are checked
against the scenario's YAML, so a retuned rule or a changed hub scenario fails here.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from alerts.rules import DEFAULT_RULES_DIR, Bucket, load_rule_file, parse_duration
from bench._attack_corpora import Case, access_line, source_ip
from tests.alerts.conftest import replay

TABLE = Path(__file__).resolve().parents[2] / "docs/crowdsec-coverage.md"
SCENARIOS = "crowdsec-hub/scenarios"
_ROW = re.compile(r"^\| `([^`]+)` \| `([^`]+)` \| (.+?) \| (.+) \|$")

#: The hub's grouping expressions and fields, as logwarden fields.
GROUPBY = {
    "evt.Meta.source_ip": ("source_ip",),
    "evt.Meta.source_ip + '/' + evt.Parsed.target_fqdn": ("source_ip", "url_domain"),
}
DISTINCT = {
    "evt.Meta.http_path": {"url_original", "url_path"},
    "evt.Parsed.request": {"url_original", "url_path"},
    "evt.Parsed.http_args": {"url_query"},
    "evt.Parsed.file_name": {"url_path"},
    "evt.Parsed.http_user_agent": {"user_agent_original"},
}


def _rows() -> dict[str, tuple[str, list[str], str]]:
    rows = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            name, path, rules, how = match.groups()
            assert name not in rows, f"two rows for {name}"
            rows[name] = (path, re.findall(r"`([^`]+)`", rules), how)
    return rows


def _scenarios(corpora: Path) -> dict[str, dict]:
    found = {}
    for path in sorted((corpora / SCENARIOS).glob("*/*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                found[document["name"]] = {**document, "_path": str(path.relative_to(corpora / SCENARIOS))}
    return found


def _all_rules() -> dict:
    """Every rule of the default pack, the ones shipped disabled included."""
    rules = {}
    for path in sorted(DEFAULT_RULES_DIR.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for item in document["rules"]:
            enabled = item.get("enabled", True)
            rules[item["id"]] = (enabled, {**item, "enabled": True})
    loaded = {}
    for path in sorted(DEFAULT_RULES_DIR.glob("*.yaml")):
        for rule in load_rule_file(path):
            loaded[rule.id] = rule
    return {rule_id: (enabled, loaded.get(rule_id)) for rule_id, (enabled, _) in rules.items()}


def test_every_hub_scenario_has_a_row(corpora):
    rows, scenarios = _rows(), _scenarios(corpora)
    assert sorted(set(scenarios) - set(rows)) == [], "hub scenarios missing from docs/crowdsec-coverage.md"
    assert sorted(set(rows) - set(scenarios)) == [], "rows for scenarios the hub does not have"
    for name, (path, rules, how) in rows.items():
        assert path == scenarios[name]["_path"], name
        assert re.match(r"^(same|differs:|disabled:|n/a:)", how), f"{name}: say same, differs:, disabled: or n/a:"
        assert bool(rules) != how.startswith("n/a:"), f"{name}: rules xor a reason"


def test_named_rules_exist_and_ported_rules_point_back(corpora):
    rows, rules = _rows(), _all_rules()
    for name, (_, named, how) in rows.items():
        for rule_id in named:
            assert rule_id in rules, f"{name}: no rule {rule_id!r} in the default pack"
            enabled, _ = rules[rule_id]
            assert enabled or how.startswith("disabled:"), f"{name}: {rule_id} ships disabled; say so"
    for rule_id, (_, rule) in rules.items():
        for tag in rule.tags if rule else ():
            if tag.startswith("crowdsec:"):
                scenario = tag.removeprefix("crowdsec:")
                assert scenario in rows and rule_id in rows[scenario][1], f"{rule_id} is tagged {tag} but not listed"


def test_rows_saying_same_keep_the_scenarios_grouping_and_threshold(corpora):
    rows, rules, scenarios = _rows(), _all_rules(), _scenarios(corpora)
    checked = 0
    for name, (_, named, how) in rows.items():
        if not how.startswith("same"):
            continue
        hub = scenarios[name]
        rule = rules[named[0]][1]  # the first rule named is the port; the others are extra coverage
        assert rule.groupby == GROUPBY[hub["groupby"]], f"{name}: groupby {rule.groupby}"
        if hub["type"] == "trigger":
            assert rule.is_signature, f"{name}: a trigger scenario is a signature"
        else:
            assert rule.threshold == Bucket(hub["capacity"], parse_duration(hub["leakspeed"])), (
                f"{name}: {rule.threshold}"
            )
            if hub.get("distinct"):
                assert rule.distinct in DISTINCT[hub["distinct"]], f"{name}: distinct {rule.distinct}"
            else:
                assert rule.distinct is None, name
        checked += 1
    assert checked >= 50


@pytest.mark.parametrize(
    ("rule_id", "hub_list", "where"),
    [
        ("http-log4shell", "log4j2_cve_2021_44228.txt", "uri"),
        ("http-log4shell", "log4j2_cve_2021_44228.txt", "user_agent"),
        ("http-sensitive-files", "sensitive_data.txt", "suffix"),
        ("cve-2019-18935-telerik", None, None),
    ],
)
def test_hub_data_entries_each_raise_the_mapped_rule(corpora, default_rules, tmp_path, rule_id, hub_list, where):
    """Where a row maps a hub data file onto an older rule, every entry of that file alerts through it."""
    if hub_list is None:
        cases = [Case("telerik", "exploit", "POST", "/Telerik.Web.UI.WebResource.axd?type=rau")]
    else:
        entries = [
            line.strip()
            for line in (corpora / "crowdsec-sec-lists/web" / hub_list).read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        ]
        if where == "uri":
            cases = [Case(e, "x", "GET", "/?q=" + e.replace(" ", "%20")) for e in entries]
        elif where == "user_agent":
            cases = [Case(e, "x", "GET", "/", user_agent=f"Mozilla/5.0 {e}ldap://x/a}}") for e in entries]
        else:  # the bucket overflows on the fifth different file of one client: five requests per entry and client
            cases = [Case(e, "x", "GET", "/backup/site" + e) for e in entries]
    log = tmp_path / "hub.log"
    repeat = 5 if where == "suffix" else 1
    lines = [
        access_line(i, replace(case, uri=case.uri.replace("/site", f"/site{n}")))
        for i, case in enumerate(cases)
        for n in range(repeat)
    ]
    log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    alerts, _ = replay(default_rules, [log])
    fired = {a["source_ip"] for a in alerts if a["rule_id"] == rule_id}
    missed = [c.source for i, c in enumerate(cases) if source_ip(i) not in fired]
    assert not missed, missed

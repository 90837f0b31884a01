"""Real traffic (elastic-examples apache_logs, 10,000 lines of a 2015 site): every alert is listed and justified.

The default pack must not turn ordinary browsing, feed readers or search engines
into alerts.  What it does raise here is real hostile traffic; each one is
pinned below with the reason it is right, so a new false positive fails this test.
"""

from __future__ import annotations

from tests.alerts.conftest import replay

APACHE_LOGS = "elastic-examples/apache_logs/apache_logs"

#: (rule, source IP) -> why the alert is right.
EXPECTED = {
    ("http-admin-probing", "198.245.61.43"): "asked for /wp-login.php, /wp-admin/ and /administrator/ on a site "
    "that runs neither WordPress nor Joomla (all 404): admin-interface probing",
    ("http-probe-paths", "198.245.61.43"): "the same WordPress/Joomla login probe, seen by the probe-path rule",
    (
        "http-probe-paths",
        "144.76.194.187",
    ): "two GET /wp-login.php (404) with no user agent: a WordPress brute-force bot",
    ("http-probe-paths", "195.250.34.144"): "repeated GET /wp-login.php (404) on a non-WordPress site",
    ("http-probe-paths", "95.78.54.93"): "repeated GET /wp-login.php (404) on a non-WordPress site",
    ("http-probe-paths", "188.165.243.45"): "repeated GET /wp-login.php (404) on a non-WordPress site",
    (
        "http-probe-paths",
        "199.168.96.66",
    ): "GET /administrator/index.php twice (404, no user agent): a Joomla admin probe",
    ("http-probe-paths", "212.90.148.107"): "GET /wp/wp-admin/ and similar (404, no user agent): WordPress probing",
    ("http-bad-bot", "178.140.172.164"): "'Indy Library' agent with referrer http://mmm-fraud.com/: referrer spam",
    ("http-bad-user-agent", "94.228.34.233"): "magpie-crawler (Brandwatch's brand-monitoring scraper) is on the bad "
    "bot list CrowdSec's http-bad-user-agent scenario bans; it fetched /resume.xml and robots.txt again and again",
    ("http-scanner-user-agent", "199.187.125.26"): "user agent literally starts with 'User-Agent:' - a hand-rolled "
    "script with a broken header, which OWASP CRS lists as a scanner signature",
}


def test_every_alert_on_real_traffic_is_justified(corpora, default_rules):
    alerts, reports = replay(default_rules, [corpora / APACHE_LOGS])
    assert sum(r.parsed for r in reports) == 10_000
    raised = {(a["rule_id"], a["source_ip"]) for a in alerts}
    unexpected = raised - set(EXPECTED)
    assert not unexpected, f"alerts without a justification (false positives?): {sorted(unexpected)}"
    assert raised == set(EXPECTED), f"justified alerts no longer raised: {sorted(set(EXPECTED) - raised)}"
    assert len(alerts) == len(raised), "one alert per rule and key: the cool-down must hold within this log"

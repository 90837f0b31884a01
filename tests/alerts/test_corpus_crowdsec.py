"""CrowdSec's hub tests: where a scenario watches web access or error logs, our default pack alerts on the same IPs.

Each hub test ships a log, the scenario it exercises and ``scenario.assert``
with the source IPs that must be banned.  We replay the log through our whole
default pack (not a rule chosen per test) and require an alert for every one
of those IPs.  Every test we do not run is listed in ``SKIPPED`` with why.

A few hub logs mix Apache error lines into an access log (CrowdSec's apache2
parser takes both).  A server writes the two to different files and logwarden
detects one format per file, so those lines are split off into a second file,
replayed alongside, rather than left out of the check.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from parsers.files import parse_file
from pipelines.read import open_raw
from tests.alerts.conftest import alert_ips, replay, strip_syslog
from tests.conftest import corpora_root

HUB_TESTS = "crowdsec-hub/tests"

NOT_A_WEB_SERVER_LOG = "log of {what}, not an Apache or nginx access/error log"
SKIPPED = {
    # Other products' log formats (CrowdSec parses them with product-specific parsers).
    "apache-guacamole_bf": NOT_A_WEB_SERVER_LOG.format(what="Apache Guacamole (a Java remote-desktop gateway)"),
    "apache-guacamole_user_enum": NOT_A_WEB_SERVER_LOG.format(what="Apache Guacamole (a Java remote-desktop gateway)"),
    "base-upsun-generic-test": NOT_A_WEB_SERVER_LOG.format(what="the Upsun platform's router (JSON)"),
    "base-upsun-httplog-logs": NOT_A_WEB_SERVER_LOG.format(what="the Upsun platform's router (JSON)"),
    "caddy-coraza": NOT_A_WEB_SERVER_LOG.format(what="Caddy's Coraza WAF (JSON)"),
    "caddy-crs-anomaly-score": NOT_A_WEB_SERVER_LOG.format(what="Caddy's Coraza WAF (JSON)"),
    "envoy-http-crawl-non_statics": NOT_A_WEB_SERVER_LOG.format(what="Envoy in containerd (JSON)"),
    "envoy-logs": NOT_A_WEB_SERVER_LOG.format(what="Envoy in containerd (JSON)"),
    "haproxy-logs": NOT_A_WEB_SERVER_LOG.format(what="HAProxy"),
    "haproxy-nextcloud-whitelist": NOT_A_WEB_SERVER_LOG.format(what="HAProxy"),
    "http-magento-bf": NOT_A_WEB_SERVER_LOG.format(what="a Magento extension (application events)"),
    "litespeed-admin-bf": NOT_A_WEB_SERVER_LOG.format(what="LiteSpeed's admin console"),
    "magento-ccs-by-as": NOT_A_WEB_SERVER_LOG.format(what="a Magento extension; needs ASN enrichment"),
    "magento-ccs-by-country": NOT_A_WEB_SERVER_LOG.format(what="a Magento extension; needs GeoIP enrichment"),
    "modsecurity-nginx": NOT_A_WEB_SERVER_LOG.format(what="ModSecurity's audit log"),
    "openappsec": NOT_A_WEB_SERVER_LOG.format(what="open-appsec (JSON WAF events)"),
    "zoraxy-http-bad-user-agent": NOT_A_WEB_SERVER_LOG.format(what="the Zoraxy reverse proxy"),
    # nginx, but not HTTP.
    "nginx-mail-bf": "nginx's mail proxy (SMTP/IMAP logins), not HTTP",
    # Whitelist tests: they check that CrowdSec's app-specific whitelists suppress alerts, with no scenario.
    "jellyfin-whitelist": "whitelist test without a scenario to compare (Jellyfin 404s must not be banned)",
    "nextcloud-whitelist": "whitelist test without a scenario to compare (Nextcloud 404s must not be banned)",
    "nginx_http-logs": "parser-only test (no scenario)",
    # CrowdSec's own "is my setup working" scenario: a request for a magic /crowdsec-test-... URL.
    "http-generic-test": "CrowdSec's installation self-test (a magic URL), not an attack",
    # A rule we ship disabled.
    "http-dos-switching-ua": "our http-dos-switching-ua rule ships disabled (a distinct-value bucket over every "
    "request costs more than the rest of detection; see alerts/rules/behaviour.yaml)",
}

_SOURCE = re.compile(r'Overflow\.Sources\["([^"]+)"\]')


def expected_ips(test_dir) -> set[str]:
    assert_file = test_dir / "scenario.assert"
    return set(_SOURCE.findall(assert_file.read_text())) if assert_file.exists() else set()


def split_by_format(log: Path, tmp_path: Path) -> list[Path]:
    """``log`` as a server would have written it: the lines its detected format rejects go to a second file."""
    rejected = [
        raw.rstrip(b"\r\n")
        for result in parse_file(open_raw, str(log))
        for raw in result.dead_letters.column("raw").to_pylist()
        if raw.strip()
    ]
    if not rejected:
        return [log]
    other = tmp_path / f"other-format-{log.name}"
    other.write_bytes(b"".join(raw + b"\n" for raw in rejected))
    return [log, other]


def _names() -> list[str]:
    root = corpora_root()
    if root is None:
        return ["<corpora absent>"]
    return sorted(p.name for p in (root / HUB_TESTS).iterdir() if p.is_dir())


#: Logs written with the server's own log_format: an operator passes that line, as here.  BunkerWeb's
#: fixtures also hold lines without the request id its format writes; those become dead letters.
BUNKERWEB = '$host $remote_addr - $request_id $remote_user [$time_local] "$request" $status $body_bytes_sent ' + (
    '"$http_referer" "$http_user_agent"'
)
BUNKERWEB_TESTS = ("bad-user-agent", "http-malformed", "http-path-traversal", "http-sensitive-files")
FORMATS = {f"bunkerweb-{test}": BUNKERWEB for test in BUNKERWEB_TESTS}


@pytest.mark.parametrize("name", _names())
def test_default_pack_alerts_on_the_ips_crowdsec_bans(corpora, name, default_rules, tmp_path):
    if name in SKIPPED:
        pytest.skip(SKIPPED[name])
    test_dir = corpora / HUB_TESTS / name
    config = yaml.safe_load((test_dir / "config.yaml").read_text())
    expected = expected_ips(test_dir)
    if not expected:
        pytest.skip("no scenario.assert sources: a parser-only test")
    log = strip_syslog(test_dir / config["log_file"], tmp_path / config["log_file"])
    format_spec = FORMATS.get(name, "auto")
    logs = [log] if name in FORMATS else split_by_format(log, tmp_path)
    parsed_ips = set()
    for result in (result for path in logs for result in parse_file(open_raw, str(path), format_spec)):
        parsed_ips |= {ip for ip in result.events.column("source_ip").to_pylist() if ip}
    expected = alert_ips([{"source_ip": ip} for ip in expected])  # one spelling: 2001:0db8:... is 2001:db8:...
    checkable = expected & alert_ips([{"source_ip": p} for p in parsed_ips])
    if not checkable:
        pytest.skip(
            f"no line of {config['log_file']} is in a format logwarden parses yet (expected {sorted(expected)})"
        )
    alerts, _ = replay(default_rules, logs, format_spec)
    found = alert_ips(alerts)
    missing = {ip for ip in checkable if ip not in found}
    assert not missing, f"no alert for {sorted(missing)}; alerts: {[(a['rule_id'], a['source_ip']) for a in alerts]}"

"""fail2ban's web filter test logs: every host whose lines the filter matches gets an alert from our pack.

fail2ban marks each sample line with ``# failJSON: {"match": true|false, "host": ...}``.
A filter line counts toward a ban once per occurrence, and a jail bans after
``maxretry`` occurrences, so for each host we replay its matching lines, each
``maxretry`` times (the jail's shipped default), and require an alert for the
host.  Lines marked ``"match": false`` must raise nothing.
"""

from __future__ import annotations

import collections
import json

import pytest

from tests.alerts.conftest import alert_ips, replay, same_ip
from tests.conftest import corpora_root

LOGS = "fail2ban/logs"

#: fail2ban's jail.conf maxretry per jail (5 when the jail does not set it).
MAXRETRY = {
    "apache-badbots": 1, "apache-botsearch": 2, "apache-fakegooglebot": 1, "apache-modsecurity": 2,
    "apache-nohome": 2, "apache-overflows": 2, "apache-shellshock": 1, "nginx-botsearch": 2, "nginx-bad-request": 2,
}  # fmt: skip

ACCESS_LOGS = {"apache-badbots", "nginx-bad-request", "nginx-botsearch", "php-url-fopen", "traefik-auth"}
ERROR_LOGS = {
    "apache-auth": "apache_error", "apache-botsearch": "apache_error", "apache-modsecurity": "apache_error",
    "apache-nohome": "apache_error", "apache-noscript": "apache_error", "apache-overflows": "apache_error",
    "apache-shellshock": "apache_error", "nginx-forbidden": "nginx_error", "nginx-http-auth": "nginx_error",
    "nginx-limit-req": "nginx_error",
}  # fmt: skip
SKIPPED = {
    "apache-fakegooglebot": "needs a reverse-DNS lookup of the client (is it really Google?); logwarden does no DNS",
    "apache-pass": "a port-knocking helper (a successful visit to a secret URL opens a firewall), not an attack",
    "drupal-auth": "Drupal's syslog messages, not a web server log",
    "haproxy-http-auth": "HAProxy's log, not Apache or nginx",
    "lighttpd-auth": "lighttpd's error log, not Apache or nginx",
    "roundcube-auth": "Roundcube webmail's own log",
    "squid": "Squid proxy log",
    "suhosin": "PHP Suhosin messages in lighttpd/syslog logs, not Apache or nginx",
}


def samples(path):
    """``(expectation, line)`` for every line fail2ban annotates."""
    expectation = None
    for raw in path.read_bytes().splitlines():
        if raw.startswith(b"# failJSON:"):
            expectation = json.loads(raw[len(b"# failJSON:") :])
        elif expectation is not None and raw and not raw.startswith(b"#"):
            yield expectation, raw
            expectation = None


def _names() -> list[str]:
    root = corpora_root()
    return sorted(p.name for p in (root / LOGS).iterdir()) if root else ["<corpora absent>"]


@pytest.mark.parametrize("name", _names())
def test_hosts_fail2ban_bans_get_an_alert(corpora, name, default_rules, tmp_path):
    if name in SKIPPED:
        pytest.skip(SKIPPED[name])
    fmt = "auto" if name in ACCESS_LOGS else ERROR_LOGS.get(name)
    if fmt is None:
        pytest.skip(f"{name}: not a web filter we map")
    repeat = MAXRETRY.get(name, 5)
    by_host = collections.defaultdict(list)
    for expectation, line in samples(corpora / LOGS / name):
        if expectation.get("match") and expectation.get("host"):
            by_host[expectation["host"]].append(line)
    missed, unparsed = {}, []
    for index, (host, lines) in enumerate(sorted(by_host.items())):
        log = tmp_path / f"{index}.log"
        log.write_bytes(b"".join(line + b"\n" for line in lines for _ in range(repeat)))
        alerts, reports = replay(default_rules, [log], fmt)
        if not sum(r.parsed for r in reports):
            unparsed.append(host)  # e.g. nginx error lines inside an access-log sample file
            continue
        if not any(same_ip(ip, host) for ip in alert_ips(alerts)):
            missed[host] = [line.decode(errors="replace")[:160] for line in lines]
    # A filter we map whose sample lines all fail to parse is a parser regression, not a reason to skip.
    assert len(unparsed) < len(by_host), f"none of the {name} sample lines parse with {fmt!r}"
    assert not missed, f"no alert for {len(missed)} of {len(by_host)} hosts: {json.dumps(missed, indent=1)}"


@pytest.mark.parametrize("name", _names())
def test_lines_fail2ban_ignores_raise_nothing(corpora, name, default_rules, tmp_path):
    if name in SKIPPED or (name not in ACCESS_LOGS and name not in ERROR_LOGS):
        pytest.skip(SKIPPED.get(name, f"{name}: not a web filter we map"))
    fmt = "auto" if name in ACCESS_LOGS else ERROR_LOGS[name]
    lines = [line for expectation, line in samples(corpora / LOGS / name) if expectation.get("match") is False]
    if not lines:
        pytest.skip("no line marked match: false")
    log = tmp_path / "benign.log"
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    alerts, _ = replay(default_rules, [log], fmt)
    assert alerts == [], [(a["rule_id"], a["source_ip"]) for a in alerts]

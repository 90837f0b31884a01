"""fail2ban's and CrowdSec's web-log test inputs: every line parses, or is a dead letter for a reason
written down here.  Formats are auto-detected unless the test gives the server's own format line,
as an operator would for a custom format."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from parsers.lines import LineChunk
from parsers.registry import UNKNOWN_PREFIX, parse_chunk, resolve_format
from tests.conftest import corpora_root

EMPTY = "empty line"

#: file -> (format or "auto", lines we expect in events, {dead-letter reason prefix: (count, why it is right)})
FAIL2BAN = {
    "apache-auth": (
        "auto",
        41,
        {"expected '[' at column 1, found 'Feb 1": (4, "syslog-prefixed lines mixed into a plain error log")},
    ),
    "apache-badbots": ("auto", 4, {}),
    "apache-botsearch": ("auto", 19, {}),
    "apache-fakegooglebot": (
        r'LogFormat "%h %l %u - [%{%d/%b/%Y:%H:%M:%S}t ] %v \"%r\" %>s %b '
        r'\"%{Referer}i\" \"%{User-Agent}i\" %X %I %O %D"',
        2,
        {"expected ' ] ' at column 55": (1, "a vhost_combined line appended to a file of another custom format")},
    ),
    "apache-modsecurity": ("auto", 4, {}),
    "apache-nohome": ("auto", 2, {}),
    "apache-noscript": ("auto", 13, {}),
    "apache-overflows": ("auto", 11, {}),
    "apache-pass": ("combined", 0, {"timestamp '27/Jun/2013:11:55:44'": (1, "hand-written CLF time without its zone")}),
    "apache-shellshock": ("auto", 2, {}),
    "nginx-bad-request": ("auto", 8, {}),
    # nginx_main fits the access lines exactly (their extra quoted field is its $http_x_forwarded_for)
    "nginx-botsearch": ("auto", 8, {"expected ' - ' at column": (6, "nginx error-log lines mixed into an access log")}),
    "nginx-forbidden": ("auto", 2, {}),
    "nginx-http-auth": ("auto", 18, {}),
    "nginx-limit-req": ("auto", 9, {}),
    "php-url-fopen": ("auto", 1, {}),
    "traefik-auth": ("auto", 6, {}),
}
#: Application logs, not web-server logs: they must be reported as not recognised, never guessed.
FAIL2BAN_NOT_WEB_SERVER = ["drupal-auth", "haproxy-http-auth", "lighttpd-auth", "roundcube-auth", "squid", "suhosin"]

BUNKERWEB = (
    'log_format bunkerweb \'$host $remote_addr - $request_id $remote_user [$time_local] "$request" '
    '$status $body_bytes_sent "$http_referer" "$http_user_agent"\';'
)
NPM = (
    '\'[$time_local] $host $remote_addr $request_time "$request" $status $body_bytes_sent '
    "$request_length - $http_user_agent'"
)
OLD_BUNKERWEB = (1, "bunkerweb's older format without $request_id in the same file")

#: CrowdSec hub test folder -> (format or "auto", lines in events, {reason prefix: (count, why)})
CROWDSEC = {
    "apache-cve-2021-41773": (
        "auto",
        2,
        {"expected ' [' at column 12": (1, "an Apache error-log line in an access log")},
    ),
    "apache-http-probing": ("auto", 77, {}),
    "apache2-malformed": ("auto", 11, {}),
    "bunkerweb-bad-user-agent": (BUNKERWEB, 2, {"expected ' [' at column": OLD_BUNKERWEB}),
    "bunkerweb-http-malformed": (BUNKERWEB, 7, {"expected ' [' at column": (5, OLD_BUNKERWEB[1])}),
    "bunkerweb-http-path-traversal": (BUNKERWEB, 6, {"expected ' [' at column": (3, OLD_BUNKERWEB[1])}),
    "bunkerweb-http-sensitive-files": (BUNKERWEB, 6, {"expected ' [' at column": (3, OLD_BUNKERWEB[1])}),
    "bunkerweb-logs": (BUNKERWEB, 5, {}),
    "caddy-basic-auth-bf": ("auto", 6, {}),
    "caddy-logs": (
        "auto",
        10,
        {"JSON object without request keys": (1, "a reverse-proxy debug message, not a request"), EMPTY: (1, "")},
    ),
    "http-bf-wordpress-bf": ("auto", 9, {EMPTY: (1, "")}),
    "http-wordpress_wpconfig": ("auto", 14, {EMPTY: (1, "")}),
    "nextcloud-whitelist": ("auto", 18, {EMPTY: (1, "")}),
    "nginx-cve-2021-41773": ("auto", 2, {}),
    "nginx-http-malformed": ("auto", 12, {}),
    "nginx-proxy-manager-malformed": ("auto", 12, {}),
    "nginx_http-catch-npm": (
        NPM,
        4,
        {
            "expected request time ($request_time) at column 36": (1, "a line of another proxy-manager format"),
            "expected ' \"' at column 39": (1, "a line of another proxy-manager format"),
        },
    ),
    "nginx_http-logs": (
        "auto",
        7,
        {
            "expected ' [' at column 36": (1, "a line without the $remote_user field"),
            "expected ' - ' at column 11": (1, "an nginx error-log line in an access log"),
        },
    ),
    "spring4shell_cve-2022-22965": ("auto", 2, {}),
    "traefik_json": ("auto", 6, {"not valid JSON": (1, "a truncated line")}),
    "zoneminder_cve-39291": ("auto", 15, {EMPTY: (1, "")}),
}
#: Log types that are not web-server access/error logs (load balancers and apps logs with their own shapes).
CROWDSEC_NOT_WEB_SERVER = [
    "apache-guacamole_bf",
    "haproxy-logs",
    "envoy-logs",
    "http-magento-bf",
    "litespeed-admin-bf",
    "openappsec",
    "zoraxy-http-bad-user-agent",
]


def _root() -> Path:
    root = corpora_root()
    if root is None:
        pytest.skip("public corpora not found: ../shared/corpora is absent and LOGWARDEN_CORPORA is unset")
    return root


def _parse(data: bytes, format_spec: str, name: str):
    if format_spec == "auto":
        format_spec, _how = resolve_format("auto", data.decode("utf-8", "replace").splitlines())
    return parse_chunk(LineChunk(name, 0, 1, data, format_spec))


def _check(result, parsed: int, justified: dict) -> None:
    assert result.lines_read == result.lines_parsed + result.dead_letters.num_rows + result.lines_skipped
    found = collections.Counter()
    for dead in result.dead_letters.to_pylist():
        if dead["reason"] == EMPTY and not dead["raw"].strip():
            continue  # blank lines (test files end with one) are always dead letters, and rightly so
        prefix = next((p for p in justified if dead["reason"].startswith(p)), None)
        assert prefix is not None, f"unjustified dead letter: {dead['reason']!r} for {dead['raw'][:80]!r}"
        found[prefix] += 1
    assert dict(found) == {p: count for p, (count, _why) in justified.items() if p != EMPTY}
    assert result.lines_parsed == parsed


def _fail2ban_lines(path: Path) -> bytes:
    """The sample lines of a fail2ban test log, without its ``# failJSON`` annotations."""
    lines = [line for line in path.read_bytes().split(b"\n") if line.strip() and not line.startswith(b"#")]
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize("name", sorted(FAIL2BAN))
def test_fail2ban_web_logs(name):
    format_spec, parsed, justified = FAIL2BAN[name]
    result = _parse(_fail2ban_lines(_root() / "fail2ban" / "logs" / name), format_spec, name)
    _check(result, parsed, justified)


@pytest.mark.parametrize("name", FAIL2BAN_NOT_WEB_SERVER)
def test_fail2ban_application_logs_are_reported_not_guessed(name):
    lines = _fail2ban_lines(_root() / "fail2ban" / "logs" / name).decode("utf-8", "replace").splitlines()
    spec, how = resolve_format("auto", lines)
    assert spec.startswith(UNKNOWN_PREFIX) and "format not recognised" in how


@pytest.mark.parametrize("name", sorted(CROWDSEC))
def test_crowdsec_hub_web_logs(name):
    format_spec, parsed, justified = CROWDSEC[name]
    [log] = [p for p in (_root() / "crowdsec-hub" / "tests" / name).iterdir() if p.suffix == ".log"]
    _check(_parse(log.read_bytes(), format_spec, name), parsed, justified)


@pytest.mark.parametrize("name", CROWDSEC_NOT_WEB_SERVER)
def test_crowdsec_non_web_server_logs_are_reported_not_guessed(name):
    [log] = [p for p in (_root() / "crowdsec-hub" / "tests" / name).iterdir() if p.suffix == ".log"]
    spec, _how = resolve_format("auto", log.read_text(errors="replace").splitlines())
    assert spec.startswith(UNKNOWN_PREFIX)


def test_every_crowdsec_nginx_and_apache_test_log_is_covered():
    """No nginx/apache2 test folder of the hub is left out of the tables above."""
    import yaml

    root = _root() / "crowdsec-hub" / "tests"
    wanted = set()
    for folder in root.iterdir():
        config = yaml.safe_load((folder / "config.yaml").read_text())
        if config.get("log_type") in ("nginx", "apache2"):
            wanted.add(folder.name)
    uncovered = {n for n in wanted if n not in CROWDSEC}
    # Folders whose every line parses with auto-detection need no entry; check that they do.
    for name in sorted(uncovered):
        [log] = [p for p in (root / name).iterdir() if p.suffix == ".log"]
        result = _parse(log.read_bytes(), "auto", name)
        assert result.dead_letters.num_rows == 0, (name, result.dead_letters.to_pylist()[:1])

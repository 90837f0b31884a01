"""Generated logs of three hosts with known outages, for the service-health tests.

Three virtual hosts (``shop``, ``api``, ``blog``) serve 20 requests a minute each for three hours
from 00:00 UTC, logged with Apache's ``%v`` in front and ``%D`` (microseconds) at the end, 2 %
of them 404s on one old page, response times 20-80 ms.  With ``incidents`` the same traffic has:

* a 10-minute 502 wave on ``shop`` (01:30-01:40): every response a 502;
* a latency step on ``api`` (02:20-02:40): every response four times slower;
* ``blog`` silent for 15 minutes (01:40-01:55);
* a burst of 40 "upstream timed out" errors in the nginx error log of ``shop`` (02:00-02:04).

Everything is seeded, so the expected windows and values are exact.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

LOG_FORMAT = '%v %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D'
START = dt.datetime(2026, 11, 1, 0, 0, tzinfo=dt.timezone.utc)
HOSTS = ("shop.example", "api.example", "blog.example")
PATHS = ("/", "/products/12", "/cart", "/static/site.css", "/static/app.js", "/about", "/docs/setup", "/search?q=tea")
AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
MINUTES = 180
PER_MINUTE = 20

WAVE = ("shop.example", 90, 100)  # host, first minute, minute after the last
SLOW = ("api.example", 140, 160)
SILENT = ("blog.example", 100, 115)
UPSTREAM_BURST = (120, 124)  # minutes of the error-log burst (40 lines)


def at(minute: float) -> dt.datetime:
    return START + dt.timedelta(minutes=minute)


def _in(span, host: str, minute: float) -> bool:
    return span[0] == host and span[1] <= minute < span[2]


def access_lines(incidents: bool) -> list[str]:
    rng = random.Random(17)
    lines = []
    for minute in range(MINUTES):
        for i in range(PER_MINUTE):
            for h, host in enumerate(HOSTS):
                second = (i * 60 + h * 7) / PER_MINUTE
                when = at(minute) + dt.timedelta(seconds=second)
                path = rng.choice(PATHS)
                status = 404 if rng.random() < 0.02 else 200
                if status == 404:
                    path = "/old-page"
                took = rng.randint(20_000, 80_000)
                if incidents and _in(SILENT, host, minute):
                    continue
                if incidents and _in(WAVE, host, minute):
                    status = 502
                if incidents and _in(SLOW, host, minute):
                    took *= 4
                ip = f"198.51.100.{rng.randint(1, 200)}"
                stamp = when.strftime("%d/%b/%Y:%H:%M:%S +0000")
                lines.append(f'{host} {ip} - - [{stamp}] "GET {path} HTTP/1.1" {status} 5120 "-" "{AGENT}" {took}')
    lines.sort(key=lambda line: line.split("[", 1)[1][:20])  # one log, in time order, as the servers wrote it
    return lines


def error_lines(incidents: bool) -> list[str]:
    """nginx error log: an upstream timeout every half hour (normal), plus the burst."""
    times = [at(m + 0.5) for m in range(0, MINUTES, 30)]
    if incidents:
        first, last = UPSTREAM_BURST
        times += [at(first + (last - first) * k / 40) for k in range(40)]
    lines = []
    for n, when in enumerate(sorted(times)):
        lines.append(
            f"{when.strftime('%Y/%m/%d %H:%M:%S')} [error] 4711#0: *{n + 1} upstream timed out (110: Connection timed "
            "out) while reading response header from upstream, client: 198.51.100.9, server: shop.example, request: "
            '"GET /cart HTTP/1.1", upstream: "http://127.0.0.1:8080/cart", host: "shop.example"'
        )
    return lines


def write_logs(folder: Path, incidents: bool) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    access, error = folder / "access.log", folder / "error.log"
    access.write_text("\n".join(access_lines(incidents)) + "\n")
    error.write_text("\n".join(error_lines(incidents)) + "\n")
    return access, error

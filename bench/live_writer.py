"""A web server stand-in for the streaming bench and crash test: appends combined-log lines at a set rate.

Every line carries its sequence number as its response size, so a test can
check that the archive holds each written line exactly once; addresses and
paths come from pools of a few thousand, as on a real site (caches hit as much
as they would there).  Attack lines
(a UNION SELECT that the ``http-sqli`` signature catches) come at known moments,
each from its own address so each makes one alert; their append times are kept
for latency.  Rotations are done the way logrotate does them, while no line is
being written (with copytruncate a real server's lines between the copy and the
truncation are lost; here the writer pauses, so every line stays countable):

- ``rename``: ``access.log`` -> ``access.log.1`` and a new ``access.log``;
- ``copytruncate``: copy to ``access.log.1``, truncate ``access.log`` in place;

and before either, an existing ``access.log.1`` is compressed to ``access.log.<k>.gz``.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import random
import shutil
import threading
import time
from pathlib import Path

ATTACK_PATH = "/news?id=-1%20union/**/select%201,2,3"
ATTACK_RULE = "http-sqli"
AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def attack_ip(n: int) -> str:
    return f"198.51.{100 + n // 250}.{n % 250 + 1}"


def _stamp(now: float) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now))


@dataclasses.dataclass
class Written:
    lines: int = 0
    attacks: dict[str, float] = dataclasses.field(default_factory=dict)  # attacker address -> append time
    rotations: dict[str, int] = dataclasses.field(default_factory=lambda: {"rename": 0, "copytruncate": 0})


class LiveWriter(threading.Thread):
    """Append ``rate`` lines/s to ``path`` until stopped; attacks every ``attack_every`` s; rotations if asked."""

    def __init__(
        self,
        path: Path,
        rate: int,
        attack_every: float = 1.0,
        rotate_every: float | None = None,
        seed: int = 7,
        batch_seconds: float = 0.01,
    ):
        super().__init__(daemon=True)
        self.path = Path(path)
        self.rate = rate
        self.attack_every = attack_every
        self.rotate_every = rotate_every
        self.batch_seconds = batch_seconds
        self.written = Written()
        self._rng = random.Random(seed)
        self._halt = threading.Event()
        self._gz = 0
        self._ips = [f"10.{self._rng.randint(0, 255)}.{self._rng.randint(0, 255)}.{self._rng.randint(1, 254)}"
                     for _ in range(5000)]  # fmt: skip
        sections = ["blog", "shop", "docs", "news", "api/v1/items", "static/img", "careers"]
        self._paths = [f"/{self._rng.choice(sections)}/{self._rng.randint(1, 400)}" for _ in range(2000)]

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def _line(self, now: float, n: int) -> str:
        ip = self._ips[int(len(self._ips) * self._rng.random() ** 2)]  # a few busy clients, many quiet ones
        path = self._paths[int(len(self._paths) * self._rng.random() ** 2)]
        return f'{ip} - - [{_stamp(now)}] "GET {path} HTTP/1.1" 200 {n} "-" "{AGENT}"\n'

    def run(self) -> None:
        started = time.monotonic()
        next_attack = started + self.attack_every / 2
        next_rotation = started + self.rotate_every if self.rotate_every else None
        kinds = ["rename", "copytruncate"]
        fh = open(self.path, "a", buffering=1)  # noqa: SIM115 - reopened at each rename rotation
        try:
            while not self._halt.is_set():
                tick = time.monotonic()
                due = int((tick - started) * self.rate) - self.written.lines
                now = time.time()
                if due > 0:
                    first = self.written.lines
                    fh.write("".join(self._line(now, first + i) for i in range(due - 1)))
                    self.written.lines += due - 1
                    if tick >= next_attack:
                        n = len(self.written.attacks)
                        ip = attack_ip(n)
                        fh.write(f'{ip} - - [{_stamp(now)}] "GET {ATTACK_PATH} HTTP/1.1" '
                                 f'400 {self.written.lines} "-" "{AGENT}"\n')  # fmt: skip
                        fh.flush()
                        self.written.attacks[ip] = time.time()
                        next_attack += self.attack_every
                    else:
                        fh.write(self._line(now, self.written.lines))
                        fh.flush()
                    self.written.lines += 1
                if next_rotation is not None and tick >= next_rotation:
                    kind = kinds[sum(self.written.rotations.values()) % 2]
                    fh = self._rotate(fh, kind)
                    self.written.rotations[kind] += 1
                    next_rotation += self.rotate_every
                time.sleep(self.batch_seconds)
        finally:
            fh.close()

    def _rotate(self, fh, kind: str):
        one = self.path.with_name(self.path.name + ".1")
        if one.exists():
            self._gz += 1
            with (
                open(one, "rb") as src,
                gzip.open(self.path.with_name(f"{self.path.name}.{self._gz + 1}.gz"), "wb") as dst,
            ):
                shutil.copyfileobj(src, dst)
            os.unlink(one)
        if kind == "rename":
            fh.close()
            os.rename(self.path, one)
            return open(self.path, "a", buffering=1)
        fh.flush()
        shutil.copyfile(self.path, one)
        os.truncate(self.path, 0)
        return fh

"""An archive written by ``logwarden batch`` from generated logs with one known subject among many visitors.

The template archive (events, errors, dead letters, alerts; three days; keys
sealed to the default roles) is built once per session; each test gets a copy,
so erasure tests can change theirs freely.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
from pathlib import Path

import pytest

from pipelines.batch import run_batch
from pipelines.options import pipeline_options
from retention.keyring import init_keyring, reader_keys
from retention.role_keys import add_role, grant, role_keys
from schemas.config import AccessConfig, ArchiveConfig, Config, KeysConfig

#: The person who asks: a user name, an address and an e-mail address they proved are theirs.
SUBJECT = {"user": "carol.d", "ip": "192.0.2.44", "email": "carol@example.org"}
#: Someone else with a confusable name and address: never matched, never touched.
NEIGHBOUR = {"user": "carol.dx", "ip": "192.0.2.4"}
ATTACKER = "198.51.100.66"
RARE = "203.0.113.250"  # one request a day: what the blind index is for
DAYS = (5, 6, 7)
ROLES = ("ops", "security", "planner", "privacy")


def _visitor(rng: random.Random) -> tuple[str, str]:
    return f"203.0.113.{rng.randrange(1, 250)}", rng.choice(["-", "-", "-", "dave", "erin", "frank", "grace"])


def access_log(rng: random.Random) -> tuple[str, int]:
    """Combined-format lines over ``DAYS``; returns the text and how many lines are the subject's."""
    lines, subject_lines = [], 0
    for day in DAYS:
        for n in range(400):
            ts = f"{day:02d}/Jan/2026:{n // 60 % 24:02d}:{n % 60:02d}:{rng.randrange(60):02d} +0000"
            ip, user = _visitor(rng)
            path, query, status = rng.choice(["/", "/docs/setup", "/blog/intro", "/login"]), "", 200
            if n % 37 == 0:
                ip, user = SUBJECT["ip"], SUBJECT["user"]
                subject_lines += 1
            elif n % 41 == 0:  # the subject's e-mail in a query string, from another address
                query = "?newsletter=" + SUBJECT["email"].replace("@", "%40")
                subject_lines += 1
            elif n == 125:
                ip = RARE
            elif n % 43 == 0:
                ip, user = NEIGHBOUR["ip"], NEIGHBOUR["user"]
            elif n % 50 == 0:
                ip, path, query, status = ATTACKER, "/products", "?id=1%27%20OR%20%271%27=%271", 500
            elif n % 7 == 0:
                status = 404
            lines.append(
                f'{ip} - {user} [{ts}] "GET {path}{query} HTTP/1.1" {status} {rng.randrange(100, 9000)} '
                f'"https://ref.example/" "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0"'
            )
    return "\n".join(lines) + "\n", subject_lines


def error_log() -> str:
    """Apache 2.4 error lines: two embed the subject's address, one the neighbour's."""
    rows = []
    for n, ip in enumerate([SUBJECT["ip"], "203.0.113.9", NEIGHBOUR["ip"], SUBJECT["ip"], "203.0.113.10"]):
        rows.append(
            f"[Mon Jan 05 11:0{n}:00.000000 2026] [core:error] [pid 42] [client {ip}:5{n}000] "
            f"AH00126: Invalid URI in request GET /x{n} HTTP/1.1"
        )
    return "\n".join(rows) + "\n"


@dataclasses.dataclass
class AccessArchive:
    root: Path
    config: Config
    subject_access_lines: int

    def keys(self, role: str):
        """``role``'s own keys, straight from the library (no CLI in between)."""
        if role == "custodian":
            return reader_keys(self.config.keys.keyring, self.config.keys.root_key_file, environ={})
        return role_keys(self.config.keys.keyring, role, Path(self.config.access.role_keys_dir) / f"{role}.key", {})


def _config(base: Path) -> Config:
    keys = KeysConfig(keyring=str(base / "keyring"), root_key_file=str(base / "root.key"))
    archive = ArchiveConfig(row_group_rows=50)  # several row groups per file, so indexes have something to skip
    access = AccessConfig(role_keys_dir=str(base / "roles"))
    return dataclasses.replace(Config(), keys=keys, archive=archive, access=access)


def _build(base: Path) -> int:
    config = _config(base)
    init_keyring(config.keys.keyring, config.keys.root_key_file, environ={})
    custodian = reader_keys(config.keys.keyring, config.keys.root_key_file, environ={})
    for role in ROLES:
        add_role(config.keys.keyring, role, base / "roles" / f"{role}.key")
        if role != "planner":
            grant(custodian, role)
    logs = base / "logs"
    logs.mkdir()
    text, subject_lines = access_log(random.Random(12))
    garbage = f"garbage from {SUBJECT['ip']} that is no log line\nnoise 192.0.2.44x and {NEIGHBOUR['ip']} here\n"
    (logs / "access.log").write_text(text + garbage)
    (logs / "error.log").write_text(error_log())
    run_batch(
        [str(p) for p in sorted(logs.iterdir())], str(base / "archive"), config, pipeline_options([], config.runner)
    )
    return subject_lines


@pytest.fixture(scope="session")
def _template(tmp_path_factory) -> tuple[Path, int]:
    base = tmp_path_factory.mktemp("access-template")
    return base, _build(base)


@pytest.fixture
def archive(_template, tmp_path) -> AccessArchive:
    base, subject_lines = _template
    for name in ("keyring", "roles", "archive", "logs"):
        shutil.copytree(base / name, tmp_path / name, symlinks=True)
    shutil.copy2(base / "root.key", tmp_path / "root.key")
    shutil.copy2(base / "signing.key", tmp_path / "signing.key")  # the trusted writer that signs rewrites
    return AccessArchive(tmp_path / "archive", _config(tmp_path), subject_lines)

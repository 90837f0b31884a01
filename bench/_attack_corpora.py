"""Labelled requests from the corpora, as the access-log lines a web server would have written for them.

Shared by ``python -m bench detection-quality`` and the detection-quality tests.  Only what an access log shows
counts: the request line (method, path, query), the User-Agent and the Referer.  A CRS case whose payload travels
in a body, a cookie or another header leaves nothing in the log to detect, so it is left out (and counted).
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import quote

import yaml

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: CRS rule file -> attack class of the quality table.
CRS_CLASSES = {
    "REQUEST-930-APPLICATION-ATTACK-LFI": "traversal",
    "REQUEST-931-APPLICATION-ATTACK-RFI": "rfi",
    "REQUEST-932-APPLICATION-ATTACK-RCE": "command",
    "REQUEST-933-APPLICATION-ATTACK-PHP": "code",
    "REQUEST-934-APPLICATION-ATTACK-GENERIC": "code",
    "REQUEST-941-APPLICATION-ATTACK-XSS": "xss",
    "REQUEST-942-APPLICATION-ATTACK-SQLI": "sqli",
    "REQUEST-944-APPLICATION-ATTACK-JAVA": "code",
}
#: Headers an access log does not record but that carry no payload in CRS's tests (boilerplate of every case).
UNLOGGED_BOILERPLATE = {
    "host", "accept", "accept-encoding", "accept-language", "accept-charset", "connection", "content-type",
    "content-length", "proxy-connection", "keep-alive", "cache-control",
}  # fmt: skip
CRS_TEST_AGENT = "OWASP CRS test agent"
DEFAULT_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@dataclasses.dataclass(frozen=True)
class Case:
    """One labelled request: ``attack`` is its class, or None for a benign one."""

    source: str  # corpus file and test id
    attack: str | None
    method: str
    uri: str
    user_agent: str = DEFAULT_AGENT
    referrer: str | None = None
    paranoia: int = 1  # CRS cases: the paranoia level of the rule the case is for (1 = CRS's default)


def _escape(text: str) -> str:
    """A field as Apache's ``%r``/``%{...}i`` writes it: '"' and '\\' escaped, other unprintable bytes as ``\\xHH``."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif byte < 0x20 or byte > 0x7E:
            out.append(f"\\x{byte:02x}")
        else:
            out.append(chr(byte))
    return "".join(out)


def source_ip(index: int) -> str:
    """Each case its own client, so an alert names the case it is about (cool-downs are per client)."""
    return f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"


def access_line(index: int, case: Case) -> str:
    uri = case.uri.replace(" ", "%20")
    referrer = _escape(case.referrer) if case.referrer else "-"
    request = _escape(f"{case.method} {uri} HTTP/1.1")
    return (
        f'{source_ip(index)} - - [01/Dec/2026:10:00:00 +0000] "{request}" 200 512 "{referrer}" '
        f'"{_escape(case.user_agent)}"'
    )


def write_log(cases: list[Case], path: Path) -> None:
    path.write_text("".join(access_line(i, c) + "\n" for i, c in enumerate(cases)), encoding="utf-8")


# ---------------------------------------------------------------- OWASP CRS regression tests


def _headers(raw: dict | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (raw or {}).items()}


def _visible(stage: dict) -> bool:
    """Whether the stage's payload (if any) is in what an access log records."""
    if stage.get("data") or stage.get("encoded_request") or stage.get("raw_request"):
        return False
    headers = _headers(stage.get("headers"))
    return all(name in UNLOGGED_BOILERPLATE | {"user-agent", "referer"} for name in headers)


_RULE_ID = re.compile(r"\bid:(\d{6})")
_PARANOIA = re.compile(r"paranoia-level/(\d)")


def crs_paranoia_levels(corpora: Path) -> dict[int, int]:
    """Rule id -> paranoia level, from the ``paranoia-level/N`` tag of each rule in CRS's ``rules/*.conf``."""
    levels = {}
    for path in sorted((corpora / "owasp-crs/rules").glob("*.conf")):
        for chunk in path.read_text(encoding="utf-8", errors="replace").split("\nSecRule")[1:]:
            rule_id, level = _RULE_ID.search(chunk), _PARANOIA.search(chunk)
            if rule_id and level:
                levels[int(rule_id.group(1))] = int(level.group(1))
    return levels


def crs_cases(corpora: Path) -> tuple[list[Case], int]:
    """``(cases, left out)``: CRS's attack-class regression requests an access log shows, positive and negative.

    A positive case expects a rule of its file to fire; a negative one only lists rules that must not.
    """
    cases, skipped = [], 0
    levels = crs_paranoia_levels(corpora)
    root = corpora / "owasp-crs/tests/regression/tests"
    for folder, attack in CRS_CLASSES.items():
        for name in sorted(glob.glob(str(root / folder / "*.yaml"))):
            document = yaml.load(Path(name).read_text(encoding="utf-8"), Loader=SAFE_LOADER)
            for test in document.get("tests") or []:
                for number, stage in enumerate(test.get("stages") or []):
                    request = stage.get("input") or {}
                    log = (stage.get("output") or {}).get("log") or {}
                    if "expect_ids" not in log and "no_expect_ids" not in log:
                        continue
                    if not _visible(request):
                        skipped += 1
                        continue
                    headers = _headers(request.get("headers"))
                    agent = headers.get("user-agent", CRS_TEST_AGENT)
                    cases.append(
                        Case(
                            source=f"{Path(name).name}#{test.get('test_id')}.{number}",
                            attack=attack if log.get("expect_ids") else None,
                            method=str(request.get("method", "GET")),
                            uri=str(request.get("uri", "/")),
                            user_agent=agent,
                            referrer=headers.get("referer"),
                            paranoia=levels.get(int(document.get("rule_id", 0) or 0), 1),
                        )
                    )
    return cases, skipped


# ---------------------------------------------------------------- libinjection's payload collections


def _payload_lines(path: Path) -> Iterator[str]:
    for raw in path.read_bytes().splitlines():
        line = raw.decode("utf-8", "surrogateescape").strip("\r\n")
        if line.strip() and not line.startswith("#"):
            yield line


def query_uri(value: str) -> str:
    """A payload as one query parameter; libinjection's files hold URL-encoded user input, so '%' stays as is."""
    return "/search?q=" + quote(value, safe="!$&'()*+,;=:@/?%-._~[]{}|^`<>\\")


def libinjection_cases(corpora: Path) -> list[Case]:
    """Every payload of libinjection's ``sqli-*`` / ``xss-*`` files, and its benign ``false_positives.txt``."""
    root = corpora / "libinjection-data/data"
    cases = []
    for path in sorted(root.glob("*.txt")):
        if path.name.startswith("sqli-"):
            attack = "sqli"
        elif path.name.startswith("xss-"):
            attack = "xss"
        elif path.name == "false_positives.txt":
            attack = None
        else:
            continue  # 'tbd-' files: undecided upstream
        for i, line in enumerate(_payload_lines(path)):
            cases.append(Case(f"{path.name}#{i + 1}", attack, "GET", query_uri(line)))
    return cases


# ---------------------------------------------------------------- our own look-alikes


def benign_lookalikes(path: Path) -> list[Case]:
    """The look-alike URLs of ``path`` (one per line, '#' comments): benign requests keyword matching flags."""
    return [Case(f"{path.name}#{i + 1}", None, "GET", line) for i, line in enumerate(_payload_lines(path))]


def by_source(cases: Iterable[Case]) -> dict[str, list[Case]]:
    grouped: dict[str, list[Case]] = {}
    for case in cases:
        grouped.setdefault(case.source.split("#")[0], []).append(case)
    return grouped


# ---------------------------------------------------------------- which CRS negatives are benign

#: CRS negative cases (``no_expect_ids`` only) that a reviewer read and found to be attacks: ``source<TAB>reason``.
CRS_REVIEW = Path(__file__).resolve().parent.parent / "tests/alerts/data/crs_negatives_reviewed.tsv"


def _request(case: Case) -> tuple:
    return case.method, case.uri, case.user_agent, case.referrer


def load_review(path: Path = CRS_REVIEW) -> dict[str, str]:
    """Case source -> why the request is an attack although its CRS test only says one rule must not fire."""
    review = {}
    for line in _payload_lines(path):
        source, _, reason = line.partition("\t")
        review[source.strip()] = reason.strip()
    return review


def benign_negatives(cases: list[Case], review: dict[str, str]) -> tuple[list[int], collections.Counter]:
    """Indices of the CRS negative cases that are benign requests, and why the others were left out.

    A CRS negative case says only "rule X must not fire on this"; many such requests are attacks that another
    rule (or paranoia level) is for.  Left out: a request that CRS itself labels an attack in another test (the
    very same method, URI, User-Agent and Referer among the positive cases), and one the review file names an attack,
    with its reason.  Everything else counts as benign, flagged or not: the review only ever removes a flagged
    request when its payload is a working attack, so the false-positive rate left is alerts on requests that
    attack nothing."""
    positives = {_request(c) for c in cases if c.attack}
    kept, left_out = [], collections.Counter()
    for i, case in enumerate(cases):
        if case.attack:
            continue
        if _request(case) in positives:
            left_out["same request is a CRS positive case"] += 1
        elif case.source in review:
            left_out["reviewed: an attack (tests/alerts/data/crs_negatives_reviewed.tsv)"] += 1
        else:
            kept.append(i)
    return kept, left_out

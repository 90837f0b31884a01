"""Browser, OS, device class and bot flag from a User-Agent header, with ua-parser's regexes.

ua-parser is used directly (not through ``user-agents``): with the ``ua-parser-rs``
accelerator installed it resolves a string about ten times faster than the pure
Python engine, and the device class and bot flag below need only its three
answers (user agent, OS, device) plus the raw string.  On top of ua-parser, a small
table names the attack tools it does not know (sqlmap, Nikto, ...) and the HTTP
libraries it does not flag (curl, python-requests, ...) so both count as bots.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import ua_parser
from ua_parser import OS as OperatingSystem
from ua_parser import Device, Domain
from ua_parser import UserAgent as Agent

try:  # the Rust accelerator, when installed, is the fastest engine ua-parser has
    from ua_parser.regex import Resolver as _FastResolver
except ImportError:  # pragma: no cover - depends on the installed extras
    _FastResolver = None

#: Longer strings are cut before parsing: real user agents are far shorter, and the cut bounds
#: both the regex time of a hostile 1 MB header and the memory of the cache keyed on it.
MAX_PARSED_LENGTH = 1024

DEVICE_TYPES = ("desktop", "mobile", "tablet", "bot", "other")


class UserAgentInfo(NamedTuple):
    """The ``user_agent_*`` columns for one distinct User-Agent string."""

    name: str | None = None
    version: str | None = None
    os_name: str | None = None
    os_version: str | None = None
    device_name: str | None = None
    device_type: str | None = None
    is_bot: bool | None = None


NO_USER_AGENT = UserAgentInfo()

#: Vulnerability scanners and brute-forcers ua-parser does not name (or names as a browser):
#: the family we report, and a pattern whose optional groups are the major and minor version.
SCANNERS: tuple[tuple[str, str], ...] = (
    ("sqlmap", r"sqlmap/(\d+)(?:\.(\d+))?"),
    ("Nikto", r"Nikto/?(\d+)?(?:\.(\d+))?"),
    ("Nmap", r"Nmap Scripting Engine"),
    ("zgrab", r"zgrab/(\d+)(?:\.(\d+))?"),
    ("Nuclei", r"Nuclei"),
    ("WPScan", r"WPScan v?(\d+)?(?:\.(\d+))?"),
    ("DirBuster", r"DirBuster-?(\d+)?(?:\.(\d+))?"),
    ("gobuster", r"gobuster/(\d+)(?:\.(\d+))?"),
    ("feroxbuster", r"feroxbuster/(\d+)(?:\.(\d+))?"),
    ("ffuf", r"Fuzz Faster U Fool v?(\d+)?(?:\.(\d+))?"),
    ("Wfuzz", r"Wfuzz/(\d+)(?:\.(\d+))?"),
    ("Acunetix", r"Acunetix"),
    ("Nessus", r"Nessus"),
    ("OpenVAS", r"OpenVAS(?:-VT)? ?(\d+)?(?:\.(\d+))?"),
    ("Netsparker", r"Netsparker"),
    ("w3af", r"w3af"),
    ("Arachni", r"Arachni/v?(\d+)?(?:\.(\d+))?"),
    ("Hydra", r"\(Hydra\)|THC-Hydra"),
    ("commix", r"commix/v?(\d+)?(?:\.(\d+))?"),
    ("Havij", r"Havij"),
    ("masscan", r"masscan/(\d+)(?:\.(\d+))?"),
    ("WhatWeb", r"WhatWeb/(\d+)(?:\.(\d+))?"),
)
_SCANNER_PATTERNS = tuple((family, re.compile(pattern, re.IGNORECASE)) for family, pattern in SCANNERS)
_ANY_SCANNER = re.compile("|".join(f"(?:{pattern})" for _, pattern in SCANNERS), re.IGNORECASE)

#: ua-parser families that are programs, not people: HTTP libraries, command-line tools, headless browsers.
AUTOMATED_FAMILIES = frozenset(
    name.lower()
    for name in (
        "curl",
        "Wget",
        "Python Requests",
        "Python-urllib",
        "Go-http-client",
        "libwww-perl",
        "Java",
        "okhttp",
        "Apache-HttpClient",
        "PostmanRuntime",
        "HeadlessChrome",
        "PhantomJS",
        "Scrapy",
        "aiohttp",
        "python-httpx",
        "axios",
        "node-fetch",
    )
)

_TABLET_DEVICES = frozenset({"iPad", "Kindle", "Generic Tablet", "BlackBerry Playbook", "Galaxy Tab", "Xoom"})
_MOBILE_DEVICES = frozenset({"iPhone", "iPod", "Generic Smartphone", "Generic Feature Phone"})
_MOBILE_OS = frozenset(
    {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Symbian OS", "Firefox OS", "Windows Mobile"}
)
_DESKTOP_OS = frozenset(
    {
        "Windows",
        "Mac OS X",
        "Linux",
        "Ubuntu",
        "Fedora",
        "Debian",
        "Chrome OS",
        "FreeBSD",
        "OpenBSD",
        "NetBSD",
        "Solaris",
        "Red Hat",
        "SUSE",
        "CentOS",
        "Mint",
        "Arch Linux",
        "Gentoo",
    }
)
_TV_MARKERS = ("SMART-TV", "SmartTV", "HbbTV", "CrKey", "AppleTV", "GoogleTV", "Roku", "BRAVIA")


def _version(major: str | None, minor: str | None) -> str | None:
    """``major.minor`` (the granularity reports group by); just ``major`` when there is no minor."""
    if not major:
        return None
    return f"{major}.{minor}" if minor else major


def _known(family: str | None) -> str | None:
    return None if family in (None, "", "Other") else family


def _scanner(text: str) -> tuple[str, str | None] | None:
    """The attack tool named in ``text`` and its version, if any (one combined regex screens first)."""
    if _ANY_SCANNER.search(text) is None:
        return None
    for family, pattern in _SCANNER_PATTERNS:
        match = pattern.search(text)
        if match:
            groups = [*match.groups(), None, None]
            return family, _version(groups[0], groups[1])
    return None  # pragma: no cover - the combined regex matched, so one of the parts does


def device_type(text: str, os: OperatingSystem, device: Device, is_bot: bool) -> str:
    """One of desktop, mobile, tablet, bot, other: what capacity planners group by."""
    if is_bot:
        return "bot"
    if any(marker in text for marker in _TV_MARKERS) or "TV" in device.family.split():
        return "other"
    if device.family in _TABLET_DEVICES or device.brand == "Generic_Android_Tablet":
        return "tablet"
    if device.family in _MOBILE_DEVICES:
        return "mobile"
    if os.family in _MOBILE_OS:
        # Google's rule for Android: phones send "Mobile", tablets do not.
        if os.family == "Android" and "Mobile" not in text:
            return "tablet"
        return "mobile"
    if os.family in _DESKTOP_OS or device.family == "Mac":
        return "desktop"
    return "other"


def _resolver():
    if _FastResolver is not None:
        return _FastResolver(ua_parser.load_lazy_builtins()), "ua-parser-rs"
    return ua_parser.BasicResolver(ua_parser.load_builtins()), "ua-parser (pure Python)"


#: A resolver built ahead by ``prepare``, for the next parser made in this process to take.
_prepared: list = []


def prepare() -> None:
    """Compile the matchers now (~0.5 s of CPU) for the next ``UserAgentParser`` of this process: a forked local
    worker does it while the command still builds the job, instead of in the job's first stage."""
    if not _prepared:
        _prepared.append(_resolver())


class UserAgentParser:
    """Parses User-Agent strings (the caller caches: see ``parsers.enrich.memo``)."""

    def __init__(self):
        # Taken, not shared: the matchers go with the parser that took them (a finished stage frees them).
        self._resolve, self.engine = _prepared.pop() if _prepared else _resolver()

    def parse(self, text: str) -> UserAgentInfo:
        """The ``user_agent_*`` fields for one User-Agent header."""
        text = text.strip()[:MAX_PARSED_LENGTH]
        if not text or text == "-":
            return NO_USER_AGENT
        result = self._resolve(text, Domain.ALL)
        agent = result.user_agent or Agent()
        os = result.os or OperatingSystem()
        device = result.device or Device()
        name, version = _known(agent.family), _version(agent.major, agent.minor)
        is_bot = device.family == "Spider" or agent.family.lower() in AUTOMATED_FAMILIES
        tool = _scanner(text)
        if tool is not None:
            (name, version), is_bot = tool, True
        return UserAgentInfo(
            name=name,
            version=version if name else None,
            os_name=_known(os.family),
            os_version=_version(os.major, os.minor),
            device_name=_known(device.family),
            device_type=device_type(text, os, device, is_bot),
            is_bot=is_bot,
        )


def clip(user_agents: pa.Array) -> pa.Array:
    """Cut values past ``MAX_PARSED_LENGTH`` so a flood of huge distinct headers cannot bloat the cache."""
    longest = pc.max(pc.binary_length(user_agents)).as_py()
    if longest is None or longest <= MAX_PARSED_LENGTH:
        return user_agents
    return pc.utf8_slice_codeunits(user_agents, 0, MAX_PARSED_LENGTH)

"""Cross-site scripting and remote file inclusion, read in context.

XSS: markup that runs script in a browser, not markup as such: a tag that executes or loads (``<script``,
``<svg``, ``<iframe``...), any tag (or a quote breaking out of an attribute) carrying an event handler
(``onerror=``), a ``javascript:`` / ``vbscript:`` URL followed by code (not the book title "JavaScript: The Good
Parts"), CSS expressions and bindings, and the classic probes (``alert(1)``, ``document.cookie``).  A plain
``<a href="/x">`` or ``<b>`` in a search stays silent.

RFI: a parameter holding a URL the application would fetch and run: an IP-literal or internal host, a trailing
``?`` or ``%00`` cutting off the suffix the application appends, or a script file on another host passed to an
include-like parameter.  Redirect and share links (``?url=https://site/page``) stay silent.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket

from alerts.wordlists import load_word_list

_EXECUTING_TAGS = """
    script svg math iframe frame frameset object embed applet base link meta style form isindex xml
    import template vmlframe xss bgsound layer ilayer xmp plaintext listing noscript animate set handler
    portal
""".split()  # noqa: SIM905
_TAG = re.compile(
    r"(?:<|\+adw-)\s*/?\s*(?:[a-z]+\s*:\s*)?(?:" + "|".join(_EXECUTING_TAGS) + r")(?:[\s/>\x00]|\+ad4-|$)"
    r"|<\??\s*import\s*implementation"
)
#: ``<f o r m``: a tag name spelled with spaces between its letters, as some filters let through.
_SPACED_TAG = re.compile(r"<\s*/?\s*([a-z](?:\s+[a-z]){2,})\b")
_HANDLER = re.compile(r"(?:<[^>]*?|['\"`]|^)[\s/\x00'\"`;]*\b(?:on[a-z]{3,40}|formaction|srcdoc|xlink:href)\s*=")
_SCRIPT_URL = re.compile(
    r"(?:java|vb|live|mocha|ecma)script\s*:\s*(?:[a-z_$][\w$.]*\s*[(=\[`.]|//|/\*|%|['\"(`\\]|void\b|\d|!|\[|\{)"
    r"|\bdata\s*:\s*(?:text/html|image/svg\+xml|application/(?:x-)?(?:javascript|xhtml))|\bdata\s*:[^,]{0,40},\s*<"
)
_STYLE = re.compile(
    r"expression\s*\(|-moz-binding\s*:|behavior\s*:\s*url|@import\s+['\"]?(?:https?:)?//|<!--\[if"
    r"|url\s*\(\s*['\"]?\s*(?:java|vb)script"
)
_PROBES = re.compile(
    r"\b(?:alert|prompt|confirm|print)\s*(?:\(|`)\s*(?:\d|['\"`]|document|window|this|/|\)|string\.|top\b|self\b)"
    r"|(?:^|[^/\w.-])(?:document\s*\.\s*(?:cookie|domain|write|location)|window\s*\.\s*location)"
    r"|\bstring\s*\.\s*fromcharcode\s*\(|\b(?:atob|btoa)\s*\(|[\]\w]\s*\.\s*(?:call|apply)\s*`"
    r"|\$\{\s*(?:alert|eval|prompt|confirm|navigation|top|self|window)\b"
    r"|\b(?:top|self|parent|window)\s*\[\s*['\"`]|\binnerhtml\s*=|\.src\s*=\s*['\"`]?(?:https?:)?//"
)


def _unspaced(match: re.Match) -> str:
    return "<" + re.sub(r"\s+", "", match.group(1))


def is_xss(value: str) -> bool:
    """Whether one decoded, case-folded value carries script for a browser."""
    tagged = "<" in value or "+adw-" in value
    if tagged and (_TAG.search(value) or ("<" in value and _TAG.search(_SPACED_TAG.sub(_unspaced, value)))):
        return True
    if "on" in value and "=" in value and _HANDLER.search(value):
        return True
    squeezed = re.sub(r"[\s\x00-\x1f]+", "", value) if "script" in value.replace(" ", "") else value
    return bool(_SCRIPT_URL.search(value) or _SCRIPT_URL.search(squeezed) or _STYLE.search(value)
                or _PROBES.search(value))  # fmt: skip


_REMOTE_URL = re.compile(r"^\s*(?:https?|ftps?|php|gopher|dict|ldap|tftp|jar|netdoc|file)s?:/*(\[[^\]]*\]|[^/?#\s:]*)")
_IP_HOST = re.compile(r"^(?:\d{1,3}(?:\.\d{1,3}){3}|\d{8,10}|0x[0-9a-f]{8}|\[[0-9a-f:.]+\]|[0-9a-f]*:[0-9a-f:]+)$")
_INTERNAL_HOST = re.compile(
    r"^(?:localhost[46]?|localhost[46]?\.localdomain[46]?|metadata\.google\.internal|metadata\.packet\.net|"
    r"metadata\.azure\.com|host\.docker\.internal|"
    r"kubernetes\.default(?:\.svc)?|instance-data|169\.254\.\d+\.\d+|127\.\d+\.\d+\.\d+|0\.0\.0\.0|0)$"
)
#: A script on the other host (or a text/image file the include runs anyway, when a '?' cuts off the suffix).
_SCRIPT_FILE = re.compile(
    r"\.(?:php\d?|phtml|txt|sh|pl|py|cgi|jsp|aspx?|exe|inc)(?:\?|%00|\x00|$)|\.(?:gif|jpe?g|png)\?"
)
_INCLUDE_PARAMS = re.compile(
    r"^(?:include|inc|page|file|filename|path|template|tpl|mod|module|dir|document|doc|folder|root|load|conf|"
    r"config|show|view|src|source|lang|language|theme|skin|layout|content|cat|action|board|home|main|site|body|"
    r"prefix|base|basepath|class|lib|library|plugin|pg|p|data|read|get)(?:_?\w{0,12})?$"
)
_SSRF_SCHEME = re.compile(r"^\s*(?:gopher|dict|ldap|tftp|jar|netdoc)s?://")
#: Parameters of PHP applications whose remote-include bugs every RFI kit tries (the names OWASP CRS 931110 lists).
_KNOWN_INCLUDE_PARAMS = re.compile(
    r"^(?:mosconfig_absolute_path|_conf\[path\]|_server\[document_root\]|gallery_basedir|path\[docroot\]|"
    r"appserv_root|config\[root_dir\])$|\binclude\s*\("
)
#: A scheme and then only '?'s: the suffix-cutting probe (``?x=http?``), no URL needed.
_SCHEME_PROBE = re.compile(r"^(?:file|ftps?|https?)[^\s]*?\?+$")


#: An internal address handed over without a scheme (``?url=localhost/``, ``?url=host.docker.internal/``): server-side
#: request forgery.  A bare ``localhost`` with nothing after it is a word (a server name in a form), not a URL.
_BARE_INTERNAL_IP = r"127\.\d+\.\d+\.\d+|0\.0\.0\.0|169\.254\.169\.254|\[::1?\]"


@functools.lru_cache(maxsize=1)
def internal_hosts() -> tuple[str, ...]:
    """OWASP CRS's scheme-less internal host names (``crs_ssrf_no_scheme.txt``), without their trailing '/'."""
    from alerts.rules import DEFAULT_RULES_DIR

    return tuple(dict.fromkeys(h.rstrip("/") for h in load_word_list("crs_ssrf_no_scheme", [DEFAULT_RULES_DIR])))


@functools.lru_cache(maxsize=1)
def _bare_internal() -> re.Pattern:
    hosts = "|".join(re.escape(h) for h in sorted(internal_hosts(), key=len, reverse=True))
    return re.compile(rf"^(?:{hosts}|{_BARE_INTERNAL_IP})(?::\d+|/)")


#: Any other scheme with an authority (``imap://``, ``rsync://``, ``local_file://``), or ``http:`` straight before an
#: address: what a server-side fetch library may still open.  Its host (after any ``user@`` part, backslash escapes
#: dropped) is read for an address.
_ANY_SCHEME_URL = re.compile(r"^\s*(?:[a-z][a-z0-9+._-]{1,15}://|https?:(?=\d))([^/?#\s]*)")


def _numeric_address(host: str) -> bool:
    """Whether ``host`` is an IP address in any notation a resolver accepts: dotted, hex, octal, one 32-bit number,
    the short forms (``169.254.43518``, ``127.1``), or IPv6 (with a zone)."""
    host = host.strip("[]")
    try:
        socket.inet_aton(host)  # the BSD parser every libc uses: 0xA9.0xFE.0xA9.0xFE, 0251.0376..., 2852039166
    except OSError:
        pass
    else:
        parts = host.split(".")
        # hex only as four parts or one full 32-bit number: '0xABCDEF' and '0xA9.0xFE.0xA9' are typos, not hosts
        hex_short = "x" in host and len(parts) < 4 and not (len(parts) == 1 and len(host) >= 10)
        return bool(re.fullmatch(r"[0-9a-fx.]+", host)) and not hex_short
    try:
        ipaddress.ip_address(host)
        return ":" in host
    except ValueError:
        return False


def _ssrf_other_scheme(value: str) -> bool:
    match = _ANY_SCHEME_URL.match(value)
    if not match:
        return False
    host = match.group(1).replace("\\", "").rsplit("@", 1)[-1]
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return _numeric_address(host) or bool(_INTERNAL_HOST.match(host))


def is_remote_inclusion(name: str, value: str) -> bool:
    """Whether query parameter ``name=value`` (both decoded) hands the application a remote script to run."""
    if _SCHEME_PROBE.match(value) or _bare_internal().match(value):
        return True
    match = _REMOTE_URL.match(value)
    if not match:
        return _ssrf_other_scheme(value)
    if _KNOWN_INCLUDE_PARAMS.search(name):
        return True
    host = match.group(1).strip("[]") if match.group(1).startswith("[") else match.group(1)
    if _SSRF_SCHEME.match(value) or _IP_HOST.match(match.group(1)) or _IP_HOST.match(host):
        return True
    if _INTERNAL_HOST.match(host) or value.rstrip().endswith("?") or "%00" in value or "\x00" in value:
        return True
    if _ssrf_other_scheme(value):
        return True
    return bool(_SCRIPT_FILE.search(value[match.end() :]) and _INCLUDE_PARAMS.match(name))

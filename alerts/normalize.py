"""Request normalisation: the one canonical text every signature is matched against.

Attackers hide payloads behind encodings that the web server, the framework or
the language undoes before the code under attack sees them: ``%2e%2e%2f``,
double encoding (``%252e``, ``%%32%65``), overlong UTF-8 (``..%c0%af``), IIS
``%u002f``, literal ``\x2e`` / ``\u002e`` escapes (PHP, JavaScript, Python
strings), HTML entities, fullwidth and other look-alike dots and slashes
(``．．／``, ``∕``), runs of dots that a filter stripping ``../`` once turns
back into ``../`` (``....//``), ``+`` for space, SQL comments inside keywords
(``UNION/**/SELECT``), mixed case.  Normalising once,
here, lets each rule be written against plain lowercase text.  Normalising is
pure Python, so callers apply it to the *distinct* values of a column only
(see ``NormalizeCache``), never once per log line.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from urllib.parse import unquote_to_bytes

#: Rounds of URL-decoding before giving up (a value encoded eight times is not a real request).
MAX_DECODE_ROUNDS = 8

# Overlong and otherwise invalid UTF-8 spellings of '/', '.' and '\' that old
# servers decoded anyway (the classic IIS / Tomcat traversal tricks).
_OVERLONG = [
    (b"\xc0\xaf", b"/"),
    (b"\xe0\x80\xaf", b"/"),
    (b"\xf0\x80\x80\xaf", b"/"),
    (b"\xc0\xae", b"."),
    (b"\xe0\x80\xae", b"."),
    (b"\xc1\x9c", b"\\"),
    (b"\xc1\x1c", b"\\"),
    (b"\xc0\x2f", b"/"),
    (b"\xc0\x2e", b"."),
]
#: Any other overlong spelling of an ASCII character (2, 3 or 4 bytes where 1 would do).
_OVERLONG_ANY = re.compile(rb"[\xc0\xc1][\x80-\xbf]|\xe0[\x80-\x9f][\x80-\xbf]|\xf0[\x80-\x8f][\x80-\xbf]{2}")
_IIS_UNICODE = re.compile(r"%u([0-9a-fA-F]{4})")
#: Escapes that PHP, JavaScript, Python and shell strings undo: ``\x2e``, ``\u002e``, ``\u{2e}``.
_LITERAL_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})|\\u\{?([0-9a-fA-F]{4})\}?")
#: Look-alikes of '.', '/' and '\\' that NFKC leaves alone but some file APIs and WAF-less apps fold.
_LOOKALIKES = str.maketrans(
    {"\u2215": "/", "\u2044": "/", "\u29f8": "/", "\u2571": "/", "\u3002": ".", "\uff61": ".", "\u2024": ".",
     "\u2216": "\\", "\u29f9": "\\", "\u2572": "\\"}
)  # fmt: skip
#: Three or more dots opening a path segment: what is left is ``..`` once a filter strips ``../`` or trailing dots.
_DOT_RUN = re.compile(r"(?:(?<=[/\\=])|^)\.{3,}(?=[/\\]|$)")
_SQL_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_SPACES = re.compile(r"[\s\x00]+")
_SLASHES = re.compile(r"/{2,}")
_DOT_SEGMENT = re.compile(r"/(?:\./)+")


_LEAD_BITS = {2: 0x1F, 3: 0x0F, 4: 0x07}


def _overlong(match: re.Match) -> bytes:
    spelled = match.group(0)
    value = spelled[0] & _LEAD_BITS[len(spelled)]
    for byte in spelled[1:]:
        value = (value << 6) | (byte & 0x3F)
    return bytes([value])


def _decode_once(text: str, plus_is_space: bool = True) -> str:
    text = _IIS_UNICODE.sub(lambda m: chr(int(m.group(1), 16)), text)
    raw = unquote_to_bytes(text.replace("+", " ") if plus_is_space else text)
    if any(byte >= 0xC0 for byte in raw):
        for bad, good in _OVERLONG:
            if bad in raw:
                raw = raw.replace(bad, good)
        raw = _OVERLONG_ANY.sub(_overlong, raw)
    return raw.decode("utf-8", "replace")


def _literal_escape(match: re.Match) -> str:
    return chr(int(match.group(1) or match.group(2), 16))


def _unicode_lookalikes(text: str) -> str:
    """Fullwidth and compatibility forms as their ASCII (NFKC: ``．`` -> ``.``), plus look-alikes NFKC keeps."""
    return unicodedata.normalize("NFKC", text).translate(_LOOKALIKES)


def url_decode(text: str) -> str:
    """Decode ``%XX``, ``%uXXXX``, ``+``, HTML entities and literal ``\\xNN`` / ``\\uNNNN`` escapes repeatedly
    until the text stops changing; then fold fullwidth and look-alike characters to ASCII."""
    for round_number in range(MAX_DECODE_ROUNDS):
        decoded = text
        # '+' is a space only as written in the raw URL: a '+' that decoding produced ('%2B') is a plus sign.
        if "%" in decoded or ("+" in decoded and not round_number):
            decoded = _decode_once(decoded, plus_is_space=not round_number)
        if "&" in decoded:
            decoded = html.unescape(decoded)
        if "\\" in decoded:
            decoded = _LITERAL_ESCAPE.sub(_literal_escape, decoded)
        if decoded == text:
            break
        text = decoded
    if not text.isascii():
        text = _unicode_lookalikes(text)
    return text


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def _normalize_path(path: str) -> str:
    # '..' segments are kept on purpose: they are what traversal rules look for.  An absolute-form
    # target (GET http://other.site/ - a proxy probe) keeps its scheme's '//'.
    scheme = _SCHEME.match(path)
    if scheme:
        return scheme.group(0) + _normalize_path(path[scheme.end() :])
    path = path.replace("\\", "/")
    path = _SLASHES.sub("/", path)
    return _DOT_SEGMENT.sub("/", path)


def normalize_request(text: str) -> str:
    """A URL, referrer or user agent made canonical: decoded, case-folded, comments and spaces squeezed."""
    text = url_decode(text)
    text = _SQL_COMMENT.sub(" ", text)
    text = _SPACES.sub(" ", text).casefold()
    if "..." in text:
        text = _DOT_RUN.sub("..", text)
    path, sep, query = text.partition("?")
    return _normalize_path(path) + sep + query


class NormalizeCache:
    """Memoises ``normalize_request`` over distinct values, bounded so a long stream cannot exhaust memory."""

    def __init__(self, max_entries: int = 200_000):
        self._max = max_entries
        self._cache: dict[str, str] = {}
        self.hits = 0
        self.misses = 0

    def __call__(self, text: str) -> str:
        cached = self._cache.get(text)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        if len(self._cache) >= self._max:
            self._cache.clear()  # cheap, and the working set of a log refills it quickly
        value = self._cache[text] = normalize_request(text)
        return value


def decode_value(text: str) -> str:
    """One value an application reads (a query parameter, a header), decoded the way ``normalize_request`` decodes
    and case-folded; spacing and comments are kept, since grammars read them."""
    text = url_decode(text).casefold()
    return _DOT_RUN.sub("..", text) if "..." in text else text


@functools.lru_cache(maxsize=8192)
def request_values(url: str) -> tuple[str, ...]:
    """The parts of a raw URL that an application reads one by one, each decoded: the path, then every query
    parameter's name and value (split on the raw '&' and '=', before decoding, as the application splits them)."""
    path, sep, query = url.partition("?")
    values = [decode_value(path)]  # (memoised: every grammar reads the same parts of the same URL)
    if sep:
        for piece in query.split("&"):
            name, _, value = piece.partition("=")
            if name:
                values.append(decode_value(name))
            if value:
                values.append(decode_value(value))
    return tuple(values)

"""Request normalisation: the one canonical text every signature is matched against.

Attackers hide payloads behind encodings that the web server undoes before the
application sees them: ``%2e%2e%2f``, double encoding (``%252e``), overlong
UTF-8 (``..%c0%af``), IIS ``%u002f``, HTML entities, ``+`` for space, SQL
comments inside keywords (``UNION/**/SELECT``), mixed case.  Normalising once,
here, lets each rule be written against plain lowercase text.  Normalising is
pure Python, so callers apply it to the *distinct* values of a column only
(see ``NormalizeCache``), never once per log line.
"""

from __future__ import annotations

import html
import re
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
_IIS_UNICODE = re.compile(r"%u([0-9a-fA-F]{4})")
_SQL_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_SPACES = re.compile(r"[\s\x00]+")
_SLASHES = re.compile(r"/{2,}")
_DOT_SEGMENT = re.compile(r"/(?:\./)+")


def _decode_once(text: str) -> str:
    text = _IIS_UNICODE.sub(lambda m: chr(int(m.group(1), 16)), text)
    raw = unquote_to_bytes(text.replace("+", " "))
    for bad, good in _OVERLONG:
        if bad in raw:
            raw = raw.replace(bad, good)
    return raw.decode("utf-8", "replace")


def url_decode(text: str) -> str:
    """Decode ``%XX``, ``%uXXXX``, ``+`` and HTML entities repeatedly until the text stops changing."""
    for _ in range(MAX_DECODE_ROUNDS):
        decoded = text
        if "%" in decoded or "+" in decoded:
            decoded = _decode_once(decoded)
        if "&" in decoded:
            decoded = html.unescape(decoded)
        if decoded == text:
            break
        text = decoded
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

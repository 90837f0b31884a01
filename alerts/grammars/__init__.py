"""Injection grammars: Python readers of request text that rules name with ``grammar: NAME``.

A grammar decides what keyword lists cannot: whether a value is SQL, a shell line, code, script or a remote
include *in context* (``alerts.grammars.sql`` and friends).  It reads the raw field and decodes it itself, part by
part, the way the application splits it (``alerts.normalize.request_values``): the path, its segments, and every
query parameter's name and value.  Python per value is slow next to RE2, so each grammar also names
``candidates``, an RE2 pattern that every value it can accept matches: conditions run it first, over the field's
distinct values, and call the grammar only on the few that pass (ordinary URLs and slugs do not).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from alerts.grammars.code import is_code_injection
from alerts.grammars.markup import is_remote_inclusion, is_xss
from alerts.grammars.shell import is_command_injection
from alerts.grammars.sql import is_sql_injection
from alerts.normalize import decode_value, request_values

#: Fields holding a URL (split into parts); any other field is read as one value (a user agent).
URL_FIELDS = frozenset({"url_original", "url_path", "url_query", "http_request_referrer", "http_request_line"})
#: Raw URL text that can hide nothing: letters, digits and the URL punctuation of ordinary links (``?``, ``&``,
#: ``=``...).  Anything else (an escape, a quote, a space, a bracket) or a parameter holding a URL makes a candidate.
_PLAIN_URL = (
    r"[^a-zA-Z0-9/._~=&,:?_-]|=[a-zA-Z][a-zA-Z0-9+._-]*:|=(?:file|ftps?|https?)[^&]*\?(?:&|$)|__|--|"
    r"=(?i:localhost|127\.|0\.0\.0\.0|169\.254|(?:usr/)?(?:local/)?s?bin/|ip6-|ipv6-|[a-z0-9.-]*\.internal/|"
    r"kubernetes\.|localtest\.me/|lvh\.me/)|=[^&=]*=|=-?(?:0000023456|4294967295|4294967296|2147483648|2147483647|0000012345|2147483649|2\.2250738585072|1e309)|"
    r"(?i:javax?\.|classloader|getruntime|processbuilder|scriptengine|org\.apache|com\.sun|constructor|prototype|"
    r"process\.|module\.|require|console\.|child_process|importlib|builtins|pickle|freemarker|ognl|document\.|"
    r"window\.|fromcharcode|innerhtml|js_function|xyqktkrfrlvoqyqk)|"
    r"(?i:information_schema|pg_|sqlite_|sysobjects|syscolumns|xp_|sp_|mysql\.|dbms_|utl_|all_tables|user_tables|msys)"
)
#: The same for header text such as a user agent, whose ';', '(' and '/' are ordinary: the characters payloads need,
#: a ';' starting a command line with an argument, and the few payload words that need no punctuation at all.
_PLAIN_TEXT = (
    r"[<>'\"`|$\\{}%#!=\[\]]|&[#a-zA-Z]|(?:^|;)\s*[a-zA-Z.]+\s+[-/$~]|;\s*[a-zA-Z]+\s*(?:$|[;&])|--|"
    r"(?i:select|union|sleep|benchmark|waitfor|delete|insert|update|drop|exec|declare|shutdown|information_schema|"
    r"java\.lang|getruntime|processbuilder|classloader|script\s*:|__)"
)


def _path_parts(values: tuple[str, ...]) -> list[str]:
    path = values[0]
    return [path, *(segment for segment in path.split("/") if segment), *values[1:]]


def _url_reader(test: Callable[[str], bool], segments: bool) -> Callable[[str], bool]:
    def read(raw: str) -> bool:
        values = request_values(raw.split(" ", 1)[1].rsplit(" ", 1)[0] if raw[:1].isupper() and " " in raw else raw)
        return any(test(v) for v in (_path_parts(values) if segments else values))

    return read


def _text_reader(test: Callable[[str], bool]) -> Callable[[str], bool]:
    return lambda raw: test(decode_value(raw))


def _inclusion_in_url(raw: str) -> bool:
    _, sep, query = raw.partition("?")
    if not sep:
        return False
    for piece in query.split("&"):
        name, _, value = piece.partition("=")
        if value and is_remote_inclusion(decode_value(name), decode_value(value)):
            return True
    return False


@dataclasses.dataclass(frozen=True)
class Grammar:
    name: str
    url: Callable[[str], bool]  # a raw URL (or request line)
    text: Callable[[str], bool]  # any other raw header text

    def reader(self, field: str) -> Callable[[str], bool]:
        return self.url if field in URL_FIELDS else self.text

    @staticmethod
    def candidates(field: str) -> str:
        """RE2 pattern that every raw value this grammar can accept in ``field`` matches."""
        return _PLAIN_URL if field in URL_FIELDS else _PLAIN_TEXT


GRAMMARS: dict[str, Grammar] = {
    "sqli": Grammar("sqli", _url_reader(is_sql_injection, True), _text_reader(is_sql_injection)),
    "command": Grammar(
        "command",
        _url_reader(is_command_injection, False),
        _text_reader(lambda value: is_command_injection(value, strict=True)),
    ),
    "code": Grammar("code", _url_reader(is_code_injection, False), _text_reader(is_code_injection)),
    "xss": Grammar("xss", _url_reader(is_xss, False), _text_reader(is_xss)),
    "rfi": Grammar("rfi", _inclusion_in_url, lambda raw: False),
}

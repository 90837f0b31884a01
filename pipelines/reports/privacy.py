"""Reducing report values so that none of them can point at a person.

Paths keep their shape but lose identifiers (``/users/8812/orders`` ->
``/users/:id/orders``) and names (``/home/bob`` -> ``/home/:name``), referrers
keep only their host, values shared by fewer than ``reports.min_visitors``
distinct visitors are folded into "(other)" (k-anonymity), and CSV cells are
escaped so a spreadsheet never runs a value as a formula.
"""

from __future__ import annotations

import functools
import re
import urllib.parse

import pyarrow as pa
import pyarrow.compute as pc

ID = ":id"
NAME = ":name"
OTHER = "(other)"

# Path segments that identify a record or a person rather than a page: numbers, long hex
# strings and UUIDs, e-mail addresses, and long tokens mixing letters with several digits (session
# ids, hashes, signed tokens) — but not readable slugs such as "performance-monitoring-12".
_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{8,}|[0-9a-fA-F-]{36}|[^/]*@[^/]*"
    r"|(?=(?:[^/]*\d){3})(?=[^/]*[A-Za-z])[A-Za-z0-9_\-=.]{20,})$"
)
# Segments shaped like a person's name or handle: "john.smith", "jane_doe", "JaneDoe1985",
# "~bob".  File names ("app.min.js") are told apart by a known extension.
_NAME_SEGMENT = re.compile(
    r"^(?:~.+"
    r"|[A-Za-z]+[._][A-Za-z]+(?:[._-][A-Za-z]+)?\d*"
    r"|[A-Z][a-z]+[A-Z][a-z]+\d*"
    r"|[A-Za-z]{2,}(?:19|20)\d\d)$"
)
_FILE_EXTENSIONS = frozenset(
    {
        *("js", "mjs", "css", "map", "html", "htm", "php", "asp", "aspx", "jsp", "xml", "json", "txt", "csv"),
        *("pdf", "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "woff", "woff2", "ttf", "eot", "zip", "gz"),
        *("tar", "mp4", "mp3", "webm", "avif", "rss", "atom", "md", "yaml", "yml"),
    }
)
# After one of these, the next segment names an account or a person whatever it looks like.
_PERSON_PARENTS = frozenset(
    {
        *("user", "users", "u", "profile", "profiles", "people", "person", "member", "members", "author"),
        *("authors", "account", "accounts", "home", "customer", "customers", "staff", "employee", "employees"),
        *("team", "@"),
    }
)


def _is_name(segment: str) -> bool:
    if not _NAME_SEGMENT.match(segment):
        return False
    suffix = segment.rsplit(".", 1)[-1].lower() if "." in segment else ""
    return suffix not in _FILE_EXTENSIONS


@functools.lru_cache(maxsize=1 << 16)
def generalise_path(path: str | None) -> str | None:
    """``/u/12/a@b.c`` -> ``/u/:id/:id``; ``/users/john.smith/profile`` -> ``/users/:name/profile``.

    The query string and matrix parameters (``;jsessionid=…``) never survive; ``None`` stays ``None``.
    """
    if path is None:
        return None
    path = re.split(r"[?#]", path, maxsplit=1)[0]
    out: list[str] = []
    parent = ""
    for raw in path.split("/"):
        segment = urllib.parse.unquote(raw.split(";", 1)[0])
        if not segment:
            out.append(segment)
        elif _ID_SEGMENT.match(segment):
            out.append(ID)
        elif parent.lower() in _PERSON_PARENTS or _is_name(segment):
            out.append(NAME)
        else:
            out.append(raw.split(";", 1)[0])
        parent = segment
    return "/".join(out)


def generalise_paths(paths: pa.Array) -> pa.Array:
    """Vectorised over the distinct paths of a batch (there are far fewer than rows)."""
    distinct = pc.unique(paths)
    mapped = pa.array([generalise_path(p) for p in distinct.to_pylist()], pa.string())
    return pc.take(mapped, pc.index_in(paths, distinct))


def referrer_domains(referrers: pa.Array) -> pa.Array:
    """``https://www.google.com/search?q=…`` -> ``www.google.com``; no referrer -> ``(none)``."""
    host = pc.struct_field(pc.extract_regex(referrers, r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/]*@)?(?P<h>[^/:?#]+)"), [0])
    host = pc.utf8_lower(host)
    return pc.if_else(pc.is_null(referrers), "(none)", pc.fill_null(host, OTHER))


def k_anonymous(visitors: float, min_visitors: int) -> bool:
    """A breakdown value may be shown only when at least ``min_visitors`` distinct visitors share it."""
    return visitors >= min_visitors


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_csv_cell(value: str) -> str:
    """``=2+5`` -> ``'=2+5``: spreadsheets run cells starting with ``= + - @`` (OWASP CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def escape_csv_strings(table: pa.Table) -> pa.Table:
    """Every string column of ``table`` with formula-looking cells escaped (numbers are left alone)."""
    columns = []
    for field, column in zip(table.schema, table.columns):
        if pa.types.is_string(field.type):
            risky = pc.fill_null(pc.match_substring_regex(column, r"^[=+\-@\t\r]"), False)
            column = pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)
        columns.append(column)
    return pa.table(columns, schema=table.schema)

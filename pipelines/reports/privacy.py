"""Reducing report values so that none of them can point at a person.

Paths keep their shape but lose identifiers (``/users/8812/orders`` ->
``/users/:id/orders``), referrers keep only their host, and rare values are
folded away before a report is written.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

ID = ":id"

# Path segments that identify a record or a person rather than a page: numbers, long hex
# strings and UUIDs, e-mail addresses, and long tokens mixing letters with several digits (session
# ids, hashes, signed tokens) — but not readable slugs such as "performance-monitoring-12".
_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{8,}|[0-9a-fA-F-]{36}|[^/]*@[^/]*"
    r"|(?=(?:[^/]*\d){3})(?=[^/]*[A-Za-z])[A-Za-z0-9_\-=.]{20,})$"
)


def generalise_path(path: str | None) -> str | None:
    """``/u/12/a@b.c`` -> ``/u/:id/:id``; ``None`` stays ``None``."""
    if path is None:
        return None
    return "/".join(ID if segment and _ID_SEGMENT.match(segment) else segment for segment in path.split("/"))


def generalise_paths(paths: pa.Array) -> pa.Array:
    """Vectorised over the distinct paths of a batch (there are far fewer than rows)."""
    distinct = pc.unique(paths)
    mapped = pa.array([generalise_path(p) for p in distinct.to_pylist()], pa.string())
    return pc.take(mapped, pc.index_in(paths, distinct))


def referrer_domains(referrers: pa.Array) -> pa.Array:
    """``https://www.google.com/search?q=…`` -> ``www.google.com``; no referrer -> ``(none)``."""
    host = pc.struct_field(pc.extract_regex(referrers, r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/]*@)?(?P<h>[^/:?#]+)"), [0])
    host = pc.utf8_lower(host)
    return pc.if_else(pc.is_null(referrers), "(none)", pc.fill_null(host, "(other)"))

"""Word lists that rules reference by name (``list: sensitive_files``).

A list is a text file ``NAME.txt``: one entry per line, ``#`` starts a comment
line.  Its header must say where the entries came from and under what license
(``# source: ...`` and ``# license: ...``), so the shipped pack stays auditable.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path


class WordListError(ValueError):
    """A word list that is missing, empty or does not say where it came from."""


@functools.lru_cache(maxsize=256)
def _read(path: Path) -> tuple[str, ...]:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = " ".join(line.lower() for line in lines if line.startswith("#"))
    for required in ("source:", "license:"):
        if required not in header:
            raise WordListError(f"word list {path} must say '# {required} ...' in its header")
    entries = tuple(dict.fromkeys(line.strip() for line in lines if line.strip() and not line.startswith("#")))
    if not entries:
        raise WordListError(f"word list {path} has no entries")
    return entries


def find_word_list(name: str, directories: Iterable[Path]) -> Path:
    for directory in directories:
        candidate = Path(directory) / f"{name}.txt"
        if candidate.is_file():
            return candidate
    raise WordListError(f"no word list named {name!r} ({name}.txt) beside the rules or in the default pack")


def load_word_list(name: str, directories: Iterable[Path]) -> tuple[str, ...]:
    """The distinct entries of list ``name``, looked up in ``directories`` in order."""
    return _read(find_word_list(name, directories))

"""``python -m bench NAME [ARGS]``: run ``bench/NAME.py``'s ``main(argv)``.

Benchmarks print tables; they never assert timings (the test suite does not time anything).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    # A module bench/detection_quality.py is run as ``python -m bench detection-quality``.
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: python -m bench NAME [ARGS]   (NAME --help for its options)")
        print("benches: " + ", ".join(available()))
        return 0 if argv else 2
    name, rest = argv[0].replace("_", "-"), argv[1:]
    if name not in available():
        print(f"unknown bench {name!r}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{name.replace('-', '_')}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

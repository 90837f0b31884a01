"""``logwarden version``."""

from __future__ import annotations

from importlib import metadata

from schemas import SCHEMA_VERSION


def run(args) -> int:
    try:
        version = metadata.version("logwarden")
    except metadata.PackageNotFoundError:
        version = "unknown (not installed)"
    import apache_beam
    import pyarrow

    print(
        f"logwarden {version} (schema {SCHEMA_VERSION}; "
        f"apache-beam {apache_beam.__version__}, pyarrow {pyarrow.__version__})"
    )
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("version", help="print versions")
    parser.set_defaults(run=run)

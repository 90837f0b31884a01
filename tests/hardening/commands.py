"""The ``logwarden batch`` command line the hardening tests run as a child process."""

from __future__ import annotations

import sys


def batch_command(config, log, out, *extra) -> list[str]:
    """``logwarden batch`` with this interpreter, a config file, one input and an output folder."""
    return [sys.executable, "-m", "pipelines.cli", "batch", "-c", str(config), "-i", str(log), "-o", str(out), *extra]

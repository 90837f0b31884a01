"""Running ``logwarden`` as an operator does: a subprocess with this checkout first on the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ACCESS_LOG = EXAMPLES / "logs" / "access.log"


def env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def logwarden(*args, cwd=None, timeout=300, input=None, extra_env=None):
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**env(), **(extra_env or {})},
        input=input,
    )


def keys_yaml(tmp_path: Path) -> str:
    """Config lines that keep the keyring and root key inside the test's own folder."""
    return f"keys:\n  keyring: {tmp_path / 'keyring'}\n  root_key_file: {tmp_path / 'root.key'}\n"


def write_config(tmp_path: Path, text: str = "", name: str = "logwarden.yaml") -> Path:
    path = tmp_path / name
    path.write_text(keys_yaml(tmp_path) + text)
    return path


def run_main(argv, capsys) -> tuple[int, str, str]:
    """``logwarden ARGV`` in this process (no interpreter start-up per call): exit code, stdout, stderr."""
    from pipelines.cli import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err

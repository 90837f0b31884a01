"""The ``logwarden`` command as ops use it: help that teaches, summaries, and exit codes scripts can trust."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.operator.helpers import env, logwarden

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_commands_with_examples():
    done = logwarden("--help")
    assert done.returncode == 0
    for command in ("batch", "parse", "config", "version"):
        assert command in done.stdout
    assert "examples:" in done.stdout
    assert "examples:" in logwarden("batch", "--help").stdout


def test_a_command_loads_only_its_own_module_and_help_still_lists_every_command():
    """``logwarden batch`` starts without importing search, audit or subject (start-up time of every batch job)."""
    from pipelines import commands

    probe = (
        "import sys; from pipelines.cli import build_parser; build_parser(sys.argv[1:]); "
        "print(sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('pipelines.commands.')))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    loaded = subprocess.run(
        [sys.executable, "-c", probe, "-v", "batch", "-i", "x.log"], capture_output=True, text=True, env=env
    )
    assert "'batch'" in loaded.stdout and "'search'" not in loaded.stdout and "'subject'" not in loaded.stdout
    listed = logwarden("--help").stdout
    assert all(name in listed for name in commands.NAMES)
    assert "invalid choice" in logwarden("bach").stderr


def test_version():
    done = logwarden("version")
    assert done.returncode == 0 and done.stdout.startswith("logwarden ")


def test_config_check_names_the_bad_key_with_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("archive:\n  row_group_rows: lots\n")
    done = logwarden("config", "check", bad)
    assert done.returncode == 2
    assert "archive.row_group_rows" in done.stderr and "expected an integer" in done.stderr
    assert "Traceback" not in done.stderr


def test_config_check_accepts_the_example(examples):
    assert logwarden("config", "check", examples / "logwarden.yaml").returncode == 0


def test_parse_prints_json_events_and_a_balanced_summary(examples, tmp_path):
    dead = tmp_path / "dead.jsonl"
    done = logwarden("parse", examples / "logs" / "access.log.1.gz", "--output", "-", "--dead-letter", dead)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(events) == 2000
    assert events[0]["timestamp"].endswith("Z") and "source_ip" in events[0]
    assert "2002 lines read = 2000 parsed + 2 dead-lettered" in done.stderr
    assert "detected format combined" in done.stderr
    assert [json.loads(line)["line_number"] for line in dead.read_text().splitlines()] == [1001, 1002]


def test_parse_rejects_unknown_format_and_missing_files(examples, tmp_path):
    done = logwarden("parse", examples / "logs" / "access.log", "--format", "nonsense")
    assert done.returncode == 2 and "unknown log format 'nonsense'" in done.stderr
    done = logwarden("parse", tmp_path / "nope.log")
    assert done.returncode == 2 and "matches no file" in done.stderr and "Traceback" not in done.stderr


def test_batch_prints_the_summary(examples, tmp_path):
    # Run where a first batch may create its keyring (./.logwarden) without touching the checkout.
    done = logwarden("batch", "--input", examples / "logs", "--output", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for words in (
        "lines read        4002",
        "parsed            4000",
        "dead-lettered     2",
        "files written",
        "lines/s",
    ):
        assert words in done.stderr
    assert list((tmp_path / "out" / "events").glob("dt=*/*.parquet"))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--input", "/no/such/dir/*.log", "--output", "OUT"], "matches no file"),
        (["--input", "EXAMPLES", "--output", "OUT", "--config", "/no/config.yaml"], "config file not found"),
        (["--input", "EXAMPLES", "--output", "OUT", "--format", "bogus"], "unknown log format 'bogus'"),
    ],
)
def test_batch_usage_errors_exit_2_without_traceback(examples, tmp_path, args, words):
    args = [a.replace("EXAMPLES", str(examples / "logs")).replace("OUT", str(tmp_path)) for a in args]
    done = logwarden("batch", *args)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


def test_what_a_command_loads_is_kept_out_of_the_garbage_collectors_walks(tmp_path):
    """Beam, pyarrow and the command's modules are frozen once loaded: full collections skip them, forks share them."""
    code = "import gc, sys; from pipelines.cli import main; main(['version']); print(gc.get_freeze_count())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) > 10_000  # the loaded modules' objects, not a handful

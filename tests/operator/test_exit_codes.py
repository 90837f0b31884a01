"""Issue 16 §2: exit codes scripts can trust, unknown flags refused, no traceback for any bad path or flag."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.operator.helpers import ACCESS_LOG, ROOT, env, logwarden, run_main, write_config

ATTACK = (
    '203.0.113.5 - - [01/Nov/2026:10:00:00 +0000] "GET /item.php?id=1%20UNION%20SELECT%20password%20FROM%20users '
    'HTTP/1.1" 200 512 "-" "Mozilla/5.0"\n'
)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_batch_exits_1_when_an_alert_could_not_be_delivered(tmp_path):
    log = tmp_path / "access.log"
    log.write_text(ATTACK)
    config = write_config(
        tmp_path,
        f"alerts:\n  sinks:\n    webhook:\n      url: http://127.0.0.1:{closed_port()}/hook\n"
        "      retries: 0\n      timeout_seconds: 1\n",
    )
    done = logwarden("batch", "--input", log, "--output", tmp_path / "out", "-c", config)
    assert done.returncode == 1, done.stderr
    assert "could not be delivered" in done.stderr and "Traceback" not in done.stderr


def test_batch_exits_0_when_everything_was_processed(tmp_path):
    done = logwarden("batch", "--input", ACCESS_LOG, "--output", tmp_path / "out", "-c", write_config(tmp_path))
    assert done.returncode == 0, done.stderr


def test_a_wholly_dead_lettered_run_exits_1_and_names_the_formats_that_fit(tmp_path):
    out = tmp_path / "out"
    done = logwarden(
        "batch", "--input", ACCESS_LOG, "--output", out, "--format", "nginx_error", "-c", write_config(tmp_path)
    )
    assert done.returncode == 1, done.stderr
    assert "nothing was parsed with --format nginx_error" in done.stderr and "combined" in done.stderr


@pytest.mark.parametrize("flag", [["--dead-leter-jsonl", "x"], ["--formt", "combined"], ["--runnner=FnApiRunner"]])
def test_a_mistyped_flag_is_refused_not_passed_to_beam(tmp_path, flag):
    out = tmp_path / "out"
    done = logwarden("batch", "--input", ACCESS_LOG, "--output", out, *flag, "-c", write_config(tmp_path))
    assert done.returncode == 2
    assert f"unrecognized arguments: {flag[0].split('=')[0]}" in done.stderr and "did you mean --" in done.stderr
    assert not out.exists()


def test_real_beam_options_still_pass_through(tmp_path):
    done = logwarden(
        "batch", "--input", ACCESS_LOG, "--output", tmp_path / "out", "--runner", "FnApiRunner",
        "--direct_num_workers=1", "-c", write_config(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_an_unknown_runner_flag_is_a_usage_error(tmp_path):
    done = logwarden("batch", "--input", ACCESS_LOG, "--output", tmp_path / "out", "--runner", "NoSuchRunner")
    assert done.returncode == 2 and "unknown Beam runner" in done.stderr


def bad_invocations(tmp_path):
    """(argv) pairs covering every command with a bad path or a bad flag."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x\n")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    folder = tmp_path / "folder"
    folder.mkdir()
    missing = tmp_path / "missing"
    log = ACCESS_LOG
    config = write_config(tmp_path)
    return [
        ["batch", "--input", missing, "--output", tmp_path / "o"],
        ["batch", "--input", log, "--output", a_file, "-c", config],
        ["batch", "--input", log, "--output", a_file / "sub", "-c", config],
        ["batch", "--input", log, "--output", tmp_path / "o", "--bogus-flag"],
        ["batch", "--input", log, "--output", tmp_path / "o", "-c", missing],
        ["batch", "--input", log, "--output", tmp_path / "o", "-c", folder],
        ["batch", "--input", log, "--output", tmp_path / "o", "-c", binary],
        ["batch", "--input", log, "--output", tmp_path / "o", "--format", "%h %Q"],
        ["parse", missing],
        ["parse", log, "--output", missing / "x.jsonl"],
        ["parse", log, "--output", folder],
        ["parse", log, "--dead-letter", folder],
        ["parse", log, "--bogus-flag"],
        ["parse", log, "-c", binary],
        ["detect", missing],
        ["detect", log, "--output", missing / "alerts.jsonl"],
        ["detect", log, "--output", folder],
        ["detect", log, "--rules", missing],
        ["detect", log, "--rules", binary],
        ["detect", log, "--bogus-flag"],
        ["rules", "check", missing],
        ["rules", "check", binary],
        ["rules", "list", "-c", missing],
        ["rules", "list", "--bogus-flag"],
        ["keys", "list", "--keyring", missing],
        ["keys", "init", "--keyring", a_file / "keyring", "--root-key-file", tmp_path / "r.key"],
        ["keys", "rotate", "--keyring", missing],
        ["keys", "destroy", "--period", "2026-13", "--yes", "--keyring", missing],
        ["keys", "export-public", a_file, "-c", config],
        ["keys", "list", "--bogus-flag"],
        ["archive", "verify", missing],
        ["archive", "verify", a_file],
        ["archive", "verify", folder, "--bogus-flag"],
        # commands that read, audit or protect an archive: a mistyped one is refused, never created and read as empty
        ["alerts", "list", missing],
        ["alerts", "show", missing, "0123abcd"],
        ["alerts", "list", a_file],
        ["search", "--archive", missing, "--role", "security", "--reason", "INC-1", "--ip", "192.0.2.1"],
        [
            "subject",
            "export",
            "--archive",
            missing,
            "--role",
            "privacy",
            "--reason",
            "DSR-1",
            "--ip",
            "192.0.2.1",
            "--output",
            tmp_path / "subject.jsonl",
        ],
        [
            "hold",
            "add",
            "--archive",
            missing,
            "--role",
            "ops",
            "--reason",
            "case 1",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
        ],
        ["hold", "list", "--archive", missing],
        ["hold", "release", "H1", "--archive", missing, "--role", "ops", "--reason", "done"],
        ["retention", "apply", "--archive", missing, "--dry-run"],
        ["audit", "verify", "--archive", missing],
        ["audit", "show", "--archive", missing],
        ["report", "--archive", missing, "--output", tmp_path / "report"],
        ["config", "check", missing],
        ["config", "check", folder],
        ["config", "show", binary],
        ["config", "check"],
        ["version", "--bogus-flag"],
        ["no-such-command"],
    ]


def test_every_command_with_bad_paths_and_flags_says_so_in_one_line_with_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    failures = []
    for argv in bad_invocations(tmp_path):
        try:
            code, _out, err = run_main(argv, capsys)
        except BaseException as escaped:  # what would have been a traceback
            failures.append((argv, "raised", repr(escaped)))
            continue
        lines = [line for line in err.splitlines() if line.startswith(("logwarden", "usage"))]
        if code != 2 or not lines:
            failures.append((argv, code, err[-300:]))
    assert not failures, "\n".join(map(str, failures))
    assert not (tmp_path / ".logwarden").exists()
    assert not (tmp_path / "missing").exists()


def test_a_bad_path_from_the_real_command_line_has_no_traceback(tmp_path):
    done = logwarden("parse", ACCESS_LOG, "--output", tmp_path / "missing" / "x.jsonl")
    assert done.returncode == 2 and "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_parse_into_a_closed_pipe_ends_quietly_like_unix_tools():
    script = f"{sys.executable} -m pipelines.cli parse {ACCESS_LOG} --output - | head -1"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True, env=env(), cwd=ROOT, timeout=120
    )
    assert done.stdout.count("\n") == 1 and done.stdout.startswith("{")
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert done.returncode == 141  # killed-by-SIGPIPE status, as `yes | head -1` reports under pipefail

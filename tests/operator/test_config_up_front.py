"""Issue 16 §1: what would fail later in the job is a config error now: key named, fix given, all at once."""

from __future__ import annotations

import pytest

from pipelines.validate import load_checked_config
from schemas.config import ConfigError
from tests.operator.helpers import ACCESS_LOG, logwarden, write_config

CASES = [
    ("input:\n  format: combinedd\n", "input.format", "did you mean 'combined'"),
    ("input:\n  timezone: Mars/Olympus\n", "input.timezone", "IANA name"),
    ("input:\n  timezone: Europe/Berln\n", "input.timezone", "did you mean 'Europe/Berlin'"),
    ("alerts:\n  sinks:\n    webhook:\n      url: notaurl\n", "alerts.sinks.webhook.url", "http:// or https:// URL"),
    ("alerts:\n  cooldowns: [no-such-rule=5m]\n", "alerts.cooldowns[0]", "unknown rule 'no-such-rule'"),
    ("alerts:\n  cooldowns: [http-sqli=forever]\n", "alerts.cooldowns[0]", "expected a duration"),
    ("alerts:\n  rules: [no-such-folder/]\n", "alerts.rules", "not found"),
    ("alerts:\n  disable: [http-sqlj]\n", "alerts.disable[0]", "did you mean 'http-sqli'"),
    ("runner:\n  name: NoSuchRunner\n", "runner.name", "unknown Beam runner"),
    ("archive:\n  compression: zstd\n  compression: snappy\n", "archive.compression", "given twice"),
    ("input:\n  format: '%h %Q'\n", "input.format", "cannot use log format"),
]


@pytest.mark.parametrize(("text", "key", "words"), CASES)
def test_each_late_failure_is_a_config_error_naming_the_key(tmp_path, text, key, words):
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_checked_config(str(path))
    assert caught.value.key == key
    assert words in str(caught.value)


def test_config_check_reports_every_problem_at_once_with_exit_2(tmp_path):
    path = write_config(
        tmp_path,
        "input:\n  format: combinedd\n  timezone: Mars/Olympus\n"
        "alerts:\n  cooldowns: [http-sqli=forever]\n  rules: [missing/]\n"
        "  sinks:\n    webhook:\n      url: notaurl\n"
        "runner:\n  name: NoSuchRunner\n  name: FnApiRunner\n",
    )
    done = logwarden("config", "check", path)
    assert done.returncode == 2, done.stderr
    assert "6 problems" in done.stderr
    for key in ("input.format", "input.timezone", "runner.name", "alerts.cooldowns[0]", "alerts.rules", "alerts.sinks"):
        assert key in done.stderr
    assert "given twice (lines" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["batch", "parse", "detect"])
def test_every_command_refuses_a_bad_config_before_any_work(tmp_path, command):
    path = write_config(tmp_path, "input:\n  format: combinedd\n")
    out = tmp_path / "out"
    args = {
        "batch": ["batch", "--input", ACCESS_LOG, "--output", out],
        "parse": ["parse", ACCESS_LOG, "--output", out],
        "detect": ["detect", ACCESS_LOG, "--output", out],
    }[command]
    done = logwarden(*args, "-c", path)
    assert done.returncode == 2 and "input.format" in done.stderr and "combined" in done.stderr
    assert not out.exists() and not (tmp_path / "keyring").exists()


def test_a_good_config_still_passes(tmp_path):
    path = write_config(tmp_path, "input:\n  timezone: Europe/Berlin\nalerts:\n  cooldowns: [http-sqli=30m]\n")
    done = logwarden("config", "check", path)
    assert done.returncode == 0 and "ok" in done.stdout


def test_config_check_takes_c_like_every_other_command_and_refuses_two_different_files(tmp_path):
    good = write_config(tmp_path, "input:\n  timezone: Europe/Berlin\n")
    assert logwarden("config", "check", "-c", good).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("input:\n  format: combinedd\n")
    done = logwarden("config", "check", "-c", bad)
    assert done.returncode == 2 and "input.format" in done.stderr
    both = logwarden("config", "check", good, "-c", bad)
    assert both.returncode == 2 and "two config files" in both.stderr and "Traceback" not in both.stderr
    assert "needs a FILE" in logwarden("config", "check").stderr

"""``logwarden batch`` and ``logwarden detect`` run one per-batch core: the same alerts from the same input.

Same ids, times, source and counts, behind trusted proxies (the client from X-Forwarded-For, not the proxy)
and on the generated bench log with every shipped rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.generate import generate
from pipelines.cli import main

PROXIED_FORMAT = (
    'LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-Agent}i\\" \\"%{X-Forwarded-For}i\\"" proxied'
)
CLIENT, PROXY = "203.0.113.50", "10.0.0.5"


def _proxied_log(path: Path) -> None:
    lines = []
    for n in range(40):  # a client behind the load balancer: SQL injection, then a password-guessing burst
        second = n * 2
        url = f"/item?id={n}%27%20UNION%20SELECT%20password%20FROM%20users--" if n < 3 else "/login"
        status = 200 if n < 3 else 401
        lines.append(
            f'{PROXY} - - [05/Jan/2026:10:{second // 60:02d}:{second % 60:02d} +0000] "GET {url} HTTP/1.1" {status} 12 '
            f'"-" "Mozilla/5.0" "{CLIENT}, {PROXY}"'
        )
    path.write_text("\n".join(lines) + "\n")


def _config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "logwarden.yaml"
    config.write_text(
        f"keys:\n  keyring: {tmp_path / 'keyring'}\n  root_key_file: {tmp_path / 'root.key'}\n"
        "enrich:\n  trusted_proxies: [10.0.0.0/8]\n" + extra
    )
    return config


def _batch_and_detect(tmp_path: Path, log: Path, config: Path, fmt: str) -> tuple[list[dict], list[dict]]:
    out, named = tmp_path / "out", tmp_path / "batch-alerts.jsonl"
    with_sink = tmp_path / "with-sink.yaml"
    with_sink.write_text(config.read_text() + f"alerts:\n  sinks:\n    jsonl: {named}\n")
    assert main(["batch", "-i", str(log), "-o", str(out), "-f", fmt, "-c", str(with_sink)]) == 0
    batch = [json.loads(line) for line in named.read_text().splitlines()]
    detected_file = tmp_path / "detected.jsonl"
    assert main(["detect", str(log), "-f", fmt, "-c", str(config), "-o", str(detected_file)]) == 0
    detected = [json.loads(line) for line in detected_file.read_text().splitlines()]
    return batch, detected


def _essence(alerts: list[dict]) -> list[tuple]:
    return sorted(
        (a["alert_id"], a["rule_id"], a["first_seen"], a["last_seen"], a.get("source_ip"), a["count"], a["group_key"])
        for a in alerts
    )


def test_behind_a_trusted_proxy_both_alert_on_the_client_with_the_same_ids(tmp_path):
    log = tmp_path / "proxied.log"
    _proxied_log(log)
    batch, detected = _batch_and_detect(tmp_path, log, _config(tmp_path), PROXIED_FORMAT)
    assert {a["rule_id"] for a in batch} >= {"http-sqli"}
    assert {a["source_ip"] for a in batch} == {CLIENT}
    assert _essence(detected) == _essence(batch)


@pytest.mark.parametrize("lines", [60_000])
def test_on_the_bench_log_with_every_shipped_rule_both_raise_the_same_alerts(tmp_path, lines):
    log = tmp_path / "bench.log"
    generate(log, lines=lines, attack_ratio=0.02, days=2, seed=3)
    batch, detected = _batch_and_detect(tmp_path, log, _config(tmp_path), "combined")
    assert len({a["rule_id"] for a in batch}) >= 5
    assert _essence(detected) == _essence(batch)

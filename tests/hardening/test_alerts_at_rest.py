"""Nothing personal in plaintext at rest by default: alerts live only in the encrypted archive, read back by role."""

from __future__ import annotations

import dataclasses
import json
import stat

import pytest

from pipelines.batch import run_batch
from pipelines.cli import main
from pipelines.options import pipeline_options

ATTACKER = "192.0.2.66"
SECRET_QUERY = "UNION%20SELECT%20password%20FROM%20users"


def _write_attack(tmp_path):
    lines = [
        f'{ATTACKER} - jane.doe [01/Nov/2026:10:00:{i:02d} +0000] "GET /item?id=1%27%20{SECRET_QUERY}--{i} '
        'HTTP/1.1" 200 1 "-" "sqlmap/1.7"'
        for i in range(5)
    ]
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    return log


def _config_file(tmp_path, archive_config, extra: str = "") -> str:
    path = tmp_path / "logwarden.yaml"
    keys = archive_config.keys
    path.write_text(f"keys: {{keyring: {keys.keyring}, root_key_file: {keys.root_key_file}}}\n{extra}")
    return str(path)


def test_no_file_of_the_output_holds_the_attackers_address_or_query_in_plaintext(tmp_path, archive_config):
    """Archive, alerts, dead letters, delivery state and reports (k-anonymous): one attacker is in none of them."""
    out = tmp_path / "out"
    run = run_batch(
        [str(_write_attack(tmp_path))], str(out), archive_config, pipeline_options([], archive_config.runner)
    )
    assert run.alerts, "the probe must raise alerts"
    leaking = [
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file() and (ATTACKER.encode() in p.read_bytes() or SECRET_QUERY.encode() in p.read_bytes())
    ]
    assert leaking == [], f"plaintext personal data at rest in {leaking}"
    assert list((out / "alerts").glob("dt=*/part-*.parquet")), "alerts are archived (encrypted)"


def test_alerts_list_and_show_read_them_back_with_the_reader_role(tmp_path, archive_config, capsys):
    out = tmp_path / "out"
    run = run_batch(
        [str(_write_attack(tmp_path))], str(out), archive_config, pipeline_options([], archive_config.runner)
    )
    config = _config_file(tmp_path, archive_config)
    assert main(["alerts", "list", str(out), "-c", config, "--reason", "incident 42"]) == 0
    listing = capsys.readouterr().out
    assert ATTACKER in listing and f"{len(run.alerts)} alert(s)" in listing
    alert_id = run.alerts[0]["alert_id"]
    assert main(["alerts", "show", str(out), alert_id, "-c", config, "--reason", "incident 42"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["alert_id"] == alert_id and shown["evidence"] and SECRET_QUERY in shown["evidence"][0]["line"]
    assert main(["alerts", "show", str(out), "nope", "-c", config]) == 1


def test_alerts_of_a_destroyed_month_are_gone_with_it(tmp_path, archive_config, reader):
    from retention.alert_store import read_alerts
    from retention.keyring import Keyring

    out = tmp_path / "out"
    run_batch([str(_write_attack(tmp_path))], str(out), archive_config, pipeline_options([], archive_config.runner))
    assert read_alerts(out, reader)
    Keyring(archive_config.keys.keyring).destroy_period("2026-11")
    assert read_alerts(out, reader) == []


def test_plaintext_alerts_file_only_when_the_config_names_it_and_owner_only(tmp_path, archive_config):
    sinks = dataclasses.replace(archive_config.alerts.sinks, jsonl=str(tmp_path / "named" / "alerts.jsonl"))
    config = dataclasses.replace(archive_config, alerts=dataclasses.replace(archive_config.alerts, sinks=sinks))
    run_batch([str(_write_attack(tmp_path))], str(tmp_path / "out"), config, pipeline_options([], config.runner))
    named = tmp_path / "named" / "alerts.jsonl"
    assert ATTACKER in named.read_text() and stat.S_IMODE(named.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604])
def test_an_outbox_key_others_can_read_is_refused_before_any_work(tmp_path, archive_config, capsys, mode):
    key = tmp_path / "outbox.key"
    key.write_text("x\n")
    key.chmod(mode)
    config = _config_file(tmp_path, archive_config, f"alerts: {{sinks: {{outbox_key_file: {key}}}}}\n")
    code = main(["batch", "-c", config, "-i", str(_write_attack(tmp_path)), "-o", str(tmp_path / "out")])
    assert code == 2 and "chmod 600" in capsys.readouterr().err
    assert not (tmp_path / "out" / "events").exists()


def test_a_run_killed_after_completing_but_before_delivering_has_its_alerts_sent_by_the_next(
    tmp_path, archive_config, monkeypatch
):
    """The run's archive and ledger record are complete, so its rerun reads nothing and raises nothing new:
    the alerts it owed the sinks must still reach them, each once."""
    import pipelines.batch

    named = tmp_path / "sink" / "alerts.jsonl"
    sinks = dataclasses.replace(archive_config.alerts.sinks, jsonl=str(named))
    config = dataclasses.replace(archive_config, alerts=dataclasses.replace(archive_config.alerts, sinks=sinks))
    log, out, options = str(_write_attack(tmp_path)), str(tmp_path / "out"), pipeline_options([], config.runner)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies here: after complete_transaction, before any sink is called

    with monkeypatch.context() as patch:
        patch.setattr(pipelines.batch, "deliver_run_alerts", killed)
        with pytest.raises(KeyboardInterrupt):
            run_batch([log], out, config, options)
    assert not named.exists() or not named.read_text()

    rerun = run_batch([log], out, config, options)
    assert rerun.counts.lines_read == 0 and rerun.alerts == []  # already archived: nothing read, nothing raised
    sent = [json.loads(line)["alert_id"] for line in named.read_text().splitlines()]
    assert sent and len(sent) == len(set(sent))
    assert rerun.delivery.undelivered == 0 and rerun.delivery.retried == len(sent)

    run_batch([log], out, config, options)  # and never again
    assert [json.loads(line)["alert_id"] for line in named.read_text().splitlines()] == sent


def test_a_run_delivers_the_alerts_it_owed_without_unsealing_them_again(tmp_path, archive_config, monkeypatch):
    """One outbox from archiving to delivering: what the run sealed as owed is delivered from memory, while the
    sealed copy stays on disk for a rerun should the run be killed before delivering."""
    import alerts.outbox

    named = tmp_path / "sink" / "alerts.jsonl"
    sinks = dataclasses.replace(archive_config.alerts.sinks, jsonl=str(named))
    config = dataclasses.replace(archive_config, alerts=dataclasses.replace(archive_config.alerts, sinks=sinks))
    unsealed = []
    unseal = alerts.outbox._unseal
    monkeypatch.setattr(alerts.outbox, "_unseal", lambda *args: unsealed.append(args[2]) or unseal(*args))
    run = run_batch([str(_write_attack(tmp_path))], str(tmp_path / "out"), config, pipeline_options([], config.runner))
    assert run.alerts and run.delivery.undelivered == 0
    assert sorted(json.loads(line)["alert_id"] for line in named.read_text().splitlines()) == sorted(
        a["alert_id"] for a in run.alerts
    )
    assert "pending" not in unsealed and "part" in unsealed

"""Every Unicode line break and control character, in every field of every format, stays inside its line.

A line is what ends at ``\\n``: whatever a client puts into a field (NEL, U+2028, a
lone CR, NUL, ESC...) must give exactly one event or one dead letter for that line,
at that line's offset, and must reach the archive and the alerts without splitting
anything on the way.
"""

from __future__ import annotations

import dataclasses
import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from parsers.lines import LineChunk
from parsers.registry import parse_chunk
from pipelines.batch import run_batch
from pipelines.options import pipeline_options
from retention.alert_store import read_alerts
from retention.archive_reader import open_archive
from tests.hardening.samples import TEMPLATES, fields, render

#: C0 controls but \n, DEL, C1 controls, and the Unicode line/paragraph separators and BOM.
SPECIAL = (
    [chr(c) for c in range(0x20) if c != 0x0A]
    + ["\x7f"]
    + [chr(c) for c in range(0x80, 0xA0)]
    + ["\u2028", "\u2029", "\ufeff", "\u200b"]
)


def _variants(template: str) -> list[str]:
    return [render(template, i, f"x{char}y") for i in range(len(fields(template))) for char in SPECIAL]


@pytest.mark.parametrize("fmt", sorted(TEMPLATES))
def test_each_variant_is_one_line_with_one_outcome(fmt):
    lines = _variants(TEMPLATES[fmt])
    data = "\n".join(lines).encode("utf-8") + b"\n"
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line.encode("utf-8")) + 1)
    result = parse_chunk(LineChunk("/x.log", 0, 1, data, fmt))
    assert result.lines_read == len(lines)
    outcome_offsets = (
        result.events.column("log_offset").to_pylist() + result.dead_letters.column("log_offset").to_pylist()
    )
    if result.kind == "access":  # one event per line; error entries may span lines (not here: one line each)
        assert sorted(outcome_offsets) == starts
    for dead in result.dead_letters.to_pylist():
        index = starts.index(dead["log_offset"])
        assert dead["raw"] == lines[index].encode("utf-8").removesuffix(b"\r")
        assert dead["line_number"] == index + 1


def test_control_characters_reach_archive_and_alerts_intact(tmp_path, archive_config, reader):
    """Combined-format variants plus an attack whose fields hold the same characters, through the batch job."""
    variants = _variants(TEMPLATES["combined"])
    probe = "/item?id=1%27%20UNION%20SELECT%20password%20FROM%20users--"
    attacks = [
        render(TEMPLATES["combined"], 3, f"{probe}{char}{i}").replace("198.51.100.1", "192.0.2.66", 1)
        for i, char in enumerate(SPECIAL[:12])
    ]
    log = tmp_path / "access.log"
    log.write_bytes(("\n".join(variants + attacks) + "\n").encode("utf-8"))
    config = dataclasses.replace(archive_config, input=dataclasses.replace(archive_config.input, format="combined"))
    out = tmp_path / "out"
    counts = run_batch([str(log)], str(out), config, pipeline_options([], config.runner)).counts
    assert counts.lines_read == len(variants) + len(attacks) and counts.balanced
    archived = open_archive(out, reader).to_table(columns=["log_offset", "url_original"])
    dead = open_archive(out, reader, "dead_letters").to_table(columns=["log_offset"])
    assert archived.num_rows == counts.lines_parsed and dead.num_rows == counts.lines_dead_lettered
    assert archived.num_rows + dead.num_rows == len(variants) + len(attacks)
    assert pc.sum(pc.utf8_length(archived.column("url_original"))).as_py() > 0
    alerts = read_alerts(out, reader)
    assert any(a["rule_id"].startswith("http-sqli") and a["source_ip"] == "192.0.2.66" for a in alerts)


PROBE = "/item?id=1%27%20UNION%20SELECT%20password%20FROM%20users--"


def _probe_lines(fmt: str) -> list[str]:
    """SQL injection probes, one source each (192.0.2.N for the Nth special character, so each gets an alert of its
    own whose evidence quotes it), whose request target holds that character (none when the format has no request
    target); JSON logs escape control characters, as every JSON logger does."""
    template = TEMPLATES[fmt]
    names = fields(template)
    target = next((i for i, v in enumerate(names) if v.startswith("/") or "www.example.com:80/" in v), None)
    source = next((i for i, v in enumerate(names) if v == "198.51.100.1"), None)
    if target is None or source is None or names[target] == "/x":  # error logs: no request rules
        return []
    out = []
    for n, char in enumerate(SPECIAL, start=1):
        spelled = json.dumps(char)[1:-1] if fmt == "json_lines" else char
        query = names.index("q=1") if "q=1" in names else None
        if query is not None:  # IIS / W3C: the query has its own field
            line = render(template, query, f"id=1%27%20UNION%20SELECT%20password%20FROM%20users--{spelled}")
        else:
            prefix = "http://www.example.com:80" if "www.example.com:80/" in names[target] else ""
            line = render(template, target, f"{prefix}{PROBE}{spelled}")
        out.append(line.replace("198.51.100.1", f"192.0.2.{n}", 1))
    return out


@pytest.mark.parametrize("fmt", sorted(TEMPLATES))
def test_every_format_takes_every_special_character_intact_into_archive_and_alerts(fmt, tmp_path, archive_config):
    """Every field of every format: what parsing kept reaches the encrypted archive byte for byte, and a probe
    with the character in its request raises its alert, which survives the sealed parts and the alerts dataset
    (where a NEL once split the run's alerts file and dropped them all)."""
    from alerts.outbox import Outbox, alert_to_json, load_outbox_key
    from alerts.replay import detect_results
    from alerts.rules import load_rules
    from retention.alert_store import read_alerts, write_alerts
    from retention.keyring import reader_keys, writer_keys
    from tests.retention.conftest import signer_of, write_partition

    probes = _probe_lines(fmt)
    lines = _variants(TEMPLATES[fmt]) + probes
    result = parse_chunk(LineChunk("/x.log", 0, 1, ("\n".join(lines) + "\n").encode("utf-8"), fmt))
    assert result.lines_read == len(lines)
    assert result.lines_parsed + result.dead_letters.num_rows + result.lines_skipped == len(lines)

    writer = writer_keys(archive_config.keys.keyring)
    reader = reader_keys(archive_config.keys.keyring, archive_config.keys.root_key_file, environ={})
    out = tmp_path / "out"
    dataset = "events" if result.kind == "access" else "errors"
    for name, table in [(dataset, result.events), ("dead_letters", result.dead_letters)]:
        if table.num_rows:
            batch = table if isinstance(table, pa.RecordBatch) else table.combine_chunks().to_batches()[0]
            write_partition(out, writer, "2026-11-01", batch, name.replace("_", "-"), dataset=name)
            back = open_archive(out, reader, name).to_table().select(batch.schema.names)
            assert (
                back.sort_by("log_offset").to_pylist()
                == pa.Table.from_batches([batch]).sort_by("log_offset").to_pylist()
            ), f"{fmt} {name}: the archive changed what parsing kept"

    if not probes:
        return
    alerts = detect_results(load_rules(), [result])
    probed = {ip for ip in result.events.column("source_ip").to_pylist() if ip and ip.startswith("192.0.2.")}
    alerted = {a["source_ip"] for a in alerts if a["rule_id"].startswith("http-sqli")}
    assert probed and probed <= alerted, f"{fmt}: probes parsed but raised no alert: {sorted(probed - alerted)}"
    outbox = Outbox.with_key(str(out), load_outbox_key(tmp_path / "outbox.key", environ={}))
    outbox.write_part("run1", alerts)
    raised = sorted(alerts, key=lambda a: (a["first_seen"], a["rule_id"], a["group_key"] or ""))
    assert [alert_to_json(a) for a in outbox.run_alerts("run1")] == [alert_to_json(a) for a in raised], (
        f"{fmt}: the sealed alert parts changed the alerts"
    )
    write_alerts(str(out), "run1", alerts, writer, archive_config.archive, signer_of(writer))
    archived = {a["alert_id"]: a for a in read_alerts(out, reader)}
    for alert in alerts:
        kept = archived[alert["alert_id"]]
        assert [e["line"] for e in kept["evidence"]] == [e["line"] for e in alert["evidence"]], fmt

"""Every Unicode line break and control character, in every field of every format, stays inside its line.

A line is what ends at ``\\n``: whatever a client puts into a field (NEL, U+2028, a
lone CR, NUL, ESC...) must give exactly one event or one dead letter for that line,
at that line's offset, and must reach the archive and the alerts without splitting
anything on the way.
"""

from __future__ import annotations

import dataclasses

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

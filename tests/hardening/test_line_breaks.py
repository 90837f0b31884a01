"""Only ``\\n`` (and ``\\r\\n``) end a line: Unicode line separators inside a request are data."""

from __future__ import annotations

import dataclasses
import io

from parsers.lines import text_lines
from parsers.reader import head_lines
from pipelines.batch import run_batch
from pipelines.options import pipeline_options
from retention.alert_store import read_alerts

#: Every character Python's str.splitlines() breaks at, besides \n and \r\n.
PYTHON_LINE_BREAKS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def test_text_lines_splits_only_at_newline():
    text = "a" + "".join(PYTHON_LINE_BREAKS) + "b\r\nc\n"
    assert text_lines(text) == ["a" + "".join(PYTHON_LINE_BREAKS) + "b", "c"]


def test_format_detection_sample_keeps_each_line_whole():
    line = '198.51.100.1 - - [01/Nov/2026:10:00:00 +0000] "GET /a\u2028b HTTP/1.1" 200 1 "-" "ua\x85x"'
    data = ((line + "\n") * 3).encode()
    assert head_lines(io.BytesIO(data), "x.log") == [line] * 3


def test_request_with_unicode_line_separators_does_not_drop_the_runs_alerts(tmp_path, archive_config, reader):
    """A SQL injection probe whose query holds NEL, U+2028 and U+2029 must still raise, and publish, its alert."""
    probe = "/item?id=1%27%20UNION%20SELECT%20password%20FROM%20users--\u2028\x85\u2029"
    lines = [
        f'192.0.2.66 - - [01/Nov/2026:10:00:{i:02d} +0000] "GET {probe}{i} HTTP/1.1" 200 1 "-" "ua\u2028{i}"'
        for i in range(5)
    ]
    log = tmp_path / "access.log"
    log.write_bytes(("\n".join(lines) + "\n").encode())
    out = tmp_path / "out"
    config = dataclasses.replace(archive_config, input=dataclasses.replace(archive_config.input, format="combined"))
    result = run_batch([str(log)], str(out), config, pipeline_options([], config.runner))
    assert result.counts.lines_parsed == 5
    alerts = read_alerts(out, reader)
    assert any(a["rule_id"].startswith("http-sqli") for a in alerts), [a["rule_id"] for a in alerts]

"""Counter names shared by every pipeline, and reading them back for the end-of-run summary."""

from __future__ import annotations

import dataclasses

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter

NAMESPACE = "logwarden"

FILES_READ = "files_read"
FILES_TRUNCATED = "files_truncated"
BYTES_READ = "bytes_read"
LINES_READ = "lines_read"
LINES_PARSED = "lines_parsed"
LINES_DEAD_LETTERED = "lines_dead_lettered"
LINES_TRUNCATED = "lines_truncated"
LINES_EXPIRED = "lines_expired"
#: Blank lines and W3C directive lines: counted apart, neither events nor dead letters.
LINES_SKIPPED = "lines_skipped"
FILES_WRITTEN = "files_written"
ROWS_WRITTEN = "rows_written"
DEAD_LETTERS_WRITTEN = "dead_letters_written"
ALERT_LATE_ROWS = "alert_late_rows"
ALERTS_UNDELIVERED = "alerts_undelivered"
#: Alerts are counted per rule under ``alerts:<rule_id>``.
ALERTS_PREFIX = "alerts:"
#: Bytes and lines read of each input file, under ``input_bytes:<path>`` and ``input_lines:<path>`` (the ledger's).
INPUT_BYTES = "input_bytes"
INPUT_LINES = "input_lines"


def input_counter_name(kind: str, path: str) -> str:
    return f"{kind}:{path}"


def alert_counter_name(rule_id: str) -> str:
    return ALERTS_PREFIX + rule_id


def counter(name: str):
    return beam.metrics.Metrics.counter(NAMESPACE, name)


@dataclasses.dataclass
class RunCounts:
    """The numbers a run reports; ``lines_read == parsed + dead_lettered + skipped + expired`` must hold."""

    files_read: int = 0
    files_truncated: int = 0
    bytes_read: int = 0
    lines_read: int = 0
    lines_parsed: int = 0
    lines_dead_lettered: int = 0
    lines_truncated: int = 0
    lines_expired: int = 0
    lines_skipped: int = 0
    files_written: int = 0
    rows_written: int = 0
    dead_letters_written: int = 0
    alert_late_rows: int = 0
    alerts_undelivered: int = 0
    alerts_by_rule: dict[str, int] = dataclasses.field(default_factory=dict)
    input_bytes: dict[str, int] = dataclasses.field(default_factory=dict)  # by input path
    input_lines: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.lines_read == self.lines_parsed + self.lines_dead_lettered + self.lines_skipped + self.lines_expired

    @classmethod
    def from_result(cls, result) -> RunCounts:
        counts = cls()
        query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
        for item in query["counters"]:
            name = item.key.metric.name
            value = int((item.committed if item.committed is not None else item.attempted) or 0)
            kind, _, rest = name.partition(":")
            if name.startswith(ALERTS_PREFIX):
                rule_id = name[len(ALERTS_PREFIX) :]
                counts.alerts_by_rule[rule_id] = counts.alerts_by_rule.get(rule_id, 0) + value
            elif kind in (INPUT_BYTES, INPUT_LINES) and rest:
                per_file = getattr(counts, kind)
                per_file[rest] = per_file.get(rest, 0) + value
            elif hasattr(counts, name):
                setattr(counts, name, getattr(counts, name) + value)
        return counts

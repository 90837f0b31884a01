"""The live end of the stream, as plain Python: events archived in cuts, detection on event time, one checkpoint.

Everything that must survive a crash *together* lives here: the archive files
being filled, the detector's open windows and cool-downs, the open report
windows and the follower positions they correspond to.  ``LiveStage`` gets the
parsed batches, rule hits and source ticks of the stream in the order they
were read; on each tick it folds detection up to the event-time watermark
(alerts leave at once), and when a cut is due (``cut_seconds``, or a file
reaching ``max_file_rows`` / ``cut_bytes``, or the drain at shutdown) it
publishes everything through ``StateStore.commit``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from alerts.alert import alert_sort_key
from alerts.engine import Detector
from alerts.observe import Hits
from alerts.rules import RuleSet
from alerts.sinks import alert_json
from pipelines.reports.store import STREAM_RUN, store_documents
from pipelines.reports.traffic import GRAIN_UNITS, TrafficPartial, partials_from_batch
from retention.encryption import ArchiveEncryptor
from retention.keyring import WriterKeys
from retention.parquet_files import (
    DATASETS,
    DEAD_LETTER_DIR,
    ParquetFileWriter,
    WrittenFile,
    final_file_name,
    manifest_document,
    manifest_name,
    partition_name,
    split_by_day,
)
from schemas.config import ArchiveConfig
from streaming.checkpoint import Cut, StateStore, clear_staging, fsync_file
from streaming.follower import Position

_LOG = logging.getLogger("logwarden")
US = 1_000_000


@dataclasses.dataclass(frozen=True)
class Tick:
    """Sent by the source after each poll: where every followed content stands once this poll's lines are in."""

    positions: tuple[Position, ...]
    files_followed: int
    final: bool = False
    polled_at: float = 0.0
    bytes_behind: int = 0


@dataclasses.dataclass
class LiveCheckpoint:
    """What the next start resumes from."""

    seq: int
    positions: list[Position]
    detector: tuple | None
    pending_hits: list[Hits]
    windows: dict[tuple[int, str], TrafficPartial]
    newest_event_us: int
    lines_archived: int


@dataclasses.dataclass
class LiveSettings:
    output: str
    run_id: str
    cut_seconds: float = 300.0
    cut_bytes: int = 256 * 1024 * 1024
    lateness_seconds: float = 0.0
    idle_seconds: float = 2.0
    reports_bucket: str | None = "hour"
    #: Recorded with the report parts, so a report can say "no GeoIP database configured".
    reports_geoip: bool = False


@dataclasses.dataclass
class LiveCounts:
    lines: int = 0
    alerts: int = 0
    cuts: int = 0
    late_rows: int = 0
    newest_event_us: int = 0
    files_followed: int = 0
    bytes_behind: int = 0


class LiveStage:
    """One writer per (dataset, day) between cuts, a ``Detector``, open report windows, the checkpoint."""

    def __init__(
        self,
        settings: LiveSettings,
        keys: WriterKeys,
        archive: ArchiveConfig,
        rules: RuleSet | None,
        store: StateStore,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self._keys = keys
        self._archive = archive
        self._rules = rules
        self._store = store
        self._clock = clock
        self._output = Path(settings.output)
        self._staging = self._output / ".tmp" / f"stream-{settings.run_id}"
        self._encryptor = ArchiveEncryptor(keys)
        self.counts = LiveCounts()
        self._writers: dict[tuple[str, str], ParquetFileWriter] = {}
        self._alerts: list[dict] = []
        self._windows: dict[tuple[int, str, str], TrafficPartial] = {}
        self._positions: list[Position] = []
        self._seq = 0
        self._cut_started = clock()
        self._last_event_at = clock()
        self._detector = Detector(rules) if rules is not None else None
        self._delivered: set[str] = set()
        self._dirty = False

    # ------------------------------------------------------------------ start

    def start(self) -> list[Position]:
        """Finish an interrupted commit, drop what was staged but never committed, restore; returns positions."""
        saved: LiveCheckpoint | None = self._store.recover()
        for leftover in (self._output / ".tmp").glob("stream-*"):
            clear_staging(leftover)
        self._delivered = self._store.delivered_ids()
        if saved is not None:
            self._seq = saved.seq
            self._positions = saved.positions
            self._windows = saved.windows
            self.counts.newest_event_us = saved.newest_event_us
            self.counts.lines = 0
            if self._detector is not None:
                self._detector.restore(saved.detector)
                self._detector.pending = list(saved.pending_hits)
        return list(self._positions)

    # ------------------------------------------------------------------ inputs

    def add_events(self, dataset_dir: str, batch: pa.RecordBatch) -> None:
        """Parsed events (``events``, ``errors``) or dead letters, into this cut's files."""
        if not batch.num_rows:
            return
        self._dirty = True
        self.counts.lines += batch.num_rows
        if dataset_dir == DEAD_LETTER_DIR:
            parts = [(time.strftime("%Y-%m-%d", time.gmtime(self._clock())), batch)]
        else:
            newest = pc.max(batch.column("timestamp")).cast(pa.int64()).as_py()
            if newest is not None and newest > self.counts.newest_event_us:
                self.counts.newest_event_us = newest
                self._last_event_at = self._clock()
            parts = list(split_by_day(batch))
            if dataset_dir == "events" and self.settings.reports_bucket:
                for (start, host, path), partial in partials_from_batch(batch, self.settings.reports_bucket):
                    key = (start, host, f"stream:{path}")
                    if key in self._windows:
                        self._windows[key].merge(partial)
                    else:
                        self._windows[key] = partial
        for day, part in parts:
            writer = self._writers.get((dataset_dir, day))
            if writer is None:
                writer = self._writers[(dataset_dir, day)] = self._open_writer(dataset_dir, day)
            writer.write(part)

    def _open_writer(self, dataset_dir: str, day: str) -> ParquetFileWriter:
        schema = DATASETS[dataset_dir]
        self._staging.mkdir(parents=True, exist_ok=True)
        path = str(self._staging / f"{dataset_dir}-{day}-{uuid.uuid4().hex}.parquet")
        return ParquetFileWriter(
            path,
            schema,
            lambda p: open(p, "wb"),
            encryption=self._encryptor.for_day(schema, day),
            compression=self._archive.compression,
            row_group_rows=self._archive.row_group_rows,
        )

    def add_hits(self, hits: list[Hits]) -> None:
        if self._detector is not None:
            self._detector.add(hits)

    def tick(self, tick: Tick) -> list[dict]:
        """Detection up to the watermark (its alerts returned for delivery); a cut when one is due."""
        if list(tick.positions) != self._positions:
            self._positions = list(tick.positions)
            self._dirty = True
        self.counts.files_followed = tick.files_followed
        self.counts.bytes_behind = tick.bytes_behind
        alerts = self.detect(final=False)
        if tick.final or self._cut_due():
            self.cut()
        return alerts

    def watermark_us(self) -> int:
        """Event time up to which every line is in: the newest line's time, less the lateness while busy."""
        newest = self.counts.newest_event_us
        if self._clock() - self._last_event_at >= self.settings.idle_seconds:
            return newest  # quiet inputs: nothing older can still come from them
        return newest - int(self.settings.lateness_seconds * US)

    def detect(self, final: bool) -> list[dict]:
        if self._detector is None or not self._detector.pending:
            return []
        late_before = self._detector.late_rows
        raised = self._detector.flush(self.watermark_us())
        self.counts.late_rows += self._detector.late_rows - late_before
        # Every alert goes to this cut's alerts file; the sinks get only ids they were never sent (a restart
        # raises again the alerts of lines read after the checkpoint, and some of those were already sent).
        self._alerts += raised
        self.counts.alerts += len(raised)
        fresh = [a for a in raised if a["alert_id"] not in self._delivered]
        self._delivered.update(a["alert_id"] for a in fresh)
        return fresh

    def record_delivered(self, alerts: list[dict]) -> None:
        """Called once the alerts reached the sinks: a restart does not send them again."""
        if alerts:
            self._store.record_delivered([a["alert_id"] for a in alerts])

    # ------------------------------------------------------------------ cuts

    def _cut_due(self) -> bool:
        if self._clock() - self._cut_started >= self.settings.cut_seconds:
            return True
        return any(
            w.rows >= self._archive.max_file_rows or os.path.getsize(w.path) >= self.settings.cut_bytes
            for w in self._writers.values()
        )

    def cut(self) -> None:
        """Publish this cut's files, alerts and closed report windows with the checkpoint, as one commit."""
        self._cut_started = self._clock()
        if not self._dirty:
            return
        self._seq += 1
        cut_id = f"{self.settings.run_id}-c{self._seq:06d}"
        cut = Cut(self._seq)
        by_partition: dict[tuple[str, str], list[WrittenFile]] = {}
        for (dataset_dir, day), writer in sorted(self._writers.items()):
            written = writer.close()
            fsync_file(written.path)
            by_partition.setdefault((dataset_dir, day), []).append(written)
        self._writers = {}
        for (dataset_dir, day), files in by_partition.items():
            partition = self._output / dataset_dir / partition_name(day)
            entries = []
            for index, written in enumerate(files):
                name = final_file_name(cut_id, index)
                cut.renames.append((written.path, str(partition / name)))
                entries.append(written.manifest_entry(name))
            cut.documents.append((str(partition / manifest_name(cut_id)), manifest_document(day, cut_id, entries)))
        if self._alerts:
            text = "".join(alert_json(a) + "\n" for a in sorted(self._alerts, key=alert_sort_key))
            cut.documents.append((str(self._output / "alerts" / f"alerts-{cut_id}.jsonl"), text.encode()))
        cut.documents += self._closed_report_windows(cut_id)
        self._store.commit(cut, self._checkpoint())
        self._alerts = []
        self._dirty = False
        self.counts.cuts += 1

    def _closed_report_windows(self, cut_id: str) -> list[tuple[str, bytes]]:
        """Report windows the watermark has passed, as report parts (a late line adds another part later)."""
        bucket = self.settings.reports_bucket
        if not bucket or not self._windows:
            return []
        watermark = self.watermark_us()
        closed = sorted(k for k in self._windows if (k[0] + GRAIN_UNITS[bucket]) * US <= watermark)
        if not closed:
            return []
        results = [(k, self._windows.pop(k)) for k in closed]
        return store_documents(results, str(self._output), cut_id, bucket, self.settings.reports_geoip, STREAM_RUN)

    def drain(self) -> None:
        """At shutdown: every open report window written, everything published."""
        if self.settings.reports_bucket and self._windows:
            self._dirty = True
            self.counts.newest_event_us += GRAIN_UNITS[self.settings.reports_bucket] * US  # close them all
            self.cut()
            self.counts.newest_event_us -= GRAIN_UNITS[self.settings.reports_bucket] * US
        else:
            self.cut()

    def _checkpoint(self) -> LiveCheckpoint:
        detector = self._detector
        return LiveCheckpoint(
            seq=self._seq,
            positions=self._positions,
            detector=detector.snapshot() if detector is not None else None,
            pending_hits=list(detector.pending) if detector is not None else [],
            windows=self._windows,
            newest_event_us=self.counts.newest_event_us,
            lines_archived=self.counts.lines,
        )

    def close(self) -> None:
        for writer in self._writers.values():
            with contextlib.suppress(Exception):  # staged files are discarded anyway
                writer.close()
        self._writers = {}
        clear_staging(self._staging)

    def progress_line(self, lines_per_second: float) -> str:
        c = self.counts
        lag = c.bytes_behind / 1024
        newest = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(c.newest_event_us / US)) if c.newest_event_us else "-"
        return (
            f"logwarden stream: {lines_per_second:,.0f} lines/s, lag {lag:,.0f} KiB unread (newest line {newest} UTC), "
            f"{c.files_followed} files followed, {c.alerts} alerts, {c.cuts} cuts published"
        )

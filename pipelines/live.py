"""The live end of the stream, as plain Python: events archived in cuts, detection on event time, one checkpoint.

Everything that must survive a crash *together* lives here: the archive files
being filled, the detector's open windows and cool-downs, the open report
windows and the follower positions they correspond to.  ``LiveStage`` gets the
parsed batches, rule hits and source ticks of the stream in the order they
were read; on each tick it folds detection up to the event-time watermark
(alerts leave at once), and when a cut is due (``cut_seconds``, or a file
reaching ``max_file_rows`` / ``cut_bytes``, or the drain at shutdown) it
publishes everything through ``StateStore.commit``: one transaction per cut whose
record is the ingest ledger's (the byte ranges archived, per file content, and
the alert ids raised), so a later ``logwarden batch`` over the same files
archives nothing twice and raises no alert again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from alerts.alert import alert_sort_key, from_us
from alerts.engine import Detector, RuleFold
from alerts.observe import Hits
from alerts.rules import RuleSet
from alerts.sinks.live import LiveDelivery
from parsers.follow import Position
from pipelines.reports.health import health_documents
from pipelines.reports.store import STREAM_RUN, store_documents
from pipelines.reports.traffic import GRAIN_UNITS, TrafficPartial, partials_from_batch
from retention import commit, layout
from retention.alert_store import stage_alerts
from retention.encryption import ArchiveEncryptor
from retention.keyring import WriterKeys
from retention.layout import ALERTS_DIR, DATASETS, DEAD_LETTER_DIR
from retention.ledger import FileIdentity
from retention.parquet_files import ParquetFileWriter, WrittenFile, split_by_day
from retention.stream_state import Cut, PartitionCommit, StateStore, fsync_file
from schemas.config import ArchiveConfig

_LOG = logging.getLogger("logwarden")
US = 1_000_000
#: Events held back from the report windows at most (folded at the latest at each cut, which writes them).
REPORT_FOLD_ROWS = 50_000


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
    #: Per detector (``signatures``, ``behaviour``): its snapshot and its buffered hits.
    detectors: dict[str, tuple[tuple, list[Hits]]]
    windows: dict[tuple[int, str], TrafficPartial]
    newest_event_us: int
    lines_archived: int
    #: Per ledger key: (offset, line number) up to which completed cuts recorded the content in the ledger.
    ledger: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class LiveSettings:
    output: str
    run_id: str
    cut_seconds: float = 300.0
    cut_bytes: int = 256 * 1024 * 1024
    lateness_seconds: float = 0.0
    idle_seconds: float = 2.0
    reports_bucket: str | None = "hour"
    #: Behaviour rules fold at most this often: a sliding window refolds the rows still inside it at each flush.
    behaviour_flush_seconds: float = 1.0
    #: Recorded with the report parts, so a report can say "no GeoIP database configured".
    reports_geoip: bool = False
    #: At shutdown, how long the sinks may take to confirm what is queued (the rest stays owed, in the outbox).
    delivery_wait_seconds: float = 10.0


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
        delivery: LiveDelivery | None = None,
    ):
        self.settings = settings
        self._keys = keys
        self._archive = archive
        self._rules = rules
        self._store = store
        self._clock = clock
        self._output = Path(settings.output)
        self._root = str(self._output)
        self._encryptor = ArchiveEncryptor(keys)
        self.counts = LiveCounts()
        self._writers: dict[tuple[str, str], ParquetFileWriter] = {}
        self._alerts: list[dict] = []
        self._windows: dict[tuple[int, str, str], TrafficPartial] = {}
        self._unreported: list[pa.RecordBatch] = []  # events not yet folded into the windows
        self._unreported_rows = 0
        self._ledger_names: dict[str, str] = {}  # path -> ledger key, for the report rows
        self._positions: list[Position] = []
        self._seq = 0
        self._cut_started = clock()
        self._last_event_at = clock()
        split = _split_rules(rules)
        self._detectors = {name: Detector(part) for name, part in split.items()}
        self._rule_detector = {rule.id: name for name, part in split.items() for rule in part.rules}
        self._behaviour_flushed = clock()
        self._delivery = delivery
        self._publisher = Publisher()
        self._published: list[str] | None = None  # alert ids of the cut being committed
        self._ledger: dict[str, tuple[int, int]] = {}
        self._lines_in_cut = 0
        self._dirty = False

    # ------------------------------------------------------------------ start

    def start(self) -> list[Position]:
        """Finish an interrupted commit, drop what was staged but never committed, restore; returns positions."""
        saved: LiveCheckpoint | None = self._store.recover(self._root)
        commit.recover(self._root, own_run=self.settings.run_id)  # what killed runs (this job's too) left
        if self._delivery is not None:
            self._delivery.start()
        if saved is not None:
            self._ledger = dict(getattr(saved, "ledger", None) or {})
            self._seq = saved.seq
            self._positions = saved.positions
            self._windows = saved.windows
            self.counts.newest_event_us = saved.newest_event_us
            self.counts.lines = 0
            for name, (snapshot, pending) in saved.detectors.items():
                if name in self._detectors:
                    self._detectors[name].restore(snapshot)
                    self._detectors[name].add(pending)
        return list(self._positions)

    # ------------------------------------------------------------------ inputs

    def add_events(self, dataset_dir: str, batch: pa.RecordBatch) -> None:
        """Parsed events (``events``, ``errors``) or dead letters, into this cut's files."""
        if not batch.num_rows:
            return
        self._dirty = True
        self.counts.lines += batch.num_rows
        self._lines_in_cut += batch.num_rows
        if dataset_dir == DEAD_LETTER_DIR:
            parts = split_by_day(batch, undated_day=layout.today())  # by event time when the line had one
        else:
            newest = pc.max(batch.column("timestamp")).cast(pa.int64()).as_py()
            if newest is not None and newest > self.counts.newest_event_us:
                self.counts.newest_event_us = newest
                self._last_event_at = self._clock()
            parts = split_by_day(batch)
            if dataset_dir == "events" and self.settings.reports_bucket:
                self._unreported.append(batch)
                self._unreported_rows += batch.num_rows
                if self._unreported_rows >= REPORT_FOLD_ROWS:
                    self._fold_reports()
        for day, part in parts:
            writer = self._writers.get((dataset_dir, day))
            if writer is None:
                writer = self._writers[(dataset_dir, day)] = self._open_writer(dataset_dir, day)
            writer.write(part)

    def _fold_reports(self) -> None:
        """Events into the open report windows, many polls' batches at once: a partial costs about the same
        for 500 rows as for 50,000, and a poll at 10,000 lines/s brings a few hundred."""
        if not self._unreported:
            return
        batch = pa.Table.from_batches(self._unreported).combine_chunks().to_batches()[0]
        self._unreported, self._unreported_rows = [], 0
        # Rows carry their file's ledger key: the report counts them by the ledger's ranges, as batch's.
        names = {**self._ledger_names, **{p.path: _ledger_key(p) for p in self._positions if _ledger_key(p)}}
        for (start, host, source), partial in partials_from_batch(batch, self.settings.reports_bucket, names):
            key = (start, host, source)
            if key in self._windows:
                self._windows[key].merge(partial)
            else:
                self._windows[key] = partial

    def _open_writer(self, dataset_dir: str, day: str) -> ParquetFileWriter:
        schema = DATASETS[dataset_dir]
        path = commit.staging_path(self._root, self.settings.run_id)
        return ParquetFileWriter(
            path,
            schema,
            commit.create,
            encryption=self._encryptor.for_day(schema, day),
            compression=self._archive.compression,
            row_group_rows=self._archive.row_group_rows,
            row_group_bytes=self._archive.row_group_bytes,
        )

    def add_hits(self, hits: list[Hits]) -> None:
        for h in hits:
            name = self._rule_detector.get(h.rule_id)
            if name is not None:
                self._detectors[name].add([h])

    def tick(self, tick: Tick) -> list[dict]:
        """Detection up to the watermark; its alerts go to the sinks at once and are returned.

        A cut's checkpoint says the lines before it are done, so an alert it covers is never raised again
        after a restart: before that checkpoint exists, what the sinks have not confirmed is sealed in the
        outbox (``LiveDelivery.before_commit``) and retried from there.
        """
        self._after_publish()
        if self._delivery is not None:
            self._delivery.collect()  # confirmations recorded first: a kill now does not send them again
        if list(tick.positions) != self._positions:
            self._positions = list(tick.positions)
            # Every name a content had since the last cut (events keep the name they were read under).
            self._ledger_names.update((p.path, _ledger_key(p)) for p in self._positions if _ledger_key(p))
            self._dirty = True
        self.counts.files_followed = tick.files_followed
        self.counts.bytes_behind = tick.bytes_behind
        return self.detect(final=tick.final)

    def cut_if_due(self, tick: Tick) -> None:
        if tick.final:
            if self._delivery is not None:
                self._delivery.close(self.settings.delivery_wait_seconds)
            self.drain()
        elif self._cut_due():
            self.cut()

    def watermark_us(self) -> int:
        """Event time up to which every line is in: the newest line's time, less the lateness while busy."""
        newest = self.counts.newest_event_us
        if self._clock() - self._last_event_at >= self.settings.idle_seconds:
            return newest  # quiet inputs: nothing older can still come from them
        return newest - int(self.settings.lateness_seconds * US)

    def detect(self, final: bool) -> list[dict]:
        """Signatures fold at every tick (their alert leaves with the poll that read the line); behaviour rules
        every ``behaviour_flush_seconds``.  Folding is the same whatever the flushes, so are the alerts."""
        raised = []
        now = self._clock()
        behaviour_due = final or now - self._behaviour_flushed >= self.settings.behaviour_flush_seconds
        for name, detector in self._detectors.items():
            if not detector.pending or (name == BEHAVIOUR and not behaviour_due):
                continue
            late_before = detector.late_rows
            raised += detector.flush(self.watermark_us())
            self.counts.late_rows += detector.late_rows - late_before
            if name == BEHAVIOUR:
                self._behaviour_flushed = now
        if not raised:
            return []
        # Every alert goes to this cut's alerts file; the sinks get only ids they never confirmed (a restart
        # raises again the alerts of lines read after the checkpoint, and some of those were already sent).
        self._alerts += raised
        self.counts.alerts += len(raised)
        if self._delivery is not None:
            self._delivery.send(raised)
        return raised

    # ------------------------------------------------------------------ cuts

    def _cut_due(self) -> bool:
        if self._clock() - self._cut_started >= self.settings.cut_seconds:
            return True
        return any(
            w.rows >= self._archive.max_file_rows or os.path.getsize(w.path) >= self.settings.cut_bytes
            for w in self._writers.values()
        )

    def cut(self, close_windows: bool = False) -> None:
        """Publish this cut's files, alerts and closed report windows with the checkpoint, as one transaction.

        What must be taken from the running state (which lines, which alerts, the checkpoint) is taken here;
        closing the files and the commit's fsyncs run on the publisher thread, one cut at a time, while the
        stream reads on: under a busy disk they take a second, which lines read meanwhile need not wait for.
        """
        self._cut_started = self._clock()
        if not self._dirty:
            return
        self._publisher.wait()  # the previous cut is committed before this one begins
        self._after_publish()
        self._seq += 1
        txn = layout.commit_id(self.settings.run_id, f"c{self._seq:08d}")
        cut = Cut(self._seq, txn)
        writers, self._writers = sorted(self._writers.items()), {}
        alerts = sorted(self._alerts, key=alert_sort_key)
        staged_alerts = stage_alerts(self._root, self.settings.run_id, alerts, self._keys, self._archive)
        cut.documents += self._closed_report_windows(txn, close_windows)
        if self.settings.reports_bucket:  # the cut's service-health episodes, for the capacity report
            reached = from_us(self.watermark_us()) if self.counts.newest_event_us else None
            cut.documents += health_documents(alerts, self._rules, self._root, txn, reached)
        self._ledger_names = {}
        inputs, self._ledger = self._ledger_inputs()
        alert_ids = [a["alert_id"] for a in alerts]
        cut.record = {"lines_read": self._lines_in_cut, "alert_ids": alert_ids, "inputs": inputs}
        if self._delivery is not None:
            self._delivery.before_commit()  # what the sinks have not confirmed is kept before the lines are done
        checkpoint = self._checkpoint()
        checkpoint.ledger = dict(self._ledger)
        sealed = self._store.seal(checkpoint)
        self._alerts = []
        self._lines_in_cut = 0
        self._dirty = False

        def publish() -> None:
            by_partition: dict[tuple[str, str], list[WrittenFile]] = {}
            for (dataset_dir, day), writer in writers:
                written = writer.close()
                fsync_file(written.path)
                by_partition.setdefault((dataset_dir, day), []).append(written)
            for day, written in staged_alerts:
                by_partition[(ALERTS_DIR, day)] = [written]
            for (dataset_dir, day), files in by_partition.items():
                cut.partitions.append(PartitionCommit(dataset_dir, day, txn, files))
            self._store.commit(self._root, cut, sealed)

        self._published = alert_ids
        self._publisher.start(publish)

    def _after_publish(self) -> None:
        """Once a cut is committed: the delivered-id records may forget its alerts."""
        if self._published is None or self._publisher.busy:
            return
        self._publisher.wait()
        if self._delivery is not None:
            self._delivery.after_commit(self._published)
        self._published = None
        self.counts.cuts += 1

    def _ledger_inputs(self) -> tuple[list[dict], dict[str, tuple[int, int]]]:
        """The ledger ranges this cut archives (from where the last cut left each content to where it is now),
        and the ledger offsets after it (only contents still remembered: positions are forgotten in time)."""
        furthest: dict[str, Position] = {}
        for p in self._positions:
            key = _ledger_key(p)
            if key and (key not in furthest or p.offset > furthest[key].offset):
                furthest[key] = p
        inputs, after = [], {}
        for key, p in sorted(furthest.items()):
            start, line = self._ledger.get(key, (p.read_from, p.read_from_line))
            after[key] = (max(start, p.offset), p.line_number if p.offset > start else line)
            if p.offset > start:
                inputs.append(
                    {"key": key, "head_bytes": p.ledger_head_bytes, "path": p.path, "device": p.dev,
                     "inode": p.inode, "start": start, "end": p.offset, "lines": p.line_number - line}
                )  # fmt: skip
        return inputs, after

    def _closed_report_windows(self, cut_id: str, all_of_them: bool = False) -> list[tuple[str, bytes]]:
        """Report windows the watermark has passed, as report parts (a late line adds another part later)."""
        bucket = self.settings.reports_bucket
        self._fold_reports()
        if not bucket or not self._windows:
            return []
        watermark = self.watermark_us()
        closed = sorted(k for k in self._windows if all_of_them or (k[0] + GRAIN_UNITS[bucket]) * US <= watermark)
        if not closed:
            return []
        results = [(k, self._windows.pop(k)) for k in closed]
        return store_documents(results, str(self._output), cut_id, bucket, self.settings.reports_geoip, STREAM_RUN)

    def drain(self) -> None:
        """At shutdown: every open report window written, everything published."""
        self._fold_reports()
        if self._windows:
            self._dirty = True
        self.cut(close_windows=True)
        self._publisher.wait()
        self._after_publish()

    def _checkpoint(self) -> LiveCheckpoint:
        return LiveCheckpoint(
            seq=self._seq,
            positions=self._positions,
            detectors={name: (d.snapshot(), list(d.pending)) for name, d in self._detectors.items()},
            windows=self._windows,
            newest_event_us=self.counts.newest_event_us,
            lines_archived=self.counts.lines,
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a failed commit was raised already; what it staged is discarded
            self._publisher.wait()
        if self._delivery is not None:
            self._delivery.close(0)
        for writer in self._writers.values():
            with contextlib.suppress(Exception):  # staged files are discarded anyway
                writer.close()
        self._writers = {}
        commit.clear_staging(self._root, self.settings.run_id)

    def progress_line(self, lines_per_second: float) -> str:
        c = self.counts
        lag = c.bytes_behind / 1024
        newest = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(c.newest_event_us / US)) if c.newest_event_us else "-"
        return (
            f"logwarden stream: {lines_per_second:,.0f} lines/s, lag {lag:,.0f} KiB unread (newest line {newest} UTC), "
            f"{c.files_followed} files followed, {c.alerts} alerts, {c.cuts} cuts published"
        )


class Publisher:
    """Runs one cut's commit at a time on a thread of its own; its failure is raised to the stream's thread."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, work: Callable[[], None]) -> None:
        self.wait()

        def run() -> None:
            try:
                work()
            except BaseException as problem:  # raised on the stream's thread by wait()
                self._error = problem

        # A daemon: a kill mid-commit is what the journal and recovery are for, at exit as at kill -9.
        self._thread = threading.Thread(target=run, name="logwarden-cut", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def _ledger_key(position: Position) -> str:
    """The ingest ledger's name for a followed content (``retention.ledger.FileIdentity.key``)."""
    if not position.ledger_head_bytes:
        return ""
    return FileIdentity(position.ledger_sha256, position.ledger_head_bytes).key


SIGNATURES = "signatures"
BEHAVIOUR = "behaviour"


def _split_rules(rules: RuleSet | None) -> dict[str, RuleSet]:
    """Signature rules apart from the others, so each part can fold on its own schedule."""
    if rules is None:
        return {}
    signature = tuple(r for r in rules.rules if RuleFold(r).is_signature)
    behaviour = tuple(r for r in rules.rules if not RuleFold(r).is_signature)
    return {SIGNATURES: RuleSet(signature), BEHAVIOUR: RuleSet(behaviour)}

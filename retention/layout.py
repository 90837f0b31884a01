"""Where everything lives in an archive directory: the one module that knows the layout.

::

    <root>/
      events/ errors/ dead_letters/ alerts/     datasets, one schema each (``DATASETS``)
        dt=2026-01-05/                          a partition: one UTC day of event time
          part-<commit>-00000.parquet           data files; read only while a manifest lists them
          _manifest-<commit>.json               what one commit added to (and removed from) the partition
      .tmp/<run>/                               staging: complete files of a run waiting to be published
      _state/                                   bookkeeping that is not data
        leases/<run>.lock                       held while a run writes (a dead run's leftovers are reclaimable)
        locks/<dataset>-<day>.lock              taken by commits that replace or remove files of a partition
        ledger/<txn>.open.json                  a transaction under way: its commits are hidden from readers
        ledger/<txn>.json                       a completed transaction: what input it archived (``retention.ledger``)
      reports/                                  capacity reports: plaintext, no personal data, 0640
        aggregates/traffic-<run>.parquet        every run's mergeable aggregates (``pipelines.reports.store``)

A commit id is a run id, optionally followed by ``.<label>`` when one run commits
to the same partition more than once (streaming, compaction), so every file name
says which run wrote it: that is how recovery tells a dead writer's leftovers
from a live writer's work in progress.  Keys are per month of event time; the
month of a partition is the first seven characters of its day.

Paths are joined with Beam's ``FileSystems``, so a root may be ``gs://`` or ``s3://``.
"""

from __future__ import annotations

import datetime as dt
import re

from apache_beam.io.filesystems import FileSystems

from schemas import ACCESS_EVENT, ALERT, DEAD_LETTER, ERROR_EVENT

#: Dataset folders of an archive and the schema of each.
ACCESS_DIR = "events"
ERROR_DIR = "errors"
DEAD_LETTER_DIR = "dead_letters"
ALERTS_DIR = "alerts"
DATASETS = {ACCESS_DIR: ACCESS_EVENT, ERROR_DIR: ERROR_EVENT, DEAD_LETTER_DIR: DEAD_LETTER, ALERTS_DIR: ALERT}

PARTITION_KEY = "dt"
DAY_FORMAT = "%Y-%m-%d"
STAGING_DIR = ".tmp"
STATE_DIR = "_state"
LEASES_DIR = "leases"
LEDGER_DIR = "ledger"
LOCKS_DIR = "locks"
REPORTS_DIR = "reports"
AGGREGATES_DIR = "aggregates"

_OPEN_SUFFIX = ".open"
_DATA_PREFIX, _DATA_SUFFIX = "part-", ".parquet"
_MANIFEST_PREFIX, _MANIFEST_SUFFIX = "_manifest-", ".json"
_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z-]*$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class LayoutError(ValueError):
    """A name that does not fit the archive layout (bad day, run id or dataset)."""


# --- partitions -----------------------------------------------------------------------------------------------


def check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise LayoutError(f"unknown archive dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    return dataset


def check_day(day: str) -> str:
    if not isinstance(day, str) or not _DAY.match(day):
        raise LayoutError(f"bad partition day {day!r}: expected YYYY-MM-DD")
    return day


def partition_name(day: str) -> str:
    """``2026-01-05`` -> ``dt=2026-01-05``."""
    return f"{PARTITION_KEY}={check_day(day)}"


def day_of_partition(name: str) -> str:
    """``dt=2026-01-05`` (or a path ending in it) -> ``2026-01-05``."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    if not base.startswith(PARTITION_KEY + "="):
        raise LayoutError(f"{name!r} is not a partition (expected {PARTITION_KEY}=YYYY-MM-DD)")
    return check_day(base[len(PARTITION_KEY) + 1 :])


def month_of_day(day: str) -> str:
    """``2026-01-31`` -> ``2026-01``: the month whose keys encrypt (and whose shredding destroys) that day."""
    return check_day(day)[:7]


def month_of_partition(name: str) -> str:
    return month_of_day(day_of_partition(name))


def day_of_epoch_days(days: int) -> str:
    """Whole days since 1970-01-01 -> ``YYYY-MM-DD``."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=days)).strftime(DAY_FORMAT)


def today() -> str:
    """Today (UTC): the partition of records that carry no event time."""
    return dt.datetime.now(dt.timezone.utc).strftime(DAY_FORMAT)


# --- paths ----------------------------------------------------------------------------------------------------


def dataset_dir(root: str, dataset: str) -> str:
    return FileSystems.join(root, check_dataset(dataset))


def partition_dir(root: str, dataset: str, day: str) -> str:
    return FileSystems.join(dataset_dir(root, dataset), partition_name(day))


def staging_dir(root: str, run_id: str) -> str:
    """A run's private scratch space inside the archive (same filesystem, so publishing is a rename)."""
    return FileSystems.join(root, STAGING_DIR, check_run_id(run_id))


def staging_root(root: str) -> str:
    return FileSystems.join(root, STAGING_DIR)


def state_dir(root: str, *parts: str) -> str:
    return FileSystems.join(root, STATE_DIR, *parts)


def lease_path(root: str, run_id: str) -> str:
    return state_dir(root, LEASES_DIR, f"{check_run_id(run_id)}.lock")


def partition_lock_path(root: str, dataset: str, day: str) -> str:
    return state_dir(root, LOCKS_DIR, f"{check_dataset(dataset)}-{check_day(day)}.lock")


def ledger_dir(root: str) -> str:
    return state_dir(root, LEDGER_DIR)


def transaction_record(root: str, txn: str, *, completed: bool) -> str:
    return FileSystems.join(ledger_dir(root), f"{txn}{'' if completed else _OPEN_SUFFIX}.json")


def transaction_of_record(name: str) -> tuple[str, bool] | None:
    """``<txn>.open.json`` -> (txn, False); ``<txn>.json`` -> (txn, True); None for other names."""
    if not name.endswith(".json"):
        return None
    stem = name[: -len(".json")]
    if stem.endswith(_OPEN_SUFFIX):
        return stem[: -len(_OPEN_SUFFIX)], False
    return stem, True


def reports_dir(root: str) -> str:
    return FileSystems.join(root, REPORTS_DIR)


def aggregates_dir(root: str) -> str:
    """Where each run leaves its traffic aggregates, for reports over any period."""
    return FileSystems.join(root, REPORTS_DIR, AGGREGATES_DIR)


# --- file names -----------------------------------------------------------------------------------------------


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _ID.match(run_id):
        raise LayoutError(f"bad run id {run_id!r}: letters, digits and '-' only")
    return run_id


def commit_id(run_id: str, label: str | None = None) -> str:
    """The run id alone (one commit per partition per run) or ``<run>.<label>``."""
    check_run_id(run_id)
    if label is None:
        return run_id
    if not _ID.match(label):
        raise LayoutError(f"bad commit label {label!r}: letters, digits and '-' only")
    return f"{run_id}.{label}"


def run_of_commit(commit: str) -> str:
    return commit.split(".", 1)[0]


def data_file_name(commit: str, index: int) -> str:
    """Unique per commit, so a second run over new logs never overwrites the first one's files."""
    return f"{_DATA_PREFIX}{commit}-{index:05d}{_DATA_SUFFIX}"


def manifest_file_name(commit: str) -> str:
    return f"{_MANIFEST_PREFIX}{commit}{_MANIFEST_SUFFIX}"


def is_data_file(name: str) -> bool:
    return name.startswith(_DATA_PREFIX) and name.endswith(_DATA_SUFFIX)


def is_manifest(name: str) -> bool:
    return name.startswith(_MANIFEST_PREFIX) and name.endswith(_MANIFEST_SUFFIX)


def commit_of_manifest(name: str) -> str:
    return name[len(_MANIFEST_PREFIX) : -len(_MANIFEST_SUFFIX)]


def commit_of_data_file(name: str) -> str | None:
    """``part-<commit>-00003.parquet`` -> ``<commit>``; None for a name no writer of ours makes."""
    if not is_data_file(name):
        return None
    stem = name[len(_DATA_PREFIX) : -len(_DATA_SUFFIX)]
    commit, _, index = stem.rpartition("-")
    return commit if commit and index.isdigit() else None


def base_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


# --- the archive tier -----------------------------------------------------------------------------------------
#
# ``<root>/archive/`` holds the archive tier with this same layout (datasets, ``dt=`` partitions, manifests,
# staging, state), so the commit protocol and recovery work on it unchanged.  A partition there is a *segment*:
# one ISO week cut at month ends (each segment lies in one month, so it is encrypted with that month's keys
# only), named by its first day (a Monday, or the 1st of a month).

ARCHIVE_TIER_DIR = "archive"


def archive_tier_root(root: str) -> str:
    return FileSystems.join(root, ARCHIVE_TIER_DIR)


def segment_start(day: dt.date) -> dt.date:
    """The first day of ``day``'s segment: its ISO week's Monday, or the 1st of its month if that is later."""
    monday = day - dt.timedelta(days=day.weekday())
    return monday if monday.month == day.month else day.replace(day=1)


def segment_days(start: dt.date) -> tuple[dt.date, ...]:
    """Every day of the segment beginning at ``start`` (to Sunday, or to the month's last day if earlier)."""
    if segment_start(start) != start:
        raise LayoutError(f"{start} does not begin a segment (expected a Monday or the 1st of a month)")
    next_month = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    end = min(start + dt.timedelta(days=6 - start.weekday()), next_month - dt.timedelta(days=1))
    return tuple(start + dt.timedelta(days=n) for n in range((end - start).days + 1))


def retention_lock_path(root: str) -> str:
    """Held by a ``retention apply`` run for its whole length: one at a time per archive."""
    return state_dir(root, LOCKS_DIR, "retention.lock")

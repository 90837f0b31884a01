"""The archive's commit protocol, as plain code: every writer (batch, stream, compaction, erasure) goes through it.

A commit changes one partition: it adds complete files and may remove files the
partition lists, all at once.  In order, each step durable before the next::

    staged          the new files are complete in the run's staging folder, fsynced, size checked
    file_published  each new file renamed into the partition under its final name (one step per file)
    manifest_staged the partition's new manifest (names, sizes, SHA-256, rows, removed names) fsynced in staging
    committed       the manifest renamed into the partition, directory fsynced: THE commit point
    retired         the removed files deleted

Readers list manifests, never directories: a partition holds the files its
manifests add and do not remove.  So until ``committed`` readers see the
partition as it was, and from then on as it is after the commit.  What a killed
writer leaves is recognisable by name (every file name carries its run id,
``retention.layout``) once its run's lease is gone: ``recover`` deletes data
files no manifest lists (the commit is rolled back), files a manifest removed
(the commit is finished) and the staging folders of dead runs.  ``logwarden
batch`` recovers on start; ``logwarden archive verify --repair`` does the same.

Commits that remove files hold the partition's lock and check that what they
remove is still there, so two rewrites of one partition (retention and an
erasure) cannot both win; adding only needs no lock.

Paths go through Beam's ``FileSystems``; fsync and locks apply where the root is
local (object stores make a closed object durable, and offer no locks: run one
rewriting job per archive there).  ``hook(step, detail)`` is called after each
step; tests kill the process from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence

from apache_beam.io.filesystems import FileSystems

from retention import layout, signing, storage
from retention.parquet_files import WrittenFile
from retention.stamps import utc_stamp
from retention.storage import create, file_size, is_local, list_paths, mkdirs, read_bytes
from schemas import SCHEMA_VERSION

STAGED = "staged"
FILE_PUBLISHED = "file_published"
MANIFEST_STAGED = "manifest_staged"
COMMITTED = "committed"
RETIRED = "retired"
STEPS = (STAGED, FILE_PUBLISHED, MANIFEST_STAGED, COMMITTED, RETIRED)

MANIFEST_FORMAT = 2
#: How long a lease on a non-local archive counts as live without being renewed.
REMOTE_LEASE_SECONDS = 6 * 3600

Hook = Callable[[str, str], None]


class CommitError(RuntimeError):
    """A commit cannot be made as asked (a staged file is missing or differs, a name is taken)."""


class CommitConflict(CommitError):
    """What the commit would remove is no longer in the partition: another commit changed it first; re-plan."""


class LeaseError(RuntimeError):
    """Another live process already writes under this run id."""


def _no_hook(step: str, detail: str) -> None:
    pass


# --- filesystem helpers (see retention.storage) ------------------------------------------------------------------


def _publish(source: str, target: str) -> None:
    """Rename ``source`` to ``target``, never over an existing ``target`` where the filesystem lets us check."""
    try:
        storage.publish(source, target)
    except FileExistsError:
        raise CommitError(f"{target} already exists; refusing to overwrite it") from None


# --- manifests and partitions ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Manifest:
    """One commit to one partition: the files it added (with what verifies them) and the names it removed."""

    dataset: str
    day: str
    commit_id: str
    files: tuple[dict, ...]
    removes: tuple[str, ...] = ()
    created: str = ""
    #: Input the commit archives (``retention.ledger`` fills it); recorded here so it is durable with the data.
    sources: tuple[dict, ...] = ()
    #: The document as read, signature included (what ``signing.verify`` checks).
    raw: dict | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def run_id(self) -> str:
        return layout.run_of_commit(self.commit_id)

    @property
    def rows(self) -> int:
        return sum(int(e["rows"]) for e in self.files)

    @property
    def names(self) -> list[str]:
        return [e["file"] for e in self.files]

    def document(self) -> dict:
        return {
            "format": MANIFEST_FORMAT,
            "dataset": self.dataset,
            "partition": layout.partition_name(self.day),
            "commit_id": self.commit_id,
            "run_id": self.run_id,
            "schema_version": SCHEMA_VERSION,
            "created": self.created,
            "files": list(self.files),
            "removes": list(self.removes),
            "rows": self.rows,
            "sources": list(self.sources),
        }

    def to_bytes(self, signer: signing.Signer | None = None) -> bytes:
        doc = self.document() if signer is None else signer.sign(self.document())
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_document(cls, doc: dict, dataset: str, day: str) -> Manifest:
        """Raises ``ValueError`` on a document that is not a manifest of this partition."""
        if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
            raise ValueError("no file list")
        if doc.get("partition") != layout.partition_name(day):
            raise ValueError(f"manifest is for {doc.get('partition')}, found in {layout.partition_name(day)}")
        for entry in doc["files"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or "rows" not in entry:
                raise ValueError(f"bad file entry {entry!r}")
        commit = doc.get("commit_id") or doc.get("run_id")
        if not isinstance(commit, str):
            raise ValueError("no commit id")
        return cls(
            dataset=dataset,
            day=day,
            commit_id=commit,
            files=tuple(doc["files"]),
            removes=tuple(doc.get("removes") or ()),
            created=doc.get("created", ""),
            sources=tuple(doc.get("sources") or ()),
            raw=doc,
        )


@dataclasses.dataclass
class PartitionView:
    """What a partition holds according to its manifests (never according to a directory listing)."""

    dataset: str
    day: str
    directory: str
    manifests: dict[str, Manifest] = dataclasses.field(default_factory=dict)  # by commit id
    live: dict[str, dict] = dataclasses.field(default_factory=dict)  # file name -> manifest entry
    retired: set[str] = dataclasses.field(default_factory=set)  # removed by some commit
    #: (path, problem) for manifests that cannot be read: they count for nothing.
    problems: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def path(self, name: str) -> str:
        return FileSystems.join(self.directory, name)

    @property
    def month(self) -> str:
        return layout.month_of_day(self.day)


def read_partition(
    root: str, dataset: str, day: str, hidden: set[str] | None = None, trusted: dict[str, bytes] | None = None
) -> PartitionView:
    """The partition as readers see it: commits of open transactions (``hidden``; looked up when None) don't count.

    With ``trusted`` (signer id -> public key), a commit that adds files counts only if one of them signed it.
    """
    directory = layout.partition_dir(root, dataset, day)
    view = PartitionView(dataset, day, directory)
    hidden = open_transactions(root) if hidden is None else hidden
    added: dict[str, dict] = {}
    for path in list_paths(FileSystems.join(directory, layout.manifest_file_name("*"))):
        if layout.commit_of_manifest(layout.base_name(path)) in hidden:
            continue
        try:
            manifest = Manifest.from_document(json.loads(read_bytes(path)), dataset, day)
        except (ValueError, TypeError, OSError) as error:
            view.problems.append((path, f"unreadable manifest ({error})"))
            continue
        if trusted is not None and manifest.files and signing.verify(manifest.raw, trusted) is None:
            view.problems.append((path, "not signed by a trusted writer: its files are never read"))
            continue
        view.manifests[manifest.commit_id] = manifest
        for entry in manifest.files:
            added[entry["file"]] = entry
        view.retired.update(manifest.removes)
    view.live = {name: entry for name, entry in sorted(added.items()) if name not in view.retired}
    return view


def partition_days(root: str, dataset: str) -> list[str]:
    """Days of ``dataset`` that have at least one manifest or file (orphans included, for recovery)."""
    days = set()
    for path in list_paths(FileSystems.join(layout.dataset_dir(root, dataset), f"{layout.PARTITION_KEY}=*", "*")):
        with contextlib.suppress(layout.LayoutError):
            days.add(layout.day_of_partition(path.rsplit("/", 2)[-2]))
    return sorted(days)


def dataset_exists(root: str, dataset: str) -> bool:
    return FileSystems.exists(layout.dataset_dir(root, dataset))


@dataclasses.dataclass(frozen=True)
class LiveFile:
    """A published file that readers use: where it is and what its manifest says."""

    path: str
    dataset: str
    day: str
    entry: dict


def live_files(root: str, dataset: str, trusted: dict[str, bytes] | None = None) -> list[LiveFile]:
    """Every file of ``dataset`` that some (``trusted``-signed) manifest lists and none removed, by day and name."""
    found = []
    hidden = open_transactions(root)
    for day in partition_days(root, dataset):
        view = read_partition(root, dataset, day, hidden, trusted)
        found += [LiveFile(view.path(name), dataset, day, entry) for name, entry in view.live.items()]
    return found


# --- leases: which runs are alive -----------------------------------------------------------------------------


class RunLease:
    """Held while a run may write to the archive; a run without a live lease is dead and its leftovers reclaimable.

    Local archives use an ``flock`` that the kernel drops when the process dies (even by ``kill -9``);
    elsewhere the lease is a time stamp, live for ``REMOTE_LEASE_SECONDS`` unless ``renew``-ed.
    """

    def __init__(self, root: str, run_id: str):
        self.root, self.run_id = root, run_id
        self.path = layout.lease_path(root, run_id)
        self._fd: int | None = None

    def __enter__(self) -> RunLease:
        mkdirs(self.path.rsplit("/", 1)[0])
        if is_local(self.path):
            import fcntl

            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise LeaseError(f"run {self.run_id} is already writing to {self.root}") from None
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(self._doc()).encode())
            self._fd = fd
        else:
            self.renew()
        return self

    def _doc(self) -> dict:
        return {"run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid(), "heartbeat": utc_stamp()}

    def renew(self) -> None:
        if not is_local(self.path):
            with create(self.path) as handle:
                handle.write(json.dumps(self._doc()).encode())

    def __exit__(self, *exc) -> None:
        storage.delete([self.path])
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def run_is_live(root: str, run_id: str) -> bool:
    path = layout.lease_path(root, run_id)
    if is_local(path):
        import fcntl

        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False
    try:
        doc = json.loads(read_bytes(path))
        beat = dt.datetime.fromisoformat(doc["heartbeat"].replace("Z", "+00:00"))
    except (OSError, ValueError, KeyError):
        return False
    return (dt.datetime.now(dt.timezone.utc) - beat).total_seconds() < REMOTE_LEASE_SECONDS


@contextlib.contextmanager
def _partition_lock(root: str, dataset: str, day: str) -> Iterator[None]:
    path = layout.partition_lock_path(root, dataset, day)
    if not is_local(path):
        yield
        return
    import fcntl

    mkdirs(path.rsplit("/", 1)[0])
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- committing -----------------------------------------------------------------------------------------------


def staging_path(root: str, run_id: str, suffix: str = ".parquet") -> str:
    """A fresh name in the run's staging folder for a file about to be written (open it with ``create``)."""
    return FileSystems.join(layout.staging_dir(root, run_id), f"{uuid.uuid4().hex}{suffix}")


def clear_staging(root: str, run_id: str) -> None:
    """End of a run: its staging folder (files it wrote but never committed, and empty folders) goes."""
    staging = layout.staging_dir(root, run_id)
    storage.delete([staging] if is_local(staging) else list_paths(FileSystems.join(staging, "**")))


def commit(
    root: str,
    dataset: str,
    day: str,
    commit_id: str,
    add: Sequence[WrittenFile],
    remove: Sequence[str] = (),
    *,
    sources: Sequence[dict] = (),
    hook: Hook | None = None,
    signer: signing.Signer | None = None,
) -> Manifest:
    """Publish ``add`` (complete staged files) into the partition and drop ``remove`` (names it lists), at once.

    ``signer`` signs the manifest: readers read added files only from manifests a trusted writer signed.

    Returns the published manifest.  Committing the same ``commit_id`` again with the same files is a
    no-op that returns the manifest already there (a retried Beam bundle); with other files it is an error.
    """
    hook = hook or _no_hook
    layout.check_dataset(dataset)
    layout.check_day(day)
    if not add and not remove:
        raise CommitError("a commit must add or remove at least one file")
    directory = layout.partition_dir(root, dataset, day)
    manifest_path = FileSystems.join(directory, layout.manifest_file_name(commit_id))
    names = [layout.data_file_name(commit_id, i) for i in range(len(add))]
    if remove and FileSystems.exists(layout.transaction_record(root, commit_id, completed=False)):
        raise CommitError(f"commit {commit_id} belongs to an open transaction, which may only add files")
    lock = _partition_lock(root, dataset, day) if remove else contextlib.nullcontext()
    with lock:
        if FileSystems.exists(manifest_path):
            return _already_committed(manifest_path, dataset, day, names, add)
        if remove:
            view = read_partition(root, dataset, day, hidden=set())
            gone = sorted(set(remove) - set(view.live))
            if gone:
                raise CommitConflict(f"{directory}: {', '.join(gone)} no longer in the partition; re-plan the rewrite")
        for written in add:
            size = file_size(written.path)
            if size != written.size:
                raise CommitError(f"staged file {written.path}: {size} bytes, expected {written.size}")
            storage.fsync_file(written.path)
        hook(STAGED, commit_id)
        mkdirs(directory)
        for written, name in zip(add, names, strict=True):
            _publish(written.path, FileSystems.join(directory, name))
            hook(FILE_PUBLISHED, name)
        storage.fsync_dir(directory)
        manifest = Manifest(
            dataset=dataset,
            day=day,
            commit_id=commit_id,
            files=tuple(w.manifest_entry(n) for w, n in zip(add, names, strict=True)),
            removes=tuple(sorted(remove)),
            created=utc_stamp(),
            sources=tuple(sources),
        )
        staged_manifest = FileSystems.join(
            layout.staging_dir(root, layout.run_of_commit(commit_id)), f"manifest-{uuid.uuid4().hex}.json"
        )
        with create(staged_manifest) as handle:
            handle.write(manifest.to_bytes(signer))
        storage.fsync_file(staged_manifest)
        hook(MANIFEST_STAGED, commit_id)
        _publish(staged_manifest, manifest_path)
        storage.fsync_dir(directory)
        hook(COMMITTED, commit_id)
        if remove:
            storage.delete([FileSystems.join(directory, name) for name in remove])
            storage.fsync_dir(directory)
            hook(RETIRED, commit_id)
    return manifest


def _already_committed(path: str, dataset: str, day: str, names: list[str], add: Sequence[WrittenFile]) -> Manifest:
    manifest = Manifest.from_document(json.loads(read_bytes(path)), dataset, day)
    same = [(e["file"], e.get("sha256")) for e in manifest.files] == [
        (n, w.sha256) for n, w in zip(names, add, strict=True)
    ]
    if not same:
        raise CommitError(f"{path} already exists with other files; commit ids must be unique")
    return manifest


# --- transactions: commits to several partitions that stand or fall together ---------------------------------


def _write_json(path: str, doc: dict, staging: str) -> None:
    """``doc`` to ``path`` via an fsynced file in ``staging`` and a rename: complete or absent."""
    staged = FileSystems.join(staging, f"record-{uuid.uuid4().hex}.json")
    with create(staged) as handle:
        handle.write((json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())
    storage.fsync_file(staged)
    mkdirs(path.rsplit("/", 1)[0])
    _publish(staged, path)
    storage.fsync_dir(path.rsplit("/", 1)[0])


def begin_transaction(root: str, txn: str, record: dict | None = None) -> None:
    """Open transaction ``txn``: its commits (those with commit id ``txn``, adding files only) stay hidden from
    readers until ``complete_transaction``, and are withdrawn by ``recover`` if its run dies first."""
    doc = {**(record or {}), "transaction": txn, "status": "open", "started": utc_stamp()}
    _write_json(
        layout.transaction_record(root, txn, completed=False), doc, layout.staging_dir(root, layout.run_of_commit(txn))
    )


def complete_transaction(root: str, txn: str, record: dict) -> None:
    """The transaction's commit point: every commit of ``txn`` becomes visible at once, with ``record`` kept."""
    # completed_ns orders transactions completed within one second (reports: the latest reading of a line owns it).
    doc = {**record, "transaction": txn, "status": "complete", "completed": utc_stamp(), "completed_ns": time.time_ns()}
    _write_json(
        layout.transaction_record(root, txn, completed=True), doc, layout.staging_dir(root, layout.run_of_commit(txn))
    )
    storage.delete([layout.transaction_record(root, txn, completed=False)])


def transaction_completed(root: str, txn: str) -> bool:
    """Whether ``txn`` reached its commit point (its completed record exists)."""
    return FileSystems.exists(layout.transaction_record(root, txn, completed=True))


def _transaction_names(root: str) -> tuple[set[str], set[str]]:
    opened, completed = set(), set()
    for path in list_paths(FileSystems.join(layout.ledger_dir(root), "*.json")):
        parsed = layout.transaction_of_record(layout.base_name(path))
        if parsed is not None:
            (completed if parsed[1] else opened).add(parsed[0])
    return opened, completed


def open_transactions(root: str) -> set[str]:
    opened, completed = _transaction_names(root)
    return opened - completed


def completed_transactions(root: str) -> dict[str, dict]:
    """Records of completed transactions, by id (unreadable ones are skipped: they were never completed)."""
    found = {}
    for txn in sorted(_transaction_names(root)[1]):
        with contextlib.suppress(OSError, ValueError):
            found[txn] = json.loads(read_bytes(layout.transaction_record(root, txn, completed=True)))
    return found


def _withdraw(root: str, txn: str) -> list[str]:
    """Un-commit every commit of an open transaction: manifests first (readers stop seeing it), then files."""
    manifests = []
    for dataset in layout.DATASETS:
        pattern = FileSystems.join(layout.dataset_dir(root, dataset), "*", layout.manifest_file_name(txn))
        manifests += list_paths(pattern)
    files = []
    for path in manifests:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            directory = path.rsplit("/", 1)[0]
            files += [FileSystems.join(directory, e["file"]) for e in json.loads(read_bytes(path))["files"]]
    storage.delete(manifests)
    storage.delete(files)
    storage.delete([layout.transaction_record(root, txn, completed=False)])
    return files


# --- recovery -------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RecoveryReport:
    """What ``recover`` removed (or, with ``dry_run``, would remove)."""

    orphans: list[str] = dataclasses.field(default_factory=list)  # in no manifest: commits rolled back
    retired: list[str] = dataclasses.field(default_factory=list)  # removed by a commit: commits finished
    staging: list[str] = dataclasses.field(default_factory=list)  # staging folders of dead runs
    withdrawn: list[str] = dataclasses.field(default_factory=list)  # open transactions of dead runs, undone
    live_runs: set[str] = dataclasses.field(default_factory=set)  # left alone: still writing

    @property
    def changed(self) -> bool:
        return bool(self.orphans or self.retired or self.staging or self.withdrawn)

    def summary(self) -> str:
        return (
            (f"{len(self.withdrawn)} unfinished run(s) withdrawn, " if self.withdrawn else "")
            + f"{len(self.orphans)} unpublished file(s) of killed runs removed, "
            f"{len(self.retired)} replaced file(s) deleted, {len(self.staging)} staging folder(s) cleared"
        )


def recover(root: str, *, dry_run: bool = False, own_run: str | None = None) -> RecoveryReport:
    """Finish or roll back what killed writers left, so the archive holds exactly what its manifests say.

    Work of runs whose lease is live (``own_run`` included) is left alone.
    """
    report = RecoveryReport()
    live_cache: dict[str, bool] = {}

    def live(run: str) -> bool:
        if run not in live_cache:
            live_cache[run] = run == own_run or (_valid_run_id(run) and run_is_live(root, run))
            if live_cache[run]:
                report.live_runs.add(run)
        return live_cache[run]

    for txn in sorted(open_transactions(root)):
        if not live(layout.run_of_commit(txn)):
            report.withdrawn.append(txn)
            if not dry_run:
                _withdraw(root, txn)
    hidden = open_transactions(root)
    for dataset in layout.DATASETS:
        for day in partition_days(root, dataset):
            view = read_partition(root, dataset, day, hidden)
            for path in list_paths(FileSystems.join(view.directory, "*")):
                name = layout.base_name(path)
                if not name.endswith(".parquet"):
                    continue
                if name in view.retired and name not in view.live:
                    report.retired.append(path)
                elif name not in view.live:
                    commit = layout.commit_of_data_file(name)
                    if commit is None or not live(layout.run_of_commit(commit)):
                        report.orphans.append(path)
    staging = layout.staging_root(root)
    leftovers: dict[str, list[str]] = {}
    if is_local(staging) and os.path.isdir(staging):  # empty run folders too, which a file listing misses
        leftovers = {name: [] for name in os.listdir(staging)}
    for path in list_paths(FileSystems.join(staging, "**")):
        run = path[len(staging) :].lstrip("/").split("/", 1)[0]
        leftovers.setdefault(run, []).append(path)
    for run, paths in sorted(leftovers.items()):
        if not live(run):
            report.staging.append(FileSystems.join(staging, run))
            if not dry_run:
                storage.delete([FileSystems.join(staging, run)] if is_local(staging) else paths)
                storage.delete([layout.lease_path(root, run)] if _valid_run_id(run) else [])
    if not dry_run:
        storage.delete(report.orphans + report.retired)
    return report


def _valid_run_id(run: str) -> bool:
    try:
        layout.check_run_id(run)
    except layout.LayoutError:
        return False
    return True


# --- emptied partitions ---------------------------------------------------------------------------------------


def prune_partition(root: str, dataset: str, day: str) -> bool:
    """Remove a partition that no longer holds a live file (retention moved or deleted it); False if it does.

    Under the partition's lock: replaced files still present, then the manifests
    that add files, then those that only remove (so a kill in between never
    makes a removed name live again), then the folder if it is empty.  Only
    manifests readers see are touched; files no manifest lists are left to
    ``recover``: they may be a live writer's, about to be committed.
    """
    directory = layout.partition_dir(root, dataset, day)
    with _partition_lock(root, dataset, day):
        view = read_partition(root, dataset, day)
        if view.live or view.problems:
            return False
        present = {layout.base_name(p) for p in list_paths(FileSystems.join(directory, "*"))}
        storage.delete([view.path(name) for name in sorted(view.retired & present)])
        manifests = {commit_id: view.path(layout.manifest_file_name(commit_id)) for commit_id in view.manifests}
        adders = [path for commit_id, path in manifests.items() if view.manifests[commit_id].files]
        storage.delete(adders)
        storage.fsync_dir(directory)
        storage.delete([path for path in manifests.values() if path not in adders])
        if is_local(directory):
            with contextlib.suppress(OSError):  # not empty: a writer is adding to it right now
                os.rmdir(directory)
    return True

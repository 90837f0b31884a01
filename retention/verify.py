"""``archive verify``: manifests against files, checksums, encryption, and (deep) decryptability.

Every manifest that adds files must be signed by a writer the keyring's
custodian trusts (checked against the custodian key derived from the root key
in the deep check, against the keyring's ``custodian.json`` in the quick one);
the files of any other manifest are reported and never read.  The quick check
needs no key: every file a manifest lists must be there with
the same size and SHA-256, must have an encrypted footer, and must name master
keys of its partition's month that the keyring still holds.  The deep check
also decrypts every column of every file with the reader role's keys and counts
rows against the manifest.  Months whose keys were destroyed are reported as
crypto-shredded, not as damage.  Files no manifest lists and staging left by
killed runs are never read, so they are warnings; ``repair`` removes them
(``retention.commit.recover``).
"""

from __future__ import annotations

import dataclasses
import hashlib

import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from retention import commit, layout
from retention.encryption import ENCRYPTED_MAGIC, ArchiveDecryptor
from retention.keyring import Keyring, KeyringError, ReaderKeys, parse_key_id
from retention.layout import DATASETS

ERROR = "error"
WARNING = "warning"
INFO = "info"


@dataclasses.dataclass(frozen=True)
class Finding:
    level: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.path}: {self.message}"


@dataclasses.dataclass
class VerifyReport:
    partitions: int = 0
    files: int = 0
    rows: int = 0
    decrypted_files: int = 0
    shredded_partitions: int = 0
    findings: list[Finding] = dataclasses.field(default_factory=list)
    #: What ``repair`` removed (None when not asked to repair).
    repaired: commit.RecoveryReport | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors


def _open(path: str):
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with _open(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _encrypted_footer(path: str) -> bool:
    with _open(path) as fh:
        head = fh.read(4)
        fh.seek(-4, 2)
        return head == ENCRYPTED_MAGIC and fh.read(4) == ENCRYPTED_MAGIC


def _check_key_ids(path: str, entry: dict, month: str, known: set[str] | None, report: VerifyReport) -> bool:
    """One finding per file for its key ids (the operator acts once per file); False when it cannot be read."""
    key_ids = entry.get("key_ids") or []
    if not key_ids:
        report.findings.append(Finding(ERROR, str(path), "manifest names no encryption keys"))
        return False
    problems, missing = [], []
    for key_id in key_ids:
        try:
            _purpose, period, _version = parse_key_id(key_id)
        except KeyringError as error:
            problems.append(str(error))
            continue
        if period != month:
            problems.append(f"encrypted with {key_id}, not a key of {month}")
        if known is not None and key_id not in known:
            missing.append(key_id)
    if missing:
        which = f"key {missing[0]} is" if len(missing) == 1 else f"keys {', '.join(missing)} are"
        problems.append(f"{which} not in the keyring: unreadable")
    if problems:
        report.findings.append(Finding(ERROR, str(path), "; ".join(problems)))
    return not problems


def _decrypt(path: str, entry: dict, decryptor: ArchiveDecryptor, report: VerifyReport) -> None:
    try:
        with _open(path) as handle:
            parquet = pq.ParquetFile(handle, decryption_properties=decryptor.file_properties())
            rows = sum(batch.num_rows for batch in parquet.iter_batches(batch_size=65536))
    except KeyringError as error:
        report.findings.append(Finding(ERROR, str(path), f"cannot decrypt: {error}"))
        return
    except Exception as error:  # whatever one damaged file makes pyarrow raise is that file's finding, not the end
        report.findings.append(Finding(ERROR, str(path), f"cannot decrypt (damaged or wrong keys): {error}"))
        return
    report.decrypted_files += 1
    if rows != entry.get("rows"):
        report.findings.append(Finding(ERROR, str(path), f"{rows} rows decrypted, manifest says {entry.get('rows')}"))


def verify_archive(
    root: str,
    keyring: Keyring | None = None,
    reader: ReaderKeys | None = None,
    repair: bool = False,
) -> VerifyReport:
    """Check an archive; ``reader`` given means deep (decrypt everything); ``repair`` first removes leftovers."""
    root = str(root)
    report = VerifyReport()
    if not any(commit.dataset_exists(root, name) for name in DATASETS):
        report.findings.append(Finding(ERROR, root, f"not an archive: none of {', '.join(DATASETS)} is here"))
        return report
    if repair:
        report.repaired = commit.recover(root)
    keyring = keyring or (reader.keyring if reader else None)
    trusted = reader.trusted_signers() if reader else _trusted_by_directory(keyring)
    if trusted is None:
        report.findings.append(Finding(WARNING, root, "signatures not checked: no keyring naming a custodian"))
    destroyed = keyring.destroyed() if keyring else {}
    known = {r.key_id for r in keyring.records()} if keyring else None
    decryptor = ArchiveDecryptor(reader) if reader else None
    leftovers = commit.recover(root, dry_run=True)
    for txn in leftovers.withdrawn:
        report.findings.append(Finding(WARNING, root, f"run {txn} was killed before it completed: none of it is read"))
    for path in leftovers.orphans:
        report.findings.append(Finding(WARNING, path, "in no manifest (never read): left by a killed run"))
    for path in leftovers.retired:
        report.findings.append(Finding(WARNING, path, "replaced by a later commit but not yet deleted"))
    if leftovers.staging:
        report.findings.append(
            Finding(
                WARNING,
                layout.staging_root(root),
                f"{len(leftovers.staging)} unpublished run(s) left by killed jobs; never read",
            )
        )
    if leftovers.changed:
        report.findings.append(Finding(INFO, root, "'logwarden archive verify --repair' or the next run removes them"))
    for dataset in DATASETS:
        for day in commit.partition_days(root, dataset):
            view = commit.read_partition(root, dataset, day, trusted=trusted)
            _verify_partition(view, destroyed, known, decryptor, report)
    return report


def _trusted_by_directory(keyring: Keyring | None) -> dict[str, bytes] | None:
    custodian = keyring.custodian_public() if keyring else None
    return None if custodian is None else keyring.trusted_signers(custodian)


def _verify_partition(view, destroyed: dict, known: set[str] | None, decryptor, report: VerifyReport) -> None:
    report.partitions += 1
    month = view.month
    for path, problem in view.problems:
        report.findings.append(Finding(ERROR, path, problem))
    present = {layout.base_name(p) for p in commit.list_paths(FileSystems.join(view.directory, "*.parquet"))}
    for name in sorted(set(view.live) - present):
        report.findings.append(Finding(ERROR, view.path(name), "listed in a manifest but missing"))
    if month in destroyed:
        report.shredded_partitions += 1
        report.findings.append(
            Finding(INFO, view.directory, f"crypto-shredded: keys of {month} destroyed {destroyed[month]['destroyed']}")
        )
    for name in sorted(set(view.live) & present):
        path, entry = view.path(name), view.live[name]
        report.files += 1
        report.rows += entry.get("rows", 0)
        try:
            _verify_file(path, entry, month, destroyed, known, decryptor, report)
        except Exception as error:  # one unreadable file (vanished, unreadable, truncated) never stops the check
            report.findings.append(Finding(ERROR, path, f"cannot check: {error}"))


def _verify_file(path: str, entry: dict, month: str, destroyed: dict, known, decryptor, report: VerifyReport) -> None:
    if commit.file_size(path) != entry.get("size") or _sha256(path) != entry.get("sha256"):
        report.findings.append(Finding(ERROR, path, "checksum or size differs from the manifest"))
        return
    if not _encrypted_footer(path):
        report.findings.append(Finding(ERROR, path, "not encrypted (plaintext Parquet footer)"))
        return
    if month in destroyed:
        return
    if not _check_key_ids(path, entry, month, known, report):
        return  # already said why it cannot be read; decrypting would say it again
    if decryptor is not None:
        _decrypt(path, entry, decryptor, report)


def verify_tiers(
    root: str, keyring: Keyring | None = None, reader: ReaderKeys | None = None, repair: bool = False
) -> VerifyReport:
    """``verify_archive`` of the online tier and, when retention has made one, of the archive tier too."""
    report = verify_archive(root, keyring, reader, repair)
    tier = layout.archive_tier_root(str(root))
    if any(commit.dataset_exists(tier, name) for name in DATASETS):
        archived = verify_archive(tier, keyring, reader, repair)
        for field in ("partitions", "files", "rows", "decrypted_files", "shredded_partitions"):
            setattr(report, field, getattr(report, field) + getattr(archived, field))
        report.findings += archived.findings
        if archived.repaired is not None and report.repaired is not None:
            for name in ("orphans", "retired", "staging"):
                getattr(report.repaired, name).extend(getattr(archived.repaired, name))
    return report

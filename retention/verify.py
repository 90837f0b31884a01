"""``archive verify``: manifests against files, checksums, encryption, and (deep) decryptability.

The quick check needs no key: every published file must be listed in a
manifest with the same size and SHA-256, must have an encrypted footer, and
must name master keys of its partition's month that the keyring still holds.
The deep check also decrypts every column of every file with the reader role's
keys and counts rows against the manifest.  Months whose keys were destroyed
are reported as crypto-shredded, not as damage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from retention.encryption import ENCRYPTED_MAGIC, ArchiveDecryptor
from retention.keyring import Keyring, KeyringError, ReaderKeys, parse_key_id
from retention.parquet_files import DATASETS

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

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _encrypted_footer(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(4)
        fh.seek(-4, 2)
        return head == ENCRYPTED_MAGIC and fh.read(4) == ENCRYPTED_MAGIC


def _manifest_entries(partition: Path, report: VerifyReport) -> dict[str, dict]:
    entries: dict[str, dict] = {}
    for manifest in sorted(partition.glob("_manifest-*.json")):
        try:
            doc = json.loads(manifest.read_text(encoding="utf-8"))
            files = doc["files"]
        except (ValueError, KeyError, TypeError) as error:
            report.findings.append(Finding(ERROR, str(manifest), f"unreadable manifest ({error})"))
            continue
        if doc.get("partition") != partition.name:
            report.findings.append(
                Finding(ERROR, str(manifest), f"manifest is for {doc.get('partition')}, found in {partition.name}")
            )
        for entry in files:
            entries[entry["file"]] = entry
    return entries


def _check_key_ids(path: Path, entry: dict, month: str, known: set[str] | None, report: VerifyReport) -> bool:
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


def _decrypt(path: Path, entry: dict, decryptor: ArchiveDecryptor, report: VerifyReport) -> None:
    try:
        parquet = pq.ParquetFile(path, decryption_properties=decryptor.file_properties())
        rows = sum(batch.num_rows for batch in parquet.iter_batches(batch_size=65536))
    except KeyringError as error:
        report.findings.append(Finding(ERROR, str(path), f"cannot decrypt: {error}"))
        return
    except OSError as error:
        report.findings.append(Finding(ERROR, str(path), f"cannot decrypt (damaged or wrong keys): {error}"))
        return
    report.decrypted_files += 1
    if rows != entry.get("rows"):
        report.findings.append(Finding(ERROR, str(path), f"{rows} rows decrypted, manifest says {entry.get('rows')}"))


def _partitions(root: Path) -> Iterator[Path]:
    for name in DATASETS:
        directory = root / name
        if directory.is_dir():
            yield from sorted(p for p in directory.glob("dt=*") if p.is_dir())


def verify_archive(root: str | Path, keyring: Keyring | None = None, reader: ReaderKeys | None = None) -> VerifyReport:
    """Check an archive; ``reader`` given means deep (decrypt everything)."""
    root = Path(root)
    report = VerifyReport()
    if not any((root / name).is_dir() for name in DATASETS):
        report.findings.append(Finding(ERROR, str(root), f"not an archive: none of {', '.join(DATASETS)} is here"))
        return report
    keyring = keyring or (reader.keyring if reader else None)
    destroyed = keyring.destroyed() if keyring else {}
    known = {r.key_id for r in keyring.records()} if keyring else None
    decryptor = ArchiveDecryptor(reader) if reader else None
    for partition in _partitions(root):
        report.partitions += 1
        month = partition.name.removeprefix("dt=")[:7]
        entries = _manifest_entries(partition, report)
        files = {p.name: p for p in partition.glob("*.parquet")}
        for name in sorted(set(files) - set(entries)):
            report.findings.append(Finding(ERROR, str(files[name]), "file is in no manifest"))
        for name in sorted(set(entries) - set(files)):
            report.findings.append(Finding(ERROR, str(partition / name), "listed in a manifest but missing"))
        if month in destroyed:
            report.shredded_partitions += 1
            report.findings.append(
                Finding(
                    INFO, str(partition), f"crypto-shredded: keys of {month} destroyed {destroyed[month]['destroyed']}"
                )
            )
        for name in sorted(set(files) & set(entries)):
            path, entry = files[name], entries[name]
            report.files += 1
            report.rows += entry.get("rows", 0)
            if path.stat().st_size != entry.get("size") or _sha256(path) != entry.get("sha256"):
                report.findings.append(Finding(ERROR, str(path), "checksum or size differs from the manifest"))
                continue
            if not _encrypted_footer(path):
                report.findings.append(Finding(ERROR, str(path), "not encrypted (plaintext Parquet footer)"))
                continue
            if month in destroyed:
                continue
            if not _check_key_ids(path, entry, month, known, report):
                continue  # already said why it cannot be read; decrypting would say it again
            if decryptor is not None:
                _decrypt(path, entry, decryptor, report)
    leftovers = list((root / ".tmp").glob("*")) if (root / ".tmp").is_dir() else []
    if leftovers:
        report.findings.append(
            Finding(
                WARNING, str(root / ".tmp"), f"{len(leftovers)} unpublished run(s) left by killed jobs; safe to delete"
            )
        )
    return report

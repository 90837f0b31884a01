"""A person's records: find them everywhere, export them, correct a field of them, or erase them.

A subject is named by user names, IP addresses and e-mail addresses the person
proved are theirs.  A record is theirs when:

* a user column (``user_name``, ``user_identity``) equals one of the names, or
  equals one of the e-mail addresses (case-insensitive);
* an address column (``source_ip``, ``source_address``) is one of the
  addresses (any spelling of it);
* a free-text column that embeds client data (a dead letter's raw line, an
  error message, ``X-Forwarded-For``, an alert's key, samples and evidence
  lines) contains an address, a name or an e-mail address as a whole token;
* a URL, request line or referrer contains an e-mail address (also
  percent-encoded: ``carol%40example.org``).

Every dataset of both tiers is searched (events, errors, dead letters,
alerts).  Erasure and correction rewrite only the files holding such records,
each partition in one commit of ``retention.commit`` (new files added, old ones
removed, atomically), so a kill leaves the partition as it was or as it
becomes, never a mix.  Nothing of the subject is logged or returned except
counts and file names.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from retention import commit as commits
from retention import layout
from retention.access import alert_records, blind_index
from retention.access.catalog import ArchiveFile, half_compacted, published_files
from retention.access.search import IndexStore, open_file
from retention.encryption import ArchiveDecryptor, ArchiveEncryptor
from retention.keyring import ArchiveKeys, default_signing_key_file
from retention.parquet_files import ParquetFileWriter
from retention.signing import Signer, read_signer
from schemas.config import ArchiveConfig

IP, USER, TEXT, URL = "ip", "user", "text", "url"
#: How each column that can name a person is compared with a subject.
COLUMN_KINDS = {
    "source_ip": IP,
    "source_address": IP,
    "user_name": USER,
    "user_identity": USER,
    "http_request_x_forwarded_for": TEXT,
    "message": TEXT,
    "raw": TEXT,
    "group_key": TEXT,
    "distinct_sample": TEXT,
    "evidence": TEXT,
    "url_query": URL,
    "url_original": URL,
    "http_request_line": URL,
    "http_request_referrer": URL,
}
_WORD = "0-9A-Za-z_"  # characters that continue a name or an address: a match must not be inside a longer token


class SubjectError(ValueError):
    """A subject request that cannot be carried out as asked (nothing named, a bad address, a bad field)."""


@dataclasses.dataclass(frozen=True)
class Subject:
    users: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()

    def __post_init__(self):
        if not (self.users or self.ips or self.emails):
            raise SubjectError("name the subject: at least one --user, --ip or --email")
        for ip in self.ips:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise SubjectError(f"--ip {ip!r} is not an IP address (a subject proves single addresses)") from None
        for email in self.emails:
            if "@" not in email:
                raise SubjectError(f"--email {email!r} is not an e-mail address")

    def _tokens(self, kinds: str) -> list[str]:
        spelled = []
        if IP in kinds:
            for ip in self.ips:
                spelled += sorted({ip, ipaddress.ip_address(ip).compressed, ipaddress.ip_address(ip).exploded})
        if USER in kinds:
            spelled += list(self.users)
        if "email" in kinds:
            for email in self.emails:
                spelled += [email, email.replace("@", "%40"), email.replace("@", "%40").replace(".", "%2E")]
        return spelled

    def text_pattern(self, kinds: str) -> str | None:
        """A regex matching any of the subject's tokens of ``kinds`` as a whole token."""
        tokens = self._tokens(kinds)
        if not tokens:
            return None
        alternatives = "|".join(re.escape(t) for t in sorted(set(tokens), key=len, reverse=True))
        return f"(?i)(^|[^{_WORD}.:@%-])({alternatives})($|[^{_WORD}:@%-]|\\.($|[^{_WORD}]))"


def _hits(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(array, False).to_numpy(zero_copy_only=False).astype(bool)


def _text_hits(column: pa.ChunkedArray, pattern: str) -> np.ndarray:
    """Rows of a string, binary, list-of-string or list-of-evidence column containing ``pattern``."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_list(column.type):
        values = pc.list_flatten(column)
        parents = pc.list_parent_indices(column).to_numpy(zero_copy_only=False)
        if pa.types.is_struct(values.type):
            values = pc.struct_field(values, "line")
        found = np.zeros(len(column), dtype=bool)
        found[parents[_hits(pc.match_substring_regex(values, pattern))]] = True
        return found
    return _hits(pc.match_substring_regex(column, pattern))


def subject_mask(subject: Subject, table: pa.Table) -> np.ndarray:
    """Which rows of ``table`` belong to ``subject`` (see the module docstring)."""
    found = np.zeros(table.num_rows, dtype=bool)
    addresses = {blind_index.normalise("source_ip", ip) for ip in subject.ips}
    emails = [e.lower() for e in subject.emails]
    patterns = {TEXT: subject.text_pattern("ip user email"), URL: subject.text_pattern("email")}
    for name in table.column_names:
        kind = COLUMN_KINDS.get(name)
        column = table.column(name)
        if kind == IP and addresses:
            values = [
                v for v in pc.unique(column.drop_null()).to_pylist() if blind_index.normalise(name, v) in addresses
            ]
            found |= _hits(pc.is_in(column, pa.array(values, pa.string())))
        elif kind == USER:
            if subject.users:
                found |= _hits(pc.is_in(column, pa.array(subject.users, pa.string())))
            if emails:
                found |= _hits(pc.is_in(pc.utf8_lower(column), pa.array(emails, pa.string())))
        elif kind in (TEXT, URL) and patterns[kind]:
            found |= _text_hits(column, patterns[kind])
    return found


def match_columns(schema: pa.Schema) -> list[str]:
    return [name for name in schema.names if name in COLUMN_KINDS]


# --- finding ------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Found:
    """One archive file and which of its rows are the subject's."""

    file: ArchiveFile
    mask: np.ndarray

    @property
    def matched(self) -> int:
        return int(self.mask.sum())

    @property
    def rows(self) -> int:
        return len(self.mask)


def _file_mask(subject: Subject, parquet: pq.ParquetFile) -> np.ndarray:
    columns = match_columns(parquet.schema_arrow)
    masks = [
        subject_mask(subject, parquet.read_row_group(group, columns=columns)) for group in range(parquet.num_row_groups)
    ]
    return np.concatenate(masks) if masks else np.zeros(0, dtype=bool)


def find(archive: str | Path, keys: ArchiveKeys, subject: Subject, searched: dict | None = None) -> Iterator[Found]:
    """Every file (all datasets, both tiers) holding the subject's records; ``searched`` counts what was read."""
    decryptor = ArchiveDecryptor(keys)
    destroyed = set(keys.keyring.destroyed())
    for dataset in layout.DATASETS:
        for file in published_files(archive, dataset, tier="all", destroyed=destroyed):
            if searched is not None:
                counts = searched.setdefault(dataset, {"files": 0, "rows": 0})
                counts["files"] += 1
                counts["rows"] += int(file.entry.get("rows", 0))
            mask = _file_mask(subject, open_file(file, decryptor))
            if mask.any():
                yield Found(file, mask)


def read_matches(found: Found, keys: ArchiveKeys) -> pa.Table:
    """The subject's rows of one file, decrypted whole."""
    return open_file(found.file, ArchiveDecryptor(keys)).read().filter(pa.array(found.mask))


# --- rewriting ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FileChange:
    """What a rewrite did to one file (the audit trail and the report get exactly this)."""

    dataset: str
    day: str
    file: str
    rows_before: int
    rows_matched: int
    rows_after: int
    new_file: str | None


Transform = Callable[[pa.Table, np.ndarray], pa.Table]


def erase_rows(table: pa.Table, mask: np.ndarray) -> pa.Table:
    return table.filter(pa.array(~mask))


def redact_rows(field: str, value: str | None) -> Transform:
    def apply(table: pa.Table, mask: np.ndarray) -> pa.Table:
        index = table.schema.get_field_index(field)
        column = table.column(index)
        replacement = pa.scalar(value, column.type) if value is not None else pa.scalar(None, column.type)
        return table.set_column(index, table.schema.field(index), pc.if_else(pa.array(mask), replacement, column))

    return apply


def check_redactable(field: str, value: str | None) -> None:
    """Only a personal text field can be corrected; a null needs a nullable field."""
    for name, schema in layout.DATASETS.items():
        if field in schema.names:
            target = schema.field(field)
            if not pa.types.is_string(target.type):
                raise SubjectError(
                    f"--field {field}: only text fields can be corrected ({name}.{field} is {target.type})"
                )
            if value is None and not target.nullable:
                raise SubjectError(f"--field {field} cannot be emptied (it is required); give --value")
            return
    raise SubjectError(f"--field {field!r} is in no archive dataset")


def drop_stale_indexes(root: str, dataset: str, day: str) -> None:
    """Delete blind indexes whose data file is no longer live (replaced by a commit, maybe by a killed run)."""
    view = commits.read_partition(root, dataset, day)
    for path in Path(view.directory).glob("_index-*.lwi"):
        if path.name.removeprefix("_index-").removesuffix(".lwi") not in view.live:
            path.unlink(missing_ok=True)


def rewrite(
    keys: ArchiveKeys,
    found: list[Found],
    transform: Transform,
    run_id: str,
    config: ArchiveConfig,
    hook: commits.Hook | None = None,
    signer: Signer | None = None,
) -> list[FileChange]:
    """Rewrite each affected partition in one commit: the transformed files added, the originals removed.

    ``signer`` signs those commits (default: the signing key beside the keyring): readers read rewritten
    files only when a trusted writer signed them.

    Refused while a compaction is half-done (its online copies would keep the rows): ``retention apply`` first.

    ``run_id`` names the commits (``<run>.p0000``…) and so every new file; its staging folder is removed at the end.
    """
    for root in {str(item.file.root) for item in found if not item.file.compacted}:
        for dataset in layout.DATASETS:
            if half_compacted(root, dataset):
                raise SubjectError(
                    f"a retention compaction of {root} is half-done ({dataset}); run 'logwarden retention apply' "
                    "to finish it, then repeat this request"
                )
    decryptor = ArchiveDecryptor(keys)
    encryptor = ArchiveEncryptor(keys)
    indexes = IndexStore(keys)
    by_partition: dict[tuple[Path, str, str], list[Found]] = {}
    for item in found:
        by_partition.setdefault((item.file.path.parent.parent.parent, item.file.dataset, item.file.day), []).append(
            item
        )
    changes: list[FileChange] = []
    recovered: set[str] = set()
    for n, ((layout_root, dataset, day), items) in enumerate(sorted(by_partition.items())):
        root = str(layout_root)  # the online tier's root, or the archive tier's (same layout)
        with commits.RunLease(root, run_id):
            if root not in recovered:  # finish or roll back what an earlier, killed rewrite left
                commits.recover(root, own_run=run_id)
                recovered.add(root)
            staged, planned = [], []
            for item in items:
                table = open_file(item.file, decryptor).read()
                changed = transform(table, item.mask)
                written = None
                if changed.num_rows:
                    writer = ParquetFileWriter(
                        commits.staging_path(root, run_id),
                        changed.schema,
                        commits.create,
                        encryption=encryptor.for_day(changed.schema, day),
                        compression=config.compression,
                        row_group_rows=config.row_group_rows,
                    )
                    for batch in changed.to_batches(max_chunksize=config.row_group_rows):
                        writer.write(batch)
                    written = writer.close()
                    staged.append(written)
                planned.append((item, changed.num_rows, written))
            manifest = commits.commit(
                root,
                dataset,
                day,
                layout.commit_id(run_id, f"p{n:04d}"),
                staged,
                [item.file.path.name for item in items],
                hook=hook,
                signer=signer or read_signer(default_signing_key_file(keys.directory)),
            )
            new_names = iter(manifest.names)
            drop_stale_indexes(root, dataset, day)
            for item, rows_after, written in planned:
                new_name = next(new_names) if written is not None else None
                changes.append(
                    FileChange(dataset, day, item.file.path.name, item.rows, item.matched, rows_after, new_name)
                )
            if dataset == layout.ACCESS_DIR:  # the rewritten files are indexed at once: lookups stay fast
                for name, entry in zip(manifest.names, manifest.files, strict=True):
                    file = ArchiveFile(items[0].file.path.with_name(name), dataset, day, entry, items[0].file.compacted)
                    indexes.make(file, open_file(file, decryptor))
        shutil.rmtree(layout.staging_dir(root, run_id), ignore_errors=True)
    return changes


# --- alerts (JSON lines published by batch runs) ------------------------------------------------------------------


def _alerts_table(alerts: list[dict]) -> pa.Table:
    """The columns of alerts that can name a person, as Arrow, so ``subject_mask`` judges them like archive rows."""
    return pa.table(
        {
            "source_ip": pa.array([a.get("source_ip") for a in alerts], pa.string()),
            "user_name": pa.array([a.get("user_name") for a in alerts], pa.string()),
            "group_key": pa.array([a.get("group_key") for a in alerts], pa.string()),
            "distinct_sample": pa.array([a.get("distinct_sample") or [] for a in alerts], pa.list_(pa.string())),
            "evidence": pa.array(
                [[{"line": e.get("line")} for e in a.get("evidence") or []] for a in alerts],
                pa.list_(pa.struct([pa.field("line", pa.string())])),
            ),
        }
    )


@dataclasses.dataclass(frozen=True)
class FoundAlerts:
    path: Path
    alerts: list[dict]
    mask: np.ndarray

    @property
    def matched(self) -> int:
        return int(self.mask.sum())


def find_alerts(archive: str | Path, subject: Subject, searched: dict | None = None) -> Iterator[FoundAlerts]:
    for path in alert_records.alert_files(archive):
        alerts = alert_records.read_alerts(path)
        if searched is not None:
            counts = searched.setdefault("alerts", {"files": 0, "rows": 0})
            counts["files"] += 1
            counts["rows"] += len(alerts)
        mask = subject_mask(subject, _alerts_table(alerts)) if alerts else np.zeros(0, dtype=bool)
        if mask.any():
            yield FoundAlerts(path, alerts, mask)


def rewrite_alerts(found: FoundAlerts, field: str | None = None, value: str | None = None) -> FileChange:
    """Drop the subject's alerts (or, with ``field``, set it on them) in one atomic replace of the file."""
    if field is None:
        kept = [a for a, hit in zip(found.alerts, found.mask, strict=True) if not hit]
    else:
        kept = [
            {**a, field: value} if hit and field in a else a for a, hit in zip(found.alerts, found.mask, strict=True)
        ]
    alert_records.replace_alerts(found.path, kept)
    day = found.path.stem.removeprefix("alerts-")
    return FileChange("alerts", day, found.path.name, len(found.alerts), found.matched, len(kept), found.path.name)

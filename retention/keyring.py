"""The keyring: per-month master keys with versions, a root key, and the writer and reader roles.

Layout of the keyring directory (everything in it is safe to copy without the root key)::

    root.json                        the root key's public half
    custodian.json                   the custodian's signing key, public half (derived from the root key)
    signers/ed25519-….json           ingest signing keys the custodian trusts, each signed by the custodian
    keys/personal-2026-01@v1.json    one file per master key version: public half + private half sealed to the root
    destroyed/2026-01.json           tombstone of a crypto-shredded month

A master key is named ``<purpose>-<YYYY-MM>`` (purpose ``personal`` or ``data``,
month of event time); each rotation adds a version, and the versioned id
(``personal-2026-01@v2``) is what a Parquet file's key material names, so old
files keep naming the version that opens them.

Roles: ``WriterKeys`` reads public halves only and can create the keys of a
month it meets for the first time (sealing the new private half to the root's
public half), so the ingest pipeline writes the archive but can never read it.
The keyring directory itself may be shared with ingest hosts (sealed halves
are useless without the root key); with a copy made by ``export_public``
instead, months first met on the ingest host get their keys in that copy, and
its ``keys/`` files must be copied back to the readers' keyring.
``ReaderKeys`` also holds the root private key, from ``$LOGWARDEN_ROOT_KEY`` or
an owner-only key file, and unseals private halves on demand.

The directory may be local or on any Beam filesystem (``retention.storage``); on an object store, creating a
key version cannot be exclusive, so one process at a time should change a remote keyring.

Destroying a month deletes the key files of every version of both purposes and
leaves a tombstone; every copy of that month's Parquet files, backups included,
is then unreadable.  That holds for keyring backups only once they expire too:
keep keyring backups for a short, fixed time (the root key alone opens nothing),
or keep master keys in a cloud KMS whose key deletion covers its own copies.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from retention import roles, sealing, signing, storage
from retention.layout import base_name, month_of_day
from retention.secret_files import create_secret_file
from retention.stamps import utc_stamp
from schemas.config import user_data_dir

PURPOSES = ("personal", "data")
ROOT_KEY_ENV = "LOGWARDEN_ROOT_KEY"
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_KEY_ID = re.compile(r"^(?P<purpose>[a-z]+)-(?P<period>\d{4}-\d{2})@v(?P<version>[1-9]\d*)$")
_ROOT_CONTEXT = "logwarden root seals "


class KeyringError(Exception):
    """The keyring or root key cannot be used as asked (missing, wrong permissions, not matching)."""


class KeyAccessError(KeyringError):
    """A key exists in principle but this role may not, or no longer can, use it."""


def check_period(period: str) -> str:
    if not isinstance(period, str) or not _PERIOD.match(period):
        raise KeyringError(f"bad period {period!r}: expected a month as YYYY-MM, e.g. 2026-01")
    return period


def period_of_day(day: str) -> str:
    """``2026-01-31`` -> ``2026-01``: the month whose keys encrypt that day's partition."""
    return check_period(month_of_day(day))


def key_name(purpose: str, period: str) -> str:
    if purpose not in PURPOSES:
        raise KeyringError(f"unknown key purpose {purpose!r}; expected one of {', '.join(PURPOSES)}")
    return f"{purpose}-{check_period(period)}"


@dataclasses.dataclass(frozen=True)
class KeyRecord:
    """One version of one master key."""

    purpose: str
    period: str
    version: int
    public_key: bytes
    sealed_private_key: str | None
    created: str

    @property
    def key_id(self) -> str:
        return f"{key_name(self.purpose, self.period)}@v{self.version}"

    def to_json(self, with_private: bool = True) -> dict:
        doc = {
            "key_id": self.key_id,
            "purpose": self.purpose,
            "period": self.period,
            "version": self.version,
            "created": self.created,
            "public_key": sealing.encode_key(self.public_key),
        }
        if with_private and self.sealed_private_key:
            doc["sealed_private_key"] = self.sealed_private_key
        return doc

    @classmethod
    def from_json(cls, doc: Mapping) -> KeyRecord:
        return cls(
            purpose=doc["purpose"],
            period=doc["period"],
            version=int(doc["version"]),
            public_key=sealing.decode_key(doc["public_key"]),
            sealed_private_key=doc.get("sealed_private_key"),
            created=doc.get("created", ""),
        )


def parse_key_id(key_id: str) -> tuple[str, str, int]:
    """``personal-2026-01@v2`` -> (``personal``, ``2026-01``, 2)."""
    match = _KEY_ID.match(key_id)
    if not match:
        raise KeyAccessError(f"{key_id!r} is not a logwarden master key id (expected e.g. personal-2026-01@v1)")
    return match["purpose"], match["period"], int(match["version"])


def _json_bytes(doc: dict) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _write_json_exclusive(path: str, doc: dict) -> bool:
    """Create ``path`` with ``doc`` atomically; False if it already exists (another writer won)."""
    return storage.write_new(path, _json_bytes(doc))


def _read_json(path: str) -> dict:
    return json.loads(storage.read_text(path))


class Keyring:
    """A keyring directory; reads and changes key files, never holds a private key in the clear."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = storage.normalise(directory)

    def __repr__(self) -> str:
        return f"Keyring({self.directory!r})"

    def _file(self, *parts: str) -> str:
        return storage.join(self.directory, *parts)

    @property
    def _root_file(self) -> str:
        return self._file("root.json")

    def exists(self) -> bool:
        return storage.exists(self._root_file)

    def create(self, root_public: bytes) -> None:
        """Start an empty keyring whose private halves will be sealed to ``root_public``."""
        if self.exists():
            raise KeyringError(f"a keyring already exists in {self.directory}")
        storage.mkdirs(self._file("keys"))
        storage.mkdirs(self._file("destroyed"))
        doc = {"public_key": sealing.encode_key(root_public), "created": utc_stamp(), "sealing": sealing.FORMAT}
        if not _write_json_exclusive(self._root_file, doc):
            raise KeyringError(f"a keyring already exists in {self.directory}")

    def root_public(self) -> bytes:
        try:
            doc = _read_json(self._root_file)
            return sealing.decode_key(doc["public_key"])
        except FileNotFoundError:
            raise KeyringError(
                f"no keyring in {self.directory}: create one with 'logwarden keys init --archive DIR' "
                "(logwarden batch creates one on its first run)"
            ) from None
        except (ValueError, KeyError) as error:
            raise KeyringError(f"{self._root_file}: damaged root record ({error})") from None

    def records(self) -> list[KeyRecord]:
        """Every key version still in the keyring, sorted by period, purpose and version."""
        self.root_public()  # a clear error when there is no keyring at all
        records = []
        for path in storage.list_paths(self._file("keys", "*.json")):
            try:
                records.append(KeyRecord.from_json(_read_json(path)))
            except (ValueError, KeyError) as error:
                raise KeyringError(f"{path}: damaged key record ({error})") from None
        return sorted(records, key=lambda r: (r.period, r.purpose, r.version))

    def _path(self, purpose: str, period: str, version: int) -> str:
        return self._file("keys", f"{key_name(purpose, period)}@v{version}.json")

    def record(self, key_id: str) -> KeyRecord:
        purpose, period, version = parse_key_id(key_id)
        path = self._path(purpose, period, version)
        try:
            return KeyRecord.from_json(_read_json(path))
        except FileNotFoundError:
            tombstone = self.destroyed().get(period)
            if tombstone is not None:
                raise KeyAccessError(
                    f"key {key_id} was destroyed on {tombstone['destroyed']}: the {period} data it protected "
                    "is crypto-shredded and cannot be read by anyone"
                ) from None
            raise KeyAccessError(f"key {key_id} is not in the keyring {self.directory}") from None

    def versions(self, purpose: str, period: str) -> list[KeyRecord]:
        name = key_name(purpose, period)
        return [r for r in self.records() if key_name(r.purpose, r.period) == name]

    def current(self, purpose: str, period: str) -> KeyRecord | None:
        versions = self.versions(purpose, period)
        return versions[-1] if versions else None

    def destroyed(self) -> dict[str, dict]:
        """Tombstones of crypto-shredded months, by period."""
        found = {}
        for path in storage.list_paths(self._file("destroyed", "*.json")):
            doc = _read_json(path)
            found[doc["period"]] = doc
        return found

    def _check_alive(self, period: str) -> None:
        tombstone = self.destroyed().get(period)
        if tombstone is not None:
            raise KeyAccessError(
                f"the keys of {period} were destroyed on {tombstone['destroyed']}; "
                f"refusing to write new {period} data under fresh keys (its retention has ended)"
            )

    def _try_create(self, purpose: str, period: str, version: int) -> KeyRecord | None:
        """Create one version with a fresh key pair (private half sealed to the root); None if it exists."""
        private = sealing.new_private_key()
        record = KeyRecord(purpose, period, version, sealing.public_key_of(private), None, utc_stamp())
        sealed = sealing.seal(self.root_public(), private, _ROOT_CONTEXT + record.key_id)
        record = dataclasses.replace(record, sealed_private_key=sealed)
        if not _write_json_exclusive(self._path(purpose, period, version), record.to_json()):
            return None
        roles.seal_to_readers(self.directory, record.key_id, private)
        return record

    def add_version(self, purpose: str, period: str) -> KeyRecord:
        """Create the next version of a master key (the first one if none): rotation."""
        self._check_alive(period)
        while True:
            latest = self.current(purpose, period)
            record = self._try_create(purpose, period, latest.version + 1 if latest else 1)
            if record is not None:
                return record
            # another process created this version at the same moment: take the next number

    def ensure_period(self, period: str) -> list[KeyRecord]:
        """The current key of each purpose for ``period``, creating version 1 where none exists."""
        self._check_alive(period)
        found = []
        for purpose in PURPOSES:
            record = self.current(purpose, period)
            if record is None:
                record = self._try_create(purpose, period, 1) or self.current(purpose, period)
            found.append(record)
        return found

    def check_destroyable(self, period: str) -> None:
        """Refuse (``KeyringError``) a month with no keys: destroying it would destroy nothing and only stop
        that month from ever being written (a typo in ``keys destroy`` would poison a future month)."""
        check_period(period)
        if any(r.period == period for r in self.records()):
            return
        tombstone = self.destroyed().get(period)
        if tombstone is not None:
            raise KeyringError(f"the keys of {period} were already destroyed on {tombstone['destroyed']}")
        months = sorted({r.period for r in self.records()})
        shown = f" (months with keys: {', '.join(months)})" if months else " (it holds no keys yet)"
        raise KeyringError(f"the keyring in {self.directory} has no keys of {period}; nothing to destroy{shown}")

    def destroy_period(self, period: str) -> list[str]:
        """Crypto-shred one month: tombstone first (so writers stop), then every role's seal, then every key version.

        In that order, so a run killed half-way still lists the month's key files, and the next call (retention
        plans one while any remain) finishes the job.
        """
        check_period(period)
        self.root_public()
        victims = [r for r in self.records() if r.period == period]
        tombstone = self._file("destroyed", f"{period}.json")
        if not storage.exists(tombstone):
            _write_json_exclusive(
                tombstone, {"period": period, "destroyed": utc_stamp(), "key_ids": [r.key_id for r in victims]}
            )
        recorded = _read_json(tombstone).get("key_ids", [])
        roles.RoleRegistry(self.directory).forget(sorted({r.key_id for r in victims} | set(recorded)))
        for record in victims:
            storage.wipe(self._path(record.purpose, record.period, record.version))
        return [r.key_id for r in victims]

    def export_public(self, target: str | os.PathLike) -> int:
        """Copy the keyring without any private half (not even sealed): a writer-only keyring."""
        out = Keyring(target)
        out.create(self.root_public())
        records = self.records()
        for record in records:
            _write_json_exclusive(out._path(record.purpose, record.period, record.version), record.to_json(False))
        for period, doc in self.destroyed().items():
            _write_json_exclusive(out._file("destroyed", f"{period}.json"), doc)
        roles.copy_public(self.directory, out.directory)  # so months first met there are sealed to the roles too
        if storage.exists(self._file("custodian.json")):
            _write_json_exclusive(out._file("custodian.json"), _read_json(self._file("custodian.json")))
        for path in storage.list_paths(self._file("signers", "*.json")):
            _write_json_exclusive(out._file("signers", base_name(path)), _read_json(path))
        return len(records)

    # --- who may write: the custodian and the signers it trusts ---------------------------------------------------

    def set_custodian(self, root_key: bytes) -> signing.Signer:
        """Record the custodian's public signing key (derived from ``root_key``); returns the custodian."""
        if sealing.public_key_of(root_key) != self.root_public():
            raise KeyringError(f"this root key does not belong to the keyring in {self.directory}")
        custodian = signing.custodian(root_key)
        doc = {
            "signer": custodian.id,
            "public_key": signing.encode_public(custodian.public_key),
            "created": utc_stamp(),
        }
        _write_json_exclusive(self._file("custodian.json"), doc)
        return custodian

    def custodian_public(self) -> bytes | None:
        """The custodian's public key as this directory says (only readers holding the root key can be sure)."""
        try:
            doc = _read_json(self._file("custodian.json"))
            return signing.decode_public(doc["public_key"])
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def trust_signer(self, public_key: bytes, name: str, root_key: bytes) -> str:
        """Register an ingest signing key as trusted: its record is signed by the custodian (needs the root key)."""
        custodian = self.set_custodian(root_key) if self.custodian_public() is None else signing.custodian(root_key)
        if sealing.public_key_of(root_key) != self.root_public():
            raise KeyringError(f"this root key does not belong to the keyring in {self.directory}")
        signer = signing.signer_id(public_key)
        doc = custodian.sign(
            {"signer": signer, "name": name, "public_key": signing.encode_public(public_key), "trusted": utc_stamp()}
        )
        path = self._file("signers", f"{signer}.json")
        if not _write_json_exclusive(path, doc):
            storage.replace(path, _json_bytes(doc))
        return signer

    def trusted_signers(self, custodian_public: bytes) -> dict[str, bytes]:
        """Signer id -> public key of every registration ``custodian_public`` signed, and the custodian itself."""
        custodian = signing.signer_id(custodian_public)
        trusted = {custodian: custodian_public}
        for path in storage.list_paths(self._file("signers", "*.json")):
            try:
                doc = _read_json(path)
            except ValueError:
                continue
            if signing.verify(doc, {custodian: custodian_public}) and f"{doc.get('signer')}.json" == base_name(path):
                public = signing.decode_public(doc["public_key"])
                if signing.signer_id(public) == doc["signer"]:
                    trusted[doc["signer"]] = public
        return trusted


@dataclasses.dataclass
class ImportResult:
    """What ``import_public_keys`` did: ids copied in, ids already here, and ids that clash (same id, other key)."""

    imported: list[str] = dataclasses.field(default_factory=list)
    already_present: list[str] = dataclasses.field(default_factory=list)
    conflicts: list[str] = dataclasses.field(default_factory=list)


def import_public_keys(target: Keyring, source: str | os.PathLike) -> ImportResult:
    """Bring the key versions an ingest host minted in its writer keyring into the custodian's keyring.

    A writer seals each new private half to the root's public key, so the records
    it made are complete: copied here, the readers can open what it wrote.  Only a
    keyring made for the same root key is accepted.  A version id both keyrings
    created independently names two different keys; it is reported, never overwritten.
    """
    other = Keyring(source)
    if other.root_public() != target.root_public():
        raise KeyringError(f"the keyring in {other.directory} belongs to another root key; nothing imported")
    result = ImportResult()
    ours = {r.key_id: r for r in target.records()}
    for record in other.records():
        mine = ours.get(record.key_id)
        if mine is not None:
            same = mine.public_key == record.public_key
            (result.already_present if same else result.conflicts).append(record.key_id)
            continue
        if record.period in target.destroyed():
            result.conflicts.append(record.key_id)
            continue
        if not record.sealed_private_key:
            continue  # a copy of one of our own keys without its private half: nothing to learn from it
        if _write_json_exclusive(target._path(record.purpose, record.period, record.version), record.to_json()):
            result.imported.append(record.key_id)
    return result


def months_from(start: dt.date, count: int) -> list[str]:
    """``count`` months as YYYY-MM, starting with ``start``'s month."""
    year, month = start.year, start.month
    months = []
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


# --- the root key -------------------------------------------------------------------------------------------------


def read_root_key(root_key_file: str | os.PathLike | None, environ: Mapping[str, str] = os.environ) -> bytes:
    """The root private key from ``$LOGWARDEN_ROOT_KEY`` if set, else from an owner-only key file."""
    text = environ.get(ROOT_KEY_ENV)
    where = f"${ROOT_KEY_ENV}"
    if not text:
        if root_key_file is None:
            raise KeyringError(f"no root key: set ${ROOT_KEY_ENV} or configure keys.root_key_file")
        path = Path(root_key_file).expanduser()
        where = str(path)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise KeyringError(
                f"no root key: {path} does not exist and ${ROOT_KEY_ENV} is not set "
                "(the reader role needs the root key that 'logwarden keys init' created)"
            ) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyringError(
                f"root key file {path} is accessible by other users (mode {stat.S_IMODE(mode):o}); "
                f"run: chmod 600 {path}"
            )
        text = path.read_text(encoding="utf-8")
    try:
        return sealing.decode_key(text)
    except ValueError as error:
        raise KeyringError(f"the root key in {where} is not valid ({error})") from None


def write_root_key_file(path: str | os.PathLike, root_key: bytes) -> None:
    """Write a new root key file readable by its owner only, whole or not at all; never overwrites one."""
    try:
        create_secret_file(path, (sealing.encode_key(root_key) + "\n").encode())
    except FileExistsError:
        raise KeyringError(f"{Path(path).expanduser()} already exists; refusing to overwrite a root key") from None


@dataclasses.dataclass(frozen=True)
class InitResult:
    keyring: str
    root_key_file: Path | None  # None when the root key came from the environment
    created_root_key: bool
    periods: tuple[str, ...] = ()


def init_keyring(
    directory: str | os.PathLike,
    root_key_file: str | os.PathLike,
    periods: Iterable[str] = (),
    environ: Mapping[str, str] = os.environ,
    signing_key_file: str | os.PathLike | None = None,
    exist_ok: bool = False,
) -> InitResult:
    """Create a keyring; reuse the root key from the environment or an existing key file, else make one.

    The ingest signing key at ``signing_key_file`` (default: ``signing.key`` beside the keyring directory;
    made if missing) is registered as trusted.  Safe when several processes initialise at once
    (``exist_ok``: a first batch run on many hosts): one creates the root key and the keyring, the others
    take what it created.
    """
    keyring = Keyring(directory)
    from_env = bool(environ.get(ROOT_KEY_ENV))
    kept_in = None if from_env else Path(root_key_file)
    if keyring.exists():
        if not exist_ok:
            raise KeyringError(f"a keyring already exists in {keyring.directory}")
        if not (from_env or Path(root_key_file).expanduser().exists()):
            return InitResult(keyring.directory, kept_in, False)  # made elsewhere, its root key kept off this host
        root_key = read_root_key(root_key_file, environ)
        if sealing.public_key_of(root_key) != keyring.root_public():
            return InitResult(keyring.directory, kept_in, False)
        # Another process may have made the keyring a moment ago and not yet its signing key or trust record:
        # finish them here too (each step takes what is there), so this one never starts half initialised.
        return _finish_init(keyring, root_key, signing_key_file, periods, kept_in, created=False)
    created = False
    if from_env or Path(root_key_file).expanduser().exists():
        root_key = read_root_key(root_key_file, environ)
    else:
        root_key = sealing.new_private_key()
        try:
            write_root_key_file(root_key_file, root_key)
            created = True
        except KeyringError:
            if not Path(root_key_file).expanduser().exists():
                raise
            root_key = read_root_key(root_key_file, environ)  # another process made it a moment ago: take it
    try:
        keyring.create(sealing.public_key_of(root_key))
    except KeyringError:
        if not (exist_ok and keyring.root_public() == sealing.public_key_of(root_key)):
            raise
    return _finish_init(keyring, root_key, signing_key_file, periods, kept_in, created)


def _finish_init(
    keyring: Keyring,
    root_key: bytes,
    signing_key_file: str | os.PathLike | None,
    periods: Iterable[str],
    kept_in: Path | None,
    created: bool,
) -> InitResult:
    """The ingest signing key (made if missing), trusted, and the periods' keys: each step takes what exists."""
    signer, _ = signing.load_or_create_signer(signing_key_file or default_signing_key_file(keyring.directory))
    # this host's writer, trusted from the start (the custodian record is made with it, exclusively)
    keyring.trust_signer(signer.public_key, "ingest (keys init)", root_key)
    periods = tuple(check_period(p) for p in periods)
    for period in periods:
        keyring.ensure_period(period)
    return InitResult(keyring.directory, kept_in, created, periods)


def beside_keyring(keyring_directory: str | os.PathLike, name: str) -> Path:
    """Where a host's own key file lives unless the config names it: beside a local keyring directory; for a
    keyring on an object store, in ``$LOGWARDEN_HOME`` (a secret never goes to shared storage by default)."""
    directory = storage.normalise(keyring_directory)
    if storage.is_local(directory):
        return Path(directory).parent / name
    return user_data_dir() / name


def default_signing_key_file(keyring_directory: str | os.PathLike) -> Path:
    """Where the ingest signing key lives unless ``keys.signing_key_file`` says otherwise: beside the keyring."""
    return beside_keyring(keyring_directory, "signing.key")


# --- roles -------------------------------------------------------------------------------------------------------


class ArchiveKeys:
    """What any role can do with the keyring: public halves, key ids to encrypt with, whom to believe.

    Picklable (a directory name, plus what a role adds) for Beam workers.  ``private_key`` is refused here;
    only a role that holds the root key (``ReaderKeys``) unseals private halves.
    """

    role = "public"

    def __init__(self, directory: str | os.PathLike):
        self.directory = str(directory)
        self._cache: dict[str, KeyRecord] = {}

    def __getstate__(self):
        return {"directory": self.directory}

    def __setstate__(self, state):
        self.__init__(state["directory"])

    @property
    def keyring(self) -> Keyring:
        return Keyring(self.directory)

    def current_ids(self, period: str) -> dict[str, str]:
        """Versioned master key ids to encrypt ``period`` with, by purpose (created on first use)."""
        records = self.keyring.ensure_period(period)
        for record in records:
            self._cache[record.key_id] = record
        return {record.purpose: record.key_id for record in records}

    def public_key(self, key_id: str) -> bytes:
        record = self._cache.get(key_id)
        if record is None:
            record = self._cache[key_id] = self.keyring.record(key_id)
        return record.public_key

    def commit_signer(self) -> signing.Signer:
        """The key this role signs its commits with: the signing key beside the keyring (the custodian's own
        when the role holds the root key, see ``ReaderKeys``)."""
        return signing.read_signer(default_signing_key_file(self.directory))

    def trusted_signers(self) -> dict[str, bytes] | None:
        """Writers whose manifests count, as far as the keyring directory says (None: it names no custodian)."""
        custodian = self.keyring.custodian_public()
        return None if custodian is None else self.keyring.trusted_signers(custodian)

    def private_key(self, key_id: str) -> bytes:
        raise KeyAccessError(
            f"the writer role holds public keys only: it can write the archive but cannot read it "
            f"(needed {key_id}; read with the reader role, which has the root key)"
        )


class WriterKeys(ArchiveKeys):
    """The ingest role: public halves only, so the pipeline that writes the archive can never read it."""

    role = "writer"


class ReaderKeys(ArchiveKeys):
    """The owner role: public halves, and private halves unsealed with the root private key."""

    role = "reader"

    def __init__(self, directory: str | os.PathLike, root_key: bytes):
        super().__init__(directory)
        self._root_key = root_key
        self._private: dict[str, bytes] = {}
        expected = self.keyring.root_public()
        if sealing.public_key_of(root_key) != expected:
            raise KeyringError(f"this root key does not belong to the keyring in {directory}")

    def __getstate__(self):
        return {"directory": self.directory, "root_key": self._root_key}

    def __setstate__(self, state):
        self.__init__(state["directory"], state["root_key"])

    def private_key(self, key_id: str) -> bytes:
        private = self._private.get(key_id)
        if private is None:
            record = self.keyring.record(key_id)
            if not record.sealed_private_key:
                raise KeyAccessError(f"the keyring in {self.directory} holds only the public half of {key_id}")
            try:
                private = sealing.unseal(self._root_key, record.sealed_private_key, _ROOT_CONTEXT + key_id)
            except sealing.SealError as error:
                raise KeyAccessError(f"cannot unseal {key_id} with this root key: {error}") from None
            if sealing.public_key_of(private) != record.public_key:  # a public half swapped for someone else's
                raise KeyAccessError(f"key record {key_id}: its public half does not match its sealed private half")
            self._private[key_id] = private
        return private

    def custodian(self) -> signing.Signer:
        """The custodian's signing key (derived from the root key), for commits made by key holders (retention)."""
        return signing.custodian(self._root_key)

    def commit_signer(self) -> signing.Signer:
        return self.custodian()

    def trusted_signers(self) -> dict[str, bytes]:
        """The writers whose manifests this reader believes: the custodian derived from the root key, and those
        it registered (a keyring directory cannot vouch for itself)."""
        return self.keyring.trusted_signers(signing.custodian(self._root_key).public_key)

    def check_key_records(self) -> list[str]:
        """Key ids whose public half does not match their sealed private half (tampered records)."""
        bad = []
        for record in self.keyring.records():
            if record.sealed_private_key:
                try:
                    self.private_key(record.key_id)
                except KeyAccessError:
                    bad.append(record.key_id)
        return bad


def writer_keys(directory: str | os.PathLike) -> WriterKeys:
    keys = WriterKeys(directory)
    keys.keyring.root_public()  # fail early, clearly, when there is no keyring
    return keys


def reader_keys(
    directory: str | os.PathLike, root_key_file: str | os.PathLike | None, environ: Mapping[str, str] = os.environ
) -> ReaderKeys:
    return ReaderKeys(directory, read_root_key(root_key_file, environ))

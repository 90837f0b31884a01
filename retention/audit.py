"""The audit trail: an append-only log of who did what to the archive, why, when, and with what result.

One JSON object per line.  Each entry carries the SHA-256 ``hash`` of its own
content, which includes the previous entry's hash (``prev``) and a sequence
number, and a ``mac``: an HMAC-SHA256 of that hash under the audit key.  So

* an edited entry no longer matches its hash;
* a removed, inserted or reordered entry breaks the sequence and the chain;
* a rewritten chain (hashes recomputed) fails every MAC unless the rewriter
  holds the audit key;
* a truncated tail (or a chain rewritten by someone who does hold the key) is
  caught by comparing against a head hash recorded somewhere else: ``audit
  verify`` prints the head; ``--expect-head`` checks a recorded one is still
  in the log.

The chain can be checked without the key (hashes and links only); MACs need it.
Whoever runs audited commands needs the audit key too, so the key protects the
log from people who can reach its storage but not the hosts; against a host's
root, ship each entry off the host as it is written (syslog, a WORM bucket;
see the README) and record the head elsewhere.

Actions are recorded twice: a ``started`` entry *before* anything is read or
changed (if it cannot be written, the action does not run) and an entry with
the result when it ends.  A ``started`` entry without an end means the process
died mid-way.  An interrupted append can leave a fragment line (no complete
JSON); it is reported, and harmless as long as the chain continues across it.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import pwd
import secrets
import socket
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from retention.secret_files import create_secret_file
from retention.stamps import utc_stamp

AUDIT_KEY_ENV = "LOGWARDEN_AUDIT_KEY"
AUDIT_DIR = "_audit"
AUDIT_FILE = "audit.jsonl"
GENESIS = "0" * 64
KEY_BYTES = 32

STARTED = "started"
OK = "ok"
FAILED = "failed"
REFUSED = "refused"
RESULTS = (STARTED, OK, FAILED, REFUSED)

#: Fields of an entry, in the order ``audit show --format jsonl`` prints them.
FIELDS = (
    "seq",
    "time",
    "user",
    "uid",
    "host",
    "pid",
    "role",
    "command",
    "args",
    "query",
    "reason",
    "result",
    "detail",
    "files",
    "rows",
    "begin",
    "key_id",
    "prev",
)


class AuditError(Exception):
    """The audit log cannot be written or read as asked (no key, wrong key, unreadable file)."""


class AuditRefusal(Exception):
    """Raised inside an audited action to refuse it: recorded as ``refused``, then re-raised."""


def default_log_path(archive: str | os.PathLike) -> Path:
    """Where an archive keeps its audit trail unless ``audit.log`` names another file."""
    return Path(archive) / AUDIT_DIR / AUDIT_FILE


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def entry_hash(body: Mapping[str, Any]) -> str:
    """SHA-256 of an entry's content (everything but ``hash`` and ``mac``)."""
    return hashlib.sha256(_canonical({k: v for k, v in body.items() if k not in ("hash", "mac")})).hexdigest()


def key_id(key: bytes) -> str:
    """A short public name of an audit key, so a log says which key its MACs need without revealing it."""
    return hmac.new(key, b"logwarden audit key id", hashlib.sha256).hexdigest()[:16]


def _mac(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


# --- the audit key -------------------------------------------------------------------------------------------------


def encode_audit_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def decode_audit_key(text: str, where: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise AuditError(f"the audit key in {where} is not valid (expected {KEY_BYTES} bytes of URL-safe base64)")
    return raw


def read_audit_key(key_file: str | os.PathLike | None, environ: Mapping[str, str] = os.environ) -> bytes | None:
    """The audit key from ``$LOGWARDEN_AUDIT_KEY`` or an owner-only key file; None when neither exists."""
    text = environ.get(AUDIT_KEY_ENV)
    if text:
        return decode_audit_key(text, f"${AUDIT_KEY_ENV}")
    if not key_file:
        return None
    path = Path(key_file).expanduser()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuditError(
            f"audit key file {path} is accessible by other users (mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"
        )
    return decode_audit_key(path.read_text(encoding="utf-8"), str(path))


def create_audit_key(key_file: str | os.PathLike) -> bytes:
    """A new random audit key in an owner-only file; never overwrites one."""
    path = Path(key_file).expanduser()
    key = secrets.token_bytes(KEY_BYTES)
    try:
        create_secret_file(path, (encode_audit_key(key) + "\n").encode())
    except FileExistsError:
        raise AuditError(f"{path} already exists; refusing to overwrite an audit key") from None
    return key


# --- who is acting -------------------------------------------------------------------------------------------------


def os_user() -> tuple[str, int]:
    """(name, uid) of the acting OS user; under sudo, the name says who called sudo."""
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = f"uid{uid}"
    sudo = os.environ.get("SUDO_USER")
    return (f"{sudo} (sudo as {name})" if sudo and sudo != name else name), uid


def cli_arguments(args: Any) -> dict[str, Any]:
    """A command's parsed arguments as plain data for the ``args`` field (functions and Beam flags left out)."""
    found = {}
    for name, value in sorted(vars(args).items()):
        if callable(value) or name in ("run", "beam_args", "command", "action"):
            continue
        if isinstance(value, (str, int, float, bool)) or value is None:
            found[name] = value
        elif isinstance(value, (list, tuple)):
            found[name] = [str(v) for v in value]
        else:
            found[name] = str(value)
    return found


# --- the log -------------------------------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, bytes, ended by a newline) of every line of the log."""
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            yield number, line.rstrip(b"\n"), line.endswith(b"\n")


def _parse(line: bytes) -> dict | None:
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("seq"), int) or not isinstance(doc.get("hash"), str):
        return None
    return doc


def _last_entry(fh) -> dict | None:
    """The last complete entry of an open log, reading backwards from its end (logs grow for years)."""
    end = fh.seek(0, os.SEEK_END)
    block = 64 * 1024
    tail = b""
    position = end
    while position > 0:
        step = min(block, position)
        position -= step
        fh.seek(position)
        tail = fh.read(step) + tail
        lines = tail.split(b"\n")
        # the first piece may be cut by the block boundary unless we reached the start
        candidates = lines if position == 0 else lines[1:]
        for line in reversed(candidates):
            doc = _parse(line) if line.strip() else None
            if doc is not None:
                return doc
    return None


class AuditLog:
    """One audit log file; ``append`` adds an entry under an exclusive lock, chained to the last one."""

    def __init__(self, path: str | os.PathLike, key: bytes | None):
        self.path = Path(path)
        self.key = key

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def exists(self) -> bool:
        return self.path.is_file() and self.path.stat().st_size > 0

    def append(self, **fields: Any) -> dict:
        """Write one entry (fields as in ``FIELDS``); returns it with its ``hash``.  Durable when this returns."""
        if self.key is None:
            raise AuditError(f"cannot write to the audit log {self.path}: no audit key")
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise AuditError(f"unknown audit fields: {', '.join(sorted(unknown))}")
        if fields.get("result", OK) not in RESULTS:
            raise AuditError(f"audit result must be one of {', '.join(RESULTS)}")
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as error:
            raise AuditError(f"cannot open the audit log {self.path}: {error.strerror}") from None
        with os.fdopen(fd, "r+b", buffering=0) as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                last = _last_entry(fh)
                if last is not None and last.get("key_id") != key_id(self.key):
                    raise AuditError(
                        f"the audit log {self.path} is keyed with audit key {last.get('key_id')}, "
                        f"not with this one ({key_id(self.key)}): use the deployment's audit key "
                        f"(${AUDIT_KEY_ENV} or audit.key_file)"
                    )
                user, uid = os_user()
                body = {name: None for name in FIELDS}
                body.update(
                    time=utc_stamp("microseconds"),
                    user=user,
                    uid=uid,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    result=OK,
                    files=[],
                )
                body.update(fields)
                body.update(
                    seq=(last["seq"] + 1) if last else 1,
                    prev=last["hash"] if last else GENESIS,
                    key_id=key_id(self.key),
                )
                body["hash"] = entry_hash(body)
                body["mac"] = _mac(self.key, body["hash"])
                size = fh.seek(0, os.SEEK_END)
                prefix = b""
                if size:
                    fh.seek(size - 1)
                    if fh.read(1) != b"\n":
                        prefix = b"\n"  # end the fragment a killed writer left, so this entry is a line of its own
                fh.write(prefix + _canonical(body) + b"\n")
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        if created:
            with contextlib.suppress(OSError):
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        return body

    def entries(self) -> Iterator[dict]:
        """Every parseable entry, in file order (verify first if it matters whether they are genuine)."""
        if not self.path.exists():
            return
        for _number, line, _ended in _lines(self.path):
            doc = _parse(line)
            if doc is not None:
                yield doc

    def head(self) -> str | None:
        """``SEQ:HASH`` of the last entry: record it elsewhere to detect a truncated or rewritten log later."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as fh:
            last = _last_entry(fh)
        return format_head(last) if last else None

    def record(self, command: str, role: str | None, reason: str | None, result: str = OK, **fields: Any) -> dict:
        """One complete entry (for example a refusal, which never starts)."""
        return self.append(command=command, role=role, reason=reason, result=result, **fields)

    def action(
        self,
        command: str,
        role: str | None,
        reason: str | None,
        args: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> AuditedAction:
        """``with log.action(...) as act:`` writes ``started`` now and the result (with ``act``'s counts) at the end."""
        return AuditedAction(self, command, role, reason, dict(args or {}), dict(query) if query else None)


def format_head(entry: Mapping[str, Any]) -> str:
    return f"{entry['seq']}:{entry['hash']}"


class AuditedAction:
    """What one audited command touched; written as its end entry.  Use through ``AuditLog.action``."""

    def __init__(self, log: AuditLog, command: str, role, reason, args: dict, query: dict | None):
        self.log = log
        self.command = command
        self.role = role
        self.reason = reason
        self.args = args
        self.query = query
        self.files: list[dict] = []
        self.rows = 0
        self.detail: str | None = None
        self.begin: dict | None = None

    def touched(self, path: str | os.PathLike, rows: int | None = None, change: str | None = None) -> None:
        """Note one file read, written or removed (``change``: e.g. ``read``, ``written``, ``removed``)."""
        item: dict[str, Any] = {"path": str(path)}
        if rows is not None:
            item["rows"] = int(rows)
            self.rows += int(rows)
        if change:
            item["change"] = change
        self.files.append(item)

    def _common(self) -> dict:
        return {
            "command": self.command,
            "role": self.role,
            "reason": self.reason,
            "args": self.args,
            "query": self.query,
        }

    def __enter__(self) -> AuditedAction:
        self.begin = self.log.append(result=STARTED, **self._common())
        return self

    def __exit__(self, exc_type, exc, _tb) -> bool:
        if exc_type is None:
            result, detail = OK, self.detail
        elif issubclass(exc_type, AuditRefusal):
            result, detail = REFUSED, str(exc)
        else:
            result, detail = FAILED, f"{exc_type.__name__}: {exc}"
        self.log.append(
            result=result,
            detail=detail,
            files=self.files,
            rows=self.rows,
            begin=self.begin["seq"] if self.begin else None,
            **self._common(),
        )
        return False


def open_log(
    archive: str | os.PathLike | None,
    log_file: str | None,
    key_file: str | os.PathLike | None,
    *,
    create_key: bool = True,
    environ: Mapping[str, str] = os.environ,
) -> AuditLog:
    """The audit log of a deployment: ``log_file`` if configured, else the archive's own.

    A missing key is created (owner-only) only while the log is still empty, so
    a host can never start a second chain under a key of its own.
    """
    if log_file:
        path = Path(log_file).expanduser()
    elif archive is not None:
        if "://" in str(archive):
            raise AuditError(
                f"the archive {archive} is not local: set audit.log to a local file for its audit trail "
                "(and ship it off the host as the README says)"
            )
        path = default_log_path(archive)
    else:
        raise AuditError("no audit log: name the archive (--archive DIR) or set audit.log in the config")
    key = read_audit_key(key_file, environ)
    log = AuditLog(path, key)
    if key is None:
        if log.exists():
            raise AuditError(
                f"the audit log {path} exists but this host has no audit key: set ${AUDIT_KEY_ENV} "
                f"or copy the deployment's key to {key_file}"
            )
        if not create_key or not key_file:
            raise AuditError(f"no audit key: set ${AUDIT_KEY_ENV} or audit.key_file")
        log.key = create_audit_key(key_file)
    return log


# --- verification --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AuditFinding:
    level: str  # "error" or "warning"
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.level}: line {self.line}: {self.message}"


@dataclasses.dataclass
class AuditReport:
    entries: int = 0
    head: str | None = None
    macs_checked: bool = False
    unfinished: list[int] = dataclasses.field(default_factory=list)
    findings: list[AuditFinding] = dataclasses.field(default_factory=list)

    @property
    def errors(self) -> list[AuditFinding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_head(text: str) -> tuple[int | None, str]:
    """``SEQ:HASH`` or a bare hash -> (seq or None, hash)."""
    seq_text, sep, digest = text.strip().partition(":")
    if not sep:
        seq_text, digest = "", seq_text
    digest = digest.lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise AuditError(f"not an audit head: {text!r} (expected SEQ:HASH as 'audit verify' prints it)")
    if seq_text and not seq_text.isdigit():
        raise AuditError(f"not an audit head: {text!r} (expected SEQ:HASH as 'audit verify' prints it)")
    return (int(seq_text) if seq_text else None), digest


def verify_log(path: str | os.PathLike, key: bytes | None, expect_head: str | None = None) -> AuditReport:
    """Check every entry's hash, MAC (when ``key`` is given), sequence and link, and the recorded head."""
    path = Path(path)
    report = AuditReport(macs_checked=key is not None)
    expected_seq, expected_digest = parse_head(expect_head) if expect_head else (None, None)
    if not path.exists():
        if expect_head:
            report.findings.append(AuditFinding("error", 0, f"{path} does not exist, but a head was recorded"))
        return report

    def problem(line: int, message: str, level: str = "error") -> None:
        report.findings.append(AuditFinding(level, line, message))

    prev_hash, prev_seq = GENESIS, 0
    found_head_at: int | None = None
    started: dict[int, int] = {}
    fragments: list[tuple[int, bool]] = []  # (line, ended by a newline) of lines that are no entry
    for number, line, ended in _lines(path):
        if not line.strip():
            continue
        doc = _parse(line)
        if doc is None:
            fragments.append((number, ended))
            continue
        report.entries += 1
        seq, digest = doc["seq"], doc["hash"]
        # A fragment is harmless when the chain continues across it: an append that was killed mid-write.
        linked = seq == prev_seq + 1 and doc.get("prev") == prev_hash
        for fragment, _ended in fragments:
            if linked:
                problem(fragment, "fragment of an interrupted write (not an entry; the chain continues)", "warning")
            else:
                problem(fragment, "not an audit entry (damaged or replaced)")
        fragments = []
        if entry_hash(doc) != digest:
            problem(number, f"entry {seq} was edited: its content does not match its hash")
        elif key is not None:
            if doc.get("key_id") != key_id(key):
                problem(number, f"entry {seq} is keyed with audit key {doc.get('key_id')}, not the given one")
            elif not hmac.compare_digest(_mac(key, digest), str(doc.get("mac", ""))):
                problem(number, f"entry {seq} has a wrong MAC: written or rewritten without the audit key")
        if seq == prev_seq + 1:
            if doc.get("prev") != prev_hash:
                problem(number, f"entry {seq} does not follow entry {prev_seq}: chain broken (inserted or replaced)")
        elif seq <= prev_seq:
            problem(number, f"entry {seq} comes after entry {prev_seq}: reordered, duplicated or inserted")
        else:
            missing = f"{prev_seq + 1}" if seq == prev_seq + 2 else f"{prev_seq + 1}-{seq - 1}"
            where = "at the start of the log" if prev_seq == 0 else f"after entry {prev_seq}"
            problem(number, f"entry {seq} follows entry {prev_seq}: entries {missing} removed {where}")
        if digest == expected_digest:
            found_head_at = seq
        if doc.get("result") == STARTED:
            started[seq] = number
        elif isinstance(doc.get("begin"), int):
            started.pop(doc["begin"], None)
        prev_hash, prev_seq = digest, seq
        report.head = format_head(doc)
    for fragment, ended in fragments:
        if ended:
            problem(fragment, "the last line is not an audit entry (damaged or replaced)")
        else:
            problem(fragment, "the last line is incomplete: an append was interrupted (not an entry)", "warning")
    report.unfinished = sorted(started)
    if expect_head:
        if found_head_at is None:
            if expected_seq is not None and expected_seq > prev_seq:
                problem(0, f"truncated: the log ends at entry {prev_seq}, the recorded head is entry {expected_seq}")
            else:
                problem(0, "the recorded head is not in the log: the log was truncated or rewritten")
        elif expected_seq is not None and found_head_at != expected_seq:
            problem(0, f"the recorded head is entry {expected_seq} but is found as entry {found_head_at}")
    return report


# --- reading entries back ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EntryFilter:
    since: dt.date | None = None
    until: dt.date | None = None
    role: str | None = None
    command: str | None = None
    user: str | None = None
    result: str | None = None

    def matches(self, entry: Mapping[str, Any]) -> bool:
        day = str(entry.get("time", ""))[:10]
        if self.since and day < self.since.isoformat():
            return False
        if self.until and day > self.until.isoformat():
            return False
        if self.role and entry.get("role") != self.role:
            return False
        if self.command and not str(entry.get("command", "")).startswith(self.command):
            return False
        if self.user and self.user not in str(entry.get("user", "")):
            return False
        return not (self.result and entry.get("result") != self.result)


def select(entries: Iterable[Mapping[str, Any]], where: EntryFilter) -> Iterator[Mapping[str, Any]]:
    return (entry for entry in entries if where.matches(entry))

"""Alerts waiting for delivery, encrypted at rest, and the ids each sink has already received.

The ingest host must be able to read back an alert it could not deliver (to retry it
on the next run), which the archive's writer role by design cannot.  So alerts in
flight are sealed to a key pair of their own, the *outbox key* (X25519, as in
``retention.sealing``): its private half is a file readable by its owner only
(``alerts.sinks.outbox_key_file``, by default ``outbox.key`` beside the keyring) or
``$LOGWARDEN_OUTBOX_KEY``, created on first use, and stays with the process that
runs the job; workers get the public half only.  It opens nothing but alerts that
have not yet reached every sink.

Where (``retention.layout`` names the folders)::

    <output>/_state/outbox/pending.bin          alerts still owed to some sink, with the sinks that owe them
    <output>/_state/outbox/delivered/<sink>.ids keyed hashes of the alert ids each sink received
    <output>/.tmp/<run>/alerts/part-*.bin       a run's alerts as the pipeline emits them (joined after the job)

Recording ids per sink makes a rerun over the same logs (same alert ids) send nothing
twice; the ids are stored as HMACs under the outbox key, so the files say nothing about
the addresses or users behind an alert.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import stat
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from apache_beam.io.filesystems import FileSystems

from retention import layout, sealing
from retention.keyring import beside_keyring
from schemas.json_rows import row_to_json_dict

OUTBOX_KEY_ENV = "LOGWARDEN_OUTBOX_KEY"
OUTBOX_DIR = "outbox"
_TIME_FIELDS = ("first_seen", "last_seen", "detected_at")


class OutboxError(Exception):
    """The outbox key is missing, unsafe or wrong, or an outbox file is damaged."""


def default_key_file(keyring: str) -> str:
    """``outbox.key`` beside the keyring directory (not inside it: the keyring is safe to copy, this key is not)."""
    return str(beside_keyring(keyring, "outbox.key"))


def load_outbox_key(path: str | os.PathLike, environ: Mapping[str, str] = os.environ) -> bytes:
    """The outbox private key from ``$LOGWARDEN_OUTBOX_KEY``, else from ``path``, created there (mode 600) if absent."""
    text = environ.get(OUTBOX_KEY_ENV)
    if not text:
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise OutboxError(
                    f"outbox key file {path} is accessible by other users (mode {stat.S_IMODE(mode):o}); "
                    f"run: chmod 600 {path}"
                ) from None
            text = path.read_text(encoding="utf-8")
        else:
            text = sealing.encode_key(sealing.new_private_key())
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
                fh.flush()
                os.fsync(fh.fileno())
    try:
        return sealing.decode_key(text)
    except ValueError as problem:
        raise OutboxError(f"the outbox key is not valid ({problem})") from None


def _seal(public: bytes, plaintext: bytes, context: str) -> bytes:
    return sealing.seal(public, plaintext, "logwarden outbox " + context).encode("ascii")


def _unseal(private: bytes | None, data: bytes, context: str) -> bytes:
    if private is None:
        raise OutboxError("reading the outbox needs its private key (the process that runs the job holds it)")
    try:
        return sealing.unseal(private, data.decode("ascii"), "logwarden outbox " + context)
    except (sealing.SealError, UnicodeDecodeError) as problem:
        raise OutboxError(f"cannot open an outbox file: {problem}") from None


def alert_to_json(alert: Mapping[str, Any]) -> str:
    return json.dumps(row_to_json_dict(dict(alert)), ensure_ascii=False, separators=(",", ":"))


def _time(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def alert_from_json(text: str) -> dict[str, Any]:
    """The inverse of ``alert_to_json``: times back to datetimes, so sinks get what the pipeline gave them."""
    alert = json.loads(text)
    for name in _TIME_FIELDS:
        alert[name] = _time(alert.get(name))
    for item in alert.get("evidence") or []:
        item["timestamp"] = _time(item.get("timestamp"))
    health = alert.get("health")
    if health:  # a service-health alert's window
        for name in ("window_start", "window_end"):
            health[name] = _time(health.get(name))
    return alert


def _write_atomically(path: str, data: bytes) -> None:
    directory = path.rsplit("/", 1)[0]
    if not FileSystems.exists(directory):
        try:
            FileSystems.mkdirs(directory)
        except OSError:  # another worker's bundle made it in between
            if not FileSystems.exists(directory):
                raise
    staging = f"{directory}/.{path.rsplit('/', 1)[1]}.{uuid.uuid4().hex}.tmp"
    with FileSystems.create(staging) as handle:
        handle.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([staging], [path])


def _identity(path: str) -> tuple | None:
    """A local file's identity and version (inode, size, modification time): it changes whenever another
    process replaces (``_write_atomically`` renames a new file in) or appends to it.  None for a remote file."""
    if FileSystems.get_scheme(path) is not None:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns


def _read(path: str) -> bytes | None:
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as handle:
        return handle.read()


#: How many alert ids' tokens an outbox remembers (``Outbox.id_token``).
TOKENS_KEPT = 100_000


class Outbox:
    """The outbox of one output directory; workers hold ``public`` only, the job's driver also ``private``."""

    def __init__(
        self, output: str, public: bytes, private: bytes | None = None, folder: tuple[str, ...] = (OUTBOX_DIR,)
    ):
        self.output = output
        self.folder = tuple(folder)
        self.root = layout.state_dir(output, *self.folder)
        self._public = public
        self._private = private
        #: ``pending()``'s alerts as this outbox last wrote or read them, with the file's identity then
        #: (``_identity``): a batch run delivers what it owed moments ago without unsealing and parsing it again.
        self._pending_seen: tuple[tuple, list] | None = None
        #: ``id(alert) -> (alert, its JSON)`` for the alerts ``run_alerts`` read (``alert_json``).
        self._texts: dict[int, tuple[dict, str]] = {}
        #: ``id_token`` by alert id: a batch run asks for each of its alerts' token up to four times (owing them,
        #: before delivering, as each sink confirms, recording what each sink has).  Emptied when it reaches
        #: ``TOKENS_KEPT``, so a stream's outbox does not grow with every alert it ever delivered.
        self._tokens: dict[str, str] = {}

    @classmethod
    def with_key(cls, output: str, private: bytes, folder: tuple[str, ...] = (OUTBOX_DIR,)) -> Outbox:
        """``folder`` under ``<output>/_state``: the stream keeps its own (``alerts.sinks.live``)."""
        return cls(output, sealing.public_key_of(private), private, folder)

    def __getstate__(self):
        # never ship the private half to workers
        return {"output": self.output, "public": self._public, "folder": self.folder}

    def __setstate__(self, state):
        self.__init__(state["output"], state["public"], folder=state.get("folder", (OUTBOX_DIR,)))

    # --- a run's alerts, written by pipeline workers --------------------------------------------------------

    def parts_dir(self, run_id: str) -> str:
        return FileSystems.join(layout.staging_dir(self.output, run_id), "alerts")

    def write_part(self, run_id: str, alerts: Iterable[Mapping[str, Any]]) -> str:
        """Alerts as one encrypted part file (complete, or not there at all)."""
        return self.write_part_lines(run_id, [alert_to_json(a) + "\n" for a in alerts])

    def write_part_lines(self, run_id: str, lines: list[str]) -> str:
        """``write_part`` of alerts already rendered, one ``alert_to_json`` line each."""
        path = FileSystems.join(self.parts_dir(run_id), f"part-{uuid.uuid4().hex}.bin")
        _write_atomically(path, _seal(self._public, "".join(lines).encode("utf-8"), "part"))
        return path

    def run_alerts(self, run_id: str) -> list[dict[str, Any]]:
        """Every alert the run's workers wrote, each once (a retried bundle may have written a part twice)."""
        directory = self.parts_dir(run_id)
        if not FileSystems.exists(directory):
            return []
        found: dict[str, dict[str, Any]] = {}
        for match in FileSystems.match([FileSystems.join(directory, "part-*.bin")])[0].metadata_list:
            text = _unseal(self._private, _read(match.path) or b"", "part").decode("utf-8")
            for line in text.split("\n"):
                if line:
                    alert = self._parsed(line)
                    found[alert["alert_id"]] = alert
        return sorted(found.values(), key=lambda a: (a["first_seen"], a["rule_id"], a["group_key"] or ""))

    def _parsed(self, text: str) -> dict[str, Any]:
        alert = alert_from_json(text)
        self._texts[id(alert)] = (alert, text)
        return alert

    def alert_json(self, alert: Mapping[str, Any]) -> str:
        """``alert_to_json(alert)``; for an alert of ``run_alerts``, the very text the run's workers wrote, which is
        the same (``alert_from_json`` inverts ``alert_to_json``): rendering a run's alerts again for the pending list
        and for each file sink took 50 ms per 1,300 alerts each, after the job.  So those alerts are not to be
        changed."""
        known = self._texts.get(id(alert))
        return known[1] if known is not None and known[0] is alert else alert_to_json(alert)

    def clear_parts(self, run_id: str) -> None:
        directory = self.parts_dir(run_id)
        if FileSystems.exists(directory):
            FileSystems.delete([directory])

    # --- alerts owed to sinks, carried from run to run -------------------------------------------------------

    @property
    def _pending_path(self) -> str:
        return FileSystems.join(self.root, "pending.bin")

    def pending(self) -> list[tuple[dict[str, Any], list[str]]]:
        """Alerts not yet delivered to every sink, with the names of the sinks that still owe them.

        The alert dicts may be those this outbox last read or wrote (``set_pending``): not to be changed."""
        identity = _identity(self._pending_path)
        if identity is not None and self._pending_seen is not None and self._pending_seen[0] == identity:
            return [(alert, list(sinks)) for alert, sinks in self._pending_seen[1]]
        data = _read(self._pending_path)
        if not data:
            return []
        out = []
        for line in _unseal(self._private, data, "pending").decode("utf-8").split("\n"):
            if line:
                doc = json.loads(line)
                out.append((alert_from_json(doc["alert"]), doc["sinks"]))
        self._remember_pending(identity, out)
        return [(alert, list(sinks)) for alert, sinks in out]

    def set_pending(self, owed: list[tuple[Mapping[str, Any], list[str]]]) -> None:
        owed = [(alert, list(sinks)) for alert, sinks in owed if sinks]
        self._pending_seen = None
        if not owed:
            if FileSystems.exists(self._pending_path):
                FileSystems.delete([self._pending_path])
            return
        lines = "".join(json.dumps({"sinks": sinks, "alert": self.alert_json(a)}) + "\n" for a, sinks in owed)
        _write_atomically(self._pending_path, _seal(self._public, lines.encode("utf-8"), "pending"))
        self._remember_pending(_identity(self._pending_path), owed)

    def _remember_pending(self, identity: tuple | None, owed: list) -> None:
        # Only with the private key: a worker's outbox (public half) must not answer what it could not read.
        self._pending_seen = (identity, owed) if identity is not None and self._private is not None else None

    # --- what each sink has received ------------------------------------------------------------------------

    def _ids_path(self, sink_name: str) -> str:
        digest = hashlib.sha256(sink_name.encode()).hexdigest()[:16]
        return FileSystems.join(self.root, "delivered", f"{digest}.ids")

    def _mac(self, text: bytes) -> str:
        if self._private is None:
            raise OutboxError("delivery records need the outbox private key")
        return hmac.new(self._private, text, hashlib.sha256).hexdigest()[:32]

    def id_token(self, alert_id: str) -> str:
        token = self._tokens.get(alert_id)
        if token is None:
            if len(self._tokens) >= TOKENS_KEPT:
                self._tokens.clear()
            token = self._tokens[alert_id] = self._mac(b"id\x1f" + alert_id.encode())
        return token

    def delivered(self, sink_name: str) -> set[str]:
        data = _read(self._ids_path(sink_name))
        return set(data.decode("ascii").split()) if data else set()

    def record_delivered(self, sink_name: str, alert_ids: Iterable[str]) -> None:
        tokens = {self.id_token(i) for i in alert_ids}
        if not tokens:
            return
        known = self.delivered(sink_name)
        if tokens <= known:
            return
        _write_atomically(self._ids_path(sink_name), "".join(t + "\n" for t in sorted(known | tokens)).encode())

    def append_delivered(self, sink_name: str, alert_ids: Iterable[str]) -> None:
        """Add ids to a sink's record by appending: for a stream recording each confirmation as it comes.

        Written through to the kernel, not fsynced: a ``kill -9`` keeps it, a power cut may lose the last
        confirmations (those alerts are sent again); an fsync per confirmation held a busy stream up to 0.5 s.
        Local outputs only (the stream writes a local directory)."""
        tokens = [self.id_token(i) for i in alert_ids]
        if tokens:
            with self.delivered_log(sink_name) as log:
                log.write("".join(t + "\n" for t in tokens))

    def delivered_log(self, sink_name: str) -> TextIO:
        """The sink's record opened for appending tokens (``id_token``), each line written through to the kernel
        as it ends (as ``append_delivered``): for recording a run's confirmations one by one without opening the
        file for each.  Local outputs only."""
        path = self._ids_path(sink_name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return open(path, "a", encoding="ascii", buffering=1)

    def forget_delivered(self, sink_name: str, alert_ids: Iterable[str]) -> None:
        """Drop ids from a sink's record (rewritten whole): what keeps a stream's record bounded."""
        known = self.delivered(sink_name)
        kept = known - {self.id_token(i) for i in alert_ids}
        if kept == known:
            return
        _write_atomically(self._ids_path(sink_name), "".join(t + "\n" for t in sorted(kept)).encode())

    def key_hash(self, group_key: str | None) -> str | None:
        """A stable, keyed stand-in for an alert's key (an address, a user) that a third party cannot reverse."""
        if group_key is None:
            return None
        return self._mac(b"key\x1f" + group_key.encode())[:16]

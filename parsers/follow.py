"""Following live log files like ``tail -F``, as plain Python: polls in, chunks of whole lines out.

A followed file is known by its *content*, not its name: the device and inode
it was opened on plus a SHA-256 of its first bytes.  That is what lets the
follower (and a restart from a checkpoint) tell the cases apart:

- rename-and-create: the old inode keeps its position and is read to its end
  (through the handle already open, even once renamed out of the globs); the new
  file at the old name is new content, read from byte 0;
- copytruncate: the file shrank below the position, or its first bytes changed,
  so it is new content from byte 0; the copy (``access.log.1``) starts with the
  old first bytes and is read only from where the old content was left;
- a compressed rotated copy (``access.log.2.gz``) of content already read has
  the same first bytes once decompressed: only what was not read yet is read;
- a deleted file is read to its end and then let go.

Only regular files are followed: a FIFO, device or socket that a glob matches is
left alone with a warning, and so is a symbolic link unless ``follow_symlinks``
(a link planted in a log directory must not make the stream ingest ``/etc/shadow``);
files are opened without following links and checked on the open descriptor.

Only whole lines leave: a partial last line is held until its newline arrives,
or handed out on its own (``Chunk.truncated``) after ``partial_line_seconds``
without growth.  A position therefore always sits just past a newline (or a
flushed partial line), which is what a checkpoint records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import logging
import os
import stat as stat_module
import time
import zlib
from collections.abc import Callable

from parsers.lines import LineChunk
from parsers.reader import compression_of
from parsers.registry import UNKNOWN_PREFIX, resolve_format

_LOG = logging.getLogger("logwarden")

#: Bytes of a file's beginning that identify its content across renames, copies and compression.
HEAD_BYTES = 1024
#: Bytes of a content's beginning that name it in the ingest ledger (``retention.ledger.HEAD_BYTES``, which
#: a test holds equal): a later batch over the same file, renamed or compressed, knows what the stream archived.
LEDGER_HEAD_BYTES = 4096
#: Largest read per file per poll, so one busy file cannot starve the others.
READ_BYTES = 4 * 1024 * 1024


@dataclasses.dataclass
class Position:
    """Where one piece of content has been read up to: what a checkpoint stores per followed file."""

    path: str
    dev: int
    inode: int
    head_len: int
    head_sha256: str
    offset: int = 0
    line_number: int = 1
    format: str = ""
    #: The content is complete (a compressed copy read to its end, or a file deleted and drained).
    finished: bool = False
    #: Wall-clock time the position last moved; finished content is forgotten some time after.
    touched: float = 0.0

    #: The content's ledger name: SHA-256 of its first ``ledger_head_bytes`` bytes, fixed when it is first read.
    ledger_sha256: str = ""
    ledger_head_bytes: int = 0
    #: Offset and line number where this follower began reading the content: where what it archives starts.
    read_from: int = 0
    read_from_line: int = 1

    #: The first ``head_len`` bytes themselves (the checkpoint is encrypted): a file whose beginning is still
    #: shorter than that can be recognised as a copy being written.
    head: bytes = b""

    def same_head(self, head: bytes) -> bool:
        return len(head) >= self.head_len and _sha(head[: self.head_len]) == self.head_sha256

    def may_become(self, head: bytes) -> bool:
        """``head`` is shorter than ours and begins like it: perhaps our content, still being copied."""
        return len(head) < self.head_len and self.head.startswith(head)


@dataclasses.dataclass(frozen=True)
class Archived:
    """What earlier runs archived of a file: up to ``offset`` (next line ``line_number``), under a ledger name."""

    offset: int
    line_number: int
    ledger_sha256: str
    ledger_head_bytes: int


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Whole lines of one file, and the content position just past them."""

    lines: LineChunk
    position: Position
    #: A partial last line handed out after the idle time, without its newline.
    truncated: bool = False


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_compressed(path: str) -> bool:
    return compression_of(path) != ""


_KINDS = {
    stat_module.S_IFIFO: "a FIFO (named pipe)",
    stat_module.S_IFCHR: "a character device",
    stat_module.S_IFBLK: "a block device",
    stat_module.S_IFSOCK: "a socket",
    stat_module.S_IFDIR: "a directory",
    stat_module.S_IFLNK: "a symbolic link",
}


def _kind(mode: int) -> str:
    return _KINDS.get(stat_module.S_IFMT(mode), "not a regular file")


class NotRegularFile(OSError):
    """A followed path is (or became) something other than a regular file, or a link not to be followed."""


def _open_regular(path: str, follow_symlinks: bool = False):
    """``open(path, "rb")``, for a regular file only: without following a link (unless ``follow_symlinks``) and
    checked on the open descriptor, so a file swapped for a link or a FIFO after it was matched is refused too."""
    extra = os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        handle = open(path, "rb", opener=lambda name, flags: os.open(name, flags | extra))  # noqa: SIM115
    except OSError as problem:
        if problem.errno == 40:  # ELOOP: a link, and O_NOFOLLOW refused it
            raise NotRegularFile(f"{path} is a symbolic link; links are followed only with --follow-symlinks") from None
        raise
    try:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat_module.S_ISREG(mode):
            raise NotRegularFile(f"{path} is {_kind(mode)}; only regular files are read")
        os.set_blocking(handle.fileno(), True)
    except BaseException:
        handle.close()
        raise
    return handle


def _read_head(path: str, limit: int = HEAD_BYTES, follow_symlinks: bool = False) -> bytes:
    """The first ``limit`` bytes of a file's content (decompressed for ``.gz`` copies)."""
    with _open_regular(path, follow_symlinks) as fh:
        if not _is_compressed(path):
            return fh.read(limit)
        if compression_of(path) != ".gz":
            return b""  # other compressions are matched by inode only
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = b""
        while len(out) < limit:
            block = fh.read(64 * 1024)
            if not block:
                break
            try:
                out += decompressor.decompress(block, limit - len(out))
            except zlib.error:
                break
            while decompressor.unconsumed_tail and len(out) < limit:
                out += decompressor.decompress(decompressor.unconsumed_tail, limit - len(out))
        return out[:limit]


def _current_name(handle, fallback: str) -> str:
    """Where an open file lives now (Linux ``/proc``), so lines read after a rename name their file."""
    try:
        name = os.readlink(f"/proc/self/fd/{handle.fileno()}")
    except OSError:
        return fallback
    return fallback if name.endswith(" (deleted)") else name


_WAIT = object()  # a copy of content still being read from its original
_SKIP = object()  # content already read to its end


class _Open:
    """One followed content: its position, its open handle and the bytes of a partial last line."""

    def __init__(self, position: Position, handle, compressed: bool):
        self.position = position
        self.handle = handle
        self.compressed = compressed
        self.partial = b""
        self.partial_since: float | None = None
        self.left_globs_at: float | None = None  # renamed out of the patterns: drained, then let go
        self.decompressor = None
        self.skip = 0  # compressed copies: decompressed bytes still to skip to reach the position

    @property
    def read_to(self) -> int:
        return self.position.offset + len(self.partial)


class Follower:
    """Re-match globs, read what is new in every followed file, hand out ``Chunk``s of whole lines.

    ``positions`` (from a checkpoint) say where each known content was left; a file
    matching none of them is read from byte 0, or from its end with ``start_at_end``.
    A poll reads at most ``read_bytes`` of each file (a backlog comes over several polls).
    ``archived(path)`` says what earlier runs archived of a file new to the follower (the ingest
    ledger's word): it is read from there, under the ledger's name for it.
    """

    def __init__(
        self,
        patterns: list[str],
        *,
        format_spec: str = "auto",
        timezone: str = "UTC",
        chunk_bytes: int = 1024 * 1024,
        partial_line_seconds: float = 5.0,
        rotate_grace_seconds: float = 5.0,
        forget_after_seconds: float = 7 * 86400,
        start_at_end: bool = False,
        positions: list[Position] | None = None,
        clock: Callable[[], float] = time.time,
        read_bytes: int = READ_BYTES,
        archived: Callable[[str], Archived | None] | None = None,
        follow_symlinks: bool = False,
    ):
        self._patterns = list(patterns)
        self._follow_symlinks = follow_symlinks
        self._refused: set[str] = set()  # paths already warned about (a link, a FIFO...): said once
        self._format_spec = format_spec
        self._timezone = timezone
        self._chunk_bytes = chunk_bytes
        self._partial_line_seconds = partial_line_seconds
        self._rotate_grace = rotate_grace_seconds
        self._forget_after = forget_after_seconds
        self._start_at_end = start_at_end
        self._clock = clock
        self._read_bytes_per_poll = read_bytes
        self._archived = archived
        self._known: list[Position] = [dataclasses.replace(p) for p in positions or []]
        self._open: dict[tuple[int, int], _Open] = {}
        self._first_match = not positions

    # ------------------------------------------------------------------ state

    def positions(self) -> list[Position]:
        """Every content position worth remembering (copies, so a checkpoint never moves under us)."""
        return [dataclasses.replace(p) for p in self._known]

    @property
    def followed(self) -> int:
        return len(self._open)

    def bytes_behind(self) -> int:
        """Bytes appended to the followed files and not handed out yet: how far the job lags behind the writers."""
        behind = 0
        for opened in self._open.values():
            if not opened.compressed:
                with contextlib.suppress(OSError):
                    behind += max(0, os.fstat(opened.handle.fileno()).st_size - opened.position.offset)
        return behind

    def close(self) -> None:
        for opened in self._open.values():
            opened.handle.close()
        self._open.clear()

    # ------------------------------------------------------------------ polling

    def poll(self) -> list[Chunk]:
        """One round: pick up new and rotated files, read what was appended, let go of what is gone."""
        now = self._clock()
        matched = self._match()
        chunks: list[Chunk] = []
        live = set()
        for path in matched:
            try:
                stat = os.stat(path)
            except OSError:
                continue  # vanished between glob and stat
            key = (stat.st_dev, stat.st_ino)
            live.add(key)
            opened = self._open.get(key)
            if opened is None:
                opened = self._pick_up(path, stat, now)
                if opened is None:
                    continue
            opened.left_globs_at = None
            if opened.position.path != path and not opened.compressed:
                opened.position.path = path  # renamed within the globs: same content, new name
            chunks += self._check_truncation(opened, stat.st_size, now)
        for key in list(self._open):
            opened = self._open[key]
            if key not in live and opened.left_globs_at is None:
                opened.left_globs_at = now
                opened.position.path = _current_name(opened.handle, opened.position.path)
            chunks += self._read(opened, now)
            if self._done_with(opened, now):
                chunks += self._flush_partial(opened)
                opened.handle.close()
                opened.position.finished = True
                opened.position.touched = now
                del self._open[key]
        self._forget(now)
        self._first_match = False
        return chunks

    def _match(self) -> list[str]:
        paths: set[str] = set()
        for pattern in self._patterns:
            target = os.path.join(pattern, "*") if os.path.isdir(pattern) else pattern
            paths.update(p for p in glob.glob(target) if self._regular(p))
        # Compressed copies last: their uncompressed original, when still there, claims the content first.
        return sorted((os.path.abspath(p) for p in paths), key=lambda p: (_is_compressed(p), p))

    def _regular(self, path: str) -> bool:
        """Whether to follow ``path``: a regular file (through a link only with ``follow_symlinks``)."""
        try:
            mode = os.lstat(path).st_mode
            if stat_module.S_ISLNK(mode) and self._follow_symlinks:
                mode = os.stat(path).st_mode
        except OSError:
            return False  # vanished, or a dangling link
        if stat_module.S_ISREG(mode) or stat_module.S_ISDIR(mode):
            return stat_module.S_ISREG(mode)
        if path not in self._refused:
            self._refused.add(path)
            why = (
                f"is a symbolic link (to {os.readlink(path)!r}); not followed without --follow-symlinks"
                if stat_module.S_ISLNK(mode)
                else f"is {_kind(mode)}; only regular files are read"
            )
            _LOG.warning("%s %s", path, why)
        return False

    def _pick_up(self, path: str, stat: os.stat_result, now: float) -> _Open | None:
        compressed = _is_compressed(path)
        if compressed and compression_of(path) != ".gz":
            return None  # only gzip copies can be matched to content already read
        try:
            head = _read_head(path, follow_symlinks=self._follow_symlinks)
        except OSError as problem:
            _LOG.warning("%s: cannot read (%s); will retry", path, problem)
            return None
        if not head and compressed:
            return None  # still being written by the rotation
        found = self._known_content(stat, head, compressed)
        if found is _WAIT or found is _SKIP:
            return None
        position = found
        if position is None:
            if compressed and self._first_match and self._start_at_end:
                return None
            start = stat.st_size if (self._first_match and self._start_at_end and not compressed) else 0
            earlier = self._archived(path) if self._archived is not None and not start else None
            if earlier is not None and (compressed or earlier.offset <= stat.st_size):
                start = earlier.offset
            # Known by its first bytes from the start (a compressed copy's never grow later): a position whose
            # head is empty would match any content of its inode, or a reused inode, at its offset.
            position = Position(path, stat.st_dev, stat.st_ino, len(head), _sha(head), start, 0 if start else 1)
            if earlier is not None and start == earlier.offset:
                position.line_number = earlier.line_number
                position.ledger_sha256, position.ledger_head_bytes = earlier.ledger_sha256, earlier.ledger_head_bytes
            position.read_from, position.read_from_line = position.offset, position.line_number
            position.head = head
            position.touched = now
            self._known.append(position)
        try:
            handle = _open_regular(path, self._follow_symlinks)  # kept open while the file is followed
        except OSError as problem:
            _LOG.warning("%s: cannot open (%s); will retry", path, problem)
            return None
        opened = _Open(position, handle, compressed)
        position.path, position.dev, position.inode = path, stat.st_dev, stat.st_ino
        if compressed:
            # A compressed copy is decompressed from its start, skipping what its original already gave.
            opened.decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            opened.skip = position.offset
        else:
            handle.seek(position.offset)
        self._open[(stat.st_dev, stat.st_ino)] = opened
        return opened

    def _known_content(self, stat: os.stat_result, head: bytes, compressed: bool):
        """The position this file continues, ``None`` for new content, or ``_WAIT`` / ``_SKIP``.

        Same inode and first bytes: the same content, resumed (skipped once finished).  Another inode
        with known first bytes: a copy (copytruncate's ``.1``, a ``.gz``), read from the furthest
        position of that content, but only once the original is let go: while the original is still
        read, the copy's bytes would come twice.
        """
        inode = (stat.st_dev, stat.st_ino)
        for p in self._known:
            if (p.dev, p.inode) != inode:
                continue
            if (p.head_len or not p.offset) and p.same_head(head) and (compressed or stat.st_size >= p.offset):
                return _SKIP if p.finished else p
            p.finished = True  # the inode now holds other content (truncated, or reused)
        copies_of = [p for p in self._known if p.head_len and (p.dev, p.inode) != inode and p.same_head(head)]
        if not copies_of:
            if any(p.may_become(head) for p in self._known if (p.dev, p.inode) != inode):
                return _WAIT  # too short to tell a new file from a copy (cp, gzip) in progress: next poll
            return None
        if any(id(o.position) in {id(p) for p in copies_of} for o in self._open.values()):
            return _WAIT
        furthest = max(copies_of, key=lambda p: p.offset)
        copy = dataclasses.replace(furthest, dev=stat.st_dev, inode=stat.st_ino, finished=False)
        self._known.append(copy)
        return copy

    def _check_truncation(self, opened: _Open, size: int, now: float) -> list[Chunk]:
        """copytruncate: the file shrank below what was read, or its first bytes are no longer ours."""
        if opened.compressed:
            return []
        position = opened.position
        shrank = size < opened.read_to
        if not shrank:
            if not position.head_len:
                return []
            try:
                head = os.pread(opened.handle.fileno(), position.head_len, 0)
            except OSError:
                return []
            if position.same_head(head):
                return []
        # New content in the same inode; the old content is finished (its copy, if any, is followed apart).
        _LOG.info("%s: truncated or replaced; reading it again from the start", position.path)
        opened.partial, opened.partial_since = b"", None
        position.finished = True
        position.touched = now
        fresh = Position(position.path, position.dev, position.inode, 0, _sha(b""), 0, 1, touched=now)
        self._known.append(fresh)
        opened.position = fresh
        opened.handle.seek(0)
        return []

    def _read(self, opened: _Open, now: float) -> list[Chunk]:
        try:
            data = self._read_bytes(opened)
        except (OSError, zlib.error, EOFError) as problem:
            _LOG.warning("%s: read failed (%s); will retry", opened.position.path, problem)
            return []
        if not data:
            idle_since = opened.partial_since
            if opened.partial and idle_since is not None and now - idle_since >= self._partial_line_seconds:
                return self._flush_partial(opened)
            return []
        buffer = opened.partial + data
        cut = buffer.rfind(b"\n") + 1
        chunks = []
        if cut:
            chunks = self._chunks(opened, buffer[:cut])
        opened.partial = buffer[cut:]
        opened.partial_since = now if opened.partial else None
        return chunks

    def _read_bytes(self, opened: _Open) -> bytes:
        if not opened.compressed:
            return opened.handle.read(self._read_bytes_per_poll)
        out = b""
        while not out:
            block = opened.handle.read(self._read_bytes_per_poll)
            if not block:
                if opened.decompressor is not None and not opened.decompressor.eof:
                    out = opened.decompressor.flush()
                opened.decompressor = None
                if not out:
                    return b""
                break
            if opened.decompressor is None:
                return b""
            out = opened.decompressor.decompress(block)
            if opened.decompressor.eof and opened.decompressor.unused_data:
                rest = opened.decompressor.unused_data  # another gzip member follows
                opened.decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out += opened.decompressor.decompress(rest)
            if opened.skip:
                dropped = min(opened.skip, len(out))
                out, opened.skip = out[dropped:], opened.skip - dropped
        return out

    def _chunks(self, opened: _Open, data: bytes, truncated: bool = False) -> list[Chunk]:
        position = opened.position
        if not position.format:
            position.format = self._resolve_format(position.path, data)
        chunks = []
        start = 0
        while start < len(data):
            end = (
                len(data)
                if len(data) - start <= self._chunk_bytes
                else data.rfind(b"\n", start, start + self._chunk_bytes) + 1
            )
            if end <= start:
                end = data.find(b"\n", start + self._chunk_bytes) + 1 or len(data)
            piece = data[start:end]
            lines = LineChunk(
                position.path, position.offset, position.line_number, piece, position.format, self._timezone
            )
            position.offset += len(piece)
            position.line_number += piece.count(b"\n") + (1 if truncated and not piece.endswith(b"\n") else 0)
            position.touched = self._clock()
            self._grow_head(position, opened)
            if not position.ledger_head_bytes:
                self._name_in_ledger(position, opened)
            chunks.append(Chunk(lines, dataclasses.replace(position), truncated))
            start = end
        return chunks

    def _grow_head(self, position: Position, opened: _Open) -> None:
        """Identify content by up to ``HEAD_BYTES`` of its beginning, once that much has been read."""
        if position.head_len >= HEAD_BYTES or position.offset <= position.head_len or opened.compressed:
            return
        try:
            head = os.pread(opened.handle.fileno(), min(HEAD_BYTES, position.offset), 0)
        except OSError:
            return
        position.head_len, position.head_sha256, position.head = len(head), _sha(head), head

    def _name_in_ledger(self, position: Position, opened: _Open) -> None:
        """Fix the content's ledger name from its first bytes read (up to ``LEDGER_HEAD_BYTES``)."""
        size = min(LEDGER_HEAD_BYTES, position.offset)
        try:
            if opened.compressed:
                head = _read_head(opened.handle.name, size, self._follow_symlinks)
            else:
                head = os.pread(opened.handle.fileno(), size, 0)
        except OSError:
            return
        position.ledger_sha256, position.ledger_head_bytes = _sha(head), len(head)

    def _flush_partial(self, opened: _Open) -> list[Chunk]:
        if not opened.partial:
            return []
        data, opened.partial, opened.partial_since = opened.partial, b"", None
        _LOG.info("%s: a line without newline at byte %d handed out as truncated", opened.position.path, opened.read_to)
        return self._chunks(opened, data, truncated=True)

    def _resolve_format(self, path: str, data: bytes) -> str:
        if self._format_spec != "auto":
            return self._format_spec
        lines = data[: 256 * 1024].decode("utf-8", "replace").splitlines()[:200]
        spec, how = resolve_format(self._format_spec, lines)
        if spec.startswith(UNKNOWN_PREFIX):
            _LOG.warning("%s: %s; its lines go to the dead letters", path, how)
        else:
            _LOG.info("%s: %s", path, how)
        return spec

    def _done_with(self, opened: _Open, now: float) -> bool:
        """Let go of a compressed copy read to its end, a deleted file drained, a file renamed away and idle."""
        if opened.compressed:
            return opened.decompressor is None
        try:
            stat = os.fstat(opened.handle.fileno())
        except OSError:
            return True
        drained = opened.handle.tell() >= stat.st_size
        if stat.st_nlink == 0:
            return drained
        return drained and opened.left_globs_at is not None and now - opened.left_globs_at >= self._rotate_grace

    def _forget(self, now: float) -> None:
        """Content not followed now is remembered for ``forget_after_seconds`` after it last moved, then dropped.

        That covers finished content (its compressed copy may still appear) and files that vanished while the
        job was stopped, which no poll will ever finish: without it a checkpoint would grow with every rotation.
        """
        open_positions = {id(o.position) for o in self._open.values()}
        self._known = [p for p in self._known if id(p) in open_positions or now - p.touched < self._forget_after]

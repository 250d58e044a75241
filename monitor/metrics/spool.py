"""The metrics spool: line protocol waiting for InfluxDB, on disk, so that neither an outage, a
restart nor a kill -9 loses it (issue 13: a restart while InfluxDB was down lost the RAM buffer).

Format: a directory of append-only segment files, `<first offset, 20 digits>.seg`, each a
sequence of records `<CRC-32 of the line, 8 hex digits> <line>\\n`, and a `cursor` file holding
the offset up to which InfluxDB has settled the lines. Offsets are global byte positions: a
segment named N holds bytes N … N + size − 1 of the stream, so a position is one integer and
the order of the lines is the order of the bytes.

Why segment files and not SQLite (the project's store): appending a point must be durable
against kill -9 the moment `InfluxSink.write()` returns, and a SQLite commit per point costs
tens of µs (a journal write and locking) where one `write(2)` of ~150 bytes costs ~2 µs; the
daemon writes ~20,000 points a cycle at 10,000 devices. Batching commits would reopen the
window in which a kill -9 loses points. Line protocol has no raw newline (encode_line escapes
them), so a record is one text line: a torn or corrupt record is found by its CRC or its missing
newline, and reading resumes at the next newline, which a length-prefixed binary format cannot
do. Whole segments are dropped when the spool is full, which is cheap (unlink) and keeps the
order.

Durability (the fsync policy):
- kill -9, a crash of fleetmon: every record is handed to the kernel by one unbuffered
  `write(2)` on an O_APPEND descriptor before `append` returns; the page cache outlives the
  process, so nothing appended is lost.
- power loss or a kernel crash: the active segment is fdatasync'ed by `sync()`, which the
  sink calls once per flush interval (`flush_interval_s`, default 1 s) and at exit, and at
  every segment change (with the directory, so that a new file's name survives too). At most
  the last interval of points is lost, and a record torn by it is detected and skipped.
  An fsync per point would cost milliseconds each on a disk: 20,000 a cycle is impossible.
- the cursor is replaced (write + rename) after every settled batch, without fsync: a cursor
  older than the truth only makes lines be sent twice, and InfluxDB stores a point sent twice
  once (a point is identified by measurement, tag set and timestamp; the second write
  overwrites the first with the same fields), so a replay never duplicates data.

Damage is never fatal: a record whose CRC does not match, a segment whose last record has no
newline (torn by a crash or power loss), an unreadable cursor or a file of another name are
reported by one warning each, with the file and byte offset, skipped, and the rest is replayed.

Bounded: the segments together hold at most `max_bytes`; when a record would exceed that, the
oldest segments are deleted, and the records in them not yet settled are counted
(`take_dropped`). A segment is at most max_bytes / 16 bytes (at least 64 KiB), so dropping frees
space in steps of about 6 %.

Not thread-safe: one owner (the sink, on the event loop).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

log = logging.getLogger("fleetmon.storage")

MIN_SEGMENT_BYTES = 64 * 1024
_SEGMENT = re.compile(r"^(\d{20})\.seg$")
_CURSOR = "cursor"
_LOCK = "lock"  # held (flock) by the one process using the spool: two writers would interleave
_READ_CHUNK = 1 << 20  # bytes read at a time when loading from disk
_OVERHEAD = 10  # "XXXXXXXX " before a line and "\n" after it
WRITE_BYTES = 1 << 20
"""At most this many bytes of records per write(2) of `Spool.append_many`."""


class SpoolError(OSError):
    """The spool directory cannot be used (not creatable, not writable, unreadable) or another
    process uses it."""


@dataclass(slots=True)
class _Segment:
    start: int  # global offset of its first byte
    size: int
    path: Path

    @property
    def end(self) -> int:
        return self.start + self.size


def record(line: bytes) -> bytes:
    """The spool record of one line of line protocol (no newline in it)."""
    return b"%08x %s\n" % (zlib.crc32(line), line)


class Spool:
    """Line protocol on disk, in order, until InfluxDB has settled it.

    Positions (ints) are global byte offsets. Three of them matter:
    - head: lines before it are settled (`ack`); replay after a restart starts there;
    - loaded: lines before it were handed out (`load`, or kept by the caller as they were appended);
    - tail: the end of the last segment.
    Use: `open()`, then `append()` each line (returns the line's end position), `load()` what the
    caller does not hold in RAM, `ack()` what InfluxDB settled, `sync()` once in a while, `close()`.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = max(MIN_SEGMENT_BYTES, max_bytes // 16)
        self._segments: list[_Segment] = []
        self._fd: int | None = None  # the last segment, opened for appending
        self._lock_fd: int | None = None
        self._dirty = False
        self.head = self.loaded = 0
        self._unloaded_lines = 0  # records between loaded and tail (counted newlines)
        self._dropped = 0  # records lost to a full spool, not yet taken by the caller
        self._corrupt = 0  # records skipped as damaged
        self._append_failed = False

    # -- opening, recovery ------------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory or recover what it holds: the segments in order, the cursor, a torn
        last record cut off. Raises SpoolError when the directory cannot be used or another
        process uses it."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.directory / _LOCK, os.O_WRONLY | os.O_CREAT, 0o640)
        except OSError as exc:
            raise SpoolError(exc.errno, f"metrics spool {self.directory}: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise SpoolError(11, f"metrics spool {self.directory} is in use by another process") from None
        try:
            self._recover()
        except OSError as exc:
            self.close()
            raise SpoolError(exc.errno, f"metrics spool {self.directory}: {exc}") from None
        if self._unloaded_lines:
            log.info(
                "metrics spool %s: %d lines (%d bytes) from before the start wait for InfluxDB",
                self.directory, self._unloaded_lines, self.tail - self.head,
            )

    def _recover(self) -> None:
        for name in sorted(os.listdir(self.directory)):
            match = _SEGMENT.match(name)
            if match:
                path = self.directory / name
                self._segments.append(_Segment(int(match.group(1)), path.stat().st_size, path))
            elif name not in (_CURSOR, _CURSOR + ".tmp", _LOCK):
                log.warning("metrics spool %s: %r is not a spool file: ignored", self.directory, name)
        self._segments.sort(key=lambda s: s.start)
        for earlier, later in zip(self._segments, self._segments[1:]):
            if earlier.end > later.start:  # overlapping names: only damage or a hand edit does that
                log.warning(
                    "metrics spool %s overlaps %s: damaged spool, the overlapping start of the later one is skipped",
                    earlier.path, later.path.name,
                )
        if self._segments:
            self._cut_torn_tail(self._segments[-1])
        self.head = self.loaded = self._read_cursor()
        self._unloaded_lines = self._count_lines(self.head)
        if not self._segments or self._segments[-1].size >= self.segment_bytes:
            self._new_segment(self._segments[-1].end if self._segments else self.head)
        else:
            self._fd = os.open(self._segments[-1].path, os.O_WRONLY | os.O_APPEND)

    def _cut_torn_tail(self, segment: _Segment) -> None:
        """A crash while appending can leave the last record without its newline: cut it off, so
        that appends go on after the last whole record."""
        if segment.size == 0:
            return
        with segment.path.open("rb") as f:
            f.seek(max(0, segment.size - _READ_CHUNK))
            data = f.read()
        if data.endswith(b"\n"):
            return
        keep = segment.size - len(data) + data.rfind(b"\n") + 1 if b"\n" in data else segment.size - len(data)
        log.warning(
            "metrics spool %s: torn last record at byte %d (%d bytes, from a crash or power loss): skipped",
            segment.path, keep, segment.size - keep,
        )
        os.truncate(segment.path, keep)
        self._corrupt += 1
        segment.size = keep

    def _read_cursor(self) -> int:
        """The settled position from the cursor file, kept within the segments; the first
        segment's start when it is missing or unreadable."""
        first = self._segments[0].start if self._segments else 0
        path = self.directory / _CURSOR
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return first
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("metrics spool %s unreadable (%s): replaying every segment from the start", path, exc)
            return first
        if not text.isdigit():
            log.warning("metrics spool %s: %r is not a position: replaying every segment from the start", path, text[:40])
            return first
        last = self._segments[-1].end if self._segments else 0
        return min(max(int(text), first), last) if self._segments else int(text)

    def _count_lines(self, start: int) -> int:
        """Records (newlines) from `start` to the tail."""
        lines = 0
        for seg in self._segments:
            if seg.end <= start:
                continue
            with seg.path.open("rb") as f:
                f.seek(max(0, start - seg.start))
                while chunk := f.read(_READ_CHUNK):
                    lines += chunk.count(b"\n")
        return lines

    # -- writing ----------------------------------------------------------------------------------

    @property
    def tail(self) -> int:
        return self._segments[-1].end if self._segments else self.head

    @property
    def size_bytes(self) -> int:
        """Bytes the segments hold on disk (settled lines of the oldest segment included)."""
        return sum(s.size for s in self._segments)

    @property
    def unloaded_lines(self) -> int:
        """Lines on disk only: appended, not handed out, not dropped."""
        return self._unloaded_lines

    @property
    def floor(self) -> int:
        """The oldest position still held: lines ending at or before it were dropped or settled."""
        return max(self.head, self._segments[0].start if self._segments else self.head)

    def append(self, line: bytes, *, keep_loaded: bool) -> int | None:
        """Append one line durably (see the module docstring); its end position, or None when
        the disk refused it (logged once per episode, counted as dropped). `keep_loaded`: the
        caller holds the line in RAM, so `loaded` moves past it; allowed only when nothing is
        waiting on disk (`loaded == tail`)."""
        return self._write(record(line), 1, keep_loaded)

    def append_many(self, lines: Sequence[bytes], *, keep_loaded: bool) -> list[int | None]:
        """Append `lines` in order, as durably as `append` (each is with the kernel when this
        returns), with one write(2) per segment they fill instead of one per line: a cycle's
        `device_state` points at 100,000 devices are 100,000 system calls otherwise; at most
        WRITE_BYTES a write, the records made as they are written. Returns each
        line's end position, None for the lines of a write the disk refused (counted as dropped,
        as `append` does). `keep_loaded` as in `append`."""
        ends: list[int | None] = []
        records = map(record, lines)  # made as they are written: never a copy of all the lines at once
        pending = next(records, None)
        while pending is not None:
            # As many records as the current segment has room for (at least one: a record that
            # does not fit starts the next segment in _make_room, as `append` does), at most
            # WRITE_BYTES (a cycle's lines at 100,000 devices are ~20 MB of records).
            room = min(WRITE_BYTES, self.segment_bytes - (self._segments[-1].size if self._segments else 0))
            chunk, size = [pending], len(pending)
            pending = next(records, None)
            while pending is not None and size + len(pending) <= room:
                chunk.append(pending)
                size += len(pending)
                pending = next(records, None)
            end = self._write(b"".join(chunk), len(chunk), keep_loaded)
            if end is None:
                ends.extend([None] * len(chunk))
            else:
                position = end - size
                for rec in chunk:
                    position += len(rec)
                    ends.append(position)
        return ends

    def _write(self, data: bytes, count: int, keep_loaded: bool) -> int | None:
        """One write(2) of `count` whole records; the end position, or None (all `count` dropped)."""
        assert self._fd is not None, "the spool is not open"
        try:
            self._make_room(len(data))
            written = os.write(self._fd, data)
            if written != len(data):  # a full disk: do not leave half a record behind
                raise OSError(28, "short write (disk full?)")
        except OSError as exc:
            self._undo_partial_write(exc, count)
            return None
        if self._append_failed:
            self._append_failed = False
            log.info("metrics spool %s: the disk works again", self.directory)
        seg = self._segments[-1]
        seg.size += len(data)
        self._dirty = True
        if keep_loaded:
            assert self.loaded == seg.end - len(data), "lines wait on disk: they must be loaded first"
            self.loaded = seg.end
        else:
            self._unloaded_lines += count
        return seg.end

    def _undo_partial_write(self, exc: OSError, count: int) -> None:
        try:
            os.ftruncate(self._fd, self._segments[-1].size)  # type: ignore[arg-type]
        except OSError:
            pass  # the CRC check catches the fragment when it is read
        self._dropped += count
        self._trouble("cannot append: points are lost until it works again", exc)

    def _make_room(self, needed: int) -> None:
        """Start a new segment when the last one is full; delete the oldest ones while the spool
        would exceed max_bytes, counting their unsettled lines."""
        if self._segments and self._segments[-1].size + needed > self.segment_bytes and self._segments[-1].size:
            self._new_segment(self._segments[-1].end)
        while self.size_bytes + needed > self.max_bytes and len(self._segments) > 1:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        seg = self._segments.pop(0)
        # Lines still in the caller's RAM (head … loaded) are the caller's to count.
        start = max(self.loaded, self.head, seg.start)
        if start < seg.end:
            lost = self._count_in(seg, start)
            self._dropped += lost
            self._unloaded_lines -= lost
        self.loaded = max(self.loaded, seg.end)
        self.head = max(self.head, seg.end)
        seg.path.unlink(missing_ok=True)

    @staticmethod
    def _count_in(seg: _Segment, start: int) -> int:
        with seg.path.open("rb") as f:
            f.seek(start - seg.start)
            return f.read().count(b"\n")

    def _new_segment(self, start: int) -> None:
        """Append to a new segment from `start` on; raises OSError, the old one still in use."""
        path = self.directory / f"{start:020d}.seg"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
        self._fd = fd
        self._segments.append(_Segment(start, os.fstat(fd).st_size, path))
        _fsync_dir(self.directory)

    def take_dropped(self) -> int:
        """Lines lost (full spool, refused append) since the last call."""
        dropped, self._dropped = self._dropped, 0
        return dropped

    @property
    def corrupt_records(self) -> int:
        """Damaged records skipped since `open` (torn tails included)."""
        return self._corrupt

    def sync(self) -> None:
        """fdatasync the last segment if anything was appended since the last sync. A failure is
        logged (once) and retried at the next call: it must not stop the metrics."""
        if self._dirty and self._fd is not None:
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                self._trouble("cannot sync", exc)
                return
            self._dirty = False

    # -- reading, settling ------------------------------------------------------------------------

    def load(self, max_lines: int) -> list[tuple[bytes, int]]:
        """Hand out up to `max_lines` lines from `loaded` on, in order, each with its end position;
        damaged records are skipped with a located warning."""
        out: list[tuple[bytes, int]] = []
        for seg in self._segments:
            if len(out) >= max_lines:
                break
            if seg.end <= self.loaded:
                continue
            self.loaded = max(self.loaded, seg.start)
            try:
                self._load_from(seg, max_lines - len(out), out)
            except OSError as exc:  # unreadable: skip the rest of it, count what is left
                log.error("metrics spool %s unreadable from byte %d (%s): skipped", seg.path, self.loaded - seg.start, exc)
                self._corrupt += 1
                self.loaded = seg.end
                try:
                    self._unloaded_lines = self._count_lines(self.loaded)
                except OSError:
                    self._unloaded_lines = 0
        if self.loaded >= self.tail:
            self._unloaded_lines = 0  # whatever the count said: nothing is left to load
        return out

    def _load_from(self, seg: _Segment, max_lines: int, out: list[tuple[bytes, int]]) -> None:
        taken = 0
        with seg.path.open("rb") as f:
            while taken < max_lines and self.loaded < seg.end:
                f.seek(self.loaded - seg.start)
                data = f.read(min(_READ_CHUNK, seg.end - self.loaded))
                pos = 0
                while taken < max_lines:
                    nl = data.find(b"\n", pos)
                    if nl < 0:
                        break
                    line = _checked(data[pos:nl])
                    if line is None:
                        self._skip(seg, self.loaded + pos, nl - pos + 1)
                    else:
                        out.append((line, self.loaded + nl + 1))
                        taken += 1
                    self._unloaded_lines -= 1
                    pos = nl + 1
                if pos == 0 and len(data) == seg.end - self.loaded:
                    # The segment ends without a newline (damage that is not a torn tail).
                    self._skip(seg, self.loaded, len(data))
                    pos = len(data)
                elif pos == 0:  # one record longer than a chunk: no line is that long
                    self._skip(seg, self.loaded, len(data))
                    pos = len(data)
                self.loaded += pos

    def _skip(self, seg: _Segment, position: int, length: int) -> None:
        self._corrupt += 1
        log.warning(
            "metrics spool %s: damaged record at byte %d (%d bytes): skipped, the rest is replayed",
            seg.path, position - seg.start, length,
        )

    def ack(self, position: int) -> None:
        """Lines ending at or before `position` are settled: never replay them. Deletes the
        segments wholly settled (not the last one) and records the position in the cursor."""
        if position <= self.head:
            return
        self.head = position
        try:
            while len(self._segments) > 1 and self._segments[0].end <= self.head:
                self._segments.pop(0).path.unlink(missing_ok=True)
            tmp = self.directory / (_CURSOR + ".tmp")
            tmp.write_bytes(b"%d\n" % self.head)
            os.replace(tmp, self.directory / _CURSOR)
        except OSError as exc:  # a stale cursor only makes lines be sent twice (stored once)
            self._trouble("cannot record what InfluxDB took", exc)

    def _trouble(self, what: str, exc: OSError) -> None:
        """Disk trouble after open: one error line per episode (cleared by the next good append)."""
        if not self._append_failed:
            self._append_failed = True
            log.error("metrics spool %s: %s (%s)", self.directory, what, exc)

    def close(self) -> None:
        """Sync and close; what is not settled stays for the next `open`."""
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


def _checked(rec: bytes) -> bytes | None:
    """The line of one record (without its newline), or None when it is damaged."""
    if len(rec) < _OVERHEAD - 1 or rec[8:9] != b" ":
        return None
    try:
        crc = int(rec[:8], 16)
    except ValueError:
        return None
    line = rec[9:]
    return line if zlib.crc32(line) == crc else None


def _fsync_dir(directory: Path) -> None:
    """Make a created or renamed file's name durable (POSIX: fsync of the directory)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

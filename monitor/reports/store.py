"""The reports directory (config `reports.directory`): report files, their retention
(`keep_days`) and the record of which scheduled periods were made.

File names: `<type>_<period label>.<format>`, e.g. `daily_2026-12-03.pdf`,
`weekly_2026-W49.xlsx`, `quarterly_2026Q4.pdf`; characters other than letters, digits and
`.-_` in a label (a custom period "2026-12-01 08:00..2026-12-02 08:00") become `-`. Making the
same report again replaces its file.

Writes are atomic (a temporary file in the directory, fsync, rename), so a reader never sees
half a report and a failed write leaves the previous file. `runs.json` in the same directory
records, per report type, the latest scheduled period made (schedule.due's `last_runs`); it is
never pruned, so retention cannot make the schedule redo a report.

Errors: `StoreError`, whose message names the path and the operating system's reason (a
directory that cannot be made or written, a full disk).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from monitor.reports.document import REPORT_TYPES

FORMATS = ("pdf", "xlsx")
RUNS_FILE = "runs.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NAME = re.compile(r"(?P<type>[a-z-]+)_(?P<label>[A-Za-z0-9._-]+)\.(?P<fmt>pdf|xlsx)")


class StoreError(OSError):
    """A report file or the runs record could not be written or read; the message names the
    path."""


@dataclass(frozen=True, slots=True)
class StoredReport:
    """A report file in the directory: its path, type, period label (as in the file name),
    format, size in bytes and modification time (UTC ns)."""

    path: Path
    report: str
    label: str
    format: str
    size: int
    mtime_ns: int


def file_name(report: str, label: str, fmt: str) -> str:
    """`<type>_<label>.<fmt>`, the label made safe for file names. ValueError for an unknown
    type or format, or an empty label."""
    if report not in REPORT_TYPES:
        raise ValueError(f"unknown report type {report!r} (one of {', '.join(REPORT_TYPES)})")
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r} (one of {', '.join(FORMATS)})")
    safe = _UNSAFE.sub("-", label).strip("-.")
    if not safe:
        raise ValueError(f"period label {label!r} gives no file name")
    return f"{report}_{safe}.{fmt}"


class ReportStore:
    """The reports directory. Nothing touches the disk until a method is called; `save` makes
    the directory when it is missing."""

    def __init__(self, directory: Path, keep_days: int) -> None:
        self.directory = Path(directory)
        self.keep_days = keep_days

    def save(self, report: str, label: str, fmt: str, data: bytes) -> Path:
        """Write a report file atomically and return its path. Raises StoreError naming the
        path when the directory cannot be made or written."""
        path = self.directory / file_name(report, label, fmt)
        _write_atomic(path, data)
        return path

    def files(self) -> list[StoredReport]:
        """The report files in the directory, newest first (by modification time); other
        files are ignored. [] when the directory does not exist."""
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot list the reports directory {self.directory}: {exc.strerror}") from None
        found = []
        for entry in entries:
            m = _NAME.fullmatch(entry.name)
            if m is None or m["type"] not in REPORT_TYPES or not entry.is_file(follow_symlinks=False):
                continue
            st = entry.stat(follow_symlinks=False)
            found.append(StoredReport(Path(entry.path), m["type"], m["label"], m["fmt"], st.st_size, st.st_mtime_ns))
        return sorted(found, key=lambda f: f.mtime_ns, reverse=True)

    def prune(self, now_ns: int | None = None) -> list[Path]:
        """Delete report files written more than `keep_days` before `now_ns` (default: now);
        return what was deleted. runs.json and other files stay. A file that cannot be deleted
        raises StoreError naming it (those deleted before it stay deleted)."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        cutoff = now_ns - self.keep_days * 86_400 * 1_000_000_000
        removed = []
        for f in self.files():
            if f.mtime_ns < cutoff:
                try:
                    f.path.unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise StoreError(f"cannot delete old report {f.path}: {exc.strerror}") from None
                removed.append(f.path)
        return removed

    # -- what the schedule made --------------------------------------------------------------

    def last_runs(self) -> dict[str, str]:
        """Report type → label of the latest scheduled period made ({} before the first).
        Raises StoreError when runs.json exists but cannot be read or is not such a mapping."""
        path = self.directory / RUNS_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None
        except ValueError:
            raise StoreError(f"{path} is not JSON: delete it to let the schedule start afresh") from None
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise StoreError(f"{path} is not a mapping of report type to period label")
        return data

    def mark_done(self, report: str, label: str) -> None:
        """Record that the scheduled `report` of period `label` was made. Raises StoreError."""
        if report not in REPORT_TYPES:
            raise ValueError(f"unknown report type {report!r}")
        runs = self.last_runs() | {report: label}
        _write_atomic(self.directory / RUNS_FILE, json.dumps(runs, ensure_ascii=False, indent=1).encode("utf-8"))


def _write_atomic(path: Path, data: bytes) -> None:
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot make the reports directory {directory}: {exc.strerror}") from None
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass

"""Online backup of the state database, safe while the daemon writes (`fleetmon backup`).

SQLite's backup API (sqlite3.Connection.backup, https://www.sqlite.org/backup.html) copies the
database in one step, inside one read transaction: in WAL mode (monitor.state.db) the daemon's
writer is never blocked and the copy is the database as of one commit, never a torn mix. The
copy is written beside its final name, switched to a self-contained rollback journal (no -wal
file to carry along), checked with PRAGMA integrity_check, synced, and only then renamed into
place; then all but the newest `keep` backups are deleted.

Restore: docs/OPERATIONS.md "Backup and restore".
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


class BackupError(RuntimeError):
    """The backup could not be made; the message names the file and why. Nothing was deleted."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    """`path`: the new backup; `size`: its bytes; `deleted`: older backups removed (oldest
    first)."""

    path: Path
    size: int
    deleted: tuple[Path, ...]


def backup_name(database: Path, at: datetime) -> str:
    """"<stem>-YYYYmmddTHHMMSS.ffffffZ.db" (UTC): names sort as the backups' times."""
    return f"{database.stem}-{at.astimezone(timezone.utc):%Y%m%dT%H%M%S.%fZ}.db"


def backups(database: Path, directory: Path) -> list[Path]:
    """The backups of `database` in `directory`, oldest first."""
    pattern = re.compile(re.escape(database.stem) + r"-\d{8}T\d{6}\.\d{6}Z\.db")
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if pattern.fullmatch(p.name) and p.is_file())


def backup(database: Path, directory: Path, *, keep: int, now: datetime | None = None) -> BackupResult:
    """Copy `database` into `directory` (created if missing) as backup_name(database, now),
    then delete all but the newest `keep` (≥ 1) backups. Raises BackupError (the database
    missing or unreadable, the copy failing its integrity check, the disk full …) and then
    deletes nothing."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    if not database.is_file():
        raise BackupError(f"{database}: no such database file")
    at = now or datetime.now(timezone.utc)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"{directory}: {exc.strerror or exc}") from exc
    final = directory / backup_name(database, at)
    partial = final.with_name(final.name + ".partial")
    try:
        _copy(database, partial)
        size = partial.stat().st_size
        os.replace(partial, final)
        _fsync_dir(directory)
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup of {database} to {final} failed: {exc}") from exc
    except BackupError:
        partial.unlink(missing_ok=True)
        raise
    old = backups(database, directory)[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
    return BackupResult(final, size, tuple(old))


def _copy(database: Path, target: Path) -> None:
    # mode=rw: a missing database is an error, not an empty new one.
    source = sqlite3.connect(f"file:{database}?mode=rw", uri=True, timeout=30)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)  # all pages in one step: one read transaction, never restarted
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            (verdict,) = copy.execute("PRAGMA integrity_check").fetchone()
            if verdict != "ok":
                raise BackupError(f"{target}: the copy fails its integrity check: {verdict}")
        finally:
            copy.close()
    finally:
        source.close()
    with target.open("rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""`fleetmon backup`: online backups of the state database while a writer is active (SQLite's
backup API), each a consistent, self-contained, intact copy; retention deletes exactly the
oldest; a failed backup deletes nothing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitor.state.backup import BackupError, backup, backup_name, backups

BATCH = 50  # rows per writer transaction
WRITER = f"""
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA busy_timeout=5000")
conn.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, payload BLOB)")
n, deadline = 0, time.monotonic() + 60
while time.monotonic() < deadline and n < 2_000_000:
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t VALUES (?, randomblob(200))", [(n + i,) for i in range({BATCH})])
    conn.execute("COMMIT")
    n += {BATCH}
    time.sleep(0.001)  # a busy daemon, not a bulk load: keeps the file small
"""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.app.cli", "backup", *args],
                          capture_output=True, text=True, timeout=60)


def _rows(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        conn.close()


def test_backups_while_a_writer_commits_are_consistent_and_retention_keeps_the_newest(tmp_path):
    db = tmp_path / "state.db"
    config = tmp_path / "config.yaml"
    config.write_text("state:\n  database: state.db\n")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db)])
    try:
        deadline = time.monotonic() + 20
        while not (db.exists() and _rows_safe(db) >= 5000):
            assert time.monotonic() < deadline and writer.poll() is None
            time.sleep(0.05)
        made, deleted, counts = [], [], []
        for n in range(5):
            if n < 4:
                done = backup(db, tmp_path / "backups", keep=3)
                made.append(done.path)
                deleted += done.deleted
            else:  # the command, as the systemd timer runs it
                result = _cli("--config", str(config), "--keep", "3")
                assert result.returncode == 0, result.stderr
                lines = result.stdout.splitlines()
                made.append(Path(lines[0].split(" (")[0]))
                deleted += [Path(line.removeprefix("deleted ")) for line in lines[1:]]
            conn = sqlite3.connect(made[-1])
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # no -wal to carry
            count, top = conn.execute("SELECT count(*), max(n) FROM t").fetchone()
            conn.close()
            # One commit's state: whole transactions only, nothing missing in between.
            assert count % BATCH == 0 and top == count - 1
            counts.append(count)
        assert writer.poll() is None, "the writer was not active throughout"
    finally:
        writer.kill()
        writer.wait()
    assert counts == sorted(counts) and counts[-1] > counts[0]  # the writer went on meanwhile
    assert made == sorted(made) and deleted == made[:2]
    assert backups(db, tmp_path / "backups") == made[2:]
    assert not list((tmp_path / "backups").glob("*.partial"))


def _rows_safe(db: Path) -> int:
    try:
        return _rows(db)
    except sqlite3.Error:
        return 0


def test_retention_deletes_exactly_the_oldest_and_leaves_other_files(tmp_path):
    db = tmp_path / "state.db"
    sqlite3.connect(db).execute("CREATE TABLE t (n)").connection.close()
    out = tmp_path / "b"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "state-manual.db").write_text("a copy someone made")
    (out / "other-20260101T000000.000000Z.db").write_text("another database's backup")
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    # Made out of order: retention goes by the time in the name, not by the order of making.
    times = [t0 + timedelta(days=d) for d in (3, 0, 4, 1, 2)]
    for at in times:
        backup(db, out, keep=10, now=at)
    result = backup(db, out, keep=2, now=t0 + timedelta(days=5))
    expected_gone = [out / backup_name(db, t0 + timedelta(days=d)) for d in (0, 1, 2, 3)]
    assert list(result.deleted) == expected_gone
    assert backups(db, out) == [out / backup_name(db, t0 + timedelta(days=d)) for d in (4, 5)]
    assert {p.name for p in out.iterdir()} >= {"notes.txt", "state-manual.db", "other-20260101T000000.000000Z.db"}


def test_a_failed_backup_deletes_nothing_and_says_why(tmp_path):
    db = tmp_path / "state.db"
    sqlite3.connect(db).execute("CREATE TABLE t (n)").connection.close()
    out = tmp_path / "b"
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    for d in range(3):
        backup(db, out, keep=5, now=t0 + timedelta(days=d))
    db.write_bytes(b"not a database" * 100)
    with pytest.raises(BackupError, match="state.db"):
        backup(db, out, keep=1, now=t0 + timedelta(days=9))
    assert len(backups(db, out)) == 3 and not list(out.glob("*.partial"))

    config = tmp_path / "config.yaml"
    config.write_text("state:\n  database: missing.db\n")
    result = _cli("--config", str(config), "--keep", "1", "--dir", str(out))
    assert result.returncode == 1 and "missing.db: no such database file" in result.stderr
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(ValueError):
        backup(db, out, keep=0)

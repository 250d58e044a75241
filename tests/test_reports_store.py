"""The reports directory (monitor/reports/store.py): file names by type and period, atomic writes,
retention by age, the record of scheduled runs, and clear errors naming the path when the
directory cannot be written."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from monitor.reports.store import ReportStore, StoreError, file_name

NS = 1_000_000_000
DAY_NS = 86_400 * NS
PDF = b"%PDF-1.7 a report"


@pytest.mark.parametrize(
    "report, label, fmt, name",
    [
        ("daily", "2026-12-03", "pdf", "daily_2026-12-03.pdf"),
        ("weekly", "2026-W49", "xlsx", "weekly_2026-W49.xlsx"),
        ("quarterly", "2026Q4", "pdf", "quarterly_2026Q4.pdf"),
        ("half-year", "2026H2", "xlsx", "half-year_2026H2.xlsx"),
        ("monthly", "2026-12-01 08:00..2026-12-02 08:00", "pdf", "monthly_2026-12-01-08-00..2026-12-02-08-00.pdf"),
        ("annual", "../../etc/passwd", "pdf", "annual_etc-passwd.pdf"),
    ],
)
def test_file_names_carry_type_and_period_and_stay_in_the_directory(report, label, fmt, name, tmp_path):
    assert file_name(report, label, fmt) == name
    path = ReportStore(tmp_path, 30).save(report, label, fmt, PDF)
    assert path.parent == tmp_path and path.name == name and path.read_bytes() == PDF


@pytest.mark.parametrize(
    "args, message",
    [
        (("hourly", "2026-12-03", "pdf"), "unknown report type 'hourly'"),
        (("daily", "2026-12-03", "docx"), "unknown report format 'docx'"),
        (("daily", " :/ ", "pdf"), "gives no file name"),
    ],
)
def test_bad_names_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        file_name(*args)


def test_saving_again_replaces_the_file_and_leaves_no_temporary_files(tmp_path):
    store = ReportStore(tmp_path / "reports", 30)  # made on first save
    store.save("daily", "2026-12-03", "pdf", b"first version")
    path = store.save("daily", "2026-12-03", "pdf", b"second version")
    assert path.read_bytes() == b"second version"
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["daily_2026-12-03.pdf"]
    [stored] = store.files()
    assert (stored.report, stored.label, stored.format, stored.size) == ("daily", "2026-12-03", "pdf", 14)


def test_retention_deletes_only_report_files_older_than_keep_days(tmp_path):
    store = ReportStore(tmp_path, keep_days=30)
    now = time.time_ns()
    old = store.save("daily", "2026-10-01", "pdf", PDF)
    young = store.save("daily", "2026-12-01", "pdf", PDF)
    os.utime(old, ns=(now - 31 * DAY_NS, now - 31 * DAY_NS))
    os.utime(young, ns=(now - 29 * DAY_NS, now - 29 * DAY_NS))
    other = tmp_path / "notes.txt"
    other.write_text("not a report")
    os.utime(other, ns=(now - 400 * DAY_NS, now - 400 * DAY_NS))
    store.mark_done("daily", "2026-10-01")
    os.utime(tmp_path / "runs.json", ns=(now - 400 * DAY_NS, now - 400 * DAY_NS))
    assert store.prune(now) == [old]
    assert not old.exists() and young.exists() and other.exists()
    assert store.last_runs() == {"daily": "2026-10-01"}  # the record of runs is never pruned


def test_the_record_of_runs_keeps_the_latest_period_per_type(tmp_path):
    store = ReportStore(tmp_path, 30)
    assert store.last_runs() == {}
    store.mark_done("daily", "2026-12-02")
    store.mark_done("monthly", "2026-11")
    store.mark_done("daily", "2026-12-03")
    assert store.last_runs() == {"daily": "2026-12-03", "monthly": "2026-11"}
    with pytest.raises(ValueError, match="unknown report type 'hourly'"):
        store.mark_done("hourly", "2026-12-03")


@pytest.mark.parametrize(
    "content, message", [("{not json", "is not JSON: delete it"), ('["daily"]', "is not a mapping of report type")]
)
def test_a_damaged_record_of_runs_is_a_clear_error(tmp_path, content, message):
    (tmp_path / "runs.json").write_text(content)
    with pytest.raises(StoreError, match=message) as info:
        ReportStore(tmp_path, 30).last_runs()
    assert str(tmp_path / "runs.json") in str(info.value)


def test_a_directory_that_cannot_be_made_is_named_in_the_error(tmp_path):
    blocker = tmp_path / "reports"
    blocker.write_text("a file where the directory should be")
    store = ReportStore(blocker / "daily", 30)
    with pytest.raises(StoreError) as info:
        store.save("daily", "2026-12-03", "pdf", PDF)
    assert str(info.value) == f"cannot make the reports directory {blocker / 'daily'}: Not a directory"
    assert blocker.read_text() == "a file where the directory should be"  # nothing changed


def read_only_directory(tmp_path: Path) -> Path:
    """A directory this process cannot write to: chmod for a normal user; for root, who ignores
    modes, a directory of sysfs (read-only for everybody)."""
    if os.geteuid() != 0:
        path = tmp_path / "locked"
        path.mkdir()
        path.chmod(0o500)
        return path
    path = Path("/sys/kernel")
    if not path.is_dir() or os.access(path, os.W_OK) and _writable(path):
        pytest.skip("no read-only directory to test with")
    return path


def _writable(path: Path) -> bool:
    try:
        (path / ".fleetmon-probe").touch()
    except OSError:
        return False
    (path / ".fleetmon-probe").unlink()
    return True


def test_a_directory_that_cannot_be_written_is_named_in_the_error(tmp_path):
    directory = read_only_directory(tmp_path)
    before = sorted(os.listdir(directory))
    store = ReportStore(directory, 30)
    with pytest.raises(StoreError) as info:
        store.save("daily", "2026-12-03", "pdf", PDF)
    assert str(info.value).startswith(f"cannot write {directory / 'daily_2026-12-03.pdf'}: ")
    assert "Permission denied" in str(info.value)
    assert sorted(os.listdir(directory)) == before
    with pytest.raises(StoreError, match=f"cannot write {directory / 'runs.json'}"):
        store.mark_done("daily", "2026-12-03")

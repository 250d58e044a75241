"""A report document rendered to file bytes: in this process (`render`), or in a child process
(`render_isolated`) so that a long PDF neither stalls the daemon's event loop nor leaves its
memory in the daemon (WeasyPrint holds about 0.1 MB per table row while it lays out; see
pdf.py).

The child is `python -m monitor.reports.render FORMAT PDF_MAX_ROWS`, with the report as JSON on
stdin and the file on stdout; it imports the same fleetmon code as its parent (the parent's
import path is passed on), and nothing else of the parent's state.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import monitor
from monitor.reports.document import Report

FORMATS = ("pdf", "xlsx")
_ERR_TAIL = 2000  # characters of a failed child's stderr kept in the error


class RenderError(RuntimeError):
    """Rendering in the child process failed; the message carries the child's last error line."""


def render(report: Report, fmt: str, *, pdf_max_rows: int | None = None) -> bytes:
    """The report as `fmt` ("pdf" | "xlsx") bytes, in this process. ValueError for another
    format; the renderers' own errors (ReportError, charts.FontMissing) as they are."""
    if fmt == "xlsx":
        from monitor.reports.xlsx import render_xlsx

        return render_xlsx(report)
    if fmt == "pdf":
        # Loaded here: WeasyPrint and matplotlib cost a second and tens of MB at import.
        from monitor.reports.pdf import render_pdf

        return render_pdf(report, max_rows=pdf_max_rows)
    raise ValueError(f"unknown report format {fmt!r} (one of {', '.join(FORMATS)})")


async def render_isolated(
    report: Report, formats: Sequence[str], *, pdf_max_rows: int | None = None, timeout_s: float = 900.0
) -> dict[str, bytes]:
    """Each format rendered by a child process of its own, the children side by side; format →
    bytes. Raises RenderError when a child fails or takes longer than `timeout_s` (it is then
    killed; so is the other child when the caller is cancelled), ValueError for an unknown
    format."""
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown report format {fmt!r} (one of {', '.join(FORMATS)})")
    payload = report.to_json().encode("utf-8")
    # The formats side by side: the XLSX is done while the PDF is still being laid out.
    done = await asyncio.gather(*(_child(report, fmt, payload, pdf_max_rows, timeout_s) for fmt in formats),
                                return_exceptions=True)
    for result in done:
        if isinstance(result, BaseException):
            raise result
    return dict(zip(formats, done))  # type: ignore[arg-type]


async def _child(report: Report, fmt: str, payload: bytes, pdf_max_rows: int | None, timeout_s: float) -> bytes:
    """One format rendered by a child process. Raises RenderError."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.reports.render",
        fmt,
        str(pdf_max_rows or 0),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_child_env(),
    )
    try:
        data, err = await asyncio.wait_for(proc.communicate(payload), timeout_s)
    except (TimeoutError, asyncio.CancelledError) as exc:
        proc.kill()
        await proc.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise RenderError(f"rendering the {fmt} of {report.kind} {report.period.label} took over {timeout_s:g} s") from None
    if proc.returncode != 0:
        lines = err.decode("utf-8", "replace")[-_ERR_TAIL:].strip().splitlines() or ["(no message)"]
        raise RenderError(
            f"rendering the {fmt} of {report.kind} {report.period.label} failed (exit {proc.returncode}): {lines[-1]}"
        )
    return data


def _child_env() -> dict[str, str]:
    """The environment with this process's fleetmon first on PYTHONPATH, so that the child
    imports the same code (a source tree, not another installed copy)."""
    root = str(Path(monitor.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    return os.environ | {"PYTHONPATH": os.pathsep.join([root] + ([path] if path else []))}


def _main(argv: list[str]) -> int:
    fmt, max_rows = argv[0], int(argv[1])
    report = Report.from_json(sys.stdin.buffer.read().decode("utf-8"))
    data = render(report, fmt, pdf_max_rows=max_rows or None)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

"""docs/CLI.md is every command's --help as the code prints it."""

from pathlib import Path

from monitor.app.cli_help import COMMANDS, render

DOC = Path(__file__).resolve().parents[1] / "docs" / "CLI.md"


def test_the_cli_document_equals_a_fresh_rendering(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    text = render()
    assert text.count("usage: fleetmon") == len(COMMANDS)
    assert DOC.read_text(encoding="utf-8") == text, "stale: python -m monitor.app.cli_help > docs/CLI.md"

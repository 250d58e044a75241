"""docs/SCHEMA.md is the InfluxDB schema as generated from monitor/metrics/schema.py (the probes'
declared measurements and the daemon's derived series): the fast lane catches a stale copy, so
adding a probe or a field is not done until `python -m monitor.metrics.schema > docs/SCHEMA.md`."""

from pathlib import Path

from monitor.metrics.schema import MEASUREMENTS, render_markdown

DOC = Path(__file__).resolve().parent.parent / "docs" / "SCHEMA.md"


def test_schema_doc_is_generated_from_the_code():
    assert DOC.read_text(encoding="utf-8") == render_markdown(), (
        "docs/SCHEMA.md is stale: run `python -m monitor.metrics.schema > docs/SCHEMA.md`"
    )


def test_every_declared_measurement_is_in_the_doc():
    text = DOC.read_text(encoding="utf-8")
    assert all(f"`{name}`" in text or f"## {name}" in text for name in MEASUREMENTS)

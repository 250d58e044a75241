"""Real devices through the real SNMP probe: one row per recorded walk of a real unit (UPS of
every supported brand, precision AC, sensors, PDU, bridge, switches; lab/realwalks.py), served
by snmpsim on 127.0.0.1 and polled twice by SnmpProbe (device profiles' tables come from the
second poll on): brand and model, the MIBs that answered, the values stored, the values refused
and why.

`python -m bench snmp_devices` (the walks in shared/snmpwalks beside the checkout, or
FLEETMON_SNMPWALKS). Prints; asserts nothing (tests/test_snmp_realwalks.py does).
"""

from __future__ import annotations

import asyncio
import sys
import textwrap


def table(polled: list) -> str:
    header = ["walk", "brand and model", "ok", "MIBs found", "stored", "refused (why)"]
    rows = []
    for p in polled:
        key = {s.measurement: dict(s.fields) for s in reversed(p.result.series) if not s.tags}
        ups = key.get("ups", {})
        note = ""
        if ups:
            note = (f" [{'ON BATTERY' if ups.get('on_battery') else 'mains'}, in "
                    f"{ups.get('input_voltage_v', '?')} V {ups.get('input_frequency_hz', '?')} Hz, "
                    f"{ups.get('minutes_remaining', '?')} min, {ups.get('charge_pct', '?')} %]")
        refused = "; ".join(p.refused) or "—"
        rows.append([p.walk.stem, f"{p.walk.brand} {p.walk.model}", "yes" if p.result.ok else "NO",
                     ", ".join(p.mibs) or "—", f"{p.stored}{note}", refused])
    widths = [min(max(len(r[i]) for r in [header, *rows]), w) for i, w in enumerate([26, 34, 3, 46, 60, 200])]
    lines = []
    for i, r in enumerate([header, *rows]):
        cells = [textwrap.shorten(c, w, placeholder="…") if j < 5 else c for j, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from lab.realwalks import poll_walks, walks_dir

    directory = walks_dir()
    if directory is None:
        print("snmp_devices: no walks (shared/snmpwalks beside the checkout, or FLEETMON_SNMPWALKS): see "
              "lab/realwalks.py", file=sys.stderr)
        return 2
    polled = asyncio.run(poll_walks(directory))
    print(f"Real walks ({len(polled)}) from {directory}, each polled twice by SnmpProbe (second poll shown)")
    print(table(polled), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

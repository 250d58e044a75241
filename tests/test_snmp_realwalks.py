"""Real devices through the real probe: recorded walks of real units (lab/realwalks.py; UPS of
every supported brand, precision AC, sensors, PDU, bridge, switches) served by snmpsim and polled
by SnmpProbe. The expected values are the recorded raw values in fleetmon's units, worked out by
hand from each vendor's MIB (tenths, centihertz, TimeTicks, seconds, sentinels).

The walks are data kept outside the repository (shared/snmpwalks beside the checkout, or
FLEETMON_SNMPWALKS): without them these tests skip, saying where they were looked for.
"""

from __future__ import annotations

from typing import Any

import pytest

from lab.realwalks import WALKS, check, poll_walks, walks_dir

pytestmark = pytest.mark.peer

EXPECTED: dict[str, dict[str, Any]] = {
    # walk → {(measurement, tag value or None): {field: value}} and the refusals named
    "apc_smt750x-nmc2": {("ups", None): {"mibs": "PowerNet-MIB", "input_voltage_v": 119, "input_frequency_hz": 60.0,
                                         "minutes_remaining": 1829, "charge_pct": 100, "on_battery": False,
                                         "output_source": 3, "battery_voltage_v": 54.7, "battery_temp_c": 23.4}},
    "apc_sua1500rmi2u": {("ups", None): {"input_voltage_v": 239, "minutes_remaining": 66, "output_load_pct": 17,
                                         "output_voltage_v": 239.0}},
    "apc_symmetralx": {("ups", None): {"input_voltage_v": 223, "input_frequency_hz": 49.9, "minutes_remaining": 14}},
    "liebert_apm": {("ups", None): {"minutes_remaining": 74, "input_voltage_v": 229, "input_frequency_hz": 50.0,
                                    "output_frequency_hz": 49.9, "battery_temp_c": 22.0, "on_battery": False,
                                    "battery_low": False, "output_load_pct": 22}},
    "huaweiups_ups2000": {("ups", None): {"mibs": "UPS-MIB", "input_voltage_v": 233, "input_frequency_hz": 50.0,
                                          "battery_voltage_v": 270.7, "charge_pct": 100, "on_battery": False},
                          "refused": ["upsEstimatedMinutesRemaining=4294967295: sentinel (the agent's 'unknown')"],
                          "absent": ["minutes_remaining"]},
    "eatonups": {("ups", None): {"mibs": "XUPS-MIB", "minutes_remaining": 144, "input_voltage_v": 228,
                                 "battery_voltage_v": 78.0, "output_load_pct": 25, "output_source": 3}},
    "eatonupsm2_9px": {("ups", None): {"mibs": "XUPS-MIB, UPS-MIB", "minutes_remaining": 430, "input_voltage_v": 239,
                                       "input_frequency_hz": 50.1, "battery_temp_c": 26.0}},
    "poweralert_ups": {("ups", None): {"mibs": "TRIPPLITE-PRODUCTS, UPS-MIB", "input_voltage_v": 211,
                                       "battery_voltage_v": 82.1, "battery_temp_c": 22.0, "output_source": 4,
                                       "on_battery": False},
                       "refused": ["tlpUpsBatteryPackDetailTemperatureC.1.1=4294964565: 4.29496e+08 °C outside "
                                   "-20…80 °C"]},
    "deltaups_rfc1628string": {("ups", None): {"mibs": "UPS-MIB (Delta Mini-SNMP, 0.1 V), UPS-MIB",
                                               "input_voltage_v": 236, "output_voltage_v": 230.0}},
    "generex-ups_cs141": {("ups", None): {"input_voltage_v": 233, "output_source": 4, "on_battery": False}},
    "netvision-rfc": {("ups", None): {"input_voltage_v": 234, "charge_pct": 100},
                      "refused": ["upsEstimatedMinutesRemaining=65535: sentinel (the agent's 'unknown')"],
                      "absent": ["minutes_remaining"]},
    "liebert_weblbds": {("precision_ac", None): {"state": "on", "cooling": True, "general_alarm": False,
                                                 "cooling_capacity_pct": 13},
                        ("precision_ac_sensor", "supply_air"): {"temperature_c": 25.0},
                        ("precision_ac_sensor", "return_air"): {"temperature_c": 24.0, "humidity_pct": 34.0}},
    "hwg-ste2": {("environment", "Datorrum 2"): {"value": 20.3, "unit": "°C", "alarm": False},
                 "refused": ["sensUnit.1=5: not a value the profile knows"]},
    "apc_ap7900b": {("pdu_load", "1"): {"current_a": 2.8}},
    "airos_airos8": {("wireless_link", "1"): {"signal_dbm": -70, "noise_dbm": -91, "ccq_pct": 33,
                                              "tx_rate_mbps": 39.0, "rx_rate_mbps": 52.0, "airmax_capacity_pct": 0}},
    "moxa-etherdevice_edsg512e": {("switch_power", None): {"power1_present": True, "power2_present": False}},
    "vrp_5720": {("switch_health", "67108873"): {"cpu_pct": 44, "memory_pct": 9}},
    "comware_hpe5900": {("switch_health", "192"): {"cpu_pct": 5, "memory_pct": 32}},
    "ruijie_S6150": {("switch_health", "Slot 0: S6150-24VS8CQ-X"): {"cpu_pct": 0}},
}


@pytest.fixture(scope="module")
def polled() -> dict:
    directory = walks_dir()
    if directory is None:
        pytest.skip("no real walks: put them in shared/snmpwalks beside the checkout or name them in "
                    "FLEETMON_SNMPWALKS (lab/realwalks.py)")
    assert check(directory) == []
    import asyncio

    return {p.walk.stem: p for p in asyncio.run(poll_walks(directory))}


def test_every_walk_has_its_expectations() -> None:
    assert set(EXPECTED) == {w.stem for w in WALKS}


@pytest.mark.parametrize("stem", [w.stem for w in WALKS])
def test_a_real_device(polled: dict, stem: str) -> None:
    p = polled[stem]
    result = p.result
    assert result.ok, result.reason
    points: dict[tuple[str, str | None], dict] = {}
    for s in result.series:
        key = (s.measurement, next(iter(s.tags.values())) if s.tags else None)
        points.setdefault(key, {}).update(s.fields)
    expected = EXPECTED[stem]
    for key, fields in expected.items():
        if key in ("refused", "absent"):
            continue
        got = points.get(key)
        assert got is not None, f"{stem}: no point {key}; points: {sorted(points)}"
        assert {k: got.get(k) for k in fields} == fields
    assert p.refused == expected.get("refused", []), result.reason
    assert result.fields["values_refused"] == len(expected.get("refused", []))
    for name in expected.get("absent", []):
        assert name not in points[("ups", None)]

"""SNMP device profiles (probes/snmp_profile.py, probes/snmp_profiles/): the shipped profiles, the
way bad profiles are refused (located, every problem at once), the values a profile refuses, and
real agents: a UPS of every supported vendor MIB going on battery in the lab agent (snmpsim,
lab/snmp.py UPS_VENDORS), user profiles with bad objects, walks that loop or never end, and a UPS
from which no known MIB answers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api, rfc1902

from lab.snmp import UPS_VENDORS, SnmpSim, free_udp_ports
from monitor.metrics.schema import MEASUREMENTS as SCHEMA
from probes.snmp import MEASUREMENTS, SHIPPED, SnmpConfig, SnmpProbe
from probes.snmp_profile import SENTINELS, Converter, ObjectDecl, ProfileError, Refusal, load_profile
from tests.plugins.factories import device as make_device

KNOWN = {m.name: m for m in MEASUREMENTS}


def dev(kind: str = "ups", model: str | None = None):
    return make_device(f"{kind}-1", kind, name=kind, address="127.0.0.1", site="site-a", region="town-a", model=model)


# --- shipped profiles ----------------------------------------------------------------------------


def test_shipped_profiles_load_and_the_schema_knows_their_measurements() -> None:
    names = {p.name for p in SHIPPED}
    assert {"ups_rfc1628", "ups_apc_powernet", "ups_liebert", "ups_huawei", "ups_eaton_xups", "ups_tripplite",
            "liebert_precision_ac", "hwg_ste2", "apc_rack_pdu", "ubiquiti_airmax", "moxa_eds_g512e",
            "switch_cpu_huawei", "switch_cpu_h3c", "switch_cpu_ruijie"} <= names
    for profile in SHIPPED:
        for decl in profile.decl.measurements:
            assert decl.name in SCHEMA and set(decl.fields) == set(SCHEMA[decl.name].fields)
    # Every field a shipped profile writes is declared where it writes it.
    for profile in SHIPPED:
        for s in profile.decl.scalars:
            assert s.field is None or s.field in SCHEMA[profile.decl.measurement].fields, (profile.name, s.name)
        for t in profile.decl.tables:
            assert all(c.field is None or c.field in SCHEMA[t.measurement].fields for c in t.columns)


@pytest.fixture
def community(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C_LAB", "ups")


def test_profile_choice_follows_sys_object_id_and_specificity(community: None) -> None:
    probe = SnmpProbe(SnmpConfig(community_env="C_LAB"))
    ups = dev("ups")
    plan = probe.plan(ups)
    assert plan is not None and plan.ups

    def names(device, oid):
        return [p.name for p in probe.profiles_for(device, probe.plan(device), oid)]

    apc = tuple(int(x) for x in "1.3.6.1.4.1.318.1.3.27".split("."))
    assert names(ups, apc) == ["ups_apc_powernet", "ups_rfc1628"]  # the vendor's first
    assert names(ups, None) == ["ups_rfc1628"]
    assert names(dev("ups", model="UPS5000-E"), None) == ["ups_huawei", "ups_rfc1628"]  # by point-list model
    # A switch never gets UPS profiles, whatever its sysObjectID; an APC PDU gets the PDU's.
    assert names(dev("switch"), apc) == []
    pdu = tuple(int(x) for x in "1.3.6.1.4.1.318.1.3.4.5".split("."))
    assert names(dev("platform"), pdu) == ["apc_rack_pdu"]


# --- bad profiles: located errors, every problem at once --------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


GOOD = """\
profile: {name}
description: test
mib: TEST-MIB
match: {{sys_object_id: [1.3.6.1.4.1.99999]}}
measurement: ups
scalars:
{scalars}
"""


def bad(tmp_path: Path, scalars: str, name: str = "p") -> ProfileError:
    path = write(tmp_path, name, GOOD.format(name=name, scalars=scalars))
    with pytest.raises(ProfileError) as error:
        load_profile(path, KNOWN, shipped=False)
    return error.value


def test_a_mib_name_where_an_oid_belongs_is_refused_with_file_and_line(tmp_path: Path) -> None:
    error = bad(tmp_path, "  - {name: x, oid: upsBasicBatteryStatus.0, type: int, field: charge_pct}")
    assert error.messages == [
        f"{tmp_path / 'p.yaml'}:7: scalars.0.oid: 'upsBasicBatteryStatus.0' is not a numeric OID "
        "(dotted numbers; MIB names are not resolved)"]


def test_unknown_field_wrong_type_and_empty_range_are_all_reported(tmp_path: Path) -> None:
    error = bad(tmp_path, "\n".join([
        "  - {name: a, oid: 1.3.6.1.4.1.99999.1.0, type: int, field: charge_percent}",
        "  - {name: b, oid: 1.3.6.1.4.1.99999.2.0, type: text, field: input_voltage_v}",
        "  - {name: c, oid: 1.3.6.1.4.1.99999.3.0, type: int, field: on_battery}",
    ]))
    path = tmp_path / "p.yaml"
    assert error.messages == [
        f"{path}:7: scalars.0.field: ups has no field 'charge_percent' (fields: " + ", ".join(KNOWN["ups"].fields) + ")",
        f"{path}:8: scalars.1.type: ups.input_voltage_v is integer: type text needs a map to numbers",
        f"{path}:9: scalars.2.map: ups.on_battery is boolean: give a map to true/false",
    ]
    error = bad(tmp_path, "  - {name: a, oid: 1.3.6.1.4.1.99999.1.0, type: int, field: charge_pct, valid: [100, 0]}")
    assert error.messages == [f"{path}:7: scalars.0: valid range [100, 0] is empty"]


def test_a_table_naming_an_unknown_column_and_a_user_measurement_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "t", """\
profile: t
description: test
mib: TEST-MIB
match: {sys_object_id: [1.3.6.1.4.1.99999]}
measurements:
  - {name: mine, description: x, fields: {v: {type: float, description: x}}}
tables:
  - name: tbl
    measurement: environment
    tag: sensor
    tag_from: sensLabel
    columns:
      - {name: sensValue, oid: 1.3.6.1.4.1.99999.1.1.5, type: int, field: value}
""")
    with pytest.raises(ProfileError) as error:
        load_profile(path, KNOWN, shipped=False)
    assert error.value.messages == [
        f"{path}:8: tables.0: tag_from names 'sensLabel', which is no column of this table (columns: sensValue)"]
    path.write_text(path.read_text().replace("tag_from: sensLabel", "tag_from: sensValue"))
    with pytest.raises(ProfileError) as error:
        load_profile(path, KNOWN, shipped=False)
    assert error.value.messages == [
        f"{path}:5: measurements: user profiles write measurements that are already declared (the schema is a "
        "contract with the dashboards); a new measurement is a shipped profile"]


def test_config_load_refuses_a_bad_user_profile_and_names_it(tmp_path: Path, community: None) -> None:
    write(tmp_path, "p", GOOD.format(name="p", scalars="  - {name: a, oid: 1.3.6.1.4.1.99999.1.0, type: integer, "
                                                       "field: charge_pct}"))
    with pytest.raises(ValidationError) as error:
        SnmpConfig(community_env="C_LAB", profile_dirs=[tmp_path])
    text = str(error.value)
    assert "device profiles are invalid" in text and f"{tmp_path / 'p.yaml'}:7: scalars.0.type: Input should be" in text
    with pytest.raises(ValidationError, match="no such profile file or directory"):
        SnmpConfig(community_env="C_LAB", profile_dirs=[tmp_path / "missing"])


# --- values: sentinels, maps, scales, ranges --------------------------------------------------------


def conv(field: str, **decl) -> Converter:
    return Converter(ObjectDecl(name="x", oid="1.3.6.1.4.1.99999.1.0", field=field, **decl), KNOWN["ups"].fields[field])


@pytest.mark.parametrize("raw", sorted(SENTINELS))
def test_sentinels_are_absent_never_numbers(raw: int) -> None:
    refused = conv("minutes_remaining", type="int").convert(raw)
    assert isinstance(refused, Refusal) and refused.why == "sentinel (the agent's 'unknown')"


def test_scale_map_range_and_field_type() -> None:
    assert conv("input_voltage_v", type="int", scale=0.1, valid=[0, 500]).convert(2369) == 237  # integer field
    assert conv("output_voltage_v", type="int", scale=0.1).convert(2101) == 210.1  # float, no binary noise
    assert conv("minutes_remaining", type="ticks", scale="1/6000").convert(270_000) == 45
    assert conv("input_frequency_hz", type="int", scale=0.01).convert(5002) == 50.02  # centihertz
    refused = conv("input_voltage_v", type="int", valid=[0, 500]).convert(2360)
    assert str(refused) == "x=2360: 2360 V outside 0…500 V"
    refused = conv("battery_temp_c", type="int", valid=[-20, 80]).convert(-273)
    assert str(refused) == "x=-273: -273 °C outside -20…80 °C"
    source = conv("output_source", type="int", map={2: 3, 3: 5})
    assert source.convert(3) == 5
    assert str(source.convert(9)) == "x=9: not a value the profile knows"
    assert conv("on_battery", type="text", map={"Active Event": True}).convert("Active Event") is True
    assert isinstance(conv("battery_temp_c", type="int", sentinels=[255]).convert(255), Refusal)


# --- the lab's UPS of every vendor MIB, on battery ---------------------------------------------------

VENDORS = [v for v in UPS_VENDORS if v != "ups"]
EXPECTED_MIB = {"ups_apc": "PowerNet-MIB", "ups_liebert": "LIEBERT-GP-POWER-MIB / LIEBERT-GP-FLEXIBLE-MIB",
                "ups_huawei": "HUAWEI-UPS-MIB", "ups_eaton": "XUPS-MIB", "ups_tripplite": "TRIPPLITE-PRODUCTS"}
ENDPOINTS = 16
_ids = itertools.count()


@pytest.fixture(scope="module")
def sim() -> Iterator[SnmpSim]:
    with SnmpSim([("127.0.0.1", p) for p in free_udp_ports(ENDPOINTS)]) as agent:
        yield agent


@pytest.fixture
def port(sim: SnmpSim) -> int:
    n = next(_ids)
    assert n < ENDPOINTS, "more tests than endpoints: raise ENDPOINTS"
    return sim.endpoints[n][1]


def cfg(port: int, community: str, monkeypatch: pytest.MonkeyPatch, **extra) -> SnmpConfig:
    monkeypatch.setenv("C_VENDOR", community)
    return SnmpConfig(**{"port": port, "community_env": "C_VENDOR", "timeout_s": 1.0, "retries": 0, **extra})


def ups_of(result) -> dict:
    (fields,) = [dict(s.fields) for s in result.series if s.measurement == "ups"]
    return fields


@pytest.mark.peer
@pytest.mark.parametrize("vendor", VENDORS)
async def test_each_vendor_mib_sees_its_ups_go_on_battery(sim: SnmpSim, port: int, vendor: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    async with SnmpProbe(cfg(port, vendor, monkeypatch)) as probe:
        mains = await probe.probe(dev())
        sim.vendor_on_battery("127.0.0.1", vendor, port=port)
        battery = await probe.probe(dev())
    assert mains.ok and battery.ok, (mains.reason, battery.reason)
    before, after = ups_of(mains), ups_of(battery)
    assert before["mibs"] == after["mibs"] == EXPECTED_MIB[vendor]
    assert before["on_battery"] is False and after["on_battery"] is True
    assert after["minutes_remaining"] == 25 and after["input_voltage_v"] == 0
    assert 45 <= before["minutes_remaining"] <= 74 and 220 <= before["input_voltage_v"] <= 240
    assert 49.9 <= before["input_frequency_hz"] <= 60.0


@pytest.mark.peer
async def test_vendor_units_become_the_ups_measurement_units(sim: SnmpSim, port: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    results = {}
    for vendor in ("ups_apc", "ups_huawei", "ups_tripplite"):
        async with SnmpProbe(cfg(port, vendor, monkeypatch)) as probe:
            results[vendor] = await probe.probe(dev())
    apc, huawei, tripp = (ups_of(results[v]) for v in ("ups_apc", "ups_huawei", "ups_tripplite"))
    # APC: upsHighPrecInputLineVoltage 2369 tenths (not 2369 V), TimeTicks 270000 = 45 min, load 41.2 %.
    assert (apc["input_voltage_v"], apc["minutes_remaining"], apc["output_load_pct"]) == (237, 45, 41)
    assert (apc["output_voltage_v"], apc["battery_voltage_v"], apc["battery_temp_c"]) == (230.1, 54.7, 25.3)
    # Huawei: 0.01 Hz, 0.1 V, 0.1 %, seconds.
    assert (huawei["input_frequency_hz"], huawei["input_voltage_v"], huawei["minutes_remaining"]) == (50.02, 231, 60)
    assert (huawei["output_load_pct"], huawei["battery_voltage_v"]) == (32, 432.0)
    # Tripp Lite: the battery pack's "-273.1 °C" (4294964565) refused and named, the casing's 22.0 °C kept.
    assert tripp["battery_temp_c"] == 22.0
    assert results["ups_tripplite"].fields["values_refused"] == 1
    assert "refused tlpUpsBatteryPackDetailTemperatureC.1.1=4294964565: " in results["ups_tripplite"].reason


@pytest.mark.peer
async def test_a_ups_no_known_mib_answers_fails_its_poll(sim: SnmpSim, port: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    async with SnmpProbe(cfg(port, "switch", monkeypatch)) as probe:  # a switch's agent, as a UPS
        result = await probe.probe(dev())
    assert not result.ok and result.fields["up"] is False and "sys_uptime_s" in result.fields
    assert result.reason == "no known UPS MIB answered (profiles tried: ups_huawei, ups_rfc1628)"  # net-snmp sysObjectID
    assert not [s for s in result.series if s.measurement == "ups"]


@pytest.mark.peer
@pytest.mark.parametrize("kind", ["aircon", "sensor", "pdu"])
async def test_a_machine_room_device_no_profile_answers_fails_its_poll(sim: SnmpSim, port: int, kind: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A precision AC, sensor or PDU whose MIB no profile reads (here a switch's agent) is not a
    healthy poll: up is false and the reason says a profile is missing."""
    async with SnmpProbe(cfg(port, "switch", monkeypatch)) as probe:
        result = await probe.probe(dev(kind))
    assert not result.ok and result.fields["up"] is False and "sys_uptime_s" in result.fields
    assert result.reason == "no known device profile answered (profiles tried: none matched its sysObjectID or model)"


USER = """\
profile: apc_extra
description: user profile with mistakes an agent reveals only at run time
mib: PowerNet-MIB (user)
match: {sys_object_id: [1.3.6.1.4.1.318], kind: [ups]}
measurement: ups
scalars:
  - {name: modelAsNumber, oid: 1.3.6.1.4.1.318.1.1.1.1.1.1.0, type: int, field: alarms_present}
  - {name: tenthsAsCount, oid: 1.3.6.1.4.1.318.1.1.1.3.3.1.0, type: int, field: alarms_present, valid: [0, 1000]}
"""


@pytest.mark.peer
async def test_user_profile_wrong_type_and_out_of_range_keep_the_rest(sim: SnmpSim, port: int, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "apc_extra.yaml").write_text(USER)
    async with SnmpProbe(cfg(port, "ups_apc", monkeypatch, profile_dirs=[tmp_path])) as probe:
        first = await probe.probe(dev())
        result = await probe.probe(dev())
    assert first.ok and result.ok
    ups = ups_of(result)
    assert ups["input_voltage_v"] == 237 and ups["on_battery"] is False  # PowerNet-MIB's profile still reads
    assert "alarms_present" not in ups
    assert "wrong type for apc_extra:modelAsNumber (OctetString)" in result.reason
    assert "refused tenthsAsCount=2369: 2369 alarms outside 0…1000 alarms" in result.reason
    assert result.fields["values_refused"] == 1


# --- walks that loop or never end: bounded, the rest of the poll kept -----------------------------------

P = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
APC_PDU = rfc1902.ObjectIdentifier((1, 3, 6, 1, 4, 1, 318, 1, 3, 4, 5))


class Agent(asyncio.DatagramProtocol):
    """An APC PDU's agent: GETs answered (sysUpTime, sysObjectID); GETBULKs of the outlet table
    answered with rows that never end (`endless`) or always row 1 again (`loop`)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.bulks = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        msg, _ = decoder.decode(data, asn1Spec=P.Message())
        request = P.apiMessage.get_pdu(msg)
        response = P.apiPDU.get_response(request)
        names = [tuple(n) for n, _ in P.apiPDU.get_varbinds(request)]
        if request.isSameTypeWith(P.GetRequestPDU()):
            values = {(1, 3, 6, 1, 2, 1, 1, 3, 0): rfc1902.TimeTicks(1000), (1, 3, 6, 1, 2, 1, 1, 2, 0): APC_PDU}
            varbinds = [(rfc1902.ObjectName(n), values.get(n, P.Integer(1))) for n in names]
        else:
            self.bulks += 1
            reps = int(P.apiBulkPDU.get_max_repetitions(request))
            varbinds = []
            for r in range(reps):
                for n in names:
                    column = n[:15]  # rPDU table columns: 1.3.6.1.4.1.318.1.1.12.{3.5,2.3}.1.1.N
                    row = (1,) if self.mode == "loop" else ((n[15] if len(n) > 15 else 0) + r + 1,)
                    value = P.OctetString(f"outlet {row[0]}") if column[-1] == 2 else P.Integer(1)
                    varbinds.append((rfc1902.ObjectName(column + row), value))
        P.apiPDU.set_varbinds(response, varbinds)
        P.apiMessage.set_pdu(msg, response)
        self.transport.sendto(encoder.encode(msg), addr)


@pytest.mark.parametrize(("mode", "says"), [("endless", "stopped at max_rows 50"),
                                            ("loop", "agent returned non-increasing OIDs")])
async def test_profile_walks_that_loop_or_never_end_are_bounded(mode: str, says: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    transport, agent = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: Agent(mode), local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        async with SnmpProbe(cfg(port, "pdu", monkeypatch, max_rows=50, match={"kind": ["link"]})) as probe:
            await probe.probe(dev("link"))  # learns the sysObjectID
            result = await probe.probe(dev("link"))
    finally:
        transport.close()
    assert result.ok and result.fields["sys_uptime_s"] == 10.0  # the rest of the poll is kept
    assert f"apc_rack_pdu:rPDUOutletStatusTable: {says}" in result.reason
    outlets = [s for s in result.series if s.measurement == "pdu_outlet"]
    assert 1 <= len(outlets) <= 50 and agent.bulks <= 50

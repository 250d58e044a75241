"""`fleetmon probe icmp`: the duty engineer's one-shot ping, against real ICMP."""

import subprocess
import sys
from pathlib import Path

import pytest

FLEETMON = str(Path(sys.executable).with_name("fleetmon"))


def probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FLEETMON, "probe", "icmp", *args], capture_output=True, text=True, timeout=30)


@pytest.mark.root
def test_answering_addresses_exit_0_with_rtt_columns():
    result = probe("127.0.0.1", "::1", "--count", "2", "--size", "20000", "--lang", "en")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "127.0.0.1" in line or "::1" in line]
    assert len(lines) == 2 and all(" up " in line and "2/2" in line for line in lines)


@pytest.mark.root
def test_a_silent_address_exits_1_and_says_down_in_chinese(labnet):
    net = labnet()
    (alive, dead) = net.add_site("s", 2)
    net.set_down([dead])
    result = probe(str(alive), str(dead), "--count", "1", "--timeout", "0.3")
    assert result.returncode == 1
    by_address = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "在线" in by_address[str(alive)] and "离线" in by_address[str(dead)] and "timeout" in by_address[str(dead)]


def test_unknown_target_and_bad_option_exit_2(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("inventory:\n  allow_loopback: true\n  devices: [{id: C1, kind: camera, address: 127.0.0.1, site: s, region: r}]\n")
    result = probe("10.0.0.x", "-c", str(config))
    assert result.returncode == 2
    assert "neither a point id of the config's point list nor an IP address: 10.0.0.x" in result.stderr
    result = probe("127.0.0.1", "--size", "70000")
    assert result.returncode == 2 and "outside" in result.stderr

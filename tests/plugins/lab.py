"""Fixtures for the lab network (lab/net.py) and lab fleets (lab/fleet.py).

- `labnet`: a factory, `labnet(name=None) -> LabNet`; every lab it made is closed after the
  test. Responder logs go to the test's tmp_path (pytest keeps them for a failed run).
- `small_fleet`: a `LabFleet` of 34 devices (build_small_fleet) on a fresh lab.

Tests marked `@pytest.mark.root` skip when not run as root, and only then (CI runs as root, so
they always run there). Leftovers of crashed earlier runs are removed once per session.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from lab.fleet import LabFleet, build_small_fleet
from lab.net import LabNet, cleanup_stale


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") and os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, raw sockets)")


@pytest.fixture(scope="session")
def _lab_stale_cleaned() -> None:
    if os.geteuid() == 0:
        cleanup_stale()


@pytest.fixture
def labnet(_lab_stale_cleaned: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LabNet]]:
    if os.geteuid() != 0:
        pytest.skip("the lab network needs root")
    made: list[LabNet] = []

    def make(name: str | None = None) -> LabNet:
        net = LabNet(name, workdir=tmp_path_factory.mktemp("lab"))
        made.append(net)
        return net

    yield make
    for net in made:
        net.close()


@pytest.fixture
def small_fleet(labnet: Callable[..., LabNet]) -> LabFleet:
    return build_small_fleet(labnet())

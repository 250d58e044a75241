"""What gets installed: the wheel holds the product only (monitor/, probes/, rules/ and the status
page's static files), not lab/, bench/ or tests/, which stay in the repository for the tests, the
demo and the benchmarks. Lab code that starts children of its own (`python -m lab.…`) therefore
tells them where the repository is, and works in a venv where only fleetmon is installed.

The wheel is built offline, as `pip wheel --no-build-isolation` with the venv's own setuptools
(the `test` extra pins one new enough for pyproject.toml), from a copy of the checkout: a build
writes build/ and *.egg-info beside pyproject.toml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.onvif import OnvifSimulatorProcess

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ("monitor", "probes", "rules")
# Top-level entries of a checkout that are not source (build output, venvs, caches, test output).
NOT_SOURCE = {".git", ".venv", "build", "var", "artifacts", ".stamps", ".pytest_cache", ".ruff_cache"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    def ignore(directory: str, names: list[str]) -> set[str]:
        junk = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        return junk | (NOT_SOURCE & set(names) if Path(directory) == REPO else set())

    src = tmp_path_factory.mktemp("checkout") / "fleetmon"
    shutil.copytree(REPO, src, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "-q", "--no-deps",
           "--no-build-isolation", "--no-index", "-w", str(out), str(src)]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip wheel failed:\n{done.stderr}"
    (built,) = out.glob("fleetmon-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def product_files() -> set[str]:
    """Every file of the product packages in the checkout, as wheel paths; not C sources (the
    wheel holds what they compile to) nor what the editable install compiled in place."""
    return {
        path.relative_to(REPO).as_posix()
        for package in PRODUCT
        for path in (REPO / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".c", ".so")
    }


def test_the_wheel_holds_the_product_packages_only(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    top = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top == set(PRODUCT)
    assert not [name for name in names if name.startswith(("lab/", "bench/", "tests/"))]


def test_every_product_file_is_in_the_wheel_with_the_status_page_and_the_icmp_core(wheel: zipfile.ZipFile) -> None:
    packaged = {name for name in wheel.namelist() if name.split("/")[0] in PRODUCT}
    compiled = {name for name in packaged if name.endswith(".so")}
    assert [name.split(".")[0] for name in compiled] == ["probes/_icmpcore"]  # e.g. .cpython-311-x86_64-linux-gnu.so
    assert packaged - compiled == product_files()
    static = {f"monitor/app/static/{p.name}" for p in (REPO / "monitor" / "app" / "static").iterdir()}
    assert {"monitor/app/static/status.html", "monitor/app/static/status.js"} <= static <= packaged


def test_the_console_script_is_the_cli(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    scripts = tomllib.loads(REPO.joinpath("pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts == {"fleetmon": "monitor.app.cli:main"}
    assert "[console_scripts]\nfleetmon = monitor.app.cli:main" in wheel.read(entry_points).decode()


def without_pythonpath() -> dict[str, str]:
    """This environment less PYTHONPATH: run outside the checkout, an interpreter of the venv
    then sees only what the venv installed."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.mark.parametrize("package", ["lab", "bench"])
def test_the_venv_has_no_lab_or_bench(package: str, tmp_path: Path) -> None:
    code = f"import importlib.util; print(importlib.util.find_spec({package!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=without_pythonpath())
    assert (done.returncode, done.stdout.strip()) == (0, "None"), done.stderr


def test_lab_children_find_lab_without_it_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m lab.onvif` started from elsewhere, with no PYTHONPATH: lab/onvif.py adds the
    repository (as lab/net.py does for `python -m lab.responder` in a namespace)."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.chdir(tmp_path)
    with OnvifSimulatorProcess() as proc:
        assert proc.port > 0  # it printed READY <port>: it imported lab.onvif and listens

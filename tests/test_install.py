"""Tests of deploy/install.sh: install, upgrade, failed upgrade and rollback in a scratch root.

Every run uses --prefix-root (a directory under /tmp seeded with a minimal /etc/passwd, group,
shadow and gshadow; useradd/groupadd --prefix create the fleetmon user there, not on the host),
--no-apt and --no-start, and installs offline from a wheelhouse built once per module: the
dependencies' wheels plus the build backend (setuptools, wheel), with pip's own config and
find-links switched off, so the offline path documented in docs/OPERATIONS.md is what runs.
Newer versions are copies of the checkout with a bumped version in pyproject.toml.

The unit is checked with `systemd-analyze verify` on a copy whose /opt/fleetmon and
/etc/fleetmon paths point into the scratch root: verify checks that ExecStart's binary exists
and is executable (systemd is not PID 1 here; --root would need the whole unit tree in the root),
and prints unknown or malformed directives without failing, so its output must be empty too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from lab.process import free_ports, stop_process

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"),
    pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="Debian python3 not installed"),
]

REPO = Path(__file__).resolve().parents[1]
BASE_VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
# Top-level entries of a checkout that are not part of it (build output, venvs, caches).
NOT_SOURCE = {".git", ".venv", "build", "var", ".stamps", ".pytest_cache", ".ruff_cache"}
RUN_TIMEOUT_S = 300
# The installed release must run on its own: a PYTHONPATH naming the checkout (as in a developer's
# shell) would import the checkout's code before the release's.
OWN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def copy_checkout(dest: Path, version: str | None = None) -> Path:
    """A copy of the checkout at `dest`, with pyproject.toml's version set to `version`."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        junk = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        return junk | (NOT_SOURCE & set(names) if Path(directory) == REPO else set())

    shutil.copytree(REPO, dest, ignore=ignore)
    if version is not None:
        pyproject = dest / "pyproject.toml"
        text, n = re.subn(r'(?m)^version = ".*"$', f'version = "{version}"', pyproject.read_text())
        assert n == 1, "pyproject.toml has no single version line"
        pyproject.write_text(text)
    return dest


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fleetmon's dependencies and build backend as wheels (not fleetmon itself: every install
    builds it from its checkout)."""
    wheels = tmp_path_factory.mktemp("wheels")
    src = copy_checkout(tmp_path_factory.mktemp("wheel-src") / "fleetmon")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    for args in (["wheel", "-w", wheels, src], ["download", "-d", wheels, "setuptools>=77", "wheel"]):
        done = subprocess.run([*pip, *args], capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        assert done.returncode == 0, f"pip {args[0]} failed:\n{done.stderr}"
    for built in wheels.glob("fleetmon-*.whl"):
        built.unlink()
    return wheels


def scratch_root() -> Path:
    """An empty system root with just enough of /etc for useradd --prefix. Under /tmp with mode
    0755 (not in pytest's 0700 tmp dir): install.sh runs check-config as the fleetmon uid,
    which must reach the venv and the config inside it."""
    root = Path(tempfile.mkdtemp(prefix="fleetmon-root-", dir="/tmp"))
    root.chmod(0o755)
    etc = root / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\n")
    for name, line in (("shadow", "root:*:19000:0:99999:7:::\n"), ("gshadow", "root:*::\n")):
        (etc / name).write_text(line)
        (etc / name).chmod(0o640)
    return root


@pytest.fixture(scope="module")
def module_root():
    root = scratch_root()
    yield root
    shutil.rmtree(root)


def install(src: Path, root: Path, wheels: Path | None, *options: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in OWN_ENV.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # only the wheelhouse: no index, no find-links from pip.conf
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    cmd = ["bash", str(src / "deploy" / "install.sh"), "--prefix-root", str(root), "--no-apt", "--no-start"]
    if wheels is not None:
        cmd += ["--pip-args", f"--no-index --find-links {wheels}"]
    return subprocess.run([*cmd, *options], capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT_S)


def check_config(fleetmon: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([fleetmon, "check-config", config], capture_output=True, text=True, timeout=60, cwd="/",
                          env=OWN_ENV)


def python_of(release: Path, code: str) -> str:
    # cwd "/": `python -c` imports from the current directory first, the checkout when run from it.
    out = subprocess.run([release / "bin" / "python", "-c", code], capture_output=True, text=True, timeout=60, cwd="/",
                         env=OWN_ENV)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


VERSION_OF = "import importlib.metadata as m; print(m.version('fleetmon'))"
MODULE_FILE = "import os, monitor; print(os.path.realpath(monitor.__file__))"  # through the venv symlink


def mode_owner(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


@dataclass
class Installed:
    root: Path
    first: subprocess.CompletedProcess[str] = field(repr=False)
    release: str  # releases/<name> the first install made
    config: bytes  # the config it installed
    uid: int
    gid: int
    host_passwd: bytes = field(repr=False)

    @property
    def opt(self) -> Path:
        return self.root / "opt/fleetmon"

    @property
    def etc(self) -> Path:
        return self.root / "etc/fleetmon"

    @property
    def state(self) -> Path:
        return self.root / "var/lib/fleetmon"

    def link(self, name: str) -> str:
        return os.readlink(self.opt / name)


@pytest.fixture(scope="module")
def first(module_root: Path, wheelhouse: Path) -> Installed:
    host_passwd = Path("/etc/passwd").read_bytes()
    result = install(REPO, module_root, wheelhouse)
    assert result.returncode == 0, result.stdout + result.stderr
    user = next(line for line in (module_root / "etc/passwd").read_text().splitlines() if line.startswith("fleetmon:"))
    _, _, uid, gid, _, home, shell = user.split(":")
    assert (home, shell) == ("/var/lib/fleetmon", "/usr/sbin/nologin")
    release = os.readlink(module_root / "opt/fleetmon/venv")
    config = (module_root / "etc/fleetmon/config.yaml").read_bytes()
    return Installed(module_root, result, release, config, int(uid), int(gid), host_passwd)


def test_first_install_layout(first: Installed) -> None:
    assert re.fullmatch(rf"releases/{re.escape(BASE_VERSION)}-\d{{8}}T\d{{6}}Z(-\d+)?", first.release)
    assert not (first.opt / "venv.previous").exists()
    assert python_of(first.opt / "venv", VERSION_OF) == BASE_VERSION
    # A regular install, not an editable one pointing back into the checkout.
    module_file = python_of(first.opt / "venv", MODULE_FILE)
    assert module_file.startswith(str(first.opt / first.release))
    assert "check-config /etc/fleetmon/config.yaml" in first.first.stdout
    assert os.readlink(first.root / "usr/local/bin/fleetmon") == "/opt/fleetmon/venv/bin/fleetmon"
    # The user and group exist in the scratch root only.
    assert Path("/etc/passwd").read_bytes() == first.host_passwd
    assert f"fleetmon:x:{first.gid}:" in (first.root / "etc/group").read_text()

    config = first.config.decode()
    assert "examples/" not in config
    assert re.search(r"(?m)^  database: /var/lib/fleetmon/state\.db ", config)
    assert re.search(r"(?m)^    - points\.csv ", config) and re.search(r"(?m)^    - points\.xlsx ", config)
    for name in ("points.csv", "points.xlsx"):
        assert (first.etc / name).read_bytes() == (REPO / "examples" / name).read_bytes()
    assert (first.root / "etc/systemd/system/fleetmon.service").read_bytes() == (
        REPO / "deploy/fleetmon.service"
    ).read_bytes()

    root_only, daemon = (0, 0), (first.uid, first.gid)
    assert mode_owner(first.etc) == (0o755, *root_only)
    assert mode_owner(first.etc / "config.yaml") == (0o640, 0, first.gid)
    assert mode_owner(first.etc / "points.csv") == (0o640, 0, first.gid)
    assert mode_owner(first.etc / "secrets") == (0o750, 0, first.gid)
    assert mode_owner(first.state) == (0o750, *daemon)
    assert mode_owner(first.root / "etc/systemd/system/fleetmon.service") == (0o644, *root_only)
    assert mode_owner(first.opt / first.release / "bin/fleetmon")[0] & 0o005 == 0o005  # fleetmon may run it


def test_installed_entry_point_accepts_installed_config(first: Installed) -> None:
    """The installed config describes the same fleet as the checkout's config.yaml."""
    installed = check_config(first.opt / "venv/bin/fleetmon", first.etc / "config.yaml")
    assert installed.returncode == 0, installed.stderr
    assert "state database: /var/lib/fleetmon/state.db" in installed.stdout
    dev = check_config(Path(sys.executable).parent / "fleetmon", REPO / "config.yaml")
    assert dev.returncode == 0, dev.stderr
    devices = [line for line in installed.stdout.splitlines() if "devices:" in line or "by " in line]
    assert devices and devices == [line for line in dev.stdout.splitlines() if "devices:" in line or "by " in line]


def test_release_holds_package_data(first: Installed) -> None:
    """Non-Python files of the daemon's packages (the status page's HTML/CSS/JS …) are in the
    installed release, not only in the checkout; the ICMP core compiled for its Python, its C
    source not shipped."""
    site = next((first.opt / first.release / "lib").glob("python3*/site-packages"))
    data = [
        path.relative_to(REPO)
        for package in ("monitor", "probes", "rules")
        for path in (REPO / package).rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc", ".c", ".so") and "__pycache__" not in path.parts
    ]
    assert data and [str(p) for p in data if not (site / p).is_file()] == []
    assert [p.name.split(".")[0] for p in (site / "probes").glob("*.so")] == ["_icmpcore"]
    assert not list((site / "probes").glob("*.c"))


def test_installed_daemon_serves_api_and_status_page(first: Installed, tmp_path: Path) -> None:
    """The installed release runs the daemon (as root here; the unit's user and capabilities
    are systemd's part): one loopback device, no InfluxDB, the API on a free loopback port."""
    (port,) = free_ports(1)
    config = tmp_path / "config.yaml"
    config.write_text(
        "inventory:\n  allow_loopback: true\n  devices:\n"
        "    - {id: LO, name: loopback, kind: server, address: 127.0.0.1, site: lab, region: lab}\n"
        "probes:\n  icmp: {interval_s: 1, count: 1, timeout_s: 0.5}\n"
        f"state: {{database: {tmp_path}/state.db}}\n"
        "influxdb: {enabled: false}\n"
        f"api: {{listen: 127.0.0.1, port: {port}}}\n",
        encoding="utf-8",
    )
    http = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy
    log = tmp_path / "fleetmon.log"
    with log.open("w") as out:
        proc = subprocess.Popen([first.opt / "venv/bin/fleetmon", "run", "--config", config], cwd="/", env=OWN_ENV,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        health = None
        for _ in range(100):  # ≤ 20 s
            if proc.poll() is not None:
                break
            try:
                with http.open(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
                    health = json.load(reply)
                if health["status"] == "ok":
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert health is not None and health["status"] == "ok", log.read_text()
        with http.open(f"http://127.0.0.1:{port}/status", timeout=2) as reply:
            assert reply.status == 200 and "text/html" in reply.headers["Content-Type"]
    finally:
        assert stop_process(proc, 30) == 0, log.read_text()


def verify_unit(unit_text: str, root: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify on the unit with its /opt/fleetmon and /etc/fleetmon paths moved into `root`."""
    copy = tmp_path / "fleetmon.service"
    text = unit_text.replace("/opt/fleetmon/", f"{root}/opt/fleetmon/").replace("/etc/fleetmon/", f"{root}/etc/fleetmon/")
    copy.write_text(text)
    return subprocess.run(["systemd-analyze", "verify", copy], capture_output=True, text=True, timeout=60)


def test_installed_unit_verifies(first: Installed, tmp_path: Path) -> None:
    unit = (first.root / "etc/systemd/system/fleetmon.service").read_text()
    result = verify_unit(unit, first.root, tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    # The check can fail: a missing binary and a misspelt directive are both reported.
    broken = verify_unit(unit.replace("venv/bin/fleetmon run", "venv/bin/nothing run"), first.root, tmp_path)
    assert broken.returncode != 0 and "nothing is not executable" in broken.stderr
    typo = verify_unit(unit.replace("ProtectSystem=", "ProtectSystm="), first.root, tmp_path)
    assert "Unknown key 'ProtectSystm'" in typo.stderr


def test_installed_agent_unit_verifies(first: Installed, tmp_path: Path) -> None:
    unit = (first.root / "etc/systemd/system/fleetmon-agent.service").read_text()
    assert unit == (REPO / "deploy/fleetmon-agent.service").read_text()
    result = verify_unit(unit, first.root, tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.fixture(scope="module")
def upgraded(first: Installed, wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory):
    """A second run from a newer checkout, after the admin edited the config and the daemon
    wrote its state database."""
    marked = first.config + b"# edited by the admin\n"
    (first.etc / "config.yaml").write_bytes(marked)
    (first.state / "state.db").write_bytes(b"transitions")
    (first.state / "state.db").chmod(0o640)
    version = f"{BASE_VERSION}.post1"
    src = copy_checkout(tmp_path_factory.mktemp("upgrade") / "fleetmon", version)
    result = install(src, first.root, wheelhouse)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, version, marked


def test_upgrade_keeps_config_and_state_and_previous_release(first: Installed, upgraded) -> None:
    result, version, marked = upgraded
    assert (first.etc / "config.yaml").read_bytes() == marked
    # This version's example config beside it, named in the output.
    assert (first.etc / "config.yaml.new").read_bytes() == first.config
    assert "config.yaml.new" in result.stdout
    assert (first.state / "state.db").read_bytes() == b"transitions"
    assert mode_owner(first.state) == (0o750, first.uid, first.gid)

    current, previous = first.link("venv"), first.link("venv.previous")
    assert current.startswith(f"releases/{version}-") and previous == first.release
    assert sorted(p.name for p in (first.opt / "releases").iterdir()) == sorted(
        [Path(current).name, Path(previous).name]
    )
    assert python_of(first.opt / "venv", VERSION_OF) == version
    module_file = python_of(first.opt / "venv", MODULE_FILE)
    assert module_file.startswith(str(first.opt / current))
    ok = check_config(first.opt / "venv/bin/fleetmon", first.etc / "config.yaml")
    assert ok.returncode == 0, ok.stderr
    # The previous release still works: it is the rollback.
    assert python_of(first.opt / "venv.previous", VERSION_OF) == BASE_VERSION
    ok = check_config(first.opt / "venv.previous/bin/fleetmon", first.etc / "config.yaml")
    assert ok.returncode == 0, ok.stderr


def test_invalid_config_aborts_upgrade(first: Installed, upgraded, wheelhouse: Path, tmp_path: Path) -> None:
    config = first.etc / "config.yaml"
    good = config.read_bytes()
    before = (first.link("venv"), first.link("venv.previous"), sorted(os.listdir(first.opt / "releases")))
    config.write_bytes(good + b"bogus_key: 1\n")
    try:
        src = copy_checkout(tmp_path / "fleetmon", f"{BASE_VERSION}.post2")
        result = install(src, first.root, wheelhouse)
        assert result.returncode == 1
        assert re.search(r"config\.yaml:\d+: bogus_key: ", result.stderr), result.stderr  # check-config's own line
        assert "upgrade aborted, nothing switched" in result.stderr
        assert (first.link("venv"), first.link("venv.previous"), sorted(os.listdir(first.opt / "releases"))) == before
        assert config.read_bytes() == good + b"bogus_key: 1\n"
        assert python_of(first.opt / "venv", VERSION_OF) == upgraded[1]
    finally:
        config.write_bytes(good)


def test_config_unreadable_by_fleetmon_is_refused(first: Installed, upgraded) -> None:
    """The check runs as user fleetmon, as the daemon will: a config only root can read is
    refused (shown with --rollback, which runs the same check without a build)."""
    config = first.etc / "config.yaml"
    before = (first.link("venv"), first.link("venv.previous"))
    config.chmod(0o600)
    try:
        result = install(REPO, first.root, None, "--rollback")
        assert result.returncode == 1
        assert "Permission denied" in result.stderr and "nothing changed" in result.stderr
        assert (first.link("venv"), first.link("venv.previous")) == before
    finally:
        config.chmod(0o640)


def test_check_reads_the_secrets_env_file(first: Installed, upgraded) -> None:
    """`*_env` secrets come from /etc/fleetmon/secrets/fleetmon.env for the check as for the
    unit; the value is never printed. Shown with --rollback (the same check, no build)."""
    config = first.etc / "config.yaml"
    envfile = first.etc / "secrets/fleetmon.env"
    good = config.read_bytes()
    before = (first.link("venv"), first.link("venv.previous"))
    cfg = yaml.safe_load(good)
    cfg["api"]["token_env"] = "FLEETMON_TEST_TOKEN"
    config.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    try:
        missing = install(REPO, first.root, None, "--rollback")
        assert missing.returncode == 1
        assert "environment variable FLEETMON_TEST_TOKEN is not set" in missing.stderr
        assert (first.link("venv"), first.link("venv.previous")) == before

        envfile.write_text('# the API write token\nFLEETMON_TEST_TOKEN="s3cret-token-value"\n')
        envfile.chmod(0o640)
        found = install(REPO, first.root, None, "--rollback")
        assert found.returncode == 0, found.stdout + found.stderr
        assert "writes need the bearer token" in found.stdout
        assert "s3cret-token-value" not in found.stdout + found.stderr
        assert (first.link("venv"), first.link("venv.previous")) == before[::-1]
        assert install(REPO, first.root, None, "--rollback").returncode == 0
        assert (first.link("venv"), first.link("venv.previous")) == before
    finally:
        config.write_bytes(good)
        envfile.unlink(missing_ok=True)


def test_rollback_and_back(first: Installed, upgraded) -> None:
    newer, older = first.link("venv"), first.link("venv.previous")
    back = install(REPO, first.root, None, "--rollback")
    assert back.returncode == 0, back.stdout + back.stderr
    assert (first.link("venv"), first.link("venv.previous")) == (older, newer)
    assert python_of(first.opt / "venv", VERSION_OF) == BASE_VERSION
    assert "rolled back" in back.stdout
    forth = install(REPO, first.root, None, "--rollback")
    assert forth.returncode == 0, forth.stdout + forth.stderr
    assert (first.link("venv"), first.link("venv.previous")) == (newer, older)
    assert python_of(first.opt / "venv", VERSION_OF) == upgraded[1]


def test_rollback_without_previous_release() -> None:
    root = scratch_root()
    try:
        result = install(REPO, root, None, "--rollback")
        assert result.returncode == 1
        assert "no previous release to roll back to" in result.stderr
    finally:
        shutil.rmtree(root)


def test_usage() -> None:
    script = REPO / "deploy/install.sh"
    shown = subprocess.run(["bash", script, "--help"], capture_output=True, text=True, timeout=10)
    assert shown.returncode == 0
    for option in ("--prefix-root DIR", "--no-apt", "--no-start", "--pip-args", "--rollback"):
        assert option in shown.stdout
    bad = subprocess.run(["bash", script, "--frobnicate"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "unknown option: --frobnicate" in bad.stderr
    missing = subprocess.run(["bash", script, "--prefix-root", "/nonexistent/fleetmon-root"],
                             capture_output=True, text=True, timeout=10)
    assert missing.returncode == 1 and "not a directory" in missing.stderr

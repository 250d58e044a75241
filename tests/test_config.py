"""load_config: the example config, YAML and validation errors with file:line and YAML path,
secrets, relative paths."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from monitor.app.config import FleetmonConfig, load_config
from monitor.core.config_base import ConfigError

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "\n".join(info.value.messages)
    return info.value.messages


# --- the example ------------------------------------------------------------------------------


def test_example_config_loads_with_paths_relative_to_its_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # paths must not depend on where fleetmon is started
    cfg = load_config(REPO / "config.yaml")
    assert cfg.inventory.point_lists == [REPO / "examples/points.csv", REPO / "examples/points.xlsx"]
    assert cfg.state.database == REPO / "var/state.db"
    assert cfg.timezone == "Asia/Shanghai"
    assert cfg.probes.icmp.overrides[0].payload_size == 20000
    assert [d["id"] for d in cfg.inventory.devices] == ["CORE-SW", "PLAT-01", "LINK-CG", "LINK-DH"]
    assert cfg.inventory.source is not None and cfg.inventory.source.path == REPO / "config.yaml"


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "{}"))
    with pytest.raises(pydantic.ValidationError):
        cfg.timezone = "UTC"  # type: ignore[misc]


def test_explicit_empty_mapping_gives_the_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "{}\n"))
    assert cfg.model_dump() == FleetmonConfig().model_dump()
    # The loaded file is recorded on this config's own inventory section, not on a shared default.
    assert cfg.inventory.source is not None and FleetmonConfig().inventory.source is None


# --- YAML errors ----------------------------------------------------------------------------


def test_malformed_yaml_reports_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "inventory:\n  point_lists: [a.csv\nstate: {}\n")
    (message,) = errors(path)
    assert message.startswith(f"{path}:3:6: YAML syntax error: ")
    assert "while parsing a flow sequence at line 2" in message


def test_tab_indentation_is_a_syntax_error_at_its_place(tmp_path: Path) -> None:
    path = write(tmp_path, "log:\n\tlevel: info\n")
    assert errors(path) == [f"{path}:2:1: YAML syntax error: found character '\\t' that cannot start any token"]


def test_control_character_is_a_syntax_error_at_its_place(tmp_path: Path) -> None:
    path = write(tmp_path, "log:\n  level: in\x07fo\n")
    assert errors(path) == [f"{path}:2:12: YAML syntax error: special characters are not allowed (character #x07)"]


def test_non_utf8_config_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes("log: {}\n# 注释\n".encode("gb18030"))
    assert errors(path) == [f"{path}:2: the config must be UTF-8 text"]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_config_is_an_error_not_silent_defaults(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    assert errors(path) == [f"{path}: the config is empty; write {{}} to run on the defaults"]


def test_config_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- timezone: UTC\n")
    assert errors(path) == [f"{path}:1: the config must be a mapping of sections (key: value)"]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert errors(path) == [f"{path}: cannot read: No such file or directory"]


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "inventory:\n  devices: []\nlog: {}\ninventory:\n  devices: []\n")
    assert errors(path) == [f"{path}:4: inventory: duplicate key (first at line 1)"]


def test_merge_key_override_is_not_a_duplicate(tmp_path: Path) -> None:
    text = "probes:\n  icmp:\n    overrides:\n      - &link {match: {kind: [link]}, count: 5}\n      - <<: *link\n        count: 7\n"
    cfg = load_config(write(tmp_path, text))
    assert [o.count for o in cfg.probes.icmp.overrides] == [5, 7]


# --- validation errors ----------------------------------------------------------------------


def test_unknown_key_at_depth_has_path_line_and_suggestion(tmp_path: Path) -> None:
    text = "probes:\n  icmp:\n    overrides:\n      - match: {kind: [link]}\n        pyload_size: 20000\n"
    path = write(tmp_path, text)
    assert errors(path) == [f"{path}:5: probes.icmp.overrides[0].pyload_size: unknown key, did you mean 'payload_size'?"]


def test_unknown_top_level_key_lists_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "log: {}\nzzz: 1\n")
    assert errors(path) == [
        f"{path}:2: zzz: unknown key (known: timezone, language, inventory, probes, scheduler, state, availability, influxdb, log, rules, "
        "flapping, maintenance, notify, api, traps, assessment, reports, mqtt_agents)"
    ]


def test_wrong_type_and_out_of_range(tmp_path: Path) -> None:
    path = write(tmp_path, "scheduler:\n  max_concurrency: many\n  spread: 2\n")
    assert errors(path) == [
        f"{path}:2: scheduler.max_concurrency: Input should be a valid integer, unable to parse string as an integer",
        f"{path}:3: scheduler.spread: Input should be less than or equal to 0.9",
    ]


def test_section_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "log:\nstate: 3\n")
    assert errors(path) == [
        f"{path}:1: log: must be a mapping (key: value), found nothing",
        f"{path}:2: state: must be a mapping (key: value)",
    ]


def test_every_error_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    text = """\
timezone: Asia/Shanghia
language: fr
probes:
  icmp:
    count: 0
    mode: fast
    overrides:
      - match: {kind: [camra]}
state:
  down_after: x
influxdb:
  api: v3
log:
  colour: red
"""
    path = write(tmp_path, text)
    messages = errors(path)
    assert [m.split(": ")[0:2] for m in messages] == [
        [f"{path}:1", "timezone"],
        [f"{path}:2", "language"],
        [f"{path}:5", "probes.icmp.count"],
        [f"{path}:6", "probes.icmp.mode"],
        [f"{path}:8", "probes.icmp.overrides[0].match.kind[0]"],
        [f"{path}:10", "state.down_after"],
        [f"{path}:12", "influxdb.api"],
        [f"{path}:14", "log.colour"],
    ]
    assert "unknown time zone 'Asia/Shanghia'" in messages[0]


def test_duplicated_section_errors_point_at_the_copy_that_counts(tmp_path: Path) -> None:
    path = write(tmp_path, "log: {level: info}\nlog: {level: loud}\n")
    assert errors(path) == [
        f"{path}:2: log: duplicate key (first at line 1)",
        f"{path}:2: log.level: Input should be 'debug', 'info', 'warning' or 'error'",
    ]


def test_v2_without_org_and_bucket(tmp_path: Path) -> None:
    path = write(tmp_path, "log: {}\ninfluxdb:\n  api: v2\n")
    assert errors(path) == [f"{path}:2: influxdb: api v2 needs org and bucket"]


def test_bad_influxdb_url_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, "influxdb:\n  url: admin:pa55word@influx:8086\n")
    assert errors(path) == [f"{path}:2: influxdb.url: must look like http://HOST:PORT or https://HOST:PORT"]


# --- secrets --------------------------------------------------------------------------------

SECRET = "s3cret-Value-42"


def assert_secret_hidden(cfg: FleetmonConfig) -> None:
    for text in (repr(cfg), str(cfg), cfg.model_dump_json(), str(cfg.model_dump()), repr(cfg.influxdb)):
        assert SECRET not in text


def test_password_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETMON_TEST_PASSWORD", SECRET)
    cfg = load_config(write(tmp_path, "influxdb:\n  username: fm\n  password_env: FLEETMON_TEST_PASSWORD\n"))
    assert cfg.influxdb.password is not None
    assert cfg.influxdb.password.get_secret_value() == SECRET
    assert_secret_hidden(cfg)


def test_token_from_file_relative_to_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/token").write_text(SECRET + "\n")
    path = write(tmp_path, "influxdb: {api: v2, org: o, bucket: b, token_file: token}\n", name="etc/config.yaml")
    monkeypatch.chdir(REPO)
    cfg = load_config(path)
    assert cfg.influxdb.token_file == tmp_path / "etc/token"
    assert cfg.influxdb.token is not None and cfg.influxdb.token.get_secret_value() == SECRET
    assert_secret_hidden(cfg)


def test_missing_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETMON_NOT_SET", raising=False)
    path = write(tmp_path, "log: {}\ninfluxdb:\n  password_env: FLEETMON_NOT_SET\n")
    assert errors(path) == [f"{path}:2: influxdb: password: environment variable FLEETMON_NOT_SET is not set"]


def test_empty_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETMON_EMPTY", "")
    path = write(tmp_path, "influxdb:\n  password_env: FLEETMON_EMPTY\n")
    assert errors(path) == [f"{path}:1: influxdb: password: environment variable FLEETMON_EMPTY is empty"]


def test_unreadable_secret_file(tmp_path: Path) -> None:
    path = write(tmp_path, "influxdb: {api: v2, org: o, bucket: b, token_file: missing/token}\n")
    assert errors(path) == [
        f"{path}:1: influxdb: token: cannot read {tmp_path / 'missing/token'}: No such file or directory"
    ]


def test_secret_written_into_env_key_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, f"influxdb:\n  password_env: '{SECRET}'\n")
    (message,) = errors(path)
    assert SECRET not in message
    assert message == (
        f"{path}:1: influxdb: password_env must name an environment variable (A-Z, 0-9, _); "
        "its value is not shown in case it is the secret itself"
    )


@pytest.mark.parametrize("key", ["password", "token"])
def test_inline_secret_is_refused_without_echo(tmp_path: Path, key: str) -> None:
    path = write(tmp_path, f"influxdb:\n  {key}: {SECRET}\n")
    (message,) = errors(path)
    assert SECRET not in message
    assert message == f"{path}:1: influxdb: '{key}' must not be written in the config: use {key}_env or {key}_file"


# --- paths ------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "inventory:\n  point_lists: [lists/a.csv, /srv/b.xlsx]\nstate:\n  database: var/state.db\n"
    path = write(tmp_path, text, name="conf/config.yaml")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(Path("conf/config.yaml"))
    assert cfg.inventory.point_lists == [tmp_path / "conf/lists/a.csv", Path("/srv/b.xlsx")]
    assert cfg.state.database == tmp_path / "conf/var/state.db"
    assert cfg.inventory.source is not None and cfg.inventory.source.path == Path("conf/config.yaml")
    assert path.exists()

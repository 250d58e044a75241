"""fleetmon's configuration: one YAML file, validated once into frozen pydantic models.

Strict: unknown keys are errors (extra="forbid"), values are validated, and the whole tree is
frozen so that a running component can never see a half-changed config. Secrets are never
written in the file: they come from an environment variable (`*_env`) or a file (`*_file`)
and are held as SecretStr.

Loading (YAML → model, errors with their YAML paths and lines) is `load_config()` at the end:
a pure function, so that a daemon reloading its config keeps the old one when it raises.
Relative paths in the file (point lists, the state database, `*_file` secrets) are relative to
the directory of the config file.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Iterator, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from monitor.app.access import FLEETMON, Role
from monitor.app.agent_config import MqttAgentsConfig
from monitor.assess.calendar import CalendarError
from monitor.assess.config_workorders import Clock
from monitor.assess.config import AssessmentConfig
from monitor.assess.sla import Sla
from monitor.core.config_base import (
    ConfigError,
    ConfigSource,
    Loc,
    ResolvedSecret,
    Strict,
    WithSecrets,
    expansion_problem,
    locate,
    read_regular_file,
)
from monitor.core.model import Basis, Kind
from monitor.core.timecheck import ZoneName
from monitor.fleet.inventory import Inventory, InventoryConfig
from monitor.metrics.config import InfluxDBConfig
from monitor.reports.config import ReportsConfig, wecom_routes
from monitor.state.availability import AvailabilityConfig
from monitor.state.config import StateConfig
from probes import REGISTRY
from probes.traps import TrapConfig
from rules.alerting.config import MaintenanceWindowConfig, NotifyConfig
from rules.model import Severity
from rules.config import (
    FlappingConfig,
    Rule,
    default_rules,
    unique_rule_names,
)

ModelT = TypeVar("ModelT", bound=BaseModel)


class SchedulerConfig(Strict):
    spread: Annotated[float, Field(ge=0.0, le=0.9)] = 0.5
    """Fraction of a probe's interval over which the starts of its targets are spread evenly."""
    max_concurrency: Annotated[int, Field(ge=1, le=100_000)] = 5000
    """Probes of one type in flight at once. A probe is in flight for about its timeline (ICMP:
    count × echo interval, plus the timeout and retries for a silent device), so a type needs
    about devices / (spread × interval_s) × that: ICMP at 100,000 devices every 30 s, ~20,000.
    Fewer slots make cycles run longer than the interval (skipped cycles)."""


PersonName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")
]
"""A person's name as work orders and faults record it (`by`): one line, at most 64 characters."""


class PersonConfig(WithSecrets):
    """One person of `api.people`: their name, their own token, their roles.

    - name: recorded as `by` of everything done with the token (张工); unique.
    - token_env / token_file: the person's bearer token (required); unique, and different from
      the shared write token and the status token.
    - roles: read, duty (acknowledge faults, work-order actions), manager (also cancel orders,
      excluded causes, maintenance windows); see monitor.app.access.
    """

    secrets = ("token",)

    name: PersonName
    roles: Annotated[list[Role], Field(min_length=1)]
    token_env: str | None = None
    token_file: Path | None = None

    token: ResolvedSecret = None

    @model_validator(mode="after")
    def _check(self) -> "PersonConfig":
        if self.token is None:
            raise ValueError(f"{self.name}: a person needs a token of their own (token_env or token_file)")
        if len(set(self.roles)) != len(self.roles):
            raise ValueError(f"{self.name}: a role is listed twice")
        if self.name.lower() == FLEETMON:
            raise ValueError(f"{self.name!r} is the name of fleetmon's own actions: choose a person's name")
        return self


class ApiConfig(WithSecrets):
    """config.yaml section `api`.

    - enabled: serve the API at all (the daemon checks it).
    - listen: IP address to bind (an address, not a host name, so that "loopback or not" is
      decidable); anything but loopback needs a token (the write token or a person's).
    - port: TCP port; 0 binds a free port (tests).
    - token_env / token_file: the shared bearer token for writes (admin, integrations: the
      request names who acts, `by`); resolved into `token`.
    - status_token_env / status_token_file: a read-only token; resolved into `status_token`.
      When set, every data read (/api/v1/status, devices, faults, maintenance, workorders) needs
      it, the write token or a person's token, as a bearer header; the phone status page's
      script sends the one of its link (/status#token=…: after the #, so it never reaches the
      server or a proxy log). /healthz, the OpenAPI document and the page's files stay open. It
      must differ from the write token: it travels in page links (bookmarks, browser history),
      so it must not grant writes.
    - people: per-person tokens (PersonConfig): every write made with one records its person,
      as far as their roles allow (monitor.app.access). Tokens are all different.
    - header_timeout_s: a connection must send its first request's headers (and a request its
      body) within this long, else it is closed (slowloris, silent sockets).
    - idle_timeout_s: a keep-alive connection idle (or slow with its next request) this long
      is closed.
    - max_connections: API connections open at once; beyond, a connection is answered 503 and
      closed. None: a quarter of the soft RLIMIT_NOFILE, between 4 and 256, so the probes keep
      the other three quarters of the file descriptors (monitor.app.api_guard).
    """

    secrets = ("token", "status_token")

    enabled: bool = True
    listen: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65_535)] = 8080
    token_env: str | None = None
    token_file: Path | None = None
    status_token_env: str | None = None
    status_token_file: Path | None = None
    people: list[PersonConfig] = []
    header_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    idle_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 15.0
    max_connections: Annotated[int, Field(ge=1, le=65_536)] | None = None

    token: ResolvedSecret = None
    status_token: ResolvedSecret = None

    @model_validator(mode="after")
    def _check(self) -> "ApiConfig":
        try:
            address = ipaddress.ip_address(self.listen)
        except ValueError:
            raise ValueError(f"listen must be an IP address such as 127.0.0.1 or ::1, not {self.listen!r}") from None
        object.__setattr__(self, "listen", str(address))
        if (
            self.status_token is not None
            and self.token is not None
            and self.status_token.get_secret_value() == self.token.get_secret_value()
        ):
            raise ValueError("status_token must differ from token: it is read-only and travels in page links")
        self._check_people()
        if self.token is None and not self.people and not address.is_loopback:
            raise ValueError(
                f"listening on {self.listen} (not loopback) needs a token (token_env or token_file, or people): "
                "anyone on the network could otherwise reach the API"
            )
        return self

    def _check_people(self) -> None:
        """Names unique; every token different from every other (a shared token would record
        one person's actions as another's). Messages name people and tokens, never a value."""
        seen: dict[str, str] = {}
        if self.token is not None:
            seen[self.token.get_secret_value()] = "the shared write token (token)"
        if self.status_token is not None:
            seen[self.status_token.get_secret_value()] = "the status token (status_token)"
        names: set[str] = set()
        for i, person in enumerate(self.people):
            if person.name in names:
                raise ValueError(f"people[{i}]: {person.name} is listed twice")
            names.add(person.name)
            assert person.token is not None  # PersonConfig requires it
            other = seen.setdefault(person.token.get_secret_value(), f"{person.name}'s token")
            if other != f"{person.name}'s token":
                raise ValueError(f"people[{i}]: {person.name}'s token is the same as {other}: "
                                 "every person needs a token of their own")


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


# Built from the probe registry so that a new probe type needs no edit here.
ProbesConfig: type[BaseModel] = create_model(
    "ProbesConfig",
    __base__=Strict,
    **{name: (cls.Config, cls.Config()) for name, cls in REGISTRY.items()},
)


class FleetmonConfig(Strict):
    """The whole config file (config.yaml)."""

    timezone: ZoneName = "Asia/Shanghai"
    """Zone for times in messages and reports; everything stored is UTC."""
    language: Literal["zh", "en"] = "zh"
    """Language of texts for people (duty engineers, command hall)."""
    inventory: InventoryConfig = InventoryConfig()
    probes: ProbesConfig = ProbesConfig()  # type: ignore[valid-type]
    scheduler: SchedulerConfig = SchedulerConfig()
    state: StateConfig = StateConfig()
    availability: AvailabilityConfig = AvailabilityConfig()
    """Which basis (network, service, video) counts as online for online rates and rules."""
    influxdb: InfluxDBConfig = InfluxDBConfig()
    log: LogConfig = LogConfig()
    rules: Annotated[list[Rule], AfterValidator(unique_rule_names)] = Field(default_factory=default_rules)
    """Fault rules; omitted = the contract defaults (rules.config.default_rules)."""
    flapping: FlappingConfig = FlappingConfig()
    maintenance: list[MaintenanceWindowConfig] = []
    """Scheduled maintenance windows; ad hoc ones come through the HTTP API."""
    notify: NotifyConfig = NotifyConfig()
    api: ApiConfig = ApiConfig()
    traps: TrapConfig = TrapConfig()
    """SNMP trap/inform receiver (off by default: UDP 162 needs root or CAP_NET_BIND_SERVICE)."""
    assessment: AssessmentConfig = AssessmentConfig()
    """考核: availability over periods, work orders and their SLA clocks, the score."""
    reports: ReportsConfig = ReportsConfig()
    """Reports: where they are kept, the schedule, delivery to WeCom groups and by e-mail."""
    mqtt_agents: MqttAgentsConfig = MqttAgentsConfig()
    """Probe agents that probe the devices they own and publish results over MQTT."""

    @field_validator("mqtt_agents")
    @classmethod
    def _agent_probes(cls, agents: MqttAgentsConfig, info: ValidationInfo) -> MqttAgentsConfig:
        """Each agent's probes are enabled here: their results go through the same trackers."""
        probes = info.data.get("probes")
        if probes is not None:
            off = sorted({p for a in agents.agents for p in a.probes if not getattr(probes, p).enabled})
            if off:
                raise ValueError(f"agents run probe(s) {', '.join(off)}, which are disabled in probes: "
                                 "enable them (the central keeps the state of the agents' devices)")
        return agents

    @model_validator(mode="after")
    def _thumbnail_dir(self) -> "FleetmonConfig":
        """With the frame check's video-quality diagnosis on, thumbnails are kept by default in
        `thumbnails/` beside the state database (the state directory, /var/lib/fleetmon in the
        packages): the phone page and the WeCom image message need them, and the folder is
        bounded (thumbnail_max_count, thumbnail_max_bytes). Set thumbnail_dir to keep them
        elsewhere. A WeCom route without a thumbnail_dir of its own sends the frame check's
        (the camera's picture after a video-quality fault's text)."""
        probes = self.probes
        frame = getattr(probes, "rtsp_frame", None)
        if frame is None or not (frame.enabled and frame.vqd.enabled):
            return self
        # The config is frozen; this runs once, while it is being built. `probes` is the file's
        # own (vqd on means it was given), never the shared default; so are routes, if any.
        if frame.thumbnail_dir is None:
            frame = frame.model_copy(update={"thumbnail_dir": self.state.database.parent / "thumbnails"})
            object.__setattr__(probes, "rtsp_frame", frame)
        routes = [r.model_copy(update={"thumbnail_dir": frame.thumbnail_dir})
                  if r.type == "wecom" and r.thumbnail_dir is None else r for r in self.notify.routes]
        object.__setattr__(self.notify, "routes", routes)
        return self

    @field_validator("availability")
    @classmethod
    def _picture_needs_vqd(cls, availability: AvailabilityConfig, info: ValidationInfo) -> AvailabilityConfig:
        """`picture` in online_requires needs its verdicts: the frame check with vqd on."""
        probes = info.data.get("probes")
        frame = getattr(probes, "rtsp_frame", None)
        if Basis.PICTURE in availability.online_requires and frame is not None and not (
                frame.enabled and frame.vqd.enabled):
            raise ValueError("online_requires lists picture (画面正常), which needs probes.rtsp_frame.enabled and "
                             "probes.rtsp_frame.vqd.enabled: without them no camera's picture is ever judged")
        return availability

    @field_validator("reports")
    @classmethod
    def _report_routes(cls, reports: ReportsConfig, info: ValidationInfo) -> ReportsConfig:
        """reports.delivery.wecom names WeCom routes of notify.routes (skipped when notify is
        itself invalid: its own errors say why)."""
        notify = info.data.get("notify")
        if notify is not None:
            wecom_routes(reports, notify.routes)
        return reports



# --- loading ---------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str]) -> FleetmonConfig:
    """Read, parse and validate the config file at `path`.

    Returns the frozen config, with relative paths made absolute against the file's directory
    and secrets resolved. Raises ConfigError listing every problem at once, each as
    "FILE:LINE: yaml.path: message". Pure: nothing changes unless it returns, so a failed
    reload leaves the caller's old config in place. An empty file (or only comments) is an
    error rather than "all defaults": a truncated file must not silently empty the fleet;
    `{}` asks for the defaults explicitly.
    """
    path = Path(path)
    root, data, problems = _parse_yaml(path, _read_text(path))
    if not isinstance(data, dict):
        line = root.start_mark.line + 1
        raise ConfigError([f"{path}:{line}: the config must be a mapping of sections (key: value)"])
    data = _with_base(FleetmonConfig, data, path.absolute().parent)
    try:
        cfg = FleetmonConfig.model_validate(data)
    except ValidationError as exc:
        problems += [_describe(path, root, error) for error in exc.errors(include_url=False)]
        raise ConfigError(_by_line(problems)) from None
    problems += _unknown_order_routes(path, root, cfg)
    if problems:
        raise ConfigError(_by_line(problems))
    cfg.inventory._source = ConfigSource(path, root)
    cfg.assessment._sla = sla = _sla(path, root, cfg)
    _arrival_clocks(path, root, cfg, sla)
    return cfg


def validate_file(path: str | os.PathLike[str], model: type[ModelT]) -> tuple[ModelT, ConfigSource]:
    """Another YAML file validated like the config (located errors, relative paths against its
    folder, secrets resolved): e.g. a probe agent's agent.yaml. Raises ConfigError."""
    path = Path(path)
    root, data, problems = _parse_yaml(path, _read_text(path))
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:{root.start_mark.line + 1}: the file must be a mapping of sections (key: value)"])
    data = _with_base(model, data, path.absolute().parent)
    try:
        cfg = model.model_validate(data)
    except ValidationError as exc:
        problems += [_describe(path, root, error, model) for error in exc.errors(include_url=False)]
        raise ConfigError(_by_line(problems)) from None
    if problems:
        raise ConfigError(_by_line(problems))
    return cfg, ConfigSource(path, root)


def check_maintenance_devices(cfg: FleetmonConfig, inventory: Inventory) -> None:
    """The point ids of `maintenance[i].match.devices` must be in the point list (loaded after
    the config, so checked apart). Raises ConfigError, one "FILE:LINE: path: message" per id."""
    problems = []
    for i, window in enumerate(cfg.maintenance):
        for j, device_id in enumerate(window.match.devices):
            if device_id not in inventory.devices:
                where: Loc = ("maintenance", i, "match", "devices", j)
                source = cfg.inventory.source
                path, line = (source.path, source.line(where)) if source else ("<config>", 0)
                problems.append(f"{path}:{line}: {_dotted(where)}: unknown device {device_id!r} (not in the point list)")
    if problems:
        raise ConfigError(problems)


def _arrival_clocks(path: Path, root: yaml.Node, cfg: FleetmonConfig, sla: Sla) -> None:
    """A scheme that scores arrival in time (arrival_timely_pct) needs an arrival deadline for
    every order it may count: raises ConfigError naming the severities and kinds without one
    (the Qionglai tender scores arrival but gives no figure: the config must)."""
    score = cfg.assessment.score
    if score is None or not any(i.metric == "arrival_timely_pct" for i in score.scheme.items):
        return
    missing = [
        f"{severity.value}/{kind.value}" for severity in Severity for kind in Kind
        if Clock.ARRIVAL not in sla.clocks_for(severity, kind)
    ]
    if missing:
        shown, line = locate(root, ("assessment", "score", "scheme"))
        raise ConfigError([
            f"{path}:{line}: {_dotted(shown)}: the scheme {score.scheme.name} scores arrival in time "
            f"(arrival_timely_pct), but the SLA clocks have no arrival deadline for {', '.join(missing[:6])}"
            f"{' …' if len(missing) > 6 else ''}: add one in assessment.sla.policies, e.g. "
            "{clocks: {arrival: {within: 4h}}}"
        ])


def _unknown_order_routes(path: Path, root: yaml.Node, cfg: FleetmonConfig) -> list[tuple[int, str]]:
    """(line, message) for each route of assessment.workorders.routes that notify.routes does
    not define."""
    known = [r.name for r in cfg.notify.routes]
    problems = []
    for i, name in enumerate(cfg.assessment.workorders.routes):
        if name not in known:
            shown, line = locate(root, ("assessment", "workorders", "routes", i))
            problems.append((line, f"{path}:{line}: {_dotted(shown)}: no notify route {name!r} "
                                   f"(notify.routes: {', '.join(known) or 'none'})"))
    return problems


def _sla(path: Path, root: yaml.Node, cfg: FleetmonConfig) -> Sla:
    """The SLA clocks of `assessment.sla`, built now so that a holiday file that cannot be read
    or is invalid is a config error at the line naming it (its own problems with their lines
    in it), and so is a calendar without any working day. Raises ConfigError."""
    try:
        return Sla.from_config(cfg.assessment.sla, cfg.timezone, path.absolute().parent)
    except CalendarError as exc:
        where, messages = ("assessment", "sla", "calendar", "file"), exc.messages
    except ValueError as exc:  # WorkCalendar: no working day at all
        where, messages = ("assessment", "sla", "calendar", "workdays"), [str(exc)]
    shown, line = locate(root, where)
    raise ConfigError([f"{path}:{line}: {_dotted(shown)}: {message}" for message in messages])


def _by_line(problems: list[tuple[int, str]]) -> list[str]:
    """Messages of (line, message) problems in file order."""
    return [message for _, message in sorted(problems, key=lambda problem: problem[0])]


MAX_CONFIG_BYTES = 16 << 20
"""A config file larger than this is refused unread (the example is ~30 KB)."""


def _read_text(path: Path) -> str:
    """The file's text; UTF-8, a BOM tolerated. Raises ConfigError."""
    try:
        raw = read_regular_file(path, MAX_CONFIG_BYTES, "a config file")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except ValueError as exc:  # a FIFO, a device, a directory, too large
        raise ConfigError([f"{path}: {exc}"]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{path}:{line}: the config must be UTF-8 text"]) from None


def _parse_yaml(path: Path, text: str) -> tuple[yaml.Node, Any, list[tuple[int, str]]]:
    """(root node, constructed data, duplicate-key problems as (line, message)).

    Raises ConfigError on a syntax error ("FILE:LINE:COL: YAML syntax error: …") and on an
    empty document.
    """
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # a control character; the only error without a mark
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        raise ConfigError(
            [f"{path}:{line}:{column}: YAML syntax error: {exc.reason} (character #x{exc.character:02x})"]
        ) from None
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:  # PyYAML composes nested collections recursively
            mark = loader.get_mark()
            raise ConfigError([f"{path}:{mark.line + 1}:{mark.column + 1}: YAML nested too deeply"]) from None
        if root is None:
            raise _empty(path)
        # Before construction, which would build every expansion (exponential in the text).
        if (too_large := expansion_problem(root)) is not None:
            mark, why = too_large
            raise ConfigError([f"{path}:{mark.line + 1}:{mark.column + 1}: {why}"])
        # Before construction: constructing merges `<<:` keys into their mappings, and a key
        # overriding a merged one is not a duplicate.
        problems = list(_duplicate_keys(path, root, (), set()))
        try:
            data = loader.construct_document(root)
        except ValueError:  # PyYAML raises a bare ValueError for a date that does not exist (2027-13-01)
            raise ConfigError([_bad_timestamp(path, root, loader)]) from None
        if data is None:  # only "---" or "null"
            raise _empty(path)
        return root, data, problems
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_error(path, exc)]) from None
    finally:
        loader.dispose()


def _bad_timestamp(path: Path, root: yaml.Node, loader: yaml.SafeLoader) -> str:
    """"FILE:LINE:COL: …" of the first scalar YAML reads as a timestamp and cannot construct."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:timestamp":
            try:
                loader.construct_yaml_timestamp(node)
            except ValueError as exc:
                mark = node.start_mark
                return f"{path}:{mark.line + 1}:{mark.column + 1}: {node.value!r} is not a date ({exc})"
        elif isinstance(node, yaml.MappingNode):
            stack.extend(v for pair in reversed(node.value) for v in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
    return f"{path}: a value YAML cannot construct"


def _empty(path: Path) -> ConfigError:
    return ConfigError([f"{path}: the config is empty; write {{}} to run on the defaults"])


def _syntax_error(path: Path, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    message = f"{where}: YAML syntax error: {exc.problem or exc.context}"
    if exc.problem and exc.context and exc.context_mark:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    return message


def _duplicate_keys(path: Path, node: yaml.Node, loc: Loc, seen: set[int]) -> Iterator[tuple[int, str]]:
    """(line, message) for every mapping key written twice: PyYAML silently keeps the last,
    which would e.g. drop a whole first `inventory:` section. `seen` holds the nodes already
    walked, so that an anchored node is checked once and recursive aliases end."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            if isinstance(key, yaml.ScalarNode):
                if key.value in first:
                    where = f"{path}:{line}: {_dotted(loc + (key.value,))}"
                    yield line, f"{where}: duplicate key (first at line {first[key.value]})"
                else:
                    first[key.value] = line
            yield from _duplicate_keys(path, value, loc + (str(key.value),), seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(path, item, loc + (index,), seen)


def _describe(path: Path, root: yaml.Node, error: Any, model: type[BaseModel] | None = None) -> tuple[int, str]:
    """(line, "FILE:LINE: yaml.path: message") for one pydantic error of `model` (the config's
    by default)."""
    shown, line = locate(root, error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = _unknown_key(error["loc"], model or FleetmonConfig)
    elif error["type"] == "missing":
        message = "required key missing"
    elif error["type"] == "model_type":  # pydantic's text names our classes
        message = "must be a mapping (key: value)" + (", found nothing" if error["input"] is None else "")
    prefix = f"{path}:{line}: "
    return line, prefix + (f"{_dotted(shown)}: {message}" if shown else message)


def _unknown_key(loc: Loc, model: type[BaseModel]) -> str:
    """"unknown key", with the closest known key or the list of known keys."""
    known = _known_keys(model, loc[:-1])
    if not known:
        return "unknown key"
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"unknown key, did you mean {close[0]!r}?"
    return f"unknown key (known: {', '.join(known)})"


def _dotted(loc: Loc) -> str:
    """("inventory", "devices", 3, "kind") → "inventory.devices[3].kind"."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# --- walking the model classes (path resolution, known keys) ----------------------------------


def _alternatives(tp: Any) -> Iterator[Any]:
    """The concrete types an annotation allows: Annotated and unions (incl. Optional) unwrapped."""
    origin = get_origin(tp)
    if origin is Annotated:
        yield from _alternatives(get_args(tp)[0])
    elif origin is Union or origin is UnionType:
        for arg in get_args(tp):
            yield from _alternatives(arg)
    else:
        yield tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _with_base(tp: Any, value: Any, base: Path) -> Any:
    """`value` (raw YAML data for a `tp`) with every relative path, where the model holds a
    Path, joined to `base`. Data of the wrong shape is returned unchanged for pydantic to
    report."""
    for alt in _alternatives(tp):
        if alt is Path and isinstance(value, str) and value:
            return str(base / value)  # an absolute value stays as it is
        if get_origin(alt) is list and isinstance(value, list):
            (item,) = get_args(alt)
            return [_with_base(item, v, base) for v in value]
        if _is_model(alt) and isinstance(value, dict):
            fields = alt.model_fields
            return {k: _with_base(fields[k].annotation, v, base) if k in fields else v for k, v in value.items()}
    return value


def _known_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """Keys allowed in the YAML mapping at `loc` below `model`; [] when loc leads elsewhere."""
    tp: Any = model
    for part in loc:
        tp = _step(tp, part)
    models = [alt for alt in _alternatives(tp) if _is_model(alt)]
    return [name for name, field in models[0].model_fields.items() if not field.exclude] if models else []


def _step(tp: Any, part: str | int) -> Any:
    """The annotation one step below annotation `tp`: a list's items, or a model's field; None
    when `tp` has no such step."""
    for alt in _alternatives(tp):
        if isinstance(part, int) and get_origin(alt) is list:
            return get_args(alt)[0]
        if isinstance(part, str) and _is_model(alt) and part in alt.model_fields:
            return alt.model_fields[part].annotation
    return None

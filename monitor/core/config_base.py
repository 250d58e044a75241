"""Building blocks shared by every config model (monitor.app.config and each probe's Config),
kept apart so that probe modules need not import the whole config tree."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Iterable
from urllib.parse import parse_qsl, urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from monitor.core.model import Kind, Selector


_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")

MAX_SECRET_FILE = 64 * 1024
"""Bytes a `*_file` secret may hold: keys, tokens and passwords are far shorter; a larger file is
the wrong file (or /dev/zero), refused rather than read into memory."""


def read_secret(env: str | None, file: Path | None, what: str) -> SecretStr | None:
    """The secret named by `env` (an environment variable) or `file`, or None when neither is
    given. Raises ValueError (never showing the secret) when it is missing or empty."""
    if env is not None:
        if not _ENV_NAME.fullmatch(env):
            raise ValueError(
                f"{what}_env must name an environment variable (A-Z, 0-9, _); "
                "its value is not shown in case it is the secret itself"
            )
        value = os.environ.get(env)
        if value is None:
            raise ValueError(f"{what}: environment variable {env} is not set")
        origin = f"environment variable {env}"
    elif file is not None:
        try:
            value = read_regular_file(file, MAX_SECRET_FILE, "a regular file holding the secret").decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ValueError(f"{what}: cannot read {file}: {reason}") from None
        except ValueError as exc:
            raise ValueError(f"{what}: {file}: {exc}") from None
        origin = str(file)
    else:
        return None
    if not value:
        raise ValueError(f"{what}: {origin} is empty")
    return SecretStr(value)


def read_regular_file(file: Path, limit: int, wanted: str = "a regular file") -> bytes:
    """The bytes of a regular file of at most `limit` bytes. Never blocks: opened with
    O_NONBLOCK (a FIFO without a writer would hang a plain open), then fstat decides. Raises
    OSError (unreadable) or ValueError (not a regular file: "is a FIFO, not {wanted}"; too
    large). For secret files, the config and point lists: /dev/zero must not eat the memory."""
    fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = (
                "a directory" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode)
                else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file"
            )
            raise ValueError(f"is {kind}, not {wanted}")
        if info.st_size > limit:
            raise ValueError(f"is larger than {_size(limit)}")
        # Read one byte past the cap: a file growing after fstat is caught too.
        chunks, size = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ValueError(f"is larger than {_size(limit)}")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit >> 10} KiB"


_SECRET_WORDS = re.compile(r"pass|pwd|secret|token|key|auth|sig|credential|session|cookie", re.IGNORECASE)
"""Parts of URL query parameter and header names that carry secrets (access_token, apikey,
X-Api-Key, Authorization, signature, sessionid, …)."""
_SECRET_PARAMS = frozenset({"p", "u", "sign", "code", "ticket"})
"""Short query parameter names that carry secrets: InfluxDB 1.x's ?u=&p=, signed-URL schemes."""


def url_secret_problem(url: str, query: bool = True) -> str | None:
    """Why `url` carries a secret (user:password@, or with `query` a query parameter named like
    a secret: ?token=, ?key=, ?p= …); None when it does not; with `query=False` any query is a
    problem. The message never shows the URL. For validators of URLs in the config: secrets
    belong in `*_env` / `*_file` (docs/OPERATIONS.md "Secrets")."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None  # malformed: the caller's own URL check reports it
    if "@" in parts.netloc:
        return "must not carry credentials (user:password@): secrets go in *_env or *_file"
    if parts.query and not query:
        return "must not have a query (?…): secrets go in *_env or *_file"
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower() in _SECRET_PARAMS or _SECRET_WORDS.search(name):
            return f"must not carry a secret in the query ({name}=…): secrets go in *_env or *_file"
    return None


def header_secret_problem(name: str) -> str | None:
    """Why a header named `name` would carry a secret (Authorization, Cookie, X-Api-Key,
    X-Auth-Token …), None when it would not. Headers are written in the config, so such a
    header would put the secret in it."""
    if _SECRET_WORDS.search(name):
        return f"header {name} would carry a secret in the config: give it as token_env or token_file"
    return None


def refuse_inline_secrets(data: object, *keys: str) -> object:
    """For `model_validator(mode="before")`: a secret written in the config itself is an error
    (it would end up in backups and tickets); it belongs in `<key>_env` or `<key>_file`."""
    if isinstance(data, dict):
        for key in keys:
            if key in data:
                raise ValueError(f"'{key}' must not be written in the config: use {key}_env or {key}_file")
    return data


def resolve_secret(model: BaseModel, name: str) -> SecretStr | None:
    """The secret `name` of `model` from its fields `<name>_env` / `<name>_file` (read_secret), or
    None when neither is given. Raises ValueError when both are given."""
    env, file = getattr(model, f"{name}_env"), getattr(model, f"{name}_file")
    if env and file:
        raise ValueError(f"give {name} either as {name}_env or as {name}_file, not both")
    return read_secret(env, file, name)


def is_http_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host and, if any, a non-zero port. For URL
    validators, whose errors must not echo the URL (it may carry credentials or a key)."""
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # urlsplit and .port reject malformed hosts and ports
        return False


def is_bare_http_url(url: str) -> bool:
    """is_http_url, and without user:password@ and without a query: for endpoints whose
    credentials travel elsewhere (a token file, a signature), so none may hide in the URL."""
    return is_http_url(url) and not urlsplit(url).query and urlsplit(url).username is None


def check_http_url(text: str) -> str:
    """`text` stripped when it is an http:// or https:// URL with a host (and a port, if any,
    1–65535), no user:password@ and no query parameter named like a secret (url_secret_problem);
    raises ValueError otherwise, without echoing it. For the point list's `url` and the HTTP
    check's templates."""
    url = text.strip()
    if not is_http_url(url):
        raise ValueError("must be an http:// or https:// URL with a host")
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        # Point lists get mailed around: credentials belong in the config's *_env or *_file.
        raise ValueError("must not carry credentials (user:password@): set them in probes.http")
    if (problem := url_secret_problem(url)) is not None:
        raise ValueError(problem)
    return url


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, instances are frozen. Validators are
    built on first use (defer_build): a nested model's own is never needed, the whole config's
    covers it (~2 MB of the daemon's RSS at import, ~1 MB once the config is read)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _bare_host(host: str) -> str:
    # Not echoed: "user:password@broker" would be a secret written in the config.
    if any(c in host for c in "@/?# "):
        raise ValueError("must be a host name or address only (no URL, no user:password@): "
                         "the password goes in password_env or password_file")
    return host


BareHost = Annotated[str, Field(min_length=1), AfterValidator(_bare_host)]
"""Type of a broker's or server's `host`: a name or address only, never a URL with an account in it."""


def _topic_prefix(prefix: str) -> str:
    prefix = prefix.rstrip("/")
    if not prefix:
        raise ValueError("must not be empty")
    if prefix.startswith("/"):
        raise ValueError("must not start with /: that adds an empty first topic level, which subscribers of "
                         "the prefix without it never see (MQTT 3.1.1 §4.7.1.1)")
    if any(c in prefix for c in "+#\0"):
        raise ValueError("must not contain the wildcards + and # or NUL (MQTT 3.1.1 §4.7)")
    if prefix.startswith("$"):
        raise ValueError("topics starting with $ are the broker's own (MQTT 3.1.1 §4.7.2)")
    return prefix


TopicPrefix = Annotated[str, AfterValidator(_topic_prefix)]
"""Type of an MQTT topic prefix of ours (`fleetmon/faults`): the topics are `{prefix}/…`, so a
trailing "/" is dropped; empty, a leading "/", wildcards, NUL and `$…` are errors."""


ResolvedSecret = Annotated[SecretStr | None, Field(exclude=True, repr=False)]
"""Type of the field a secret is resolved into (`token: ResolvedSecret = None`): never part of
the YAML, of dumps or of repr."""


class WithSecrets(Strict):
    """Base of config models that hold secrets (passwords, tokens, keys, communities).

    Each name in `secrets` is written in the config only as `<name>_env` (an environment
    variable) or `<name>_file` (a file, stripped), never inline (it would end up in backups and
    tickets), and is resolved once, at load, into the field `<name>`. The subclass declares the
    three fields itself, so that its schema reads plainly:

        secrets = ("token",)
        token_env: str | None = None
        token_file: Path | None = None
        token: ResolvedSecret = None

    Checks, before the subclass's own after-validators run: `<name>` (or a key in `refused`)
    written inline; `<name>_env` and `<name>_file` both given; read_secret's errors (variable
    unset, file unreadable, value empty). Whether a secret is required, and how it goes with
    other fields, is the subclass's business: its after-validators see the resolved values.
    A class lacking one of the three fields of a secret is refused when it is defined (TypeError).
    """

    secrets: ClassVar[tuple[str, ...]] = ()
    refused: ClassVar[tuple[str, ...]] = ()
    """Further keys refused inline, resolved by the subclass itself (e.g. a list of secrets)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name in cls.secrets:
            missing = [f for f in (f"{name}_env", f"{name}_file", name) if f not in cls.model_fields]
            if missing:
                raise TypeError(f"{cls.__name__}: secret {name!r} needs the fields {', '.join(missing)}")

    @model_validator(mode="before")
    @classmethod
    def _refuse_inline_secrets(cls, data: object) -> object:
        return refuse_inline_secrets(data, *cls.secrets, *cls.refused)

    @model_validator(mode="after")
    def _resolve_secrets(self) -> "WithSecrets":
        for name in self.secrets:
            object.__setattr__(self, name, resolve_secret(self, name))
        return self


class MqttAccount(WithSecrets):
    """An MQTT broker and the account on it, shared by the MQTT notify route and the probe
    agents' broker (both any MQTT 3.1.1/5 broker): `host` (a name or address only), `port`,
    `username`, the password as `password_env` / `password_file` (a password needs a
    username: MQTT 3.1.1 §3.1.2.9). Errors never echo their input: a host may carry a secret."""

    model_config = ConfigDict(hide_input_in_errors=True)

    secrets = ("password",)

    host: BareHost
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: Annotated[str, Field(min_length=1)] | None = None
    password_env: str | None = None
    password_file: Path | None = None

    password: ResolvedSecret = None

    @model_validator(mode="after")
    def _password_needs_username(self) -> "MqttAccount":
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username (MQTT 3.1.1 §3.1.2.9)")
        return self


class SelectorConfig(Strict):
    """Selects devices; every list empty = all devices. See monitor.core.model.Selector."""

    region: list[str] = []
    site: list[str] = []
    kind: list[Kind] = []
    tags: list[str] = []

    def selector(self) -> Selector:
        return Selector.of(self.region, self.site, self.kind, self.tags)


Loc = tuple[str | int, ...]
"""A path into the YAML document, e.g. ("inventory", "devices", 3, "kind")."""


MAX_MESSAGES = 100
"""Problems a ConfigError lists; the rest are counted in a last line "… and K more problems"."""


class ConfigError(Exception):
    """The config is invalid. `messages` holds the problems found, one line each:
    "FILE:LINE: yaml.path: message" (or "FILE:LINE:COL: YAML syntax error: …"): the first
    MAX_MESSAGES of them, then "… and K more problems" when there were more (a broken point list
    of 5,000 rows must not print 5,000 lines, nor a hostile config a million)."""

    def __init__(self, messages: Iterable[str]) -> None:
        kept: list[str] = []
        more = 0
        for message in messages:
            if len(kept) < MAX_MESSAGES:
                kept.append(message)
            else:
                more += 1
        self.total = len(kept) + more
        """Problems found, those not listed included."""
        if more:
            kept.append(f"… and {more} more problem{'s' if more > 1 else ''}")
        self.messages = kept
        super().__init__("\n".join(self.messages))


MAX_YAML_NODES = 250_000
"""Nodes a config document may hold once its aliases (*name) and merge keys (<<) are expanded.
A point list's worth of inline devices is far below it; a "billion laughs" document of a few
kilobytes expanding to millions of nodes (minutes of CPU, gigabytes, a million error lines) is
refused before it is constructed."""


def expansion_problem(root: yaml.Node, limit: int = MAX_YAML_NODES) -> tuple[yaml.Mark, str] | None:
    """(where, why) when the node graph under `root` expands to more than `limit` nodes, or
    when an alias refers to a node that contains it (a recursive document); None otherwise.

    Counts in time linear in the composed document (each node once, its expanded size
    memoised), without recursion (nesting depth is unbounded in YAML). `where` is the smallest
    node that is too large, so the message points at the expansion at fault."""
    size: dict[int, int] = {}
    open_: set[int] = set()  # nodes whose subtree is being counted: the current path
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        children = _children(node)
        if done:
            open_.discard(id(node))
            total = 1 + sum(size[id(child)] for child in children)
            if total > limit:
                return node.start_mark, (
                    f"the YAML here expands to more than {limit:,} nodes through aliases (*name) "
                    "and merge keys (<<): refused"
                )
            size[id(node)] = total
            continue
        if id(node) in size:
            continue
        if id(node) in open_:
            return node.start_mark, "an alias (*name) refers to a node that contains it: recursive YAML is refused"
        open_.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children) if id(child) not in size)
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """Where a loaded config came from: the file (as the caller named it) and its YAML node
    tree, so that later checks (the inventory's inline devices) can point at lines too."""

    path: Path
    root: yaml.Node

    def line(self, loc: Loc) -> int:
        """1-based line of the node at `loc` (of its key, in a mapping), or of its nearest
        existing ancestor."""
        return locate(self.root, loc)[1]


def locate(root: yaml.Node, loc: Loc) -> tuple[Loc, int]:
    """Follow `loc` through the node tree: (the part of loc that exists in the document, plus a
    missing key's name; the 1-based line of the deepest node reached, for a mapping entry the
    line of its key).

    Stops at scalars, so that pydantic's union-member steps ("int", "function-after[…]") are
    dropped from the path shown; skips the tag of a discriminated union ("wecom" in
    ("notify", "routes", 0, "wecom", "timezone")), which is the value of the mapping's `type`.
    """
    node, line, shown = root, root.start_mark.line + 1, []
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            # The last entry: for a duplicated key PyYAML keeps the last value.
            entry = next((kv for kv in reversed(node.value) if kv[0].value == part), None)
            if entry is None and any(k.value == "type" and getattr(v, "value", None) == part for k, v in node.value):
                continue  # the union's tag, not a key
            shown.append(part)
            if entry is None:  # a required key that is missing: name it, point at its parent
                break
            line, node = entry[0].start_mark.line + 1, entry[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            shown.append(part)
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return tuple(shown), line

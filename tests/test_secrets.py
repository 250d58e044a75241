"""The secret env/file pattern written once (monitor.core.config_base.WithSecrets): refused
inline, one source only, resolved before the model's own checks, never shown. Each config class
that uses it has its own tests (test_config, test_api, test_wecom, test_webhook, test_mqtt,
test_accounts, test_snmp, test_traps); this tests the mechanism on a model of its own."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError, model_validator

from monitor.core.config_base import ResolvedSecret, WithSecrets

SECRET = "s3cret-value-71"


class Door(WithSecrets):
    secrets = ("code", "key")

    code_env: str | None = None
    code_file: Path | None = None
    key_env: str | None = None
    key_file: Path | None = None
    code: ResolvedSecret = None
    key: ResolvedSecret = None
    seen: str | None = None

    @model_validator(mode="after")
    def _sees_resolved(self) -> "Door":
        # A subclass's own validator runs after the secrets are resolved.
        object.__setattr__(self, "seen", "code" if self.code is not None else "nothing")
        return self


def messages(info: pytest.ExceptionInfo[ValidationError]) -> str:
    return " | ".join(error["msg"] for error in info.value.errors(include_url=False))


def test_from_env_or_file_and_never_shown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FM_DOOR_CODE", SECRET)
    door = Door(code_env="FM_DOOR_CODE")
    assert door.code.get_secret_value() == SECRET and door.key is None and door.seen == "code"
    (tmp_path / "key").write_text(f"{SECRET}-file\n")
    assert Door(key_file=tmp_path / "key").key.get_secret_value() == f"{SECRET}-file"
    assert Door().seen == "nothing"
    assert SECRET not in repr(door) and SECRET not in door.model_dump_json() and "code" not in door.model_dump()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"code": SECRET}, "'code' must not be written in the config: use code_env or code_file"),
        ({"key": SECRET}, "'key' must not be written in the config: use key_env or key_file"),
        ({"code_env": "FM_DOOR_CODE", "code_file": "/x"}, "give code either as code_env or as code_file, not both"),
        ({"key_env": "FM_DOOR_UNSET"}, "key: environment variable FM_DOOR_UNSET is not set"),
        ({"key_env": "FM_DOOR_EMPTY"}, "key: environment variable FM_DOOR_EMPTY is empty"),
        ({"key_env": SECRET}, "key_env must name an environment variable"),
        ({"code_file": "/nonexistent/fleetmon/code"}, "code: cannot read /nonexistent/fleetmon/code"),
    ],
)
def test_errors(monkeypatch: pytest.MonkeyPatch, data: dict, message: str) -> None:
    monkeypatch.setenv("FM_DOOR_CODE", SECRET)
    monkeypatch.setenv("FM_DOOR_EMPTY", "")
    monkeypatch.delenv("FM_DOOR_UNSET", raising=False)
    with pytest.raises(ValidationError) as info:
        Door.model_validate(data)
    assert message in messages(info)
    assert SECRET not in messages(info)


def test_a_secret_without_its_fields_is_refused_at_definition() -> None:
    with pytest.raises(TypeError, match=r"Half: secret 'pin' needs the fields pin_file, pin"):
        class Half(WithSecrets):
            secrets = ("pin",)
            pin_env: str | None = None


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    return found.union(*(_subclasses(c) for c in found))


def test_every_env_file_pair_goes_through_it() -> None:
    """Written once: every product model with a `<name>_env` / `<name>_file` pair declares it
    to WithSecrets, and nothing outside config_base reads secrets by itself."""
    root = Path(__file__).resolve().parent.parent
    for path in sorted(p for pkg in ("monitor", "probes", "rules") for p in (root / pkg).rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        importlib.import_module(module)
        if module != "monitor.core.config_base":
            text = path.read_text(encoding="utf-8")
            assert "read_secret(" not in text and "refuse_inline_secrets(" not in text, module
    pairs = {
        (model, field[: -len("_env")])
        for model in _subclasses(BaseModel)
        if model.__module__.split(".")[0] in ("monitor", "probes", "rules")
        for field in model.model_fields
        if field.endswith("_env") and field.replace("_env", "_file") in model.model_fields
    }
    assert len(pairs) >= 10, pairs  # the walk found the config classes
    undeclared = [
        f"{model.__module__}.{model.__name__}: {name}" for model, name in pairs
        if not (issubclass(model, WithSecrets) and name in (*model.secrets, *model.refused))
    ]
    assert not undeclared

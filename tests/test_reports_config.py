"""Config section `reports` (monitor/reports/config.py): strict and frozen, schedule fields that fit
their report type, e-mail secrets from env or file only (never echoed), and WeCom delivery naming
WeCom routes of `notify.routes`."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.reports.config import ReportsConfig, wecom_routes
from rules.alerting.config import NotifyConfig

EMAIL = {"host": "smtp.example.cn", "sender": "reports@example.cn", "to": ["buyer@example.cn"]}


def errors(data: dict) -> str:
    with pytest.raises(ValidationError) as info:
        ReportsConfig.model_validate(data)
    return str(info.value)


def test_defaults_make_no_schedule_and_both_formats():
    cfg = ReportsConfig()
    assert cfg.directory == Path("/var/lib/fleetmon/reports")
    assert (cfg.keep_days, cfg.formats, cfg.schedule, cfg.pdf_max_rows, cfg.catch_up) == (400, ["pdf", "xlsx"], [], None, 7)
    assert cfg.delivery.wecom == [] and cfg.delivery.email is None
    with pytest.raises(ValidationError, match="frozen"):
        cfg.keep_days = 1


def test_a_full_section_is_read_as_written():
    cfg = ReportsConfig.model_validate(
        {
            "directory": "/srv/reports",
            "keep_days": 90,
            "formats": ["xlsx", "pdf", "xlsx"],
            "pdf_max_rows": 2000,
            "schedule": [
                {"report": "daily", "at": "08:00", "formats": ["pdf"]},
                {"report": "weekly", "at": "08:30", "weekday": 1},
                {"report": "quarterly", "at": "09:00", "day": 5, "deliver": False},
            ],
            "delivery": {"wecom": ["duty-group"]},
        }
    )
    assert cfg.formats == ["xlsx", "pdf"]
    assert cfg.schedule[0].at == time(8, 0) and cfg.schedule[2].day == 5 and cfg.schedule[2].deliver is False
    assert cfg.formats_for("daily") == ["pdf"] and cfg.formats_for("weekly") == ["xlsx", "pdf"]
    assert cfg.formats_for("annual") == ["xlsx", "pdf"]  # not scheduled: on demand, default formats


@pytest.mark.parametrize(
    "data, message",
    [
        ({"keep": 30}, "Extra inputs are not permitted"),
        ({"keep_days": 0}, "greater than or equal to 1"),
        ({"formats": []}, "at least 1 item"),
        ({"formats": ["docx"]}, "Input should be 'pdf' or 'xlsx'"),
        ({"schedule": [{"report": "hourly"}]}, "Input should be 'daily', 'weekly'"),
        ({"schedule": [{"report": "daily", "weekday": 1}]}, "weekday is for weekly reports, not daily"),
        ({"schedule": [{"report": "weekly", "day": 1}]}, "day is for monthly and longer reports, not weekly"),
        ({"schedule": [{"report": "monthly", "day": 31}]}, "less than or equal to 28"),
        ({"schedule": [{"report": "weekly", "weekday": 0}]}, "greater than or equal to 1"),
        ({"schedule": [{"report": "daily", "at": "08:00:30"}]}, "whole minutes"),
        ({"schedule": [{"report": "daily", "at": "25:00"}]}, "valid time"),
        ({"schedule": [{"report": "daily", "formats": []}]}, "list at least one format"),
        ({"schedule": [{"report": "daily"}, {"report": "daily", "at": "20:00"}]}, "one schedule entry per report type; twice: daily"),
        ({"delivery": {"wecom": ["a", "a"]}}, "route named twice: a"),
    ],
)
def test_bad_values_are_refused_with_a_reason(data, message):
    assert message in errors(data)


def test_email_passwords_come_from_env_or_file_and_are_never_echoed(monkeypatch, tmp_path):
    monkeypatch.setenv("FLEETMON_TEST_SMTP_PW", "s3cret-pw")
    email = EMAIL | {"username": "reports@example.cn", "password_env": "FLEETMON_TEST_SMTP_PW"}
    cfg = ReportsConfig.model_validate({"delivery": {"email": email}})
    assert cfg.delivery.email.password.get_secret_value() == "s3cret-pw"
    assert "s3cret-pw" not in repr(cfg) and "s3cret-pw" not in cfg.model_dump_json()
    secret = tmp_path / "smtp.pw"
    secret.write_text("file-pw\n")
    cfg = ReportsConfig.model_validate({"delivery": {"email": EMAIL | {"username": "u", "password_file": str(secret)}}})
    assert cfg.delivery.email.password.get_secret_value() == "file-pw"

    text = errors({"delivery": {"email": EMAIL | {"username": "u", "password": "inline-pw"}}})
    assert "'password' must not be written in the config: use password_env or password_file" in text
    assert "inline-pw" not in text


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"username": "u"}, "username needs password_env or password_file"),
        ({"password_env": "FLEETMON_TEST_SMTP_PW"}, "a password without a username"),
        ({"username": "u", "password_env": "X", "password_file": "/x"}, "not both"),
        ({"username": "u", "password_env": "FLEETMON_TEST_SMTP_PW", "security": "none"}, "unencrypted"),
        ({"ca_file": "/etc/ca.pem", "security": "none"}, "ca_file is for starttls or tls"),
        ({"username": "u", "password_env": "FLEETMON_NO_SUCH_VARIABLE"}, "FLEETMON_NO_SUCH_VARIABLE is not set"),
        ({"to": []}, "at least 1 item"),
        ({"to": ["buyer"]}, "not an e-mail address: 'buyer'"),
        ({"sender": "reports at example.cn"}, "not an e-mail address"),
        ({"host": "smtp example"}, "must be a host name or an IP address"),
        ({"port": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_email_settings_are_refused(monkeypatch, extra, message):
    monkeypatch.setenv("FLEETMON_TEST_SMTP_PW", "pw")
    assert message in errors({"delivery": {"email": EMAIL | extra}})


def test_wecom_delivery_names_wecom_routes(monkeypatch):
    monkeypatch.setenv("FLEETMON_TEST_WECOM_KEY", "k")
    notify = NotifyConfig.model_validate(
        {
            "routes": [
                {"name": "duty-group", "type": "wecom", "key_env": "FLEETMON_TEST_WECOM_KEY"},
                {"name": "managers", "type": "wecom", "key_env": "FLEETMON_TEST_WECOM_KEY"},
                {"name": "ops-hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"},
            ]
        }
    )
    cfg = ReportsConfig.model_validate({"delivery": {"wecom": ["managers", "duty-group"]}})
    assert [r.name for r in wecom_routes(cfg, notify.routes)] == ["managers", "duty-group"]
    bad = ReportsConfig.model_validate({"delivery": {"wecom": ["duty", "ops-hook"]}})
    with pytest.raises(ValueError) as info:
        wecom_routes(bad, notify.routes)
    assert str(info.value) == (
        "reports.delivery.wecom: no route named 'duty' in notify.routes (WeCom routes: duty-group, managers); "
        "reports.delivery.wecom: route 'ops-hook' is a webhook route, not a WeCom robot"
    )


def test_the_config_file_checks_the_reports_routes_at_their_line(tmp_path, monkeypatch):
    from monitor.app.config import load_config
    from monitor.core.config_base import ConfigError

    monkeypatch.setenv("FLEETMON_TEST_WECOM_KEY", "k")
    path = tmp_path / "config.yaml"
    path.write_text(
        "notify:\n"
        "  routes:\n"
        "    - {name: duty-group, type: wecom, key_env: FLEETMON_TEST_WECOM_KEY}\n"
        "reports:\n"
        "  schedule: [{report: daily, at: '08:00'}]\n"
        "  delivery: {wecom: [duty]}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.messages == [
        f"{path}:4: reports: reports.delivery.wecom: no route named 'duty' in notify.routes (WeCom routes: duty-group)"
    ]
    path.write_text(path.read_text(encoding="utf-8").replace("[duty]", "[duty-group]"), encoding="utf-8")
    cfg = load_config(path)
    assert cfg.reports.delivery.wecom == ["duty-group"] and cfg.reports.schedule[0].report == "daily"
    assert cfg.reports.directory == Path("/var/lib/fleetmon/reports")

"""config.yaml section `assessment`: strict, with clear errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from monitor.assess.config import AssessmentConfig, Definition, UnknownPolicy


def test_defaults():
    cfg = AssessmentConfig().availability
    assert cfg.definition is Definition.POINT_TIME and cfg.unknown_policy is UnknownPolicy.EXCLUDE
    assert cfg.daily_check_times == ["09:00", "15:00"] and cfg.check_minutes() == (540, 900)


def test_check_times_are_sorted():
    cfg = AssessmentConfig.model_validate(
        {"availability": {"definition": "daily_snapshot", "daily_check_times": ["20:30", "08:00"]}}
    ).availability
    assert cfg.daily_check_times == ["08:00", "20:30"] and cfg.check_minutes() == (480, 1230)


@pytest.mark.parametrize("availability, message", [
    ({"daily_check_times": ["9:00"]}, "daily check time '9:00' is not HH:MM"),
    ({"daily_check_times": ["24:00"]}, "is not HH:MM"),
    ({"daily_check_times": ["09:00", "09:00"]}, "lists a time twice"),
    ({"daily_check_times": []}, "at least 1 item"),
    ({"definition": "average"}, "'point_time' or 'daily_snapshot'"),
    ({"unknown_policy": "ignore"}, "'exclude', 'count_as_up' or 'count_as_down'"),
    ({"defintion": "point_time"}, "Extra inputs are not permitted"),
])
def test_bad_values_are_errors(availability, message):
    with pytest.raises(ValidationError, match=message):
        AssessmentConfig.model_validate({"availability": availability})

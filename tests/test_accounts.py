"""Camera accounts shared by the RTSP and ONVIF probes: default, exceptions, secrets."""

import pytest
from pydantic import ValidationError

from probes.accounts import CameraAccounts
from probes.onvif import OnvifConfig
from probes.rtsp import RtspConfig
from tests.plugins.factories import device


def test_default_then_the_last_matching_exception(monkeypatch, tmp_path):
    monkeypatch.setenv("CAM_PW", "default-pw")
    hexi = tmp_path / "hexi.pw"
    hexi.write_text("hexi-pw\n")
    accounts = CameraAccounts(username="admin", password_env="CAM_PW", credentials=[
        {"match": {"region": ["河西乡"]}, "username": "first", "password_env": "CAM_PW"},
        {"match": {"region": ["河西乡"]}, "username": "ops", "password_file": str(hexi)},
    ])
    user, password = accounts.account_for(device(region="河西乡"))
    assert (user, password.get_secret_value()) == ("ops", "hexi-pw")
    user, password = accounts.account_for(device(region="城关镇"))
    assert (user, password.get_secret_value()) == ("admin", "default-pw")
    only_exceptions = CameraAccounts(credentials=[{"match": {"region": ["河西乡"]}, "username": "ops",
                                                   "password_file": str(hexi)}])
    assert only_exceptions.account_for(device(region="城关镇")) is None


@pytest.mark.parametrize("config", [OnvifConfig, RtspConfig])
def test_both_camera_probes_take_the_same_account_fields(config, monkeypatch):
    monkeypatch.setenv("CAM_PW", "s3cret-pw")
    assert config(username="admin", password_env="CAM_PW").account_for(device(region="r"))[0] == "admin"
    with pytest.raises(ValidationError, match="must not be written in the config") as info:
        config(username="admin", password="s3cret-pw")
    assert "s3cret-pw" not in str(info.value)  # errors never echo the input
    with pytest.raises(ValidationError, match="go together"):
        config(username="admin")

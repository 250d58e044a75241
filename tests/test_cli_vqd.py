"""`fleetmon probe vqd`: an image file, a stream, a reference; bad input is a located error."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from lab.rtsp import RtspServer
from lab.vqd_data import photo
from monitor.app.cli import main


def _write(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), image)
    return path


def test_image_normal_blurred_and_moved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scene = cv2.resize(photo("astronaut"), (480, 480), interpolation=cv2.INTER_AREA)
    sharp = _write(tmp_path / "sharp.png", scene)
    blurred = _write(tmp_path / "blurred.png", cv2.GaussianBlur(scene, (0, 0), 5))
    assert main(["probe", "vqd", str(sharp), "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["faults"] == [] and report["size"] == [480, 480]
    assert main(["probe", "vqd", str(blurred)]) == 1
    out = capsys.readouterr().out
    assert "画面模糊" in out and " *" in out
    shifted = _write(tmp_path / "moved.png", np.roll(scene, 120, axis=1))
    assert main(["probe", "vqd", str(shifted), "--reference", str(sharp), "--json"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    assert "moved" in report["faults"]


def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8 not really")
    assert main(["probe", "vqd", str(junk), "--json"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and "junk.jpg" in report["error"]
    assert main(["probe", "vqd", str(junk), "--reference", str(tmp_path / "missing.png")]) == 2
    assert "missing.png" in capsys.readouterr().err


@pytest.mark.peer
def test_stream(capsys: pytest.CaptureFixture[str]) -> None:
    with RtspServer(auth="digest", user="admin", password="pw-9") as server:
        main(["probe", "vqd", server.url().replace("rtsp://", "rtsp://admin:pw-9@"), "--gap", "1", "--json"])
        (report,) = json.loads(capsys.readouterr().out)
        assert report["frames"] == 2 and set(report["scores"]) >= {"blur", "frozen", "noise", "decode_errors"}
        assert report["target"].startswith("rtsp://admin:***@")
        # A wrong password: the reason, and the URL printed without it.
        assert main(["probe", "vqd", server.url().replace("rtsp://", "rtsp://admin:wrong-7@"), "--timeout", "5"]) == 1
        out = capsys.readouterr().out
        assert "401 Unauthorized" in out and "wrong-7" not in out

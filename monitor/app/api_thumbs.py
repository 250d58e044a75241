"""Camera thumbnails over the HTTP API: the models and the handler of

    GET    /api/v1/thumbnails/{device_id}          the camera's latest frame check picture (JPEG)

The picture is the one the frame check keeps per camera when video-quality diagnosis is on
(probes.rtsp_frame.thumbnail_dir, probes/vqd/thumbs.py: <device id>.jpg, 320 px wide); the
phone page shows it under a camera's open video-quality fault ("画面截图 12:03"). It is fleet
data: a read like the others, behind the status token when one is configured (a bearer header,
never a query string). `Last-Modified` says when the frame was taken (the file's write time).

The device id must be a point of the inventory: an id that is not (a path such as ../../x, an
id made up) is 404 before any file name is formed, and the file name is then the store's
(thumbnail_name: only [A-Za-z0-9._-]), always inside the folder. The route is declared with the
others in monitor.app.api `_endpoints()`.
"""

from __future__ import annotations

import asyncio
from email.utils import formatdate
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from monitor.app.api_base import ApiError, Call, InModel, Reply
from monitor.fleet.inventory import Inventory
from probes.vqd.thumbs import thumbnail_name

MAX_THUMBNAIL_BYTES = 2 << 20
"""Larger files are not served (a thumbnail is a few tens of kB; WeCom's image limit is 2 MB)."""
MEDIA_TYPE = "image/jpeg"
NO_THUMBNAILS = "no thumbnails are kept: probes.rtsp_frame.vqd is off (or thumbnail_dir unset)"


class ThumbnailPath(InModel):
    device_id: Annotated[str, Field(min_length=1, max_length=200, description="the camera's point id (点位编号)")]


class Thumbnail(BaseModel):
    """A thumbnail as the answer's body: JPEG bytes and when the frame was taken (UTC ns, the
    file's modification time); documented as a binary string."""

    model_config = ConfigDict(frozen=True)

    data: bytes
    taken_ns: int

    @property
    def last_modified(self) -> str:
        """`taken_ns` as an HTTP-date (RFC 9110 §5.6.7), for the Last-Modified header."""
        return formatdate(self.taken_ns / 1e9, usegmt=True)

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "string", "format": "binary", "title": "Thumbnail",
                "description": "the JPEG picture; Last-Modified: when the frame was taken"}


class ThumbnailRoutes:
    """The handler of the thumbnail route over `folder` (None: no thumbnails kept, every
    request 404 saying so) for the points of `inventory`."""

    def __init__(self, folder: Path | None, inventory: Inventory) -> None:
        self._folder = folder
        self._inventory = inventory

    async def thumbnail(self, call: Call) -> Reply:
        device_id = call.path.device_id
        if device_id not in self._inventory.devices:
            raise ApiError(404, "no such point")  # the id is not echoed: it may be a made-up path
        if self._folder is None:
            raise ApiError(404, NO_THUMBNAILS)
        found = await asyncio.to_thread(_read, self._folder / thumbnail_name(device_id))
        if found is None:
            raise ApiError(404, f"no thumbnail of {device_id} yet (no frame check with a picture)")
        return Reply(200, found)


def _read(path: Path) -> Thumbnail | None:
    """The file as a Thumbnail; None when it is missing, empty or too large."""
    try:
        with path.open("rb") as f:
            taken_ns = int(path.stat().st_mtime_ns)
            data = f.read(MAX_THUMBNAIL_BYTES + 1)
    except OSError:
        return None
    if not data or len(data) > MAX_THUMBNAIL_BYTES:
        return None
    return Thumbnail(data=data, taken_ns=taken_ns)

"""A camera's serial number changed: propose a replacement (更换) for the duty engineer to confirm.

The ONVIF probe reads each camera's serial (GetDeviceInformation SerialNumber) and offers it as
a hint of its results (probes.onvif: `offers`). The daemon's pipeline hands every offered
`serial` to `SerialWatch.learn`, which compares it with the last serial seen of the device (at
start: the point list's `serial` column, where it has one) and, when it differs, records a
replacement proposal on the device's newest open work order, or on a new order of source
serial_change (WorkOrderBook.propose_replacement). A device seen for the first time without a
serial in the point list only sets what is "last seen".

The last serials are kept in memory: after a restart the point list seeds them again, and the
book refuses a proposal of a (device, new serial) it has already recorded, so a camera that
keeps reporting its new serial is proposed once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar, Self

from monitor.assess.orders import WorkOrderError
from monitor.assess.workorders import WorkOrderBook
from monitor.fleet.inventory import Inventory

log = logging.getLogger("fleetmon.workorders")


class SerialWatch:
    """`async with SerialWatch(book, inventory) as watch:` then hand it to the pipeline as a
    listener. `learn` never blocks: the proposal is written by a task; leaving waits for the
    ones still running (each is one short transaction)."""

    learns: ClassVar[tuple[str, ...]] = ("serial",)

    def __init__(self, book: WorkOrderBook, inventory: Inventory) -> None:
        self._book = book
        self._last: dict[str, str] = {d.id: d.serial.strip() for d in inventory.devices.values() if d.serial}
        self._tasks: set[asyncio.Task[None]] = set()

    def last_serial(self, device_id: str) -> str | None:
        """The serial last seen of the device (or the point list's), None when none."""
        return self._last.get(device_id)

    def learn(self, device_id: str, hint: str, value: str) -> None:
        """A result offered `serial` = `value` for `device_id` (other hints are not ours;
        empty values, a device that did not answer, are ignored)."""
        serial = value.strip()
        if hint != "serial" or not serial:
            return
        old = self._last.get(device_id)
        self._last[device_id] = serial
        if old is None or old == serial:
            return
        task = asyncio.get_running_loop().create_task(self._propose(device_id, old, serial), name="serial-proposal")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _propose(self, device_id: str, old: str, new: str) -> None:
        try:
            await self._book.propose_replacement(device_id, old, new)
        except WorkOrderError as exc:  # e.g. the point left the point list meanwhile
            log.warning("serial of %s changed %s → %s, no replacement proposed: %s", device_id, old, new, exc)
        except Exception:  # the database: say so; the next change is proposed again
            log.exception("serial of %s changed %s → %s: recording the proposal failed", device_id, old, new)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

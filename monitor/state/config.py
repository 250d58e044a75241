"""config.yaml section `state`: the state database and the hysteresis of the trackers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from monitor.core.config_base import Strict


class StateConfig(Strict):
    database: Path = Path("/var/lib/fleetmon/state.db")
    """SQLite state database (WAL): every state transition with its time."""
    down_after: Annotated[int, Field(ge=1, le=100)] = 3
    """Consecutive failed probe results before a device is declared down."""
    up_after: Annotated[int, Field(ge=1, le=100)] = 2
    """Consecutive good probe results before a down device is declared up again."""
